"""Benchmark: 2LPT density generation on a LocalCluster, against the in-memory pipeline.

Each variant runs in a fresh subprocess, so its peak memory is its own:

- ``memory-N``: the in-memory path (``lpt_particles_array`` with scipy FFTs on the whole box,
  then the numba CIC ``deposit``): the baseline, for the sizes that fit (default 256^3).
- ``engine-N``: ``bigpaint.ics.lpt.lpt_density`` (seeded noise -> distributed FFT -> six
  second derivatives -> S2 -> displacements -> particle store -> chunked deposition) on a
  LocalCluster of ``--workers`` single-threaded worker processes with ``--memory-limit``
  each (P2P transposes spill to ``--workdir``).

Reported: wall time, speed ratio baseline/engine where both ran, peak RSS of every worker
and of the client (``ru_maxrss``), and the largest difference between the two density fields.

    nice -n 5 python benchmarks/bench_lpt.py --sizes 256 512 1024 --out bench-out/lpt.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _variant_memory(args: argparse.Namespace) -> dict:
    import numpy as np

    from bigpaint.ics.lpt import lpt_particles_array
    from bigpaint.ics.power import linear_power
    from bigpaint.mesh.assign import deposit

    lp = linear_power()
    t0 = time.perf_counter()
    pos, _, _ = lpt_particles_array(
        args.n, args.box, seed=args.seed, power=lp, redshift=0.0, tile=args.tile
    )
    grid = deposit(pos, args.n, args.box, scheme="cic", dtype="float64")
    delta = (grid / grid.mean() - 1).astype(np.float32)
    elapsed = time.perf_counter() - t0
    np.save(args.ref, delta)
    return {"time_s": elapsed, "peak_rss_mib": _rss_mib()}


def _variant_engine(args: argparse.Namespace) -> dict:
    from bigpaint.cluster import connect
    from bigpaint.config import LocalClusterConfig
    from bigpaint.ics.lpt import lpt_density
    from bigpaint.ics.power import linear_power

    lp = linear_power()
    cfg = LocalClusterConfig(
        n_workers=args.workers,
        threads_per_worker=1,
        memory_limit=args.memory_limit,
        local_directory=os.path.join(args.workdir, "dask-spill"),
    )
    with connect(cfg) as client:
        idle = client.run(_rss_mib)
        t0 = time.perf_counter()
        res = lpt_density(
            args.output,
            grid=args.n,
            box_size=args.box,
            seed=args.seed,
            power=lp,
            tile=args.tile,
            chunks=args.chunks,
            block=args.chunks,
            scratch_dir=args.workdir,
            overwrite=True,
        )
        elapsed = time.perf_counter() - t0
        peaks = client.run(_rss_mib)
    return {
        "time_s": elapsed,
        "worker_peak_rss_mib": sorted(peaks.values()),
        "worker_idle_rss_mib": sorted(idle.values()),
        "client_peak_rss_mib": _rss_mib(),
        "lagrangian_block": res.lagrangian_block,
        "n_particles": res.n_particles,
    }


def _run_variant(name: str, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--variant", name, *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        sys.stderr.write(out.stderr[-5000:])
        raise SystemExit(f"variant {name} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--baseline-max", type=int, default=256, help="largest in-memory baseline")
    p.add_argument("--box-per-cell", type=float, default=1.953125, help="Mpc/h per cell")
    p.add_argument("--chunks", type=int, default=128)
    p.add_argument("--tile", type=int, default=32)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--memory-limit", default="6GiB", help="per worker")
    p.add_argument("--workdir", default="/tmp/bench-lpt", help="outputs and spill (local disk)")
    p.add_argument("--out", default=None, help="JSON results file")
    p.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--box", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--output", default=None, help=argparse.SUPPRESS)
    p.add_argument("--ref", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.variant:
        res = _variant_memory(args) if args.variant == "memory" else _variant_engine(args)
        print(json.dumps(res))
        return

    import numpy as np

    from bigpaint.field import open_field

    os.makedirs(args.workdir, exist_ok=True)
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "workers": args.workers,
        "memory_limit": args.memory_limit,
        "chunks": args.chunks,
        "runs": {},
    }
    for n in args.sizes:
        box = n * args.box_per_cell
        common = ["--n", str(n), "--box", str(box), "--seed", str(args.seed)]
        common += ["--tile", str(args.tile), "--chunks", str(args.chunks)]
        common += ["--workers", str(args.workers), "--memory-limit", args.memory_limit]
        common += ["--workdir", args.workdir]
        run: dict = {"grid": n, "box_mpc_h": box, "field_mib": n**3 * 4 / 2**20}
        ref = os.path.join(args.workdir, f"ref-{n}.npy")
        if n <= args.baseline_max:
            run["memory"] = _run_variant("memory", [*common, "--ref", ref])
        outp = os.path.join(args.workdir, f"lpt-{n}.zarr")
        run["engine"] = _run_variant("engine", [*common, "--output", outp])
        if "memory" in run:
            got = open_field(outp)["delta"].values
            want = np.load(ref)
            run["engine"]["max_abs_diff_vs_memory"] = float(np.abs(got - want).max())
            run["engine"]["speed_ratio_vs_memory"] = (
                run["memory"]["time_s"] / run["engine"]["time_s"]
            )
            os.remove(ref)
        shutil.rmtree(outp, ignore_errors=True)
        results["runs"][str(n)] = run
        if args.out:  # keep partial results of long runs
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2))

    print(
        f"2LPT density (CIC, particles = cells), chunks {args.chunks}^3, {args.workers} workers x "
        f"{args.memory_limit}, {os.cpu_count()} cores"
    )
    print(
        f"{'grid':>6}{'variant':>10}{'time [s]':>11}{'ratio':>8}{'peak RSS [MiB]':>40}{'max|diff|':>11}"
    )
    for n in args.sizes:
        run = results["runs"][str(n)]
        if "memory" in run:
            m = run["memory"]
            print(
                f"{n:>6}{'memory':>10}{m['time_s']:>11.1f}{1.0:>8.2f}{m['peak_rss_mib']:>40.0f}{'-':>11}"
            )
        e = run["engine"]
        mem = "workers " + "/".join(f"{v:.0f}" for v in e["worker_peak_rss_mib"])
        mem += f", client {e['client_peak_rss_mib']:.0f}"
        ratio = f"{e['speed_ratio_vs_memory']:.2f}" if "speed_ratio_vs_memory" in e else "-"
        diff = f"{e['max_abs_diff_vs_memory']:.2g}" if "max_abs_diff_vs_memory" in e else "-"
        print(f"{n:>6}{'engine':>10}{e['time_s']:>11.1f}{ratio:>8}{mem:>40}{diff:>11}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
