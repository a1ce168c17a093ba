"""Scaling suite: deposit, FFT/P(k), paint and segment on a LocalCluster, with plots.

One command measures every stage at several box sizes, chunk sizes and worker counts, writes
``scaling.json`` and draws the strong-scaling (fixed box, more workers), weak-scaling (box
volume grows with the workers) and throughput figures.

Stages (each one library call, timed from the call to its return: graph, reads, compute and
writes of the output Field or catalogue):

``deposit``  :func:`bigpaint.mesh.deposit_to_field`, CIC, of n^3 particles (a Lagrangian
             lattice displaced by ~1 cell and randomly permuted, like a snapshot, read from
             ``.npy``) onto an n^3 grid written in c^3 blocks.
``power``    :func:`bigpaint.stats.power_spectrum` of an n^3 float32 white-noise Field (2 Mpc/h
             voxels) stored in c^3 chunks (distributed FFT, slab transposes, CIC
             compensation, k_F bins).
``paint``    :func:`bigpaint.paint.paint_field` of the halo painter (the paper's architecture,
             context 4; ``--checkpoint`` or, by default, seeded random weights: the cost of a
             convolution does not depend on its weights) over that Field, c^3 blocks.
``segment``  :func:`bigpaint.segment.segment_field` of an n^3 synthetic protohalo distance map
             (touching ellipsoids, 20 % foreground, as ``bench_segment.py``) in c^3 chunks.

Inputs are made once per (n, c) in ``--workdir`` and are not timed. Each worker count gets
its own LocalCluster (one single-threaded worker process per worker, ``--memory-limit``
shared between them), all started together; on each, every stage first runs once on a 16^3
box (numba compilation, imports; not recorded). The worker counts of one stage, box and
chunk size then run back to back, so that a change in the load from other jobs does not
bias the speed-ups, and each worker's decoded-chunk cache is emptied before every
measurement. Recorded per measurement: wall time, throughput (voxels of the box per second),
peak RSS of each worker process (psutil, sampled every 0.1 s; includes the worker's
baseline, given as ``worker_idle_rss_bytes``), the load average before and after (other
jobs may share the cores), and a digest of the result. Results of one stage and box size
must agree across chunk sizes and worker counts (chunking never changes the answer): the
suite checks that and reports ``consistent``.

Strong scaling: speed-up T(1 worker) / T(w) at a fixed box (paint up to
``--paint-max-grid``). Weak scaling: the box grows as
n_w = n_1 w^(1/3) (rounded to even), and the efficiency is the throughput per worker at w
over that at one worker.

Usage::

    python benchmarks/scaling.py --out benchmarks/results/scaling          # 2-core defaults
    python benchmarks/scaling.py --sizes 256 512 1024 --chunks 128 256 --workers 1 2 4 8 \\
        --weak-base 512 --weak-chunks 128 --paint-max-grid 0 --memory-limit 200GiB \\
        --out big-node                                                       # a big machine
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_deposit import RssSampler, make_shuffled_lattice
from bench_segment import _make_input as make_distance_map
from bench_train_halo import machine as train_machine

STAGES = ("deposit", "power", "paint", "segment")
BOX = 1000.0  # Mpc/h: particles and distance maps (it sets only their units)
CELL = 2.0  # Mpc/h per voxel of the painted Fields: the halo painter's training resolution
WARM_GRID, WARM_CHUNKS = 16, 8


@dataclass(frozen=True)
class Case:
    """One measurement: a stage at box n^3 voxels, c^3 chunks, on ``workers`` workers."""

    stage: str
    grid: int
    chunks: int
    workers: int


def weak_grid(base: int, workers: int) -> int:
    """Box side whose volume is ``workers`` times ``base^3``, rounded to an even number."""
    return int(2 * round(base * workers ** (1 / 3) / 2))


def plan(args: argparse.Namespace) -> tuple[list[Case], list[Case]]:
    """The strong-scaling cases (every size, chunk, worker count) and the weak-scaling ones."""
    strong = [
        Case(s, n, c, w)
        for w in args.workers
        for n in args.sizes
        for c in args.chunks
        if c <= n
        for s in args.stages
    ]
    weak = [
        Case(s, weak_grid(args.weak_base, w), args.weak_chunks, w)
        for w in args.workers
        for s in args.stages
    ]
    cap = args.paint_max_grid
    strong = [c for c in strong if not (c.stage == "paint" and cap and c.grid > cap)]
    return strong, weak


# ---------------------------------------------------------------- inputs (not timed)


class Inputs:
    """Input files per (kind, n, c), made on first use in ``root`` and reused."""

    def __init__(self, root: Path, checkpoint: str | None) -> None:
        self.root = root
        self.checkpoint = checkpoint

    def particles(self, n: int) -> str:
        path = self.root / f"particles-{n}.npy"
        if not path.exists():
            make_shuffled_lattice(path, n, BOX)
        return str(path)

    def noise(self, n: int, c: int) -> str:
        from bigpaint.field import write_array

        path = self.root / f"noise-{n}-{c}.zarr"
        if not path.exists():
            rng = np.random.default_rng(n)
            data = rng.standard_normal((n, n, n), dtype=np.float32)
            meta = {"box_size": CELL * n, "kind": "delta", "units": "1", "redshift": 0.0}
            write_array(str(path), data, chunks=c, meta=meta)
        return str(path)

    def distance(self, n: int, c: int) -> str:
        path = self.root / f"distance-{n}-{c}.zarr"
        if not path.exists():
            make_distance_map(str(path), n, BOX, c, fill=0.2, seed=n, jitter=1e-3)
        return str(path)

    def painter(self) -> str:
        if self.checkpoint:
            return self.checkpoint
        path = self.root / "halo-painter-random.painter"
        if not path.exists():
            import torch

            from bigpaint.painters import build_painter, save_checkpoint

            torch.manual_seed(0)
            painter = build_painter("halo-painter", {"out_channels": 3})
            prov = {"weights": "random (torch seed 0)", "cell_size": CELL}
            save_checkpoint(painter, path, provenance=prov)
        return str(path)


# ---------------------------------------------------------------- stages (timed)


def _digest(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()[:16]


def run_deposit(inputs: Inputs, out: Path, n: int, c: int) -> dict[str, Any]:
    from bigpaint.mesh import deposit_to_field

    url = out / "deposit.zarr"
    t0 = time.perf_counter()
    deposit_to_field(inputs.particles(n), str(url), nmesh=n, chunks=c, box_size=BOX, overwrite=True)
    return {"wall_s": time.perf_counter() - t0, "output": str(url)}


def check_deposit(url: str) -> dict[str, Any]:
    from bigpaint.field import data_var, open_field

    delta = np.asarray(data_var(open_field(url)).values, dtype=np.float64)
    # summed in float64, rounded once to float32: bit-exact for any chunking
    return {"digest": _digest(delta.astype(np.float32)), "mean": float(delta.mean())}


def run_power(inputs: Inputs, out: Path, n: int, c: int) -> dict[str, Any]:
    from bigpaint.stats import power_spectrum

    url = inputs.noise(n, c)
    t0 = time.perf_counter()
    ds = power_spectrum(url, mas="CIC", los=0)
    wall = time.perf_counter() - t0
    p0 = np.asarray(ds.P0.values, dtype=np.float64)
    return {"wall_s": wall, "P0": p0.tolist()}


def run_paint(inputs: Inputs, out: Path, n: int, c: int) -> dict[str, Any]:
    from bigpaint.paint import paint_field

    url = out / "paint.zarr"
    src, ckpt = inputs.noise(n, c), inputs.painter()
    t0 = time.perf_counter()
    paint_field(ckpt, src, str(url), chunks=c, overwrite=True)
    return {"wall_s": time.perf_counter() - t0, "output": str(url)}


def check_paint(url: str) -> dict[str, Any]:
    from bigpaint.field import data_var, open_field

    painted = np.asarray(data_var(open_field(url)).values, dtype=np.float64)
    return {"sum": float(painted.sum()), "shape": list(painted.shape)}


def run_segment(inputs: Inputs, out: Path, n: int, c: int) -> dict[str, Any]:
    from bigpaint.segment import SegmentParams, segment_field

    src = inputs.distance(n, c)
    cat = out / "segment.parquet"
    scratch = out / "segment-work"
    scratch.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    table = segment_field(
        src, str(cat), SegmentParams(min_distance=2), overwrite=True, workdir=str(scratch)
    )
    wall = time.perf_counter() - t0
    volumes = np.sort(table.column("volume_raw").to_numpy())
    return {"wall_s": wall, "regions": table.num_rows, "volume_digest": _digest(volumes)}


RUNNERS: dict[str, Callable[[Inputs, Path, int, int], dict[str, Any]]] = {
    "deposit": run_deposit,
    "power": run_power,
    "paint": run_paint,
    "segment": run_segment,
}


def result_key(stage: str, res: dict[str, Any]) -> Any:
    """What must agree across chunk sizes and worker counts for one stage and box size."""
    if stage == "deposit":
        return res["check"]["digest"]
    if stage == "power":
        return np.asarray(res["P0"])
    if stage == "paint":
        return res["check"]["sum"]
    return (res["regions"], res["volume_digest"])


def agree(stage: str, a: Any, b: Any) -> bool:
    if stage == "power":  # FFT sums in another order per chunking: float tolerance
        return bool(np.allclose(a, b, rtol=1e-4, atol=0))
    if stage == "paint":
        return bool(np.isclose(a, b, rtol=1e-5, atol=1e-6))
    return a == b


# ---------------------------------------------------------------- execution


def _worker_info() -> dict[str, Any]:
    import numba
    import torch

    return {"numba_threads": numba.get_num_threads(), "torch_threads": torch.get_num_threads()}


def _clear_cache() -> None:
    from bigpaint.chunked.read import chunk_cache

    chunk_cache().clear()


def prepare(case: Case, inputs: Inputs) -> None:
    """Make the inputs of ``case`` (untimed)."""
    if case.stage == "deposit":
        inputs.particles(case.grid)
    elif case.stage == "segment":
        inputs.distance(case.grid, case.chunks)
    else:
        inputs.noise(case.grid, case.chunks)
        if case.stage == "paint":
            inputs.painter()


def measure(
    client: Any, case: Case, inputs: Inputs, scratch: Path, pids: list[int]
) -> dict[str, Any]:
    """Run one case on the connected cluster and return its record."""
    import psutil

    out = scratch / f"{case.stage}-{case.grid}-{case.chunks}-{case.workers}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    prepare(case, inputs)
    client.run(_clear_cache)
    idle = [psutil.Process(pid).memory_info().rss for pid in pids]
    load_before = os.getloadavg()
    with RssSampler() as rss:
        res = RUNNERS[case.stage](inputs, out, case.grid, case.chunks)
    load_after = os.getloadavg()
    if case.stage == "deposit":
        res["check"] = check_deposit(res.pop("output"))
    elif case.stage == "paint":
        res["check"] = check_paint(res.pop("output"))
    shutil.rmtree(out, ignore_errors=True)
    wall = res.pop("wall_s")
    return {
        **asdict(case),
        "voxels": case.grid**3,
        "wall_s": wall,
        "voxels_per_s": case.grid**3 / wall,
        "worker_peak_rss_bytes": sorted(rss.peaks.get(pid, 0) for pid in pids),
        "worker_idle_rss_bytes": sorted(idle),
        "driver_peak_rss_bytes": rss.peaks.get(os.getpid(), 0),
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        **res,
    }


def run_cases(cases: list[Case], args: argparse.Namespace, inputs: Inputs) -> list[dict]:
    """Every case, on one LocalCluster per worker count, all clusters up at once.

    The worker counts of one (stage, box, chunks) run back to back, so a change in the load
    from other jobs during the suite shifts them alike instead of biasing the speed-ups.
    """
    import contextlib

    import dask

    from bigpaint.cluster import connect
    from bigpaint.config import LocalClusterConfig

    total = int(dask.utils.parse_bytes(args.memory_limit))
    scratch = Path(args.workdir) / "scratch"
    records: list[dict] = []
    with contextlib.ExitStack() as stack:
        clusters: dict[int, tuple[Any, list[int], dict]] = {}
        for w in sorted({c.workers for c in cases}):
            cfg = LocalClusterConfig(
                n_workers=w,
                threads_per_worker=1,
                memory_limit=total // w,
                local_directory=str(Path(args.workdir) / "dask-worker-space"),
            )
            client = stack.enter_context(connect(cfg, wait_for_workers=w))
            pids = sorted(client.run(os.getpid).values())
            threads = next(iter(client.run(_worker_info).values()))
            clusters[w] = (client, pids, threads)
            t0 = time.perf_counter()
            with client.as_current():
                for stage in sorted({c.stage for c in cases if c.workers == w and args.warmup}):
                    prepare(Case(stage, WARM_GRID, WARM_CHUNKS, w), inputs)
                    warm_dir = scratch / f"warm-{stage}-{w}"
                    warm_dir.mkdir(parents=True, exist_ok=True)
                    RUNNERS[stage](inputs, warm_dir, WARM_GRID, WARM_CHUNKS)
                    shutil.rmtree(warm_dir, ignore_errors=True)
            print(f"{w} worker(s) {threads}: warmed up in {time.perf_counter() - t0:.1f} s")
        group: dict[tuple[str, int, int], int] = {}
        for c in cases:
            group.setdefault((c.stage, c.grid, c.chunks), len(group))
        for case in sorted(cases, key=lambda c: (group[c.stage, c.grid, c.chunks], c.workers)):
            client, pids, threads = clusters[case.workers]
            with client.as_current():
                rec = measure(client, case, inputs, scratch, pids)
            rec["worker_threads"] = threads
            records.append(rec)
            print(
                f"  {case.stage:<8} n={case.grid:<5} c={case.chunks:<4} w={case.workers}: "
                f"{rec['wall_s']:8.2f} s  {rec['voxels_per_s'] / 1e6:8.2f} Mvox/s  "
                f"peak worker RSS {max(rec['worker_peak_rss_bytes']) / 2**20:7.0f} MiB  "
                f"load {rec['load_average_before'][0]:.1f}",
                flush=True,
            )
    return records


# ---------------------------------------------------------------- analysis


def consistency(records: list[dict]) -> dict[str, bool]:
    """Per stage and box size: do all chunkings and worker counts give the same result?"""
    out: dict[str, bool] = {}
    for stage in sorted({r["stage"] for r in records}):
        for n in sorted({r["grid"] for r in records if r["stage"] == stage}):
            keys = [result_key(stage, r) for r in records if r["stage"] == stage and r["grid"] == n]
            out[f"{stage}-{n}"] = all(agree(stage, keys[0], k) for k in keys[1:])
    return out


def _row(r: dict) -> dict:
    return {k: r[k] for k in ("stage", "grid", "chunks", "workers", "wall_s")}


def strong_table(records: list[dict]) -> list[dict]:
    """Speed-up and efficiency against one worker, per stage, box and chunk size."""
    rows = []
    base = {(r["stage"], r["grid"], r["chunks"]): r["wall_s"] for r in records if r["workers"] == 1}
    for r in records:
        t1 = base.get((r["stage"], r["grid"], r["chunks"]))
        if t1 is None:
            continue
        speedup = t1 / r["wall_s"]
        rows.append({**_row(r), "speedup": speedup, "efficiency": speedup / r["workers"]})
    return rows


def weak_table(records: list[dict]) -> list[dict]:
    """Throughput per worker against one worker, per stage (box volume grows with workers)."""
    rows = []
    base = {r["stage"]: r["voxels_per_s"] for r in records if r["workers"] == 1}
    for r in records:
        per_worker = r["voxels_per_s"] / r["workers"]
        eff = per_worker / base[r["stage"]] if r["stage"] in base else None
        rows.append({**_row(r), "voxels_per_s_per_worker": per_worker, "efficiency": eff})
    return rows


# ---------------------------------------------------------------- plots


def _axes(n: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, n, figsize=(4.2 * n, 3.8), squeeze=False)
    return plt, fig, ax[0]


def _finish(plt: Any, fig: Any, axes: Any, ylabel: str, title: str, path: Path) -> None:
    axes[0].set_ylabel(ylabel)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_strong(path: Path, rows: list[dict], stages: list[str], title: str) -> None:
    plt, fig, axes = _axes(len(stages))
    for ax, stage in zip(axes, stages, strict=True):
        mine = [r for r in rows if r["stage"] == stage]
        ws = sorted({r["workers"] for r in mine}) or [1]
        ax.plot(ws, ws, "k--", lw=0.8, label="ideal")
        for n, c in sorted({(r["grid"], r["chunks"]) for r in mine}):
            pts = sorted(
                (r["workers"], r["speedup"]) for r in mine if (r["grid"], r["chunks"]) == (n, c)
            )
            ax.plot(*zip(*pts, strict=True), "o-", label=f"{n}^3, chunks {c}^3")
        ax.set_title(stage)
        ax.set_xlabel("workers")
        ax.set_xticks(ws)
        ax.legend(fontsize=7)
    _finish(plt, fig, axes, "speed-up T(1) / T(w)", title, path)


def plot_weak(path: Path, rows: list[dict], stages: list[str], title: str) -> None:
    plt, fig, axes = _axes(len(stages))
    for ax, stage in zip(axes, stages, strict=True):
        mine = sorted((r for r in rows if r["stage"] == stage), key=lambda r: r["workers"])
        ws = [r["workers"] for r in mine]
        ax.axhline(1.0, color="k", ls="--", lw=0.8, label="ideal")
        ax.plot(ws, [r["efficiency"] for r in mine], "o-", label="efficiency")
        for r in mine:
            ax.annotate(f"{r['grid']}^3", (r["workers"], r["efficiency"]), fontsize=7)
        ax.set_title(f"{stage} (chunks {mine[0]['chunks']}^3)" if mine else stage)
        ax.set_xlabel("workers")
        ax.set_xticks(ws or [1])
        ax.set_ylim(0, max([1.3, *(1.1 * r["efficiency"] for r in mine)]))
        ax.legend(fontsize=7)
    _finish(plt, fig, axes, "throughput per worker / one worker's", title, path)


def plot_throughput(path: Path, records: list[dict], stages: list[str], title: str) -> None:
    plt, fig, axes = _axes(len(stages))
    for ax, stage in zip(axes, stages, strict=True):
        mine = [r for r in records if r["stage"] == stage]
        for w, c in sorted({(r["workers"], r["chunks"]) for r in mine}):
            pts = sorted(
                (r["grid"], r["voxels_per_s"] / 1e6)
                for r in mine
                if (r["workers"], r["chunks"]) == (w, c)
            )
            ax.plot(*zip(*pts, strict=True), "o-", label=f"{w} worker(s), chunks {c}^3")
        ax.set_xscale("log", base=2)
        ax.set_title(stage)
        ax.set_xlabel("box side n [voxels]")
        ax.legend(fontsize=7)
    _finish(plt, fig, axes, "throughput [10^6 voxels/s]", title, path)


# ---------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    import psutil

    return {**train_machine(), "memory_bytes": psutil.virtual_memory().total}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", required=True, help="directory for scaling.json and the PNGs")
    ap.add_argument("--workdir", default=None, help="inputs and scratch (default: OUT/work)")
    ap.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256], help="box sides n")
    ap.add_argument("--chunks", type=int, nargs="+", default=[32, 64], help="chunk sides c")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--weak-base", type=int, default=96, help="weak scaling: n at one worker")
    ap.add_argument("--weak-chunks", type=int, default=32, help="weak scaling: chunk side")
    ap.add_argument(
        "--paint-max-grid",
        type=int,
        default=128,
        help="strong scaling: paint only boxes up to this side (0: all; painting costs ~30x "
        "the other stages per voxel on a CPU)",
    )
    ap.add_argument("--memory-limit", default="16GiB", help="all workers together")
    ap.add_argument("--checkpoint", default=None, help="painter checkpoint for the paint stage")
    ap.add_argument("--no-weak", action="store_true", help="strong scaling only")
    ap.add_argument("--keep-inputs", action="store_true", help="keep WORKDIR's input files")
    ap.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the 16^3 warm-up (smoke tests: first times then include compilation)",
    )
    args = ap.parse_args(argv)
    bad = [x for x in [*args.sizes, *args.chunks, *args.workers, args.weak_base] if x < 1]
    if bad:
        ap.error(f"sizes, chunks and workers must be positive, got {bad}")
    if 1 not in args.workers:
        ap.error("--workers must include 1: speed-ups and efficiencies are relative to it")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.workdir = args.workdir or str(out / "work")
    inputs_dir = Path(args.workdir) / "inputs"
    inputs_dir.mkdir(parents=True, exist_ok=True)
    inputs = Inputs(inputs_dir, args.checkpoint)

    strong, weak = plan(args)
    if args.no_weak:
        weak = []
    cases = list(dict.fromkeys([*strong, *weak]))  # weak cases may repeat strong ones
    stages = [s for s in STAGES if s in args.stages]
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    records = run_cases(cases, args, inputs)
    by_case = {Case(r["stage"], r["grid"], r["chunks"], r["workers"]): r for r in records}
    strong_rows = strong_table([by_case[c] for c in strong])
    weak_rows = weak_table([by_case[c] for c in weak])
    checks = consistency(records)
    report = {
        "benchmark": "scaling",
        "machine": machine(),
        "load_average_start": list(load_start),
        "load_average_end": list(os.getloadavg()),
        "suite_wall_s": time.perf_counter() - t0,
        "config": {
            k: v for k, v in vars(args).items() if k not in ("out", "workdir", "keep_inputs")
        },
        "measurements": records,
        "strong_scaling": strong_rows,
        "weak_scaling": weak_rows,
        "consistent": checks,
        "figures": [],
    }
    load = f"load average {load_start[0]:.1f} at start"
    title = f"{report['machine']['cpu']}, {report['machine']['cores_available']} cores, {load}"
    fig_strong, fig_weak, fig_tp = (
        out / "scaling_strong.png",
        out / "scaling_weak.png",
        out / "scaling_throughput.png",
    )
    plot_strong(fig_strong, strong_rows, stages, f"strong scaling: {title}")
    plot_throughput(fig_tp, [by_case[c] for c in strong], stages, f"throughput: {title}")
    report["figures"] = [fig_strong.name, fig_tp.name]
    if weak_rows:
        plot_weak(fig_weak, weak_rows, stages, f"weak scaling: {title}")
        report["figures"].append(fig_weak.name)
    (out / "scaling.json").write_text(json.dumps(report, indent=2, default=float))
    (out / "scaling.md").write_text(markdown(report))
    if not args.keep_inputs:
        shutil.rmtree(args.workdir, ignore_errors=True)
    print_tables(report)
    return report


def markdown(report: dict[str, Any]) -> str:
    """The measurements as Markdown tables (for BENCHMARKS.md)."""
    m = report["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores_available']} cores, "
        f"{m['memory_bytes'] / 2**30:.0f} GiB; load average (1 min) "
        f"{report['load_average_start'][0]:.1f} at start, {report['load_average_end'][0]:.1f} "
        f"at end; suite wall time {report['suite_wall_s']:.0f} s.",
        "",
        "| stage | n | chunks | workers | wall [s] | Mvox/s | speed-up | peak worker RSS [MiB] "
        "| load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    speed = {
        (r["stage"], r["grid"], r["chunks"], r["workers"]): r["speedup"]
        for r in report["strong_scaling"]
    }
    for r in sorted(
        report["measurements"], key=lambda r: (STAGES.index(r["stage"]), r["grid"], r["chunks"])
    ):
        sp = speed.get((r["stage"], r["grid"], r["chunks"], r["workers"]))
        lines.append(
            f"| {r['stage']} | {r['grid']}³ | {r['chunks']}³ | {r['workers']} | "
            f"{r['wall_s']:.2f} | {r['voxels_per_s'] / 1e6:.2f} | "
            f"{'-' if sp is None else f'{sp:.2f}'} | "
            f"{max(r['worker_peak_rss_bytes']) / 2**20:.0f} | {r['load_average_before'][0]:.1f} |"
        )
    if report["weak_scaling"]:
        lines += [
            "",
            "| stage | n | chunks | workers | wall [s] | Mvox/s per worker | weak efficiency |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in report["weak_scaling"]:
            lines.append(
                f"| {r['stage']} | {r['grid']}³ | {r['chunks']}³ | {r['workers']} | "
                f"{r['wall_s']:.2f} | {r['voxels_per_s_per_worker'] / 1e6:.2f} | "
                f"{r['efficiency']:.2f} |"
            )
    bad = [k for k, ok in report["consistent"].items() if not ok]
    lines += [
        "",
        "Results agree across chunk sizes and worker counts for every stage and box."
        if not bad
        else f"Results DIFFER across chunkings or worker counts: {', '.join(bad)}.",
    ]
    return "\n".join(lines) + "\n"


def print_tables(report: dict[str, Any]) -> None:
    print(
        f"\nscaling suite ({report['machine']['cpu']}, {report['machine']['cores_available']} cores)"
    )
    print("strong scaling (fixed box):")
    print(f"{'stage':<9}{'n':>6}{'c':>5}{'w':>3}{'wall [s]':>10}{'speed-up':>10}{'eff.':>7}")
    for r in report["strong_scaling"]:
        print(
            f"{r['stage']:<9}{r['grid']:>6}{r['chunks']:>5}{r['workers']:>3}{r['wall_s']:>10.2f}"
            f"{r['speedup']:>10.2f}{r['efficiency']:>7.2f}"
        )
    if report["weak_scaling"]:
        print("weak scaling (box volume grows with the workers):")
        print(
            f"{'stage':<9}{'n':>6}{'c':>5}{'w':>3}{'wall [s]':>10}{'Mvox/s/worker':>15}{'eff.':>7}"
        )
        for r in report["weak_scaling"]:
            print(
                f"{r['stage']:<9}{r['grid']:>6}{r['chunks']:>5}{r['workers']:>3}"
                f"{r['wall_s']:>10.2f}{r['voxels_per_s_per_worker'] / 1e6:>15.2f}"
                f"{r['efficiency']:>7.2f}"
            )
    bad = [k for k, ok in report["consistent"].items() if not ok]
    print(
        "results agree across chunkings and worker counts"
        if not bad
        else f"RESULTS DIFFER across chunkings or worker counts: {', '.join(bad)}"
    )
    print(f"suite wall time {report['suite_wall_s']:.0f} s; figures {', '.join(report['figures'])}")


if __name__ == "__main__":
    main()
