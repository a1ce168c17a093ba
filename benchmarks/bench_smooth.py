"""Benchmark: chunked periodic smoothing through the blockwise primitive vs scipy in memory.

One command runs every variant, each in a fresh subprocess (so peak memory is its own):

- ``scipy``: ``scipy.ndimage.gaussian_filter(mode='wrap')`` on the whole array in memory
  (single-threaded, as scipy is); the array is loaded before the clock starts.
- ``engine-N``: ``bigpaint.filters.smooth`` Field -> Field on a LocalCluster of N
  single-threaded worker processes, reading and writing Zarr (the real data path).

Reported: wall time, the speed ratio scipy_time / engine_time, peak RSS of the scipy
process, and the peak RSS of each engine worker process (ru_maxrss) and of the client.
Both outputs are compared (they must be identical).

    python benchmarks/bench_smooth.py --grid 256 --chunks 64 --out bench-out/smooth.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _variant_scipy(args: argparse.Namespace) -> dict:
    import numpy as np
    import scipy.ndimage as ndi

    from bigpaint.field import open_field

    a = open_field(args.input)["white_noise"].values
    rss_loaded = _rss_mib()
    sigma = args.sigma_mpc / (args.box / args.grid)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        out = ndi.gaussian_filter(a, sigma, mode="wrap")
        times.append(time.perf_counter() - t0)
    np.save(args.ref, out)
    return {
        "time_s": min(times),
        "times_s": times,
        "peak_rss_mib": _rss_mib(),
        "rss_after_load_mib": rss_loaded,
    }


def _warm() -> None:
    import scipy.ndimage  # noqa: F401

    import bigpaint.filters  # noqa: F401
    from bigpaint.chunked.read import chunk_cache

    chunk_cache().clear()


def _variant_engine(args: argparse.Namespace) -> dict:
    from bigpaint.cluster import connect
    from bigpaint.config import LocalClusterConfig
    from bigpaint.filters import smooth

    cfg = LocalClusterConfig(
        n_workers=args.workers, threads_per_worker=1, memory_limit=args.memory_limit
    )
    with connect(cfg) as client:
        idle = client.run(_rss_mib)
        times = []
        for _ in range(args.repeat):  # the first run pays the workers' imports (cold)
            client.run(_warm)  # clears the chunk cache: every run decodes its input anew
            t0 = time.perf_counter()
            smooth(args.input, args.output, args.sigma_mpc, overwrite=True)
            times.append(time.perf_counter() - t0)
        peaks = client.run(_rss_mib)
    return {
        "time_s": min(times),
        "times_s": times,
        "cold_time_s": times[0],
        "worker_peak_rss_mib": sorted(peaks.values()),
        "worker_idle_rss_mib": sorted(idle.values()),
        "client_peak_rss_mib": _rss_mib(),
    }


def _run_variant(name: str, args: argparse.Namespace, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--variant", name, *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"variant {name} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--grid", type=int, default=256)
    p.add_argument("--box", type=float, default=256.0, help="box side in Mpc/h")
    p.add_argument("--chunks", type=int, default=64)
    p.add_argument("--sigma-mpc", type=float, default=2.0)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--memory-limit", default="4GiB", help="per engine worker")
    p.add_argument("--repeat", type=int, default=3, help="runs per variant; the best is reported")
    p.add_argument("--out", default=None, help="JSON results file")
    p.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    p.add_argument("--input", default=None, help=argparse.SUPPRESS)
    p.add_argument("--output", default=None, help=argparse.SUPPRESS)
    p.add_argument("--ref", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.variant:
        if args.variant == "scipy":
            res = _variant_scipy(args)
        else:
            args.workers = int(args.variant.split("-")[1])
            res = _variant_engine(args)
        print(json.dumps(res))
        return

    import numpy as np

    from bigpaint.field import open_field
    from bigpaint.ics.noise import white_noise

    with tempfile.TemporaryDirectory(prefix="bench-smooth-") as tmp:
        inp = f"{tmp}/noise.zarr"
        white_noise(inp, grid=args.grid, box_size=args.box, seed=1, chunks=args.chunks)
        common = [
            "--grid",
            str(args.grid),
            "--box",
            str(args.box),
            "--sigma-mpc",
            str(args.sigma_mpc),
            "--input",
            inp,
            "--memory-limit",
            args.memory_limit,
            "--repeat",
            str(args.repeat),
        ]
        ref = f"{tmp}/ref.npy"
        results: dict = {
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "grid": args.grid,
            "chunks": args.chunks,
            "box_mpc_h": args.box,
            "sigma_mpc_h": args.sigma_mpc,
            "field_mib": args.grid**3 * 4 / 2**20,
            "scipy": _run_variant("scipy", args, [*common, "--ref", ref]),
        }
        expected = np.load(ref)
        for n in args.workers:
            outp = f"{tmp}/out-{n}.zarr"
            res = _run_variant(f"engine-{n}", args, [*common, "--output", outp])
            got = open_field(outp)["white_noise"].values
            res["max_abs_diff_vs_scipy"] = float(np.abs(got - expected).max())
            res["speed_ratio_vs_scipy"] = results["scipy"]["time_s"] / res["time_s"]
            results[f"engine_{n}_workers"] = res

    s = results["scipy"]
    print(
        f"smooth {args.grid}^3 float32 ({results['field_mib']:.0f} MiB), chunks {args.chunks}^3, "
        f"sigma {args.sigma_mpc} Mpc/h, {os.cpu_count()} cores"
    )
    print(f"best of {args.repeat} runs; engine 'cold' = its first run, workers importing modules")
    print(
        f"{'variant':<18}{'time [s]':>10}{'cold [s]':>10}{'ratio':>8}{'peak RSS [MiB]':>34}{'max|diff|':>11}"
    )
    print(
        f"{'scipy in memory':<18}{s['time_s']:>10.2f}{'-':>10}{1.0:>8.2f}{s['peak_rss_mib']:>34.0f}{'-':>11}"
    )
    for n in args.workers:
        r = results[f"engine_{n}_workers"]
        mem = (
            "workers "
            + "/".join(f"{m:.0f}" for m in r["worker_peak_rss_mib"])
            + f", client {r['client_peak_rss_mib']:.0f}"
        )
        print(
            f"{f'engine {n} worker(s)':<18}{r['time_s']:>10.2f}{r['cold_time_s']:>10.2f}{r['speed_ratio_vs_scipy']:>8.2f}"
            f"{mem:>34}{r['max_abs_diff_vs_scipy']:>11.2g}"
        )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
