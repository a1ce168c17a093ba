"""P(k) wall time and peak memory: bigpaint's distributed FFT against Pylians (or numpy).

Every measurement runs in its own child process; the parent samples the resident memory of
the child's whole process tree (client, scheduler, workers) every 0.1 s and keeps the peak.
Timings cover the P(k) call only (not imports, cluster start-up, a 16^3 warm-up call that
compiles the numba kernel and loads modules in the workers, or loading a field into memory
for the in-memory baselines). Fields are white-noise float32 boxes written to Zarr in
128^3 chunks, CIC compensation, multipoles along x, default k_F bins.

Runs per size (default 256 and 512):

* ``pylians``          Pylians3 ``Pk_library.Pk`` on the in-memory array (FFTW, --threads)
* ``numpy``            numpy.fft.rfftn + bincount on the in-memory array (a plain reference)
* ``bigpaint-memory``  power_spectrum of a dask array over the in-memory array, threads
* ``bigpaint-zarr``    power_spectrum of the Zarr Field, local threaded scheduler
* ``bigpaint-cluster`` power_spectrum of the Zarr Field on a LocalCluster (P2P transposes)

and, with ``--out-of-core N``, one ``bigpaint-ooc`` run of an N^3 Field on a LocalCluster
whose workers together may use ``--ooc-memory`` (default 8 GB): the transposes spill to disk.

Usage::

    nice -n 5 python benchmarks/bench_power.py --sizes 256 512 --out-of-core 1024 --out bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

BOX = 1000.0
CHUNK = 128


# ---------------------------------------------------------------- fields


def make_field(url: str, n: int, seed: int) -> None:
    """Write an n^3 float32 white-noise Field in CHUNK^3 blocks, never holding the box."""
    from bigpaint.field import create_field

    if Path(url).exists():
        return
    writer = create_field(
        url,
        shape=(n, n, n),
        chunks=min(CHUNK, n),
        meta={"box_size": BOX, "kind": "delta", "units": "1"},
        dtype="float32",
    )
    for idx in writer.pending():
        sl = writer.block_slices(idx)
        rng = np.random.default_rng([seed, *idx])
        shape = tuple(s.stop - s.start for s in sl)
        writer.write_block(idx, rng.standard_normal(shape, dtype=np.float32))
    writer.finalize()


# ---------------------------------------------------------------- child runs


def _load(url: str) -> np.ndarray:
    from bigpaint.field import data_var, open_field

    return np.asarray(data_var(open_field(url)).values)


def _numpy_pk(delta: np.ndarray, box: float) -> np.ndarray:
    """Plain in-memory P0 with CIC compensation and Pylians' binning (independent modes)."""
    n = delta.shape[0]
    fk = np.fft.rfftn(delta)
    m = np.where(np.arange(n) > n // 2, np.arange(n) - n, np.arange(n))
    mz = np.arange(n // 2 + 1)
    w = np.sinc(m / n) ** 2
    wz = np.sinc(mz / n) ** 2
    p = (fk.real**2 + fk.imag**2) / (w[:, None, None] * w[None, :, None] * wz[None, None, :]) ** 2
    k2 = m[:, None, None] ** 2 + m[None, :, None] ** 2 + mz[None, None, :] ** 2
    kidx = np.sqrt(k2).astype(np.int64)
    keep = np.ones(p.shape, bool)
    for plane in (0, n // 2):
        keep[:, :, plane] = ~(
            (m[:, None] < 0) | (((m[:, None] == 0) | (m[:, None] == n // 2)) & (m[None, :] < 0))
        )
    nb = int(np.sqrt(3) * (n // 2)) + 1
    cnt = np.bincount(kidx[keep], minlength=nb)
    s = np.bincount(kidx[keep], weights=p[keep], minlength=nb)
    return (s / np.maximum(cnt, 1) * (box / n**2) ** 3)[1:]


def child(mode: str, url: str, threads: int, memory: str | None, local_dir: str) -> dict:
    import dask

    from bigpaint.stats.power import power_spectrum

    out: dict = {"mode": mode}
    warm = np.random.default_rng(0).standard_normal((16, 16, 16)).astype(np.float32)
    if mode in ("pylians", "numpy", "bigpaint-memory"):
        delta = _load(url)
        if mode == "bigpaint-memory":
            power_spectrum(warm, box_size=BOX, mas="CIC")  # compile the numba kernel first
        t0 = time.perf_counter()
        if mode == "pylians":
            import Pk_library as PKL

            pk = PKL.Pk(delta, BOX, 0, "CIC", threads, verbose=False)
            p0 = np.asarray(pk.Pk[:, 0])
        elif mode == "numpy":
            p0 = _numpy_pk(delta, BOX)
        else:
            import dask.array as da

            with dask.config.set(scheduler="threads", num_workers=threads):
                ds = power_spectrum(
                    da.from_array(delta, chunks=CHUNK), box_size=BOX, mas="CIC", los=0
                )
            p0 = ds.P0.values
        out["seconds"] = time.perf_counter() - t0
    elif mode == "bigpaint-zarr":
        power_spectrum(warm, box_size=BOX, mas="CIC")
        t0 = time.perf_counter()
        with dask.config.set(scheduler="threads", num_workers=threads):
            ds = power_spectrum(url, mas="CIC", los=0)
        out["seconds"] = time.perf_counter() - t0
        p0 = ds.P0.values
    elif mode in ("bigpaint-cluster", "bigpaint-ooc"):
        from distributed import Client, LocalCluster

        nworkers = threads
        with (
            LocalCluster(
                n_workers=nworkers,
                threads_per_worker=1,
                processes=True,
                memory_limit=memory or "auto",
                local_directory=local_dir,
                dashboard_address=":0",
            ) as cluster,
            Client(cluster),
        ):
            t0 = time.perf_counter()
            ds = power_spectrum(url, mas="CIC", los=0)
            out["seconds"] = time.perf_counter() - t0
        p0 = ds.P0.values
        out["worker_memory_limit"] = memory
    else:
        raise SystemExit(f"unknown mode {mode}")
    out["p0"] = [float(v) for v in p0]
    return out


# ---------------------------------------------------------------- parent


def _tree_rss(proc) -> int:
    import psutil

    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def measure(
    mode: str, url: str, threads: int, memory: str | None, local_dir: str, timeout: float
) -> dict:
    import psutil

    cmd = [
        sys.executable,
        __file__,
        "--_child",
        mode,
        "--_url",
        url,
        "--threads",
        str(threads),
        "--_local-dir",
        local_dir,
    ]
    if memory:
        cmd += ["--_memory", memory]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(ps))
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        stop.set()
        return {"mode": mode, "error": f"timed out after {timeout} s", "peak_rss_bytes": peak}
    stop.set()
    th.join()
    if proc.returncode != 0:
        return {
            "mode": mode,
            "error": stderr.strip().splitlines()[-1] if stderr.strip() else "failed",
            "peak_rss_bytes": peak,
        }
    res = json.loads(stdout.strip().splitlines()[-1])
    res["peak_rss_bytes"] = peak
    return res


def _has_pylians() -> bool:
    try:
        import Pk_library  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument(
        "--out-of-core", type=int, default=None, help="grid of the out-of-core run (e.g. 1024)"
    )
    ap.add_argument(
        "--ooc-memory", default="8GB", help="total worker memory of the out-of-core run"
    )
    ap.add_argument("--threads", type=int, default=2, help="cores used by every run")
    ap.add_argument(
        "--workdir", default=None, help="where Fields and spill files go (default: a temp dir)"
    )
    ap.add_argument("--modes", nargs="+", default=None, help="subset of modes to run")
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--out", required=False, default=None, help="JSON results path")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_url", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_memory", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_local-dir", dest="_local_dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        print(
            json.dumps(child(args._child, args._url, args.threads, args._memory, args._local_dir))
        )
        return

    import dask

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_power_"))
    workdir.mkdir(parents=True, exist_ok=True)
    spill = workdir / "spill"
    spill.mkdir(exist_ok=True)
    baseline = "pylians" if _has_pylians() else "numpy"
    modes = args.modes or [
        "pylians",
        "numpy",
        "bigpaint-memory",
        "bigpaint-zarr",
        "bigpaint-cluster",
    ]
    if baseline == "numpy":
        modes = [m for m in modes if m != "pylians"]
    import psutil

    info = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "cpu": platform.processor() or "?",
        "logical_cpus": os.cpu_count(),
        "memory_total_bytes": psutil.virtual_memory().total,
        "threads_per_run": args.threads,
        "baseline": baseline,
        "box_size": BOX,
        "chunk": CHUNK,
        "dask_chunk_size": dask.config.get("array.chunk-size"),
    }
    results: list[dict] = []
    for n in args.sizes:
        url = str(workdir / f"white{n}.zarr")
        make_field(url, n, seed=n)
        ref = None
        for mode in modes:
            r = measure(mode, url, args.threads, None, str(spill), args.timeout)
            r["n"] = n
            if "p0" in r:
                if mode == baseline:
                    ref = np.asarray(r["p0"])
                r["max_rel_diff_vs_baseline"] = None
            results.append(r)
            _progress(r)
        for r in results:
            if r["n"] == n and "p0" in r and ref is not None:
                r["max_rel_diff_vs_baseline"] = float(np.max(np.abs(np.asarray(r["p0"]) / ref - 1)))
    if args.out_of_core:
        n = args.out_of_core
        url = str(workdir / f"white{n}.zarr")
        t0 = time.perf_counter()
        make_field(url, n, seed=n)
        per_worker = f"{int(_bytes(args.ooc_memory) / args.threads)}B"
        r = measure("bigpaint-ooc", url, args.threads, per_worker, str(spill), args.timeout)
        r.update(
            {
                "n": n,
                "total_worker_memory": args.ooc_memory,
                "field_bytes": n**3 * 4,
                "field_write_seconds": time.perf_counter() - t0 - r.get("seconds", 0.0),
            }
        )
        if "p0" in r:
            r.update(_white_noise_check(np.asarray(r["p0"]), n))
        results.append(r)
        _progress(r)
    for r in results:
        r.pop("p0", None)
    table = _table(results, baseline)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"info": info, "results": results}, indent=2))
        print(f"wrote {args.out}")


def _white_noise_check(p0: np.ndarray, n: int, nb: int = 32) -> dict:
    """Unit white noise has P = V / N^3; CIC compensation multiplies each mode by
    prod_i sinc(m_i / n)^-4. Expected bin means over the first ``nb`` shells (enumerated
    exactly) against the measurement: chi^2 per bin with var = E^2 / N_independent."""
    m = np.arange(-nb - 1, nb + 2)
    w = np.sinc(m / n) ** -4
    mx, my, mz = np.meshgrid(m, m, m, indexing="ij")
    kidx = np.sqrt(mx**2 + my**2 + mz**2).astype(int)
    fac = (w[:, None, None] * w[None, :, None] * w[None, None, :]).ravel()
    sel = (kidx.ravel() >= 1) & (kidx.ravel() <= nb)
    cnt = np.bincount(kidx.ravel()[sel], minlength=nb + 1)[1:]
    expect = (
        np.bincount(kidx.ravel()[sel], weights=fac[sel], minlength=nb + 1)[1:] / cnt * BOX**3 / n**3
    )
    got = p0[:nb]
    chi2 = float(np.mean((got - expect) ** 2 / (expect**2 / (cnt / 2))))
    return {
        "white_noise_chi2_per_bin_first32": chi2,
        "white_noise_max_rel_dev_first32": float(np.max(np.abs(got / expect - 1))),
    }


def _bytes(text: str) -> int:
    import dask

    return int(dask.utils.parse_bytes(text))


def _progress(r: dict) -> None:
    status = f"{r.get('seconds', float('nan')):.2f} s" if "seconds" in r else r.get("error")
    print(
        f"  {r['mode']:<17} n={r['n']:<5} {status}  peak {r['peak_rss_bytes'] / 2**30:.2f} GiB",
        flush=True,
    )


def _table(results: list[dict], baseline: str) -> str:
    base = {r["n"]: r.get("seconds") for r in results if r["mode"] == baseline and "seconds" in r}
    lines = [
        f"{'grid':>6} {'run':<17} {'time [s]':>9} {'vs ' + baseline:>12} {'peak RSS [GiB]':>15} {'max |dP/P|':>11}",
        "-" * 75,
    ]
    for r in results:
        secs = r.get("seconds")
        ratio = secs / base[r["n"]] if secs is not None and base.get(r["n"]) else None
        diff = r.get("max_rel_diff_vs_baseline")
        lines.append(
            f"{r['n']:>6} {r['mode']:<17} "
            f"{(f'{secs:.2f}' if secs is not None else r.get('error', 'failed')):>9} "
            f"{(f'{ratio:.2f}x' if ratio is not None else '-'):>12} "
            f"{r['peak_rss_bytes'] / 2**30:>15.2f} {(f'{diff:.1e}' if diff is not None else '-'):>11}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
