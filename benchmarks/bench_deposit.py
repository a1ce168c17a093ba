"""Deposit throughput and memory: bigpaint's CIC against Pylians' MAS_library, and chunked
deposition of a shuffled 512^3 particle set onto a 512^3 grid under a worker memory limit.

What is measured
----------------
1. In-memory CIC (``bigpaint.mesh.assign.deposit``) on N = n^3 uniformly random float32
   particles onto an n^3 float32 grid, for each ``--sizes`` n, best of ``--repeat``:
   particles per second with all numba threads and with one thread, against Pylians'
   ``MAS_library.MA(..., 'CIC')`` on the same array in the same process (Pylians' CIC is
   single-threaded), or against a numpy ``np.add.at`` reference when Pylians is not
   installed (the table says which). The two grids are compared: Pylians puts nodes on
   cell corners, so ours is deposited with a half-cell shift for the comparison.
2. Chunked deposition (``deposit_to_field``) of ``--chunked`` ^3 particles (a displaced
   Lagrangian lattice, then randomly permuted: spatially unordered, like a snapshot) read
   from a ``.npy`` file onto a grid of the same size, on a LocalCluster whose workers have
   ``--memory-limit`` in all. Reported: wall time, particles per second, peak RSS of every
   worker process (``ru_maxrss``) and of the client, and the largest difference from the
   in-memory deposit of the same particles.

Run: ``nice -n 5 python benchmarks/bench_deposit.py --out deposit.json`` (~10 minutes on
2 cores; needs ~6 GB of RAM and ~4 GB of disk under ``--workdir``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np


def uniform_positions(n_particles: int, box: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n_particles, 3), np.float32)
    step = 1 << 22
    for a in range(0, n_particles, step):
        b = min(a + step, n_particles)
        out[a:b] = rng.uniform(0, box, (b - a, 3))
    return out


def numpy_cic(pos: np.ndarray, n: int, box: float) -> np.ndarray:
    """Plain numpy CIC (np.add.at), cell-centre nodes: the fallback baseline."""
    grid = np.zeros((n, n, n))
    u = pos.astype(np.float64) * (n / box) - 0.5
    i0 = np.floor(u).astype(np.int64)
    f = u - i0
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                w = (
                    (f[:, 0] if dx else 1 - f[:, 0])
                    * (f[:, 1] if dy else 1 - f[:, 1])
                    * (f[:, 2] if dz else 1 - f[:, 2])
                )
                idx = ((i0[:, 0] + dx) % n, (i0[:, 1] + dy) % n, (i0[:, 2] + dz) % n)
                np.add.at(grid, idx, w)
    return grid


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_in_memory(n: int, repeat: int, box: float = 1000.0) -> dict:
    from bigpaint.mesh.assign import deposit

    pos = uniform_positions(n**3, box, seed=n)
    deposit(pos[:1000], n, box)  # compile / load the cached kernels
    threads = numba.get_num_threads()
    t_ours, ours = best_of(lambda: deposit(pos, n, box), repeat)
    numba.set_num_threads(1)
    try:
        t_one, _ = best_of(lambda: deposit(pos, n, box), repeat)
    finally:
        numba.set_num_threads(threads)
    try:
        import MAS_library as masl

        def run_pylians() -> np.ndarray:
            grid = np.zeros((n, n, n), np.float32)
            masl.MA(pos, grid, box, "CIC", verbose=False)
            return grid

        baseline = "Pylians MAS_library.MA CIC (1 thread)"
        t_base, base = best_of(run_pylians, repeat)
        ours_shifted = deposit(pos, n, box, shift=0.5)  # Pylians' corner nodes
        diff = float(np.abs(ours_shifted - base).max())
    except ImportError:
        baseline = "numpy np.add.at CIC (Pylians not installed)"
        t_base, base = best_of(lambda: numpy_cic(pos, n, box), 1)
        diff = float(np.abs(ours - base).max())
    nparticles = n**3
    return {
        "grid": n,
        "particles": nparticles,
        "threads": threads,
        "ours_s": t_ours,
        "ours_1thread_s": t_one,
        "baseline": baseline,
        "baseline_s": t_base,
        "ours_particles_per_s": nparticles / t_ours,
        "ours_1thread_particles_per_s": nparticles / t_one,
        "baseline_particles_per_s": nparticles / t_base,
        "ratio": t_base / t_ours,
        "ratio_1thread": t_base / t_one,
        "max_abs_diff_vs_baseline": diff,
        "mean_cell_mass": float(ours.mean()),
    }


class RssSampler:
    """Peak resident memory of this process and of each of its descendants (the nannies'
    worker processes), sampled every ``interval`` seconds in a background thread.

    Sampling, not ``ru_maxrss``: on Linux a process started by fork + exec inherits its
    parent's maximum RSS, so ``ru_maxrss`` would report the benchmark driver's peak.
    """

    def __init__(self, interval: float = 0.1) -> None:
        import threading

        import psutil

        self.interval = interval
        self.me = psutil.Process()
        self.peaks: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            for proc in [self.me, *self.me.children(recursive=True)]:
                try:
                    rss = proc.memory_info().rss
                    self.names.setdefault(proc.pid, " ".join(proc.cmdline()[-2:]))
                except psutil.Error:
                    continue
                self.peaks[proc.pid] = max(self.peaks.get(proc.pid, 0), rss)
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_shuffled_lattice(path: Path, n: int, box: float, seed: int = 7) -> None:
    """A Lagrangian lattice displaced by ~1 cell, in a random order, as (N, 3) float32 .npy."""
    rng = np.random.default_rng(seed)
    cell = box / n
    ii = np.arange(n, dtype=np.float32)
    pos = np.empty((n**3, 3), np.float32)
    for x in range(n):  # one x-plane of the lattice at a time
        sl = slice(x * n * n, (x + 1) * n * n)
        gy, gz = np.meshgrid(ii, ii, indexing="ij")
        q = np.stack([np.full(n * n, x, np.float32), gy.ravel(), gz.ravel()], -1)
        pos[sl] = np.mod((q + 0.5 + rng.normal(0, 1.0, q.shape)) * cell, box)
    pos = pos[rng.permutation(len(pos))]
    np.save(path, pos)


def bench_chunked(n: int, chunks: int, memory_limit: str, workers: int, workdir: Path,
                  batch_size: int, box: float = 1000.0) -> dict:  # fmt: skip
    import distributed

    from bigpaint.field import data_var, open_field
    from bigpaint.mesh.deposit import deposit_to_field

    workdir.mkdir(parents=True, exist_ok=True)
    npy = workdir / f"shuffled_{n}.npy"
    t0 = time.perf_counter()
    if not npy.exists():
        # in a child process, so its memory does not count as the client's
        subprocess.run(
            [sys.executable, __file__, "--make-particles", str(npy), "--n", str(n)], check=True
        )
    t_make = time.perf_counter() - t0
    url = workdir / f"delta_{n}.zarr"
    shutil.rmtree(url, ignore_errors=True)
    per_worker = f"{_bytes(memory_limit) // workers}B"
    with (
        distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, memory_limit=per_worker,
            dashboard_address=None, local_directory=str(workdir / "dask-worker-space"),
        ) as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip
        client.run(lambda: deposit_to_field)  # import bigpaint on the workers first
        worker_pids = set(client.run(os.getpid).values())
        with RssSampler() as rss:
            t0 = time.perf_counter()
            deposit_to_field(str(npy), str(url), nmesh=n, chunks=chunks, box_size=box,
                             batch_size=batch_size)  # fmt: skip
            wall = time.perf_counter() - t0
        peaks = {pid: rss.peaks.get(pid, 0) for pid in worker_pids}
    client_peak = rss.peaks[os.getpid()]
    # check against the in-memory deposit of the same particles
    from bigpaint.mesh.assign import deposit

    pos = np.load(npy, mmap_mode="r")
    mass = deposit(np.asarray(pos), n, box, dtype="f8")
    want = mass / mass.mean() - 1.0
    del mass
    got = data_var(open_field(str(url))).values
    diff = float(np.abs(got - want).max())
    shutil.rmtree(url, ignore_errors=True)
    return {
        "grid": n,
        "particles": n**3,
        "order": "displaced lattice, randomly permuted",
        "chunks": chunks,
        "batch_size": batch_size,
        "workers": workers,
        "memory_limit_total": memory_limit,
        "wall_s": wall,
        "particles_per_s": n**3 / wall,
        "worker_peak_rss_bytes": sorted(peaks.values()),
        "rss_method": "psutil RSS sampled every 0.1 s (includes mapped file pages)",
        "worker_peak_rss_total_bytes": int(sum(peaks.values())),
        "client_peak_rss_bytes": int(client_peak),
        "max_abs_diff_vs_in_memory": diff,
        "make_particles_s": t_make,
    }


def _bytes(text: str) -> int:
    from dask.utils import parse_bytes

    return int(parse_bytes(text))


def _gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="JSON file for the results (required).")
    ap.add_argument("--sizes", default="256,512", help="In-memory grids (N = n^3 particles).")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--chunked", type=int, default=512, help="Chunked run size (0: skip).")
    ap.add_argument("--chunks", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=1 << 22)
    ap.add_argument("--memory-limit", default="8GB", help="Total worker memory.")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--workdir", default=None, help="Scratch directory (default: a temp dir).")
    ap.add_argument("--make-particles", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--chunked-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=512, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.make_particles:
        make_shuffled_lattice(Path(args.make_particles), args.n, 1000.0)
        return
    if not args.out:
        ap.error("--out is required")
    if args.chunked_only:  # a fresh process, so the client's peak RSS is its own
        workdir = Path(args.workdir)
        r = bench_chunked(args.chunked, args.chunks, args.memory_limit, args.workers, workdir,
                          args.batch_size)  # fmt: skip
        Path(args.out).write_text(json.dumps(r))
        return

    result: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "numba_threads": numba.get_num_threads(),
            "numba_threading_layer": None,
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "numba": numba.__version__,
            "load_average_at_start": os.getloadavg(),
        },
        "in_memory": [],
        "chunked": None,
    }
    for n in [int(s) for s in args.sizes.split(",") if s]:
        r = bench_in_memory(n, args.repeat)
        result["in_memory"].append(r)
        print(json.dumps(r), flush=True)
    try:
        result["machine"]["numba_threading_layer"] = numba.threading_layer()
    except ValueError:
        pass
    if args.chunked:
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-deposit-"))
        part = workdir / "chunked.json"
        try:
            subprocess.run(
                [sys.executable, __file__, "--chunked-only", "--out", str(part), "--workdir",
                 str(workdir), "--chunked", str(args.chunked), "--chunks", str(args.chunks),
                 "--memory-limit", args.memory_limit, "--workers", str(args.workers),
                 "--batch-size", str(args.batch_size)],
                check=True,
            )  # fmt: skip
            result["chunked"] = json.loads(part.read_text())
        finally:
            if args.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)
    result["machine"]["load_average_at_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(result, indent=2))

    print()
    print(f"In-memory CIC, float32 particles and grid (best of {args.repeat})")
    head = f"{'grid':>6} {'particles':>11} {'ours Mp/s':>10} {'1-thr Mp/s':>10} " \
           f"{'base Mp/s':>10} {'ratio':>6} {'ratio 1-thr':>11}  baseline"  # fmt: skip
    print(head)
    print("-" * len(head))
    for r in result["in_memory"]:
        print(
            f"{r['grid']:>6} {r['particles']:>11,} {r['ours_particles_per_s'] / 1e6:>10.1f} "
            f"{r['ours_1thread_particles_per_s'] / 1e6:>10.1f} "
            f"{r['baseline_particles_per_s'] / 1e6:>10.1f} {r['ratio']:>6.2f} "
            f"{r['ratio_1thread']:>11.2f}  {r['baseline']}"
        )
    c = result["chunked"]
    if c:
        print()
        print(f"Chunked deposition: {c['particles']:,} particles ({c['order']}) onto "
              f"{c['grid']}^3 in {c['chunks']}^3 blocks, {c['workers']} workers, "
              f"{c['memory_limit_total']} in all")  # fmt: skip
        print(f"  wall {c['wall_s']:.1f} s = {c['particles_per_s'] / 1e6:.2f} M particles/s")
        print(f"  worker peak RSS {', '.join(_gib(b) for b in c['worker_peak_rss_bytes'])} "
              f"(total {_gib(c['worker_peak_rss_total_bytes'])}); client "
              f"{_gib(c['client_peak_rss_bytes'])}")  # fmt: skip
        print(f"  max |chunked - in-memory| = {c['max_abs_diff_vs_in_memory']:.2e}")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
