"""The recipe of the pretrained halo painter: simulations, baselines, training, selection, verdict.

Every number of the shipped painter's model card comes from this script, run stage by stage
(each stage skips what ``--work`` already holds, so an interrupted run resumes):

``sims``
    ``bigpaint simulate`` boxes of 256 Mpc/h with 128^3 particles (2 Mpc/h, the painter's
    cell), PM with a force mesh of 4 cells per particle (the finest the PM offers: the FoF
    mass function then moves by 3-7 % from the mesh of 3, against 13-18 % from 2 to 4;
    ``benchmarks/results/hmf-force-convergence.json``) in 40 steps from z = 19, FoF b = 0.2.
    Seeds: training ``--train-seeds``, selection ``--select-seed``, verdict ``--test-seeds``.
    The seeds never mix: the verdict boxes are touched only by the ``verdict`` stage.
``counts``
    Halo counts on the 128^3 grid in the mass bins ``--mass-bins`` (from each box's FoF
    catalogue, so the bins can change without rerunning the PM).
``baselines``, ``train``
    Linear and second-order bias fitted on the training boxes; Poisson regression with a
    snapshot every ``--snapshot`` steps.
``calibrate``
    Affine and power-law output maps per mass bin, fitted on the training boxes
    (:mod:`halo_calibration`).
``select``, ``verdict``, ``external``, ``ship``
    The best raw or calibrated snapshot by the evaluation verdict pooled over the selection
    boxes (``--select-seeds``, :mod:`halo_selection`); its
    verdict on each verdict box and on a box made by another code (pmwd); the package copy
    with its model card.

Usage::

    nice -n 5 python benchmarks/train_pretrained_halo.py sims --work runs/pretrained
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: The painter's world: cell 2 Mpc/h, z = 0, bigpaint's default cosmology.
SIM: dict[str, Any] = {
    "particles": 128,
    "box_size": 256.0,
    "tile": 32,
    "z_init": 19.0,
    "z_final": 0.0,
    "steps": 40,
    "force_mesh_factor": 4,
    "device": "cpu",
    "fof": {"b": 0.2, "min_members": 10},
    "halo_counts": {"grid": 128, "mass_bins": [1.41e13, 4.0e13, 1.0e14, 1.0e16]},
    "protohalo": {"min_particles": 100},
    "chunks": 64,
    "save_particles": False,
}
TRAIN_SEEDS = [1001, 1002, 1003, 1004, 1005, 1006, 1007]
#: Selection boxes: 2001, and 3002 and 3003, which judged the previous release and so can no
#: longer judge; one box measures the figures the selection decides on too coarsely.
SELECT_SEEDS = [2001, 3002, 3003]
#: Verdict boxes. 3001 judged the first release (affine calibration), 3002 and 3003 the second
#: (power calibration, Poisson noise assumed), and what they showed shaped the third: the
#: truth's noise measured against the matter. 3004-3006 judged the pick of a selection on
#: one box, whose failures there led to the selection on three. So the release is judged
#: on boxes nobody had looked at.
TEST_SEEDS = [3007, 3008, 3009]


def say(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def box_dir(work: Path, seed: int) -> Path:
    return work / "sims" / f"seed{seed}"


def stage_sims(args: argparse.Namespace) -> None:
    """Run every box not yet finished (a box is finished when its summary.json exists)."""
    from bigpaint.ics.power import linear_power
    from bigpaint.sim.simulate import simulate

    lp = linear_power()
    seeds = [*args.train_seeds, *args.select_seeds, *args.test_seeds]
    for seed in seeds:
        out = box_dir(args.work, seed)
        if (out / "summary.json").exists():
            say(f"seed {seed}: done earlier")
            continue
        cfg = {**SIM, "seed": seed, "output": str(out), "overwrite": True}
        res = simulate(cfg, power=lp, log=lambda m, s=seed: say(f"seed {s}: {m}"))
        say(f"seed {seed}: {res.n_halos} halos, {res.total_seconds:.0f} s")


def stage_counts(args: argparse.Namespace) -> None:
    """Halo counts in ``--mass-bins`` for every box, from its FoF catalogue."""
    import pyarrow.parquet as pq

    from bigpaint.field import open_field, write_array
    from bigpaint.sim.truth import halo_counts

    bins = [float(b) for b in args.mass_bins]
    for seed in [*args.train_seeds, *args.select_seeds, *args.test_seeds]:
        d = box_dir(args.work, seed)
        out = d / "counts.zarr"
        if out.exists():
            have = open_field(str(out)).attrs["provenance"].get("mass_bins")
            if have == bins:
                continue
        cat = pq.read_table(d / "halos.parquet")
        ref = open_field(str(d / "halo_counts.zarr"))
        meta = {k: ref.attrs[k] for k in ("box_size", "kind", "units", "redshift", "cosmology")}
        meta["mass_assignment"] = ref.attrs.get("mass_assignment")
        meta["provenance"] = {
            **ref.attrs["provenance"],
            "mass_bins": bins,
            "mass_units": "Msun/h",
            "note": "recounted from halos.parquet by benchmarks/train_pretrained_halo.py",
        }
        grid = SIM["halo_counts"]["grid"]
        write_array(
            str(out),
            halo_counts(cat, grid, SIM["box_size"], bins),
            chunks=SIM["chunks"],
            meta=meta,
            overwrite=True,
        )
        say(f"seed {seed}: counts in {len(bins) - 1} bins written")


#: Architectures tried, each trained by Poisson regression (name -> model config).
MODELS: dict[str, dict[str, Any]] = {
    "paper": {"filters": 10, "blocks": 2, "pointwise_layers": 4},
    "wide3": {"filters": 16, "blocks": 3, "pointwise_layers": 4},
}


def train_config(args: argparse.Namespace, name: str, steps: int) -> dict[str, Any]:
    """The ``bigpaint train`` config of architecture ``name`` on the training boxes."""
    boxes = [box_dir(args.work, s) for s in args.train_seeds]
    n_bins = len(args.mass_bins) - 1
    return {
        "family": "halo-painter",
        "model": {**MODELS[name], "out_channels": n_bins},
        "objective": {"kind": "regression", "supervised_loss": "poisson"},
        "data": {
            "inputs": [str(boxes[0] / "lpt_density.zarr")],
            "targets": [str(boxes[0] / "counts.zarr")],
            "more_boxes": [
                {"inputs": [str(b / "lpt_density.zarr")], "targets": [str(b / "counts.zarr")]}
                for b in boxes[1:]
            ],
            "patch": args.patch,
            "batch_size": args.batch,
            "validation": {"origin": [0, 0, 0], "size": 32},
            "symmetries": True,
            "input_norm": [{"kind": "identity"}],
            "output_norm": [{"kind": "identity"}],
        },
        "optim": {
            "lr": args.lr,
            "betas": [0.9, 0.999],
            "schedule": "polynomial",
            "polynomial_steps": args.steps,
            "polynomial_power": 1.0,
        },
        "run": {
            "out": str(args.work / "train" / name),
            "seed": 0,
            "max_steps": steps,
            "log_every": 200,
            "val_every": args.snapshot,
            "checkpoint_every": args.snapshot,
            "val_batches": 4,
            "device": "auto",
            "threads": os.cpu_count(),
        },
    }


def stage_train(args: argparse.Namespace) -> None:
    """Train each of ``--models``; a snapshot every ``--snapshot`` steps for selection."""
    import shutil

    from bigpaint.train import train

    for name in args.models:
        run = args.work / "train" / name
        snaps = run / "snapshots"
        snaps.mkdir(parents=True, exist_ok=True)
        for step in range(args.snapshot, args.steps + 1, args.snapshot):
            snap = snaps / f"step{step:06d}.painter"
            if snap.exists():
                continue
            t0 = time.perf_counter()
            train(train_config(args, name, step))
            shutil.copytree(run / "last.painter", snap)
            say(f"{name}: step {step} in {time.perf_counter() - t0:.0f} s")


def stage_baselines(args: argparse.Namespace) -> None:
    """Fit the linear and second-order bias models on the training boxes (jointly) and paint
    them on the selection and verdict boxes."""
    from bigpaint.stats.baselines import fit_bias, paint_bias

    d = args.work / "baselines"
    d.mkdir(parents=True, exist_ok=True)
    pairs = [
        (
            str(box_dir(args.work, s) / "lpt_density.zarr"),
            str(box_dir(args.work, s) / "counts.zarr"),
        )
        for s in args.train_seeds
    ]
    for name, order, smoothing in (("linear", 1, 0.0), ("quadratic", 2, args.smoothing)):
        path = d / f"{name}.json"
        if not path.exists():
            fit_bias(pairs, order=order, smoothing=smoothing).save(path)
            say(f"baseline {name}: fitted on {len(pairs)} boxes")
        for seed in (*args.select_seeds, *args.test_seeds):
            out = box_dir(args.work, seed) / f"baseline-{name}.zarr"
            if not out.exists():
                paint_bias(path, str(box_dir(args.work, seed) / "lpt_density.zarr"), str(out))


#: Output calibrations fitted on the training boxes (``halo_calibration``), by snapshot suffix.
CALIBRATIONS = {"cal": "affine", "pcal": "power", "mcal": "matter", "ncal": "noise"}


def stage_calibrate(args: argparse.Namespace) -> None:
    """Calibrated copies of every snapshot, ``NAME-cal`` (affine output map per mass bin) and
    ``NAME-pcal`` (power-law map), fitted on the training boxes only, as the baselines are
    (:mod:`halo_calibration`); selection judges raw and calibrated snapshots alike."""
    import torch
    from halo_calibration import CalibrationSums, large_scale_modes, usable

    from bigpaint.field import open_field
    from bigpaint.painters import load_checkpoint, paint_array, save_checkpoint
    from bigpaint.train.card import training_card

    kmax = 0.2
    sel, w = large_scale_modes(SIM["halo_counts"]["grid"], SIM["box_size"], kmax)
    for name in args.models:
        for snap in sorted((args.work / "train" / name / "snapshots").glob("step*.painter")):
            todo = {suffix: args.work / "train" / f"{name}-{suffix}" / "snapshots" / snap.name
                    for suffix in CALIBRATIONS}  # fmt: skip
            todo = {k: v for k, v in todo.items() if not v.exists()}
            if not todo:
                continue
            painter, meta = load_checkpoint(snap)
            sums = CalibrationSums(meta.out_channels, SIM["box_size"])
            for seed in args.train_seeds:
                box = box_dir(args.work, seed)
                x = np.asarray(open_field(str(box / "lpt_density.zarr"))["delta"].values,
                               np.float32)  # fmt: skip
                t = open_field(str(box / "counts.zarr"))
                y = np.asarray(next(iter(t.data_vars.values())).values)
                m = np.asarray(open_field(str(box / "density.zarr"))["delta"].values)
                with torch.no_grad():
                    sums.add(paint_array(painter, x, tile=64), y, sel, w, matter=m)
            for suffix, dest in todo.items():
                norms = getattr(sums, CALIBRATIONS[suffix])()
                if not usable(norms):
                    say(f"{name}/{snap.stem}: no {CALIBRATIONS[suffix]} calibration ({norms})")
                    continue
                painter.set_normalization(output_norm=norms)
                prov = {
                    **meta.provenance,
                    "calibration": {
                        "output_norm": norms,
                        "fitted_on": "the training boxes: "
                        + (
                            "per mass bin the exponent that maximizes the correlation with "
                            f"the true counts at 0 < k <= {kmax} h/Mpc, then "
                            if suffix in ("pcal", "mcal", "ncal")
                            else "per mass bin "
                        )
                        + "the mean count and "
                        + {
                            "mcal": "the cross power with the simulation's matter",
                            "ncal": "the fluctuation power less the noise measured against "
                            "the simulation's matter",
                        }.get(suffix, "the Poisson shot-noise subtracted fluctuation power")
                        + f" at k <= {kmax} h/Mpc",
                        "training_cross_correlation": np.round(sums.correlation(), 5).tolist(),
                        "exponents": sums.exponents.tolist(),
                        "from": str(snap),
                    },
                }
                card, _ = training_card(painter.metadata(prov), name)
                dest.parent.mkdir(parents=True, exist_ok=True)
                save_checkpoint(painter, dest, provenance=prov, card=card)
                say(f"{name}-{suffix}/{snap.stem}: {norms}")


def paint_box(checkpoint: Path, seed: int, work: Path, out: Path) -> None:
    """Paint a whole box in memory (the reference the chunked engine equals) as a Field."""
    import numpy as np

    from bigpaint.field import open_field
    from bigpaint.painters import load_checkpoint, paint_array

    painter, _ = load_checkpoint(checkpoint)
    src = open_field(str(box_dir(work, seed) / "lpt_density.zarr"))
    x = np.asarray(src["delta"].values, np.float32)
    ref = open_field(str(box_dir(work, seed) / "counts.zarr"))
    meta = {k: ref.attrs[k] for k in ("box_size", "kind", "units", "redshift", "cosmology")}
    meta["mass_assignment"] = ref.attrs.get("mass_assignment")
    meta["provenance"] = {
        "operation": "paint",
        "checkpoint": str(checkpoint),
        "mass_bins": ref.attrs["provenance"]["mass_bins"],
        "mass_units": "Msun/h",
    }
    from bigpaint.field import write_array

    with __import__("torch").no_grad():
        y = paint_array(painter, x, tile=64)
    write_array(str(out), y, chunks=64, meta=meta, overwrite=True)


def stage_select(args: argparse.Namespace) -> None:
    """Judge every snapshot on each selection box (the truth's noise measured against its
    matter) and keep the one most likely to pass the verdict on a new box
    (:mod:`halo_selection`)."""
    from halo_selection import best, pass_probability, pool, score

    from bigpaint.stats.evaluate import evaluate

    table_path = args.work / "selection.json"
    table = json.loads(table_path.read_text()) if table_path.exists() else {}
    for name in [*args.models, *(f"{m}-{c}" for m in args.models for c in CALIBRATIONS)]:
        for snap in sorted((args.work / "train" / name / "snapshots").glob("step*.painter")):
            key = f"{name}/{snap.stem}"
            row = table.setdefault(key, {"checkpoint": str(snap), "boxes": {}})
            for seed in args.select_seeds:
                if str(seed) in row["boxes"]:
                    continue
                box = box_dir(args.work, seed)
                base = {n: str(box / f"baseline-{n}.zarr") for n in ("linear", "quadratic")}
                out = args.work / "select" / f"seed{seed}" / f"{name}-{snap.stem}.zarr"
                out.parent.mkdir(parents=True, exist_ok=True)
                paint_box(snap, seed, args.work, out)
                ev = evaluate(str(out), str(box / "counts.zarr"), base,
                              matter=str(box / "density.zarr"))  # fmt: skip
                row["boxes"][str(seed)] = {**ev.verdict.to_dict(), "summary": ev.summary()}
                say(f"{key} on seed {seed}: {ev.verdict.overall} {ev.summary()}")
                table_path.write_text(json.dumps(table, indent=2, default=str))
            boxes = [row["boxes"][str(s)] for s in args.select_seeds]
            row["pooled"] = pool(boxes)
            row["score"] = score(row["pooled"])
            row["pass_probability"], row["pass_probability_by_criterion"] = pass_probability(boxes)
            table_path.write_text(json.dumps(table, indent=2, default=str))
    chosen = best({k: table[k] for k in table if "pooled" in table[k]})
    say(
        f"best on the selection boxes: {chosen}, chance to pass a new box "
        f"{table[chosen]['pass_probability']:.2f}, score {table[chosen]['score']:.3f}"
    )
    (args.work / "best.json").write_text(json.dumps({"name": chosen, **table[chosen]}, indent=2))


def bigpaint(*argv: str) -> None:
    """Run a ``bigpaint`` command as a user would (a subprocess), failing loudly."""
    import subprocess

    cmd = [sys.executable, "-m", "bigpaint", *argv]
    say(" ".join(["bigpaint", *argv]))
    subprocess.run(cmd, check=True)


def judge(work: Path, box: Path, checkpoint: str, out: Path) -> dict:
    """Paint ``box/lpt_density.zarr`` with the engine and both baselines, as a user would
    on the CLI, then ``bigpaint evaluate`` against ``box/counts.zarr``; the verdict JSON.
    ``out`` is kept for one checkpoint: judged earlier with another, it is judged again."""
    import shutil

    record = out / "checkpoint.txt"
    if out.exists() and (not record.exists() or record.read_text() != checkpoint):
        say(f"{out} was judged with another painter; judging again")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    record.write_text(checkpoint)
    density = str(box / "lpt_density.zarr")
    painted = out / "painted.zarr"
    if not painted.exists():
        bigpaint("paint", "--checkpoint", checkpoint, density, str(painted), "--workers", "2")
    for name in ("linear", "quadratic"):
        base = out / f"baseline-{name}.zarr"
        if not base.exists():
            bigpaint("baseline", "paint", str(work / "baselines" / f"{name}.json"), density,
                     str(base), "--workers", "2")  # fmt: skip
    verdict = out / "evaluate"
    if not (verdict / "verdict.json").exists():
        bigpaint("evaluate", str(painted), str(box / "counts.zarr"),
                 "--baseline", f"linear={out / 'baseline-linear.zarr'}",
                 "--baseline", f"quadratic={out / 'baseline-quadratic.zarr'}",
                 "--matter", str(box / "density.zarr"),
                 "--out", str(verdict), "--workers", "2")  # fmt: skip
    return json.loads((verdict / "verdict.json").read_text())


def stage_verdict(args: argparse.Namespace) -> None:
    """The selected painter on the verdict box, never touched before this stage."""
    best = json.loads((args.work / "best.json").read_text())
    for seed in args.test_seeds:
        res = judge(args.work, box_dir(args.work, seed), best["checkpoint"],
                    args.work / "verdict" / f"seed{seed}")  # fmt: skip
        say(f"verdict on seed {seed}: {res['verdict']} {res['summary']}")


def stage_rejudge(args: argparse.Namespace) -> None:
    """Judge another checkpoint (``--checkpoint``) on ``--test-seeds`` into
    ``verdict-TAG/seedN`` (``--tag``): earlier releases and candidates on the same boxes."""
    if not args.checkpoint or not args.tag:
        raise SystemExit("rejudge needs --checkpoint PATH and --tag NAME")
    for seed in args.test_seeds:
        res = judge(args.work, box_dir(args.work, seed), args.checkpoint,
                    args.work / f"verdict-{args.tag}" / f"seed{seed}")  # fmt: skip
        say(f"{args.tag} on seed {seed}: {res['verdict']} {res['summary']}")


def stage_external(args: argparse.Namespace) -> None:
    """The selected painter on a box made by another code (pmwd): its 2LPT particles are
    deposited with ``bigpaint deposit``, its PM particles give the halos (bigpaint's FoF)."""
    import subprocess

    import numpy as np

    from bigpaint.field import write_array
    from bigpaint.ics.power import linear_power
    from bigpaint.sim.fof import fof_groups, halo_catalogue, particle_mass, write_catalogue
    from bigpaint.sim.truth import halo_counts

    d = args.work / "external" / f"pmwd-seed{args.external_seed}"
    n, box = SIM["particles"], SIM["box_size"]
    if not (d / "meta.json").exists():
        script = Path(__file__).parent / "external" / "pmwd_box.py"
        subprocess.run(
            [
                args.pmwd_python,
                str(script),
                "--seed",
                str(args.external_seed),
                "--particles",
                str(n),
                "--box",
                str(box),
                "--mesh",
                str(SIM["force_mesh_factor"]),
                "--steps",
                str(SIM["steps"]),
                "--z-init",
                str(SIM["z_init"]),
                "--out",
                str(d),
            ]
            + (["--pmwd-commit", args.pmwd_commit] if args.pmwd_commit else []),
            check=True,
        )
    cosmo = linear_power().cosmology
    cosmo_arg = ",".join(
        f"{k}={getattr(cosmo, k)}" for k in ("Omega_m", "Omega_b", "h", "n_s", "sigma_8")
    )
    if not (d / "lpt_density.zarr").exists():
        bigpaint("deposit", str(d / "lpt_z0.npy"), str(d / "lpt_density.zarr"), "--grid", str(n),
                 "--box-size", str(box), "--scheme", "cic", "--chunks", "64",
                 "--redshift", "0", "--cosmology", cosmo_arg, "--workers", "2")  # fmt: skip
    if not (d / "density.zarr").exists():  # the matter, which measures the truth's noise
        bigpaint("deposit", str(d / "nbody_z0.npy"), str(d / "density.zarr"), "--grid", str(n),
                 "--box-size", str(box), "--scheme", "cic", "--chunks", "64",
                 "--redshift", "0", "--cosmology", cosmo_arg, "--workers", "2")  # fmt: skip
    if not (d / "counts.zarr").exists():
        pos = np.load(d / "nbody_z0.npy").astype(np.float64)
        vel = np.load(d / "nbody_vel_z0.npy")
        mp = particle_mass(cosmo.Omega_m, box, n**3)
        fof = SIM["fof"]
        groups = fof_groups(pos, box, fof["b"] * box / n)
        cat = halo_catalogue(pos, vel, np.arange(n**3), box_size=box, particle_mass=mp,
                             min_members=fof["min_members"], groups=groups)  # fmt: skip
        write_catalogue(cat, d / "halos.parquet", {"box_size": box, "particle_mass": mp,
                        "redshift": 0.0, "code": "pmwd + bigpaint FoF"})  # fmt: skip
        bins = [float(b) for b in args.mass_bins]
        write_array(
            str(d / "counts.zarr"),
            halo_counts(cat, SIM["halo_counts"]["grid"], box, bins),
            chunks=64,
            meta={
                "box_size": box,
                "kind": "halo_count",
                "units": "halos",
                "redshift": 0.0,
                "cosmology": cosmo.to_field(),
                "mass_assignment": {"scheme": "NGP", "interlaced": False},
                "provenance": {
                    "operation": "pmwd PM + bigpaint FoF",
                    "mass_bins": bins,
                    "mass_units": "Msun/h",
                    "pmwd": json.loads((d / "meta.json").read_text()),
                },
            },
        )
        say(f"pmwd box: {cat.num_rows} FoF halos")
    best = json.loads((args.work / "best.json").read_text())
    res = judge(args.work, d, best["checkpoint"], d / "judged")
    say(f"verdict on the pmwd box: {res['verdict']} {res['summary']}")


def _calibration_of(name: str) -> str:
    """The calibration suffix of a snapshot name (``paper-pcal/step006000``: ``-pcal/``)."""
    return next((f"-{c}/" for c in CALIBRATIONS if f"-{c}/" in name), "")


#: The name the selected painter ships under (``pretrained:NAME``).
SHIP_NAME = "halo-painter-2mpc"


def _figures(verdict: dict) -> dict[str, Any]:
    """A verdict.json's numbers as card figures (strings dropped, per-criterion values kept)."""
    summary = {k: v for k, v in verdict["summary"].items() if not isinstance(v, str)}
    crit = {
        f"{c['name']} [{c['level']}]": {"value": c["value"], "error": c["error"]}
        for c in verdict["criteria"]
    }
    return {"summary": summary, "criteria": crit, "counts": verdict["counts"]}


def _cross_bias(args: argparse.Namespace) -> dict[str, float]:
    """Per verdict box, the painting's large-scale cross power with the simulation's matter
    over the truth's (:mod:`check_cross_bias`): the amplitude without any shot-noise model."""
    from check_cross_bias import cross_bias

    from bigpaint.field import data_var, open_field

    def load(path: Path) -> np.ndarray:
        return np.asarray(data_var(open_field(str(path))).values, np.float64)

    out = {}
    for seed in args.test_seeds:
        box = box_dir(args.work, seed)
        painted = load(args.work / "verdict" / f"seed{seed}" / "painted.zarr").sum(0)
        truth = load(box / "counts.zarr").sum(0)
        r = cross_bias(painted, truth, load(box / "density.zarr"), SIM["box_size"], 0.2)
        out[f"seed {seed}, total"] = float(r["X_all"])
    return out


def stage_ship(args: argparse.Namespace) -> None:
    """Copy the selected painter into the package with its card and its baselines."""
    import shutil

    from halo_selection import pool

    import bigpaint
    from bigpaint.painters import read_card, write_card
    from bigpaint.painters.card import HeldOut, Verdict
    from bigpaint.painters.pretrained import PACKAGE_DIR

    best = json.loads((args.work / "best.json").read_text())
    verdicts = {
        seed: json.loads(
            (args.work / "verdict" / f"seed{seed}" / "evaluate" / "verdict.json").read_text()
        )
        for seed in args.test_seeds
    }
    first = args.test_seeds[0]
    verdict = verdicts[first]
    # every box made by another code that this painter was judged on
    external = {
        int(path.parts[-4].removeprefix("pmwd-seed")): json.loads(path.read_text())
        for path in sorted((args.work / "external").glob("pmwd-seed*/judged/evaluate/verdict.json"))
        if (path.parents[1] / "checkpoint.txt").read_text() == best["checkpoint"]
    }
    dest = PACKAGE_DIR / f"{SHIP_NAME}.painter"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(best["checkpoint"], dest)
    card = read_card(dest)
    tot = verdict["summary"]
    figures: dict[str, Any] = {
        "s / s_linear": tot["s / s_linear"],
        "s / s_quadratic": tot["s / s_quadratic"],
        "mean r_c (k <= 0.2)": tot["mean r_c (k <= 0.2)"],
        "mean |T-1| (k <= 0.2)": tot["mean |T-1| (k <= 0.2)"],
        "criteria passed": verdict["counts"].get("PASS", 0),
        "criteria": len(verdict["criteria"]),
        "verdict box": {"seed": first, **_figures(verdict)},
        **{
            f"verdict box {seed}": {"seed": seed, **_figures(v)}
            for seed, v in verdicts.items()
            if seed != first
        },
        "selection boxes (pooled)": {
            "seeds": list(args.select_seeds),
            "score": best["score"],
            "chance to pass a new box": best["pass_probability"],
            **best["pooled"],
        },
    }
    figures["pooled over the verdict boxes"] = pool(list(verdicts.values()))
    for seed, v in external.items():
        figures[f"external pmwd box {seed}"] = _figures(v)
    if len(external) > 1:
        figures["pooled over the external boxes"] = pool(list(external.values()))
    figures["noise-free amplitude X = P_painted,m / P_truth,m (k <= 0.2)"] = _cross_bias(args)
    seeds = ", ".join(str(s) for s in args.train_seeds)
    card = card.model_copy(
        update={
            "name": SHIP_NAME,
            "summary": "halo painter: halo counts in 3 mass bins from 2LPT density, z = 0, "
            "2 Mpc/h cells",
            "description": (
                f"The halo painter of Kodi Ramanah et al., trained by Poisson regression on "
                f"{len(args.train_seeds)} bigpaint PM + FoF simulations (seeds {seeds}; "
                f"{SIM['particles']}^3 particles in {SIM['box_size']:g} Mpc/h, "
                f"{SIM['steps']} PM steps from z = {SIM['z_init']:g}, force mesh "
                f"{SIM['force_mesh_factor']}x, FoF b = {SIM['fof']['b']}, at least "
                f"{SIM['fof']['min_members']} members)"
                + {
                    "-cal/": ", then calibrated per mass bin by an affine output map (the mean "
                    "count and the large-scale amplitude at k <= 0.2 h/Mpc of the training "
                    "simulations; the output normalization)",
                    "-pcal/": ", then calibrated per mass bin by a power-law output map "
                    "N -> a N^g + b (g maximizes the correlation with the true counts at "
                    "k <= 0.2 h/Mpc, a and b set the large-scale amplitude and the mean count "
                    "of the training simulations; the output normalization)",
                    "-mcal/": ", then calibrated per mass bin by a power-law output map "
                    "N -> a N^g + b (g maximizes the correlation with the true counts at "
                    "k <= 0.2 h/Mpc; a matches the cross power with the matter, which carries "
                    "no halo noise, and b the mean count of the training simulations; the "
                    "output normalization)",
                    "-ncal/": ", then calibrated per mass bin by a power-law output map "
                    "N -> a N^g + b (g maximizes the correlation with the true counts at "
                    "k <= 0.2 h/Mpc; a matches the true power less the halos' noise measured "
                    "against the matter, and b the mean count of the training simulations; "
                    "the output normalization)",
                }.get(_calibration_of(best["name"]), "")
                + f". Snapshot {best['name']} was chosen by "
                "the evaluation verdict pooled over simulation seeds "
                f"{', '.join(str(s) for s in args.select_seeds)}; the verdict "
                "figures are on "
                + ", ".join(
                    f"seed {seed}: {v['verdict']} ({v['counts']})" for seed, v in verdicts.items()
                )
                + "; these boxes touched neither training, calibration nor selection. Made by "
                "benchmarks/train_pretrained_halo.py; see BENCHMARKS.md."
            ),
            "held_out": HeldOut(
                selection_seeds=list(args.select_seeds), verdict_seeds=list(args.test_seeds)
            ),
            "verdict": Verdict(
                command=(
                    "python benchmarks/train_pretrained_halo.py verdict "
                    f"--test-seeds {' '.join(str(s) for s in args.test_seeds)}"
                ),
                figures=figures,
                headline=[
                    "s / s_linear",
                    "mean r_c (k <= 0.2)",
                    "mean |T-1| (k <= 0.2)",
                    "criteria passed",
                    "criteria",
                ],
            ),
            "license": "BSD-3-Clause",
            "bigpaint_version": bigpaint.__version__,
        }
    )
    write_card(dest, card)
    base = dest / "baselines"
    base.mkdir(exist_ok=True)
    for name in ("linear", "quadratic"):
        shutil.copy(args.work / "baselines" / f"{name}.json", base / f"{name}.json")
    say(f"shipped {best['name']} as pretrained:{SHIP_NAME} in {dest}")


STAGES = {
    "sims": stage_sims,
    "counts": stage_counts,
    "baselines": stage_baselines,
    "train": stage_train,
    "calibrate": stage_calibrate,
    "select": stage_select,
    "verdict": stage_verdict,
    "rejudge": stage_rejudge,
    "external": stage_external,
    "ship": stage_ship,
}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("stages", nargs="+", choices=list(STAGES))
    p.add_argument("--work", type=Path, default=Path("runs/pretrained"))
    p.add_argument("--train-seeds", type=int, nargs="+", default=TRAIN_SEEDS)
    p.add_argument("--select-seeds", type=int, nargs="+", default=SELECT_SEEDS)
    p.add_argument("--test-seeds", type=int, nargs="+", default=TEST_SEEDS)
    p.add_argument(
        "--mass-bins",
        type=float,
        nargs="+",
        default=SIM["halo_counts"]["mass_bins"],
        help="edges in Msun/h",
    )
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--steps", type=int, default=40000, help="training steps per model")
    p.add_argument("--snapshot", type=int, default=4000, help="steps between snapshots")
    p.add_argument("--patch", type=int, default=32, help="output patch side, voxels")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--external-seed", type=int, default=4001)
    p.add_argument("--pmwd-python", default="pmwd-venv/bin/python", help="python with pmwd")
    p.add_argument("--pmwd-commit", default=None)
    p.add_argument("--smoothing", type=float, default=2.0, help="second-order baseline R, Mpc/h")
    p.add_argument("--checkpoint", default=None, help="rejudge: the checkpoint to judge")
    p.add_argument("--tag", default=None, help="rejudge: results go to verdict-TAG/")
    args = p.parse_args()
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "args.json").write_text(json.dumps(vars(args), default=str, indent=2))
    for st in args.stages:
        say(f"stage {st}")
        STAGES[st](args)


if __name__ == "__main__":
    main()
