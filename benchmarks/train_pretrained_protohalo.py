"""The recipe of the pretrained protohalo U-Net and its adaptive-threshold calibration.

Every number of the shipped protohalo painter's model card and of the protohalo section of
BENCHMARKS.md comes from this script, run stage by stage (each stage skips what ``--work``
already holds, so an interrupted run resumes). Objects are judged from 30 particles, in
quarter-decade bins holding at least 50 connected-truth objects.

``sims``
    ``bigpaint simulate`` boxes at the painter's cell of 2 Mpc/h with the pretrained halo
    painter's PM settings, protohalo labels for every halo of at least 30 particles.
    Seeds: training ``--train-seeds`` (192 Mpc/h, 96^3 particles), calibration
    ``--calibration-seed`` (192 Mpc/h), a small box for trying settings by hand (6002), and
    two verdict boxes used for nothing else: ``--test-seed`` (256 Mpc/h, 128^3) and
    ``--test-small-seed`` (128 Mpc/h, 64^3), so the verdict covers seeds and box sizes at
    one cell size.
``train``
    The U-Net (reduced to 3 levels of 8 filters for the CPU) on the training boxes, a
    snapshot every ``--snapshot`` steps.
``truemap``
    Marker settings for true maps, chosen on the training and calibration boxes, judged on
    the verdict boxes: every bin within max(10 %, 2 sigma), N(>M) within 5 %.
``calibrate``
    For each snapshot of ``--snapshots`` and each segmentation setting: segment the
    painted calibration box, calibrate the adaptive threshold against its connected truth,
    score the corrected mass function there; keep the best.
``verdict``
    The chosen snapshot and calibration on the verdict boxes: every bin within
    max(15 %, 2 sigma), N(>M) within 10 %, with and without the correction.

Usage::

    nice -n 5 python benchmarks/train_pretrained_protohalo.py sims train truemap \
        calibrate verdict --work runs/protohalo
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from train_pretrained_halo import SIM as HALO_SIM

#: The halo painter's simulations (cell 2 Mpc/h, z = 0), with protohalo labels from 30
#: particles; box and particles are set per box.
SIM: dict[str, Any] = {
    **{k: v for k, v in HALO_SIM.items() if k not in ("particles", "box_size", "halo_counts")},
    "protohalo": {"min_particles": 30},
}
CELL = 2.0
#: seed -> particles per side; the box is ``particles * CELL``.
TRAIN_SEEDS = [5001, 5002, 5003]
CALIBRATION_SEED = 5004
TEST_SEED = 6001
TEST_SMALL_SEED = 6003
#: A small box for trying settings by hand; never a verdict box.
DEV_SEED = 6002
SIZES = {"train": 96, "calibration": 96, "test": 128, "test_small": 64, "dev": 64}


def say(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def box_dir(work: Path, seed: int) -> Path:
    return work / "sims" / f"seed{seed}"


def boxes(args: argparse.Namespace) -> list[tuple[int, int]]:
    """(seed, particles per side) of every box, the quickest verdict box first."""
    return [
        (DEV_SEED, SIZES["dev"]),
        (args.test_small_seed, SIZES["test_small"]),
        *[(s, SIZES["train"]) for s in args.train_seeds],
        (args.calibration_seed, SIZES["calibration"]),
        (args.test_seed, SIZES["test"]),
    ]


def stage_sims(args: argparse.Namespace) -> None:
    """Run every box not yet finished (a box is finished when its summary.json exists)."""
    from bigpaint.ics.power import linear_power
    from bigpaint.sim.simulate import simulate

    lp = linear_power()
    for seed, n in boxes(args):
        out = box_dir(args.work, seed)
        if (out / "summary.json").exists():
            say(f"seed {seed}: done earlier")
            continue
        cfg = {
            **SIM,
            "particles": n,
            "box_size": n * CELL,
            "seed": seed,
            "halo_counts": {"grid": n, "mass_bins": [1.41e13, 1.0e16]},
            "chunks": 32,
            "output": str(out),
            "overwrite": True,
        }
        res = simulate(cfg, power=lp, log=lambda m, s=seed: say(f"seed {s}: {m}"))
        say(f"seed {seed}: {res.n_halos} halos, {res.total_seconds:.0f} s")


#: The reduced U-Net trained on the CPU (the paper's is levels 5, filters 12: 14.5 M
#: parameters, ``configs/train-protohalo-unet.yaml``).
MODEL: dict[str, Any] = {"levels": 3, "filters": 8, "negative_slope": 0.05, "dropout": 0.2}


def train_config(args: argparse.Namespace, steps: int) -> dict[str, Any]:
    """The ``bigpaint train`` config of the U-Net on the training boxes."""
    boxes = [box_dir(args.work, s) for s in args.train_seeds]
    return {
        "family": "protohalo-unet",
        "model": {**MODEL, "levels": args.levels, "filters": args.filters, "dropout": args.dropout},
        "objective": {"buffer": args.buffer},
        "data": {
            "inputs": [str(boxes[0] / "density_ic.zarr")],
            "targets": [str(boxes[0] / "protohalo_distance.zarr")],
            "more_boxes": [
                {
                    "inputs": [str(b / "density_ic.zarr")],
                    "targets": [str(b / "protohalo_distance.zarr")],
                }
                for b in boxes[1:]
            ],
            "patch": args.patch,
            "batch_size": args.batch,
            "validation": {"origin": [0, 0, 0], "size": args.patch},
            "symmetries": True,
            "input_norm": [{"kind": "affine", "shift": 0.0, "scale": "auto"}],
        },
        "optim": {"lr": args.lr, "betas": [0.9, 0.999]},
        "run": {
            "out": str(args.work / "train" / "unet"),
            "seed": 0,
            "max_steps": steps,
            "log_every": 50,
            "val_every": args.snapshot,
            "checkpoint_every": args.snapshot,
            "val_batches": 4,
            "device": "auto",
            "threads": os.cpu_count(),
        },
    }


def stage_train(args: argparse.Namespace) -> None:
    """Train the U-Net; a snapshot every ``--snapshot`` steps for selection."""
    import shutil

    from bigpaint.train import train

    run = args.work / "train" / "unet"
    snaps = run / "snapshots"
    snaps.mkdir(parents=True, exist_ok=True)
    for step in range(args.snapshot, args.steps + 1, args.snapshot):
        snap = snaps / f"step{step:06d}.painter"
        if snap.exists():
            continue
        t0 = time.perf_counter()
        train(train_config(args, step))
        shutil.copytree(run / "last.painter", snap)
        say(f"unet: step {step} in {time.perf_counter() - t0:.0f} s")


# ---------------------------------------------------------------- judging a catalogue

#: Objects judged: at least this many particles (cells: one particle per cell).
MIN_CELLS = 30
#: Bins are judged when the truth holds at least this many objects.
MIN_OBJECTS = 50
#: Mass bins in cells: a quarter decade each from MIN_CELLS.
EDGES = MIN_CELLS * 10 ** (0.25 * np.arange(0, 17))


def truth_cells(seed: int, work: Path) -> np.ndarray:
    """Sizes in cells of the connected-truth objects of a box."""
    import pyarrow.parquet as pq

    return pq.read_table(box_dir(work, seed) / "protohalos_connected.parquet")["n_cells"].to_numpy()


def judge(cells: np.ndarray, truth: np.ndarray, bin_tol: float, cum_tol: float) -> dict:
    """Mass function of segmented object sizes against the connected truth, in cells.

    Bins of ``EDGES`` holding >= ``MIN_OBJECTS`` truth objects pass within
    ``max(bin_tol, 2 sigma)``, sigma the Poisson error of the truth count relative to it;
    the cumulative count ``N(>= M)`` passes within ``cum_tol`` at every truth size ``M``
    above which >= ``MIN_OBJECTS`` truth objects remain.
    """
    cells = np.asarray(cells)[np.asarray(cells) >= MIN_CELLS]
    truth = np.asarray(truth)[np.asarray(truth) >= MIN_CELLS]
    nt, _ = np.histogram(truth, EDGES)
    ns, _ = np.histogram(cells, EDGES)
    bins = []
    for i in np.flatnonzero(nt >= MIN_OBJECTS):
        dev = ns[i] / nt[i] - 1
        tol = max(bin_tol, 2 / np.sqrt(nt[i]))
        bins.append(
            {
                "cells": [float(EDGES[i]), float(EDGES[i + 1])],
                "truth": int(nt[i]),
                "segmented": int(ns[i]),
                "deviation": float(dev),
                "tolerance": float(tol),
                "pass": bool(abs(dev) <= tol),
            }
        )
    ts = np.sort(truth)[::-1]  # ts[k - 1] is the k-th largest: N(>= M) >= k below it
    cum = []
    for m in np.unique(ts[MIN_OBJECTS - 1 :]):
        n_t = int(np.count_nonzero(truth >= m))
        n_s = int(np.count_nonzero(cells >= m))
        cum.append((float(m), n_t, n_s, n_s / n_t - 1))
    worst = max(cum, key=lambda c: abs(c[3])) if cum else (np.nan, 0, 0, np.nan)
    return {
        "bins": bins,
        "bins_pass": all(b["pass"] for b in bins),
        "cumulative_worst": {
            "cells": worst[0],
            "truth": worst[1],
            "segmented": worst[2],
            "deviation": worst[3],
        },
        "cumulative_pass": bool(abs(worst[3]) <= cum_tol),
        "objects_truth": int(truth.size),
        "objects_segmented": int(cells.size),
    }


def segment_box(distance: Path, out: Path, params: Any, calibration: Any = None) -> np.ndarray:
    """Segment a distance-map Field (the chunked engine, as ``bigpaint segment``) and return
    the catalogue's (corrected) sizes in cells."""
    from bigpaint.segment import read_catalog, segment_field

    if not out.exists():
        segment_field(str(distance), str(out), params, calibration=calibration, chunks=32)
    return read_catalog(out)["volume"].to_numpy()


# ---------------------------------------------------------------- true maps


def true_map_candidates() -> dict[str, Any]:
    """Marker settings tried on true maps (per-object normalized: every object peaks at 1)."""
    from bigpaint.segment import SegmentParams

    return {
        "default": SegmentParams(),
        "h0.5": SegmentParams(h=0.5),
        "plateau": SegmentParams(min_distance=1, marker_threshold=0.999),
        "plateau-h0.2": SegmentParams(min_distance=1, marker_threshold=0.999, h=0.2),
    }


def stage_truemap(args: argparse.Namespace) -> None:
    """Choose marker settings for true maps on the training and calibration boxes, then
    judge the choice on the verdict boxes (10 % / 2 sigma per bin, 5 % cumulative)."""
    import json

    out = args.work / "truemap"
    out.mkdir(parents=True, exist_ok=True)
    select = [*args.train_seeds, args.calibration_seed]
    rows: dict[str, Any] = {}
    for name, params in true_map_candidates().items():
        for seed in select:
            d = box_dir(args.work, seed)
            cells = segment_box(
                d / "protohalo_distance.zarr", out / f"{seed}-{name}.parquet", params
            )
            rows.setdefault(name, {})[seed] = judge(cells, truth_cells(seed, args.work), 0.10, 0.05)
        worst = max(
            abs(b["deviation"]) / b["tolerance"] for r in rows[name].values() for b in r["bins"]
        )
        rows[name]["score"] = worst
        say(f"true map {name}: worst bin |deviation| / tolerance {worst:.2f} on seeds {select}")
    best = min(true_map_candidates(), key=lambda n: rows[n]["score"])
    say(f"true map: chosen {best}")
    verdict = {}
    params = true_map_candidates()[best]
    for seed in (args.test_seed, args.test_small_seed):
        d = box_dir(args.work, seed)
        cells = segment_box(d / "protohalo_distance.zarr", out / f"{seed}-{best}.parquet", params)
        verdict[seed] = judge(cells, truth_cells(seed, args.work), 0.10, 0.05)
        v = verdict[seed]
        say(
            f"true map, seed {seed}: bins pass {v['bins_pass']}, cumulative worst "
            f"{v['cumulative_worst']['deviation']:+.3f} at {v['cumulative_worst']['cells']:.0f} "
            f"cells"
        )
    (out / "truemap.json").write_text(
        json.dumps(
            {"selection": rows, "chosen": best, "params": params.as_dict(), "verdict": verdict},
            indent=1,
            default=str,
        )
    )


# ---------------------------------------------------------------- painted maps

#: Name the chosen U-Net ships under (``pretrained:NAME``).
SHIP_NAME = "protohalo-unet-2mpc"
#: Trajectory thresholds recorded for the adaptive threshold (from the foreground up to 1).
TRAJECTORIES = 41


def painted_candidates() -> dict[str, dict[str, Any]]:
    """Segmentation settings tried on painted maps (keyword arguments of SegmentParams)."""
    return {
        f"t{t:g}-md{md}-h{h:g}": {"threshold": t, "min_distance": md, "h": h}
        for t in (0.1, 0.2)
        for md in (1, 2)
        for h in (0.0, 0.2)
    }


def painted(args: argparse.Namespace, snapshot: str, seed: int) -> Path:
    """The map the U-Net ``snapshot`` paints from a box's initial density (chunked engine)."""
    from bigpaint.paint import paint_field

    out = args.work / "paint" / snapshot / f"seed{seed}.zarr"
    ckpt = args.work / "train" / "unet" / "snapshots" / f"{snapshot}.painter"
    out.parent.mkdir(parents=True, exist_ok=True)
    # resumable: a finished painting of this job is kept, a partial one completed
    paint_field(str(ckpt), str(box_dir(args.work, seed) / "density_ic.zarr"), str(out), chunks=32)
    return out


def _params(kw: dict[str, Any]) -> Any:
    from bigpaint.segment import SegmentParams
    from bigpaint.segment.threshold import trajectory_ladder

    return SegmentParams(
        **kw, trajectory_thresholds=trajectory_ladder(kw["threshold"], TRAJECTORIES)
    )


def stage_calibrate(args: argparse.Namespace) -> None:
    """For each snapshot of ``--snapshots`` and each candidate setting: segment the map it
    paints of the calibration box, calibrate the adaptive threshold against that box's
    connected truth, and score the corrected mass function there (15 % / 2 sigma per bin,
    10 % cumulative). The best (snapshot, setting) and its calibration are kept."""
    import json

    from bigpaint.segment import apply_calibration, calibrate_catalog, read_catalog

    seed = args.calibration_seed
    out = args.work / "calibrate"
    out.mkdir(parents=True, exist_ok=True)
    truth = box_dir(args.work, seed) / "protohalos_connected.parquet"
    tcells = truth_cells(seed, args.work)
    results = {}
    for snap in args.snapshots:
        dmap = painted(args, snap, seed)
        for name, kw in painted_candidates().items():
            key = f"{snap}/{name}"
            cat = out / snap / f"{name}.parquet"
            cat.parent.mkdir(parents=True, exist_ok=True)
            raw = segment_box(dmap, cat, _params(kw))
            try:
                cal = calibrate_catalog(cat, truth, out / snap / f"{name}.json")
            except Exception as exc:  # a setting whose catalogue cannot be calibrated
                say(f"{key}: not calibrated ({exc})")
                continue
            t = read_catalog(cat)
            n = len(cal.thresholds)
            vol, _ = apply_calibration(
                np.asarray(t["trajectory_volume"].combine_chunks().flatten()).reshape(-1, n),
                np.asarray(t["trajectory_sum"].combine_chunks().flatten()).reshape(-1, n),
                t["volume_raw"].to_numpy(),
                cal,
            )
            j = judge(vol, tcells, 0.15, 0.10)
            j["raw"] = judge(raw, tcells, 0.15, 0.10)
            j["score"] = max(abs(b["deviation"]) / b["tolerance"] for b in j["bins"])
            j["score"] = max(j["score"], abs(j["cumulative_worst"]["deviation"]) / 0.10)
            results[key] = j
            say(f"{key}: score {j['score']:.2f} (raw {len(raw)} regions)")
    best = min(results, key=lambda k: results[k]["score"])
    snap, name = best.split("/")
    say(f"calibration: chosen {best}")
    (out / "selection.json").write_text(
        json.dumps(
            {
                "results": results,
                "chosen": best,
                "snapshot": snap,
                "setting": name,
                "params": painted_candidates()[name],
            },
            indent=1,
        )
    )


def stage_verdict(args: argparse.Namespace) -> None:
    """Paint the verdict boxes with the chosen snapshot, segment them with the calibration
    (its own settings, as ``bigpaint segment --calibration``) and judge the mass function
    against each box's connected truth, with and without the correction."""
    import json

    sel = json.loads((args.work / "calibrate" / "selection.json").read_text())
    snap, name = sel["snapshot"], sel["setting"]
    cal = args.work / "calibrate" / snap / f"{name}.json"
    out = args.work / "verdict"
    out.mkdir(parents=True, exist_ok=True)
    verdict = {}
    for seed in (args.test_seed, args.test_small_seed):
        dmap = painted(args, snap, seed)
        tc = truth_cells(seed, args.work)
        vol = segment_box(dmap, out / f"seed{seed}-calibrated.parquet", None, calibration=cal)
        raw = segment_box(dmap, out / f"seed{seed}-raw.parquet", _params(sel["params"]))
        verdict[seed] = {
            "calibrated": judge(vol, tc, 0.15, 0.10),
            "raw": judge(raw, tc, 0.15, 0.10),
        }
        v = verdict[seed]["calibrated"]
        say(
            f"U-Net map, seed {seed}: bins pass {v['bins_pass']}, cumulative worst "
            f"{v['cumulative_worst']['deviation']:+.3f}"
        )
    (out / "verdict.json").write_text(
        json.dumps({"snapshot": snap, "setting": name, "verdict": verdict}, indent=1)
    )


def _verdict_figures(v: dict) -> dict[str, Any]:
    """One box's judgement as card figures (numbers only)."""
    return {
        "objects (truth, >= 30 cells)": v["objects_truth"],
        "objects (segmented, >= 30 cells)": v["objects_segmented"],
        "bins": [
            {k: b[k] for k in ("cells", "truth", "segmented", "deviation", "tolerance")}
            for b in v["bins"]
        ],
        "bins passed": sum(b["pass"] for b in v["bins"]),
        "bins judged": len(v["bins"]),
        "cumulative worst deviation": v["cumulative_worst"]["deviation"],
        "cumulative worst at cells": v["cumulative_worst"]["cells"],
    }


def stage_ship(args: argparse.Namespace) -> None:
    """Copy the chosen U-Net into the package with its card and its calibration."""
    import json
    import shutil

    import bigpaint
    from bigpaint.painters import read_card, write_card
    from bigpaint.painters.card import HeldOut, Verdict
    from bigpaint.painters.pretrained import PACKAGE_DIR

    sel = json.loads((args.work / "calibrate" / "selection.json").read_text())
    ver = json.loads((args.work / "verdict" / "verdict.json").read_text())
    snap, setting = sel["snapshot"], sel["setting"]
    dest = PACKAGE_DIR / f"{SHIP_NAME}.painter"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(args.work / "train" / "unet" / "snapshots" / f"{snap}.painter", dest)
    cal = json.loads((args.work / "calibrate" / snap / f"{setting}.json").read_text())
    cal["info"]["map"]["painter"] = SHIP_NAME  # the maps' identity is the checkpoint hash
    (dest / "calibration.json").write_text(json.dumps(cal, indent=2))
    card = read_card(dest)
    boxes = {args.test_seed: "256 Mpc/h", args.test_small_seed: "128 Mpc/h"}
    figures: dict[str, Any] = {}
    for seed, size in boxes.items():
        v = ver["verdict"][str(seed)]
        figures[f"seed {seed} ({size}), calibrated"] = _verdict_figures(v["calibrated"])
        figures[f"seed {seed} ({size}), uncorrected"] = _verdict_figures(v["raw"])
    big = ver["verdict"][str(args.test_seed)]["calibrated"]
    figures[f"worst bin deviation, seed {args.test_seed}"] = max(
        (b["deviation"] for b in big["bins"]), key=abs
    )
    figures[f"cumulative worst deviation, seed {args.test_seed}"] = big["cumulative_worst"][
        "deviation"
    ]
    figures["calibration box score"] = sel["results"][f"{snap}/{setting}"]["score"]
    seeds = ", ".join(str(s) for s in args.train_seeds)
    card = card.model_copy(
        update={
            "name": SHIP_NAME,
            "summary": "protohalo U-Net: normalized protohalo distance map from the initial "
            "density at z = 19, 2 Mpc/h cells (reduced size)",
            "description": (
                f"The protohalo U-Net of Bernardini et al. at reduced size ({args.levels} levels "
                f"of {args.filters} filters, dropout {args.dropout}; the paper's is 5 "
                "levels of 12), trained with the selective normalized L1 loss on "
                f"{len(args.train_seeds)} bigpaint PM + FoF simulations (seeds {seeds}; "
                f"{SIZES['train']}^3 particles in {SIZES['train'] * CELL:g} Mpc/h, protohalos "
                "of halos from 30 particles). It ships with the adaptive-threshold calibration "
                f"(calibration.json; segmentation setting {setting}) fitted on simulation seed "
                f"{args.calibration_seed}, which also chose the snapshot ({snap}) and the "
                "setting. Verdict boxes never used for either: seeds "
                f"{args.test_seed} and {args.test_small_seed}. The mass function of small "
                "objects is not recovered: see the figures and BENCHMARKS.md. Made by "
                "benchmarks/train_pretrained_protohalo.py."
            ),
            "held_out": HeldOut(
                selection_seeds=[args.calibration_seed],
                verdict_seeds=[args.test_seed, args.test_small_seed],
            ),
            "verdict": Verdict(
                command="python benchmarks/train_pretrained_protohalo.py verdict",
                figures=figures,
                headline=[
                    f"worst bin deviation, seed {args.test_seed}",
                    f"cumulative worst deviation, seed {args.test_seed}",
                ],
            ),
            "license": "BSD-3-Clause",
            "bigpaint_version": bigpaint.__version__,
        }
    )
    write_card(dest, card)
    say(f"shipped {snap} as pretrained:{SHIP_NAME} in {dest}")


STAGES = {
    "sims": stage_sims,
    "train": stage_train,
    "truemap": stage_truemap,
    "calibrate": stage_calibrate,
    "verdict": stage_verdict,
    "ship": stage_ship,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("stages", nargs="+", choices=list(STAGES))
    p.add_argument("--work", type=Path, default=Path("runs/protohalo"))
    p.add_argument("--train-seeds", type=int, nargs="+", default=TRAIN_SEEDS)
    p.add_argument("--calibration-seed", type=int, default=CALIBRATION_SEED)
    p.add_argument("--test-seed", type=int, default=TEST_SEED)
    p.add_argument("--test-small-seed", type=int, default=TEST_SMALL_SEED)
    p.add_argument("--steps", type=int, default=6000, help="training steps")
    p.add_argument("--snapshot", type=int, default=250, help="steps between snapshots")
    p.add_argument("--patch", type=int, default=48, help="patch side, voxels")
    p.add_argument("--buffer", type=int, default=8, help="loss-free border, voxels")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--levels",
        type=int,
        default=MODEL["levels"],
        help="U-Net poolings (the paper: 5, with --filters 12 --patch 128 on a GPU)",
    )
    p.add_argument("--filters", type=int, default=MODEL["filters"])
    p.add_argument("--dropout", type=float, default=MODEL["dropout"])
    p.add_argument(
        "--snapshots",
        nargs="+",
        default=["step003000", "step004000", "step005000", "step006000"],
        help="snapshots tried by the calibrate stage",
    )
    args = p.parse_args()
    for st in args.stages:
        say(f"stage {st}")
        STAGES[st](args)


if __name__ == "__main__":
    main()
