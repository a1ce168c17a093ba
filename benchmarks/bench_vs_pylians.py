"""bigpaint against Pylians3: CIC deposit and P(k), in process and as whole processes.

Both codes are timed in the same command, taking turns (below), so that a busy machine slows
both alike; every speed is reported as a ratio next to the load averages of its minutes.
Every case runs in a fresh child process, which reports its own peak resident memory
(``ru_maxrss``), so one case cannot inflate another's.

Cases, per grid size ``n`` (``--sizes``, default 256 and 512; the whole default run took
about 13 minutes on 2 cores at load 1):

* ``cic``       ``n^3`` uniform float32 particles onto an ``n^3`` float32 grid: Pylians
  ``MAS_library.MA`` (serial) against :func:`bigpaint.mesh.assign.deposit` (float64
  accumulation, ``--threads`` numba threads), both into one preallocated grid that each
  timed call zeroes first. Positions are drawn in place, so the peak memory of both is the
  interpreter, the positions and the grid.
* ``pk``        P0/P2/P4 of an ``n^3`` float32 white-noise field with CIC compensation:
  Pylians ``Pk_library.Pk`` (FFTW, ``--threads``) against
  :func:`bigpaint.stats.power.power_spectrum` (``--threads``). The largest relative
  difference of P0 per bin is reported.
* ``oneliner``  the same two jobs (256^3 only) as ``python -c`` commands timed from outside:
  imports, data, the call, exit.
* ``cluster``   P(k) of the ``--cluster-size`` Field read from Zarr on a 2-worker LocalCluster
  (one thread each), against Pylians' in-memory time for that size (``--no-cluster`` skips
  it). Only the client's peak memory is known there.

Timings in process exclude imports and a warm-up call (Pylians has none to warm up; bigpaint
loads its cached numba kernels). The two codes take turns: ``--rounds`` rounds, each running
every case of Pylians and then of bigpaint in fresh processes, ``--runs`` timed calls each.
The first timed call in each process is reported on its own ("1st call"): on the shared
development machine, memory a process touches for the first time cost up to 30 us per 4 KiB
page, which added up to a second to a call of either code. Min and median are over the
later calls of every round.

Taking turns matters on a shared machine: Pylians' serial CIC scatters into a grid far
larger than a core's cache, so its time follows the rest of the machine's memory traffic
(0.44 to 1.0 s at 256^3 within one hour, while bigpaint's, whose slab buffers stay in
cache, moved by 15 %); cases run minutes apart would compare different machines.

Usage::

    python benchmarks/bench_vs_pylians.py --sizes 256 512 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BOX = 1000.0
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "vs-pylians"

# ---------------------------------------------------------------- children (one case each)


def _positions(n: int) -> np.ndarray:
    pos = np.random.default_rng(n).random((n**3, 3), dtype=np.float32)
    pos *= np.float32(BOX)
    return pos


def _field(n: int) -> np.ndarray:
    return np.random.default_rng(n + 1).standard_normal((n, n, n), dtype=np.float32)


def _timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def child(case: str, code: str, n: int, threads: int, runs: int, url: str | None) -> dict:
    """Run one case of one code in this (fresh) process; return times and results."""
    res: dict = {"case": case, "code": code, "n": n, "threads": threads}
    if case == "cic":
        pos = _positions(n)
        if code == "pylians":
            import MAS_library as masl

            grid = np.zeros((n, n, n), np.float32)

            def run() -> None:
                grid[...] = 0.0
                masl.MA(pos, grid, BOX, "CIC", verbose=False)

        else:
            from bigpaint.mesh.assign import deposit

            deposit(pos[:1000], 16, BOX)  # load the cached kernels
            grid = np.zeros((n, n, n), np.float32)

            def run() -> None:  # into a grid zeroed in the timed call, as Pylians is given
                grid[...] = 0.0
                deposit(pos, n, BOX, out=grid)

        res["seconds"] = _timed(run, runs)
        res["total_mass"] = float(np.sum(grid, dtype=np.float64))
        res["particles"] = n**3
    elif case == "pk":
        delta = _field(n)
        if code == "pylians":
            import Pk_library as pkl

            out: dict = {}

            def run() -> None:
                out["pk"] = pkl.Pk(delta, BOX, 0, "CIC", threads, verbose=False)

            res["seconds"] = _timed(run, runs)
            res["p0"] = [float(v) for v in out["pk"].Pk[:, 0]]
        else:
            from bigpaint.stats.power import power_spectrum

            power_spectrum(delta[:16, :16, :16].copy(), box_size=BOX, mas="CIC", los=0)
            box: dict = {}

            def run() -> None:
                box["ds"] = power_spectrum(delta, box_size=BOX, mas="CIC", los=0)

            res["seconds"] = _timed(run, runs)
            res["p0"] = [float(v) for v in box["ds"].P0.values]
    elif case == "cluster":
        from distributed import Client, LocalCluster

        from bigpaint.stats.power import power_spectrum

        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            Client(cluster),
        ):
            warm = _field(16)
            power_spectrum(warm, box_size=BOX, mas="CIC", los=0)
            box = {}

            def run() -> None:
                box["ds"] = power_spectrum(url, mas="CIC", los=0)

            res["seconds"] = _timed(run, runs)
            res["p0"] = [float(v) for v in box["ds"].P0.values]
    else:
        raise SystemExit(f"unknown case {case}")
    # the cluster's workers are other processes: only the client's own peak is known here
    key = "client_peak_rss_bytes" if case == "cluster" else "peak_rss_bytes"
    res[key] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return res


# ---------------------------------------------------------------- one-liners

ONELINERS = {
    ("cic", "pylians"): (
        "import numpy as np, MAS_library as M; "
        "p = np.random.default_rng(1).random(({n}**3, 3), dtype=np.float32); p *= {box}; "
        "g = np.zeros(({n},) * 3, np.float32); M.MA(p, g, {box}, 'CIC', verbose=False)"
    ),
    ("cic", "bigpaint"): (
        "import numpy as np; from bigpaint.mesh.assign import deposit; "
        "p = np.random.default_rng(1).random(({n}**3, 3), dtype=np.float32); p *= {box}; "
        "g = deposit(p, {n}, {box})"
    ),
    ("pk", "pylians"): (
        "import numpy as np, Pk_library as P; "
        "d = np.random.default_rng(1).standard_normal(({n},) * 3, dtype=np.float32); "
        "P.Pk(d, {box}, 0, 'CIC', {threads}, verbose=False)"
    ),
    ("pk", "bigpaint"): (
        "import numpy as np; from bigpaint.stats.power import power_spectrum; "
        "d = np.random.default_rng(1).standard_normal(({n},) * 3, dtype=np.float32); "
        "power_spectrum(d, box_size={box}, mas='CIC', los=0)"
    ),
}


def oneliner(case: str, code: str, n: int, threads: int, runs: int) -> dict:
    src = ONELINERS[(case, code)].format(n=n, box=BOX, threads=threads)
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", src], check=True, env=env)
        times.append(time.perf_counter() - t0)
    return {"case": f"{case}-process", "code": code, "n": n, "threads": threads, "seconds": times}


# ---------------------------------------------------------------- parent


def _spawn(case: str, code: str, n: int, threads: int, runs: int, url: str | None) -> dict:
    cmd = [sys.executable, __file__, "--_child", case, code, str(n), "--threads", str(threads)]
    cmd += ["--runs", str(runs)] + (["--_url", url] if url else [])
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["failed"]
        return {"case": case, "code": code, "n": n, "error": tail[0]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _make_zarr(url: str, n: int) -> None:
    """Write the same white-noise field the ``pk`` case uses as a Zarr Field (128^3 chunks)."""
    from bigpaint.field import create_field

    if Path(url).exists():
        return
    writer = create_field(
        url,
        shape=(n, n, n),
        chunks=min(128, n),
        meta={"box_size": BOX, "kind": "delta", "units": "1"},
        dtype="float32",
    )
    delta = _field(n)
    for idx in writer.pending():
        writer.write_block(idx, delta[writer.block_slices(idx)])
    writer.finalize()


def _merge(into: dict, r: dict) -> None:
    """Add one round's run of a case to the record of that case and code."""
    load = round(os.getloadavg()[0], 2)
    if not into:
        into.update(r, seconds=[], first_seconds=[], load_1m=[])
    if "error" in r:
        into.setdefault("errors", []).append(r["error"])
        return
    calls = r["seconds"]
    if r["case"].endswith("-process") or len(calls) == 1:  # every call is a whole process
        first, warm = [], calls
    else:  # the first call in a process pays for its fresh memory; reported apart
        first, warm = calls[:1], calls[1:]
    into["first_seconds"] = into.get("first_seconds", []) + first
    into["seconds"] = into.get("seconds", []) + warm
    into["load_1m"].append(load)
    for key in ("peak_rss_bytes", "client_peak_rss_bytes"):
        if key in r:
            into[key] = max(into.get(key, 0), r[key])


def _summarise(results: list[dict]) -> None:
    """Ratios (Pylians time / bigpaint time, memory bigpaint / Pylians) and P0 agreement."""
    by = {(r["case"], r["n"], r["code"]): r for r in results if r.get("seconds")}
    for (case, n, code), r in by.items():
        r["min_s"] = min(r["seconds"])
        r["median_s"] = statistics.median(r["seconds"])
        if r["first_seconds"]:
            r["first_call_median_s"] = statistics.median(r["first_seconds"])
        base_case = "pk" if case == "cluster" else case
        ref = by.get((base_case, n, "pylians"))
        if code == "pylians" or ref is None:
            continue
        r["speedup_min"] = min(ref["seconds"]) / r["min_s"]
        r["speedup_median"] = statistics.median(ref["seconds"]) / r["median_s"]
        if "peak_rss_bytes" in r and "peak_rss_bytes" in ref:
            r["rss_ratio"] = r["peak_rss_bytes"] / ref["peak_rss_bytes"]
        if "p0" in r and "p0" in ref:
            a, b = np.asarray(r["p0"]), np.asarray(ref["p0"])
            r["max_rel_diff_p0"] = float(np.max(np.abs(a / b - 1)))
        if "total_mass" in r and "total_mass" in ref:
            r["mass_lost_bigpaint"] = r["particles"] - r["total_mass"]
            r["mass_lost_pylians"] = ref["particles"] - ref["total_mass"]


def _table(results: list[dict]) -> str:
    head = (
        f"{'case':<12} {'n':>4} {'code':<9} {'thr':>3} {'min s':>7} {'median s':>8} "
        f"{'x Pyl (min/med)':>16} {'1st call s':>10} {'peak MiB':>9} {'RSS/Pyl':>7} "
        f"{'load 1m':>7} note"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        if not r.get("seconds"):
            lines.append(f"{r['case']:<12} {r['n']:>4} {r['code']:<9} error: {r['errors'][0]}")
            continue
        speed = f"{r['speedup_min']:.2f}/{r['speedup_median']:.2f}" if "speedup_min" in r else "-"
        rss = f"{r['peak_rss_bytes'] / 2**20:.0f}" if "peak_rss_bytes" in r else "-"
        ratio = f"{r['rss_ratio']:.2f}" if "rss_ratio" in r else "-"
        note = ""
        if "max_rel_diff_p0" in r:
            note = f"max |dP0/P0| {r['max_rel_diff_p0']:.1e}"
        if "mass_lost_pylians" in r:
            lost_p, lost_b = abs(r["mass_lost_pylians"]), abs(r["mass_lost_bigpaint"])
            note = f"|N - total mass|: Pylians {lost_p:.3g}, bigpaint {lost_b:.3g}"
        load = f"{min(r['load_1m']):.1f}-{max(r['load_1m']):.1f}"
        first = f"{r['first_call_median_s']:.3f}" if "first_call_median_s" in r else "-"
        lines.append(
            f"{r['case']:<12} {r['n']:>4} {r['code']:<9} {r['threads']:>3} {r['min_s']:>7.3f} "
            f"{r['median_s']:>8.3f} {speed:>16} {first:>10} {rss:>9} {ratio:>7} {load:>7} {note}"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument(
        "--threads", type=int, default=2, help="threads of both codes (Pylians' MA is serial)"
    )
    ap.add_argument(
        "--runs", type=int, default=3, help="timed calls per case and round (the first apart)"
    )
    ap.add_argument(
        "--rounds", type=int, default=3, help="turns each code takes at every case (see above)"
    )
    ap.add_argument(
        "--cases", nargs="+", default=["cic", "pk", "oneliner"], choices=["cic", "pk", "oneliner"]
    )
    ap.add_argument(
        "--no-cluster", dest="cluster", action="store_false", help="skip the LocalCluster P(k)"
    )
    ap.add_argument("--cluster-size", type=int, default=512)
    ap.add_argument("--workdir", default=None, help="where the Zarr Field goes (default: temp)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder of the JSON results")
    ap.add_argument("--_child", nargs=3, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_url", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        case, code, n = args._child
        print(json.dumps(child(case, code, int(n), args.threads, args.runs, args._url)))
        return
    try:
        import MAS_library  # noqa: F401
        import Pk_library  # noqa: F401
    except ImportError as exc:
        sys.exit(
            f"bench_vs_pylians: Pylians is not installed ({exc}); install the bench extra: "
            "bash deploy/install.sh bench"
        )

    merged: dict[tuple, dict] = {}

    def record(r: dict) -> None:
        _merge(merged.setdefault((r["case"], r["n"], r["code"]), {}), r)
        status = f"{min(r['seconds']):.3f} s" if "seconds" in r else r.get("error")
        print(f"  {r['case']:<12} n={r['n']:<4} {r['code']:<9} {status}", flush=True)

    for k in range(args.rounds):
        print(f"round {k + 1} of {args.rounds}", flush=True)
        for n in args.sizes:
            for case in ("cic", "pk"):
                if case in args.cases:
                    for code in ("pylians", "bigpaint"):
                        record(_spawn(case, code, n, args.threads, args.runs, None))
        if "oneliner" in args.cases:
            for case in ("cic", "pk"):
                for code in ("pylians", "bigpaint"):
                    record(oneliner(case, code, 256, args.threads, args.runs))
    results = list(merged.values())
    if args.cluster:
        n = args.cluster_size
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_vs_pylians_"))
        url = str(workdir / f"white{n}.zarr")
        _make_zarr(url, n)
        for _ in range(args.rounds):
            if "pk" not in args.cases or n not in args.sizes:
                record(_spawn("pk", "pylians", n, args.threads, args.runs, None))
            record(_spawn("cluster", "bigpaint", n, 2, args.runs, url))
        results = list(merged.values())
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    _summarise(results)
    table = _table(results)
    print(table)
    info = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "logical_cpus": os.cpu_count(),
        "threads": args.threads,
        "runs": args.runs,
        "rounds": args.rounds,
        "box_size": BOX,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = (
        out
        / f"vs-pylians-{'-'.join(map(str, args.sizes))}-t{args.threads}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    )
    for r in results:
        r.pop("p0", None)
    name.write_text(json.dumps({"info": info, "results": results, "table": table}, indent=2))
    print(f"wrote {name}")


if __name__ == "__main__":
    main()
