"""Benchmark: chunked segmentation on a LocalCluster vs one scikit-image watershed in memory.

The input is a synthetic protohalo distance map (random touching ellipsoids, per-object
normalized Euclidean distance, :mod:`bigpaint.segment.synthetic`), written as a Field. One
command runs every variant, each in a fresh subprocess (so peak memory is its own):

The map gets a little uniform noise on the foreground (``--jitter``, relative, downwards), as a network's
prediction has continuous values; then both variants find the same markers away from the
box faces (see :mod:`bigpaint.segment.markers` for ties).

- ``skimage``: the whole array in memory (loaded before the clock starts), markers by
  ``skimage.feature.peak_local_max(min_distance=2, exclude_border=False)`` and one
  ``skimage.segmentation.watershed(-distance, markers, mask=distance > 0)``, single-threaded
  as scikit-image is. Timed separately (markers, watershed) and together.
- ``engine-N``: ``bigpaint.segment.segment_field`` Field -> Parquet catalogue (+ labels
  Field) on a LocalCluster of N single-threaded worker processes: markers, seam-merged
  components, per-component watershed, region sums and the catalogue, reading and writing
  Zarr.

Reported: wall time, the speed ratio (skimage markers+watershed) / engine, peak RSS of the
skimage process and of every engine worker and the client, and the agreement: the fraction
of foreground voxels that lie in regions found by both with the same marker and the same
volume (the two differ only where a component touches the box faces, which scikit-image
does not wrap). The engine writes the catalogue only, unless ``--write-labels``.

    python benchmarks/bench_segment.py --grid 512 --chunks 128 --out bench-out/segment.json
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
    """Peak resident memory of this process in MiB.

    ``VmHWM`` of the current address space: unlike ``ru_maxrss`` it is not inherited from
    the parent across fork + exec (the parent here holds the whole generated map).
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _variant_skimage(args: argparse.Namespace) -> dict:
    import numpy as np
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    from bigpaint.field import open_field

    d = np.ascontiguousarray(open_field(args.input)["distance"].values)
    rss_loaded = _rss_mib()
    t0 = time.perf_counter()
    peaks = peak_local_max(d, min_distance=2, threshold_abs=0.0, exclude_border=False)
    markers = np.zeros(d.shape, np.int64)
    flat = np.ravel_multi_index(peaks.T, d.shape)
    markers.ravel()[flat] = flat + 1
    t1 = time.perf_counter()
    labels = watershed(-d, markers, mask=d > 0)
    t2 = time.perf_counter()
    ids, volumes = np.unique(labels[labels > 0], return_counts=True)
    np.save(args.ref, np.stack([ids, volumes]))
    return {
        "markers_s": t1 - t0,
        "watershed_s": t2 - t1,
        "time_s": t2 - t0,
        "regions": int(peaks.shape[0]),
        "peak_rss_mib": _rss_mib(),
        "rss_after_load_mib": rss_loaded,
    }


def _warm() -> None:
    import skimage.segmentation  # noqa: F401

    import bigpaint.segment  # noqa: F401
    from bigpaint.chunked.read import chunk_cache

    chunk_cache().clear()


def _variant_engine(args: argparse.Namespace) -> dict:
    import dask

    from bigpaint.cluster import connect
    from bigpaint.config import LocalClusterConfig
    from bigpaint.segment import SegmentParams, segment_field

    cfg = LocalClusterConfig(
        n_workers=args.workers, threads_per_worker=1, memory_limit=args.memory_limit
    )
    params = SegmentParams(min_distance=2, h=args.h)
    with dask.config.set({"bigpaint.chunk-cache": args.chunk_cache}), connect(cfg) as client:
        client.run(_warm)
        cache = client.run(lambda: dask.config.get("bigpaint.chunk-cache", None))
        idle = client.run(_rss_mib)
        t0 = time.perf_counter()
        table = segment_field(
            args.input,
            args.output,
            params,
            labels=args.labels or None,
            overwrite=True,
            workdir=args.workdir,
        )
        elapsed = time.perf_counter() - t0
        peaks = client.run(_rss_mib)
    from bigpaint.segment import catalog_meta

    stats = catalog_meta(table)["stats"]
    return {
        "time_s": elapsed,
        "worker_chunk_cache": sorted(set(cache.values())),
        "regions": table.num_rows,
        "stats": stats,
        "worker_peak_rss_mib": sorted(peaks.values()),
        "worker_idle_rss_mib": sorted(idle.values()),
        "client_peak_rss_mib": _rss_mib(),
    }


def _key(workers: int, h: float) -> str:
    return f"engine_{workers}_workers" + (f"_h{h:g}" if h else "")


def _run_variant(name: str, args: argparse.Namespace, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--variant", name, *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"variant {name} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _make_input(
    path: str, grid: int, box: float, chunks: int, fill: float, seed: int, jitter: float
) -> dict:
    import numpy as np

    from bigpaint.field import write_array
    from bigpaint.segment.synthetic import normalized_distance, synthetic_protohalos

    t0 = time.perf_counter()
    n_objects = int(fill * grid**3 / 270)  # mean object volume ~270 cells for semi-axes 2..6
    labels = synthetic_protohalos((grid,) * 3, n_objects, radius=(2.0, 6.0), seed=seed)
    d = normalized_distance(labels)
    del labels
    if jitter:  # continuous values, as a network's prediction has: no ties; scaled down so
        # the map stays a normalized one, in (0, 1] on the foreground
        noise = np.random.default_rng(seed).random(d.shape, dtype=np.float32)
        d = np.where(d > 0, d * (np.float32(1) - np.float32(jitter) * noise), np.float32(0))
        del noise
    meta = {
        "box_size": box,
        "kind": "distance",
        "units": "1",
        "redshift": 99.0,
        "cosmology": {"Omega_m": 0.3175},
    }
    write_array(path, d, chunks=chunks, meta=meta)
    return {
        "objects_placed": n_objects,
        "foreground_fraction": float(np.count_nonzero(d) / d.size),
        "make_input_s": time.perf_counter() - t0,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--grid", type=int, default=512)
    p.add_argument("--box", type=float, default=500.0, help="box side in Mpc/h")
    p.add_argument("--chunks", type=int, default=128)
    p.add_argument("--fill", type=float, default=0.2, help="target foreground fraction")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--jitter",
        type=float,
        default=1e-3,
        help="relative uniform noise on the foreground (0: keep the exact map's ties)",
    )
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument(
        "--merge-h",
        type=float,
        nargs="+",
        default=[0.0],
        help="engine runs merging basins by dynamics at each h (0: none; the agreement with "
        "scikit-image is measured at 0 only)",
    )
    p.add_argument("--h", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--memory-limit", default="6GiB", help="per engine worker")
    p.add_argument(
        "--chunk-cache",
        default="1GiB",
        help="decoded-chunk cache per engine worker (dask config bigpaint.chunk-cache)",
    )
    p.add_argument(
        "--write-labels",
        action="store_true",
        help="the engine also writes the label Field (timed with the rest)",
    )
    p.add_argument("--out", default=None, help="JSON results file")
    p.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    p.add_argument("--input", default=None, help=argparse.SUPPRESS)
    p.add_argument("--output", default=None, help=argparse.SUPPRESS)
    p.add_argument("--labels", default="", help=argparse.SUPPRESS)
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--ref", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.variant:
        if args.variant == "skimage":
            res = _variant_skimage(args)
        else:
            _, workers, h = args.variant.split("-")
            args.workers, args.h = int(workers), float(h)
            res = _variant_engine(args)
        print(json.dumps(res, default=float))
        return

    import numpy as np

    from bigpaint.segment import read_catalog

    with tempfile.TemporaryDirectory(prefix="bench-segment-") as tmp:
        inp = f"{tmp}/distance.zarr"
        made = _make_input(inp, args.grid, args.box, args.chunks, args.fill, args.seed, args.jitter)
        common = [
            "--input",
            inp,
            "--memory-limit",
            args.memory_limit,
            "--chunk-cache",
            args.chunk_cache,
        ]
        ref = f"{tmp}/ref.npy"
        results: dict = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "load_average_at_start": os.getloadavg(),
            },
            "chunk_cache": args.chunk_cache,
            "grid": args.grid,
            "chunks": args.chunks,
            "box_mpc_h": args.box,
            "field_mib": args.grid**3 * 4 / 2**20,
            "input": made,
            "skimage": _run_variant("skimage", args, [*common, "--ref", ref]),
        }
        ref_ids, ref_vol = np.load(ref)
        runs = [(n, h) for h in args.merge_h for n in args.workers]
        for n, h in runs:
            extra = ["--output", f"{tmp}/cat-{n}.parquet", "--workdir", tmp]
            if args.write_labels:
                extra += ["--labels", f"{tmp}/labels-{n}.zarr"]
            res = _run_variant(f"engine-{n}-{h}", args, [*common, *extra])
            res["h"] = h
            if h == 0:
                cat = read_catalog(f"{tmp}/cat-{n}.parquet")
                ids, vol = cat["id"].to_numpy(), cat["volume_raw"].to_numpy()
                _, ia, ib = np.intersect1d(ref_ids, ids, return_indices=True)
                same = ref_vol[ia] == vol[ib]
                res["agreement"] = float(ref_vol[ia][same].sum() / ref_vol.sum())
            res["speed_ratio_vs_skimage"] = results["skimage"]["time_s"] / res["time_s"]
            res["speed_ratio_vs_skimage_watershed_only"] = (
                results["skimage"]["watershed_s"] / res["time_s"]
            )
            results[_key(n, h)] = res

    results["machine"]["load_average_at_end"] = os.getloadavg()
    s = results["skimage"]
    print(
        f"segment {args.grid}^3 float32 ({results['field_mib']:.0f} MiB), chunks {args.chunks}^3, "
        f"foreground {made['foreground_fraction']:.1%}, {os.cpu_count()} cores, "
        f"load average {results['machine']['load_average_at_start'][0]:.1f} at start "
        f"(other processes share the cores)"
    )
    print(
        f"{'variant':<20}{'time [s]':>10}{'ratio':>8}{'regions':>9}{'peak RSS [MiB]':>36}"
        f"{'agree':>8}"
    )
    print(
        f"{'skimage in memory':<20}{s['time_s']:>10.1f}{1.0:>8.2f}{s['regions']:>9d}"
        f"{s['peak_rss_mib']:>36.0f}{'-':>8}"
    )
    print(f"{'  (markers / ws)':<20}{s['markers_s']:>5.1f}/{s['watershed_s']:<5.1f}")
    for n, h in runs:
        r = results[_key(n, h)]
        mem = (
            "workers "
            + "/".join(f"{m:.0f}" for m in r["worker_peak_rss_mib"])
            + f", client {r['client_peak_rss_mib']:.0f}"
        )
        name = f"engine {n} worker(s)" + (f" h {h:g}" if h else "")
        agree = f"{r['agreement']:.4f}" if "agreement" in r else "-"
        print(
            f"{name:<20}{r['time_s']:>10.1f}{r['speed_ratio_vs_skimage']:>8.2f}"
            f"{r['regions']:>9d}{mem:>36}{agree:>8}"
        )
        st = r["stats"]
        print(
            f"{'':<20}passes [s]: blocks {st['blocks_s']:.1f}, seams {st['seams_s']:.1f}, "
            f"merge {st['merge_s']:.1f}, flood {st['flood_s']:.1f}; inside tasks: blocks "
            f"{st['blocks_task_s']:.1f}, spans {st['spans_task_s']:.1f}, "
            f"flood blocks {st['flood_blocks_task_s']:.1f}; "
            f"{st['spanning_components']} of {st['components']} components span blocks, "
            f"largest flood box {st['largest_flood_box_voxels']} voxels"
        )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
