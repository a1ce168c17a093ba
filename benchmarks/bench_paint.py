"""Benchmark: chunked painting on a LocalCluster vs one monolithic torch forward pass.

One command, three parts (each variant in a fresh subprocess, so its peak memory is its own):

``throughput``
    For each family (``halo-painter``: the paper's valid-convolution network; ``protohalo-
    unet``: the paper's L=5, n_f=12 U-Net at the default seam margin), a ``--grid``^3 box:

    - ``monolithic``: the whole box, periodically padded by the painter's margin (context 4
      for the halo painter; the default margin for the U-Net, rounded out to the alignment),
      in memory, one ``painter.paint`` forward pass with torch using every core. Only the
      forward pass is timed (no I/O).
    - ``engine``: :func:`bigpaint.paint.paint_field` Field -> Field on a LocalCluster of
      ``--workers`` single-threaded worker processes (torch threads per worker from the
      worker plugin), reading and writing Zarr, model loading included.

    Reported: painted voxels per second of each and the ratio engine / monolithic, peak RSS
    (VmHWM) of the monolithic process and of every engine worker. ``--fixed-tile T`` paints
    on the global grid of ``T``-voxel tiles (bit-identical output for every chunking on it);
    compare with the same run without it for the cost.
``memory``
    The halo painter over boxes of ``--memory-grids`` voxels per side with the same chunks:
    peak RSS per worker, which must not grow with the box.
``seams``
    Seam error against the margin for the paper-size protohalo U-Net (random initial weights,
    seed 0, or ``--seam-checkpoint``) on a smoothed unit-variance Gaussian box, measured with
    :func:`bigpaint.paint.seams.seam_curve` against whole-box periodic inference.
``rounding``
    How far chunked painting is from whole-box inference when only float32 rounding can
    differ (full context): for small painters of every family, one single-block layout and
    ``--rounding-layouts`` random uneven ones, each at 1 and 2 torch threads, the fraction of
    voxels that differ and the largest difference over the output's largest magnitude (what
    :data:`bigpaint.paint.seams.ROUNDING_RTOL` bounds).

Weights are random (throughput does not depend on them). Results go to
``benchmarks/results/paint-*.json`` (``--out-dir``).

    python benchmarks/bench_paint.py --grid 256 --chunks 128 --parts throughput
    python benchmarks/bench_paint.py --parts seams
    python benchmarks/bench_paint.py --parts rounding
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BOX_PER_VOXEL = 2.0  # Mpc/h per voxel of the synthetic boxes


def _rss_mib() -> float:
    """Peak resident memory of this process in MiB (``VmHWM``, not inherited across exec)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _painter(family: str):
    import torch

    from bigpaint.painters import build_painter

    torch.manual_seed(0)
    return build_painter(family, {}).eval()


def _checkpoint(family: str, path: Path, grid: int) -> str:
    from bigpaint.painters import save_checkpoint

    prov = {
        "inputs": [{"kind": "delta", "units": "1", "box_size": [BOX_PER_VOXEL * grid] * 3}],
        "targets": [{"kind": f"bench_{family.replace('-', '_')}", "units": "1"}],
        "grid": [grid] * 3,
    }
    return str(save_checkpoint(_painter(family), path, provenance=prov))


def _chunks(text: str) -> int | tuple[int, ...]:
    parts = tuple(int(v) for v in str(text).split(","))
    return parts[0] if len(parts) == 1 else parts


def _make_input(path: Path, grid: int, chunks: int | tuple[int, ...]) -> str:
    """A smoothed, unit-variance Gaussian box written block by block (never whole in memory)."""
    import numpy as np
    import scipy.ndimage as ndi

    from bigpaint.field import create_field

    w = create_field(
        str(path),
        shape=(grid,) * 3,
        chunks=chunks,
        meta={"box_size": BOX_PER_VOXEL * grid, "kind": "delta", "units": "1"},
    )
    for idx in w.pending():
        sl = w.block_slices(idx)
        rng = np.random.default_rng(abs(hash(idx)) % 2**32)
        a = rng.standard_normal(tuple(s.stop - s.start for s in sl)).astype("f4")
        w.write_block(idx, ndi.gaussian_filter(a, 1.0, mode="wrap") * 2.7)
    w.finalize()
    return w.url


def _variant_monolithic(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from bigpaint.field import open_field
    from bigpaint.paint.plan import default_margin

    painter = _painter(args.family).prepare_inference()  # the layout the engine's workers use
    meta = painter.metadata()
    m = default_margin(meta)
    if painter.mode == "same":
        m = -(-m // painter.alignment) * painter.alignment
    x = open_field(args.input)["delta"].values
    n = x.shape[0]
    idx = np.arange(-m, n + m) % n
    padded = np.ascontiguousarray(x[np.ix_(idx, idx, idx)])
    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    y = painter.paint(padded)
    wall = time.perf_counter() - t0
    assert y.shape[-1] in (n, n + 2 * m)
    return {
        "wall_s": wall,
        "voxels": n**3,
        "padded_side": n + 2 * m,
        "peak_rss_mib": _rss_mib(),
        "torch_threads": torch.get_num_threads(),
    }


def _worker_peak() -> float:
    return _rss_mib()


def _warm_imports() -> None:
    import torch  # noqa: F401

    import bigpaint.paint  # noqa: F401


def _variant_engine(args: argparse.Namespace) -> dict:
    from distributed import Client, LocalCluster, get_task_stream

    from bigpaint.paint import paint_field

    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=0,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        # Worker processes import torch and bigpaint before the clock starts, as the
        # monolithic process does; loading the checkpoint stays inside the timed run.
        client.run(_warm_imports)
        budget = int(args.memory_budget_gib * 2**30) if args.memory_budget_gib else None
        t0 = time.perf_counter()
        with get_task_stream(client) as stream:
            paint_field(
                args.checkpoint,
                args.input,
                args.output,
                chunks=args.chunks,
                memory_budget=budget,
                fixed_tile=args.fixed_tile,
            )
        wall = time.perf_counter() - t0
        peaks = client.run(_worker_peak)
        threads = client.run(lambda: __import__("torch").get_num_threads())
    compute = [
        ss["stop"] - ss["start"]
        for task in stream.data
        for ss in task["startstops"]
        if ss["action"] == "compute"
    ]
    return {
        "wall_s": wall,
        "task_compute_s": sorted(compute),
        "voxels": args.grid**3,
        "worker_peak_rss_mib": sorted(peaks.values()),
        "torch_threads_per_worker": sorted(threads.values()),
        "client_peak_rss_mib": _rss_mib(),
    }


def _variant_seams(args: argparse.Namespace) -> dict:
    import numpy as np
    import scipy.ndimage as ndi
    import torch

    from bigpaint.paint.seams import seam_curve
    from bigpaint.painters import load_checkpoint

    torch.set_num_threads(os.cpu_count() or 1)
    if args.seam_checkpoint:
        painter, _ = load_checkpoint(args.seam_checkpoint)
        weights = str(args.seam_checkpoint)
    else:
        from bigpaint.painters import build_painter

        torch.manual_seed(0)
        painter = build_painter("protohalo-unet", json.loads(args.seam_config)).eval()
        weights = "random initial weights (torch.manual_seed(0))"
    n = args.seam_grid
    a = np.random.default_rng(7).standard_normal((n, n, n)).astype("f4")
    a = ndi.gaussian_filter(a, 1.0, mode="wrap")
    a /= a.std()
    margins = [int(v) for v in args.margins.split(",")]
    t0 = time.perf_counter()
    curve = seam_curve(painter, a, margins, chunks=(n, n, n // 2))
    return {
        "family": painter.family,
        "config": painter.metadata().config,
        "weights": weights,
        "context": painter.context,
        "alignment": painter.alignment,
        "grid": n,
        "chunks": [n, n, n // 2],
        "curve": curve,
        "wall_s": time.perf_counter() - t0,
    }


#: name -> (family, config update, painted box ([C,] nx, ny, nz), slab axis of 2-D painters)
ROUNDING_CASES = {
    "halo-painter": ("halo-painter", {}, (40, 40, 40), None),
    "halo-painter-3-channels": ("halo-painter", {"out_channels": 3}, (24, 24, 24), None),
    "dm2gal-small": ("dm2gal", {"channels": 2, "hidden": 8}, (2, 12, 12, 12), None),
    "protohalo-unet-L2-nf2": ("protohalo-unet", {"levels": 2, "filters": 2}, (16, 16, 16), None),
    "protohalo-unet-L3-nf8": ("protohalo-unet", {"levels": 3, "filters": 8}, (24, 24, 24), None),
    "ember-L2-nf2": ("ember", {"levels": 2, "filters": 2, "noise": False}, (32, 32, 4), 2),
    "cosmic-web-gan-small": (
        "cosmic-web-gan",
        {
            "image": 32,
            "generator_filters": [8, 8, 4, 4],
            "discriminator_filters": [4, 4, 8, 8, 8],
        },
        (64, 64, 4),
        2,
    ),
}


def _rounding_case(name: str, n_layouts: int) -> dict:
    """One ``ROUNDING_CASES`` painter: chunked against whole-box inference, bit by bit."""
    import functools

    import numpy as np
    import torch

    from bigpaint.chunked.apply import apply_blockwise
    from bigpaint.paint.engine import paint_window
    from bigpaint.paint.seams import periodic_paint, rounding_error
    from bigpaint.painters import build_painter, paint_array

    family, update, shape, slab = ROUNDING_CASES[name]
    torch.manual_seed(0)
    painter = build_painter(family, update).prepare_inference()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype("f4")
    if slab is not None:
        x = np.abs(x)  # the slab painters' normalizations take logarithms

    def whole(a: np.ndarray) -> np.ndarray:
        return periodic_paint(painter, a) if painter.mode == "same" else paint_array(painter, a)

    torch.set_num_threads(1)
    if slab is None:
        ref = whole(x)
    else:
        ref = np.stack([whole(s) for s in np.moveaxis(x, slab, 0)], axis=1 + slab)
    margin = 0 if painter.mode == "tile" else painter.context
    reach = {"valid": margin, "same": margin + painter.alignment - 1}.get(
        painter.mode, (painter.tile or 1) - 1
    )
    ctx = tuple(0 if a == slab else reach for a in range(3))
    block = functools.partial(
        paint_window,
        painter,
        margin=margin,
        read_context=ctx,
        slab_axis=slab,
        box=x.shape[-3:],
        device=torch.device("cpu"),
    )

    def cuts(n: int) -> tuple[int, ...]:
        k = int(rng.integers(1, min(n, 4) + 1))
        edges = [0, *sorted(rng.choice(np.arange(1, n), k - 1, replace=False)), n]
        return tuple(int(b - a) for a, b in itertools.pairwise(edges))

    layouts = [tuple((n,) for n in x.shape[-3:])]
    layouts += [tuple(cuts(n) for n in x.shape[-3:]) for _ in range(n_layouts)]
    runs = []
    for layout in layouts:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out = np.empty((painter.out_channels, *x.shape[-3:]), dtype=np.float32)
            dest = out[0] if painter.out_channels == 1 else out
            apply_blockwise(block, x, dest, ctx, chunks=layout, name="rounding")
            runs.append(
                {
                    "layout": layout,
                    "threads": threads,
                    "fraction_differing": float((out != ref).mean()),
                    "max_rel": rounding_error(out, ref, channel_axis=0),
                }
            )
    return {
        "family": family,
        "config": update,
        "shape": shape,
        "slab_axis": slab,
        "output_max": float(np.abs(ref).max()),
        "runs": runs,
        "max_fraction_differing": max(r["fraction_differing"] for r in runs),
        "max_rel": max(r["max_rel"] for r in runs),
    }


def _run(variant: str, args: argparse.Namespace, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--variant", variant, *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _machine() -> dict:
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "load_average_at_start": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="throughput,memory,seams")
    ap.add_argument("--grid", type=int, default=256)
    ap.add_argument(
        "--chunks",
        type=_chunks,
        default=128,
        help="block edge in voxels, or x,y,z (e.g. 256,128,128: fewer margins per voxel)",
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--families", default="halo-painter,protohalo-unet")
    ap.add_argument(
        "--memory-budget-gib",
        type=float,
        default=None,
        help="activation budget per forward call on each worker (default: the engine's)",
    )
    ap.add_argument(
        "--fixed-tile",
        type=int,
        default=None,
        help="engine paints on the global grid of tiles of this many voxels (bit-identical)",
    )
    ap.add_argument(
        "--tag", default=None, help="suffix of the throughput JSON (paint-throughput-TAG.json)"
    )
    ap.add_argument("--memory-grids", default="128,256")
    ap.add_argument("--memory-chunks", type=int, default=64)
    ap.add_argument("--seam-grid", type=int, default=64)
    ap.add_argument("--margins", default="0,16,32,48,64")
    ap.add_argument("--seam-checkpoint", default=None)
    ap.add_argument(
        "--seam-config", default="{}", help="protohalo-unet config JSON (random weights)"
    )
    ap.add_argument(
        "--seam-tag", default="custom", help="suffix of the seams JSON for --seam-config"
    )
    ap.add_argument("--rounding-layouts", type=int, default=4)
    ap.add_argument("--out-dir", default=str(Path(__file__).with_name("results")))
    ap.add_argument("--work-dir", default=None)
    # internal: one variant per subprocess
    ap.add_argument("--variant", default=None)
    ap.add_argument("--family", default=None)
    ap.add_argument("--input", default=None)
    ap.add_argument("--output", default=None)
    ap.add_argument("--checkpoint", default=None)
    args = ap.parse_args()

    if args.variant:
        fn = {
            "monolithic": _variant_monolithic,
            "engine": _variant_engine,
            "seams": _variant_seams,
        }[args.variant]
        print(json.dumps(fn(args)))
        return

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        tmp = Path(tmp)
        if "throughput" in parts:
            res = {
                "machine": _machine(),
                "grid": args.grid,
                "chunks": args.chunks,
                "workers": args.workers,
                "memory_budget_gib": args.memory_budget_gib,
                "fixed_tile": args.fixed_tile,
                "families": {},
            }
            inp = _make_input(tmp / "in.zarr", args.grid, args.chunks)
            for fam in args.families.split(","):
                ck = _checkpoint(fam, tmp / f"{fam}.painter", args.grid)
                common = [
                    "--family",
                    fam,
                    "--input",
                    inp,
                    "--grid",
                    str(args.grid),
                    "--chunks",
                    ",".join(
                        map(
                            str,
                            args.chunks if isinstance(args.chunks, tuple) else (args.chunks,) * 3,
                        )
                    ),
                    "--workers",
                    str(args.workers),
                ]
                if args.memory_budget_gib:
                    common += ["--memory-budget-gib", str(args.memory_budget_gib)]
                mono = _run("monolithic", args, common)
                fixed = ["--fixed-tile", str(args.fixed_tile)] if args.fixed_tile else []
                eng = _run(
                    "engine",
                    args,
                    [
                        *common,
                        *fixed,
                        "--checkpoint",
                        ck,
                        "--output",
                        str(tmp / f"{fam}-out.zarr"),
                    ],
                )
                vm, ve = mono["voxels"] / mono["wall_s"], eng["voxels"] / eng["wall_s"]
                res["families"][fam] = {
                    "monolithic": mono,
                    "engine": eng,
                    "monolithic_voxels_per_s": vm,
                    "engine_voxels_per_s": ve,
                    "ratio": ve / vm,
                }
                print(
                    f"{fam:16s} monolithic {vm / 1e6:8.3f} Mvox/s  engine {ve / 1e6:8.3f} "
                    f"Mvox/s  ratio {ve / vm:5.2f}  worker peak RSS "
                    f"{max(eng['worker_peak_rss_mib']):.0f} MiB (mono {mono['peak_rss_mib']:.0f})"
                )
            res["machine"]["load_average_at_end"] = os.getloadavg()
            name = f"paint-throughput-{args.tag}.json" if args.tag else "paint-throughput.json"
            (out_dir / name).write_text(json.dumps(res, indent=2))
        if "memory" in parts:
            res = {
                "machine": _machine(),
                "chunks": args.memory_chunks,
                "family": "halo-painter",
                "workers": args.workers,
                "runs": [],
            }
            for g in (int(v) for v in args.memory_grids.split(",")):
                inp = _make_input(tmp / f"mem-{g}.zarr", g, args.memory_chunks)
                ck = _checkpoint("halo-painter", tmp / f"mem-{g}.painter", g)
                eng = _run(
                    "engine",
                    args,
                    [
                        "--family",
                        "halo-painter",
                        "--input",
                        inp,
                        "--grid",
                        str(g),
                        "--chunks",
                        str(args.memory_chunks),
                        "--workers",
                        str(args.workers),
                        "--checkpoint",
                        ck,
                        "--output",
                        str(tmp / f"mem-{g}-out.zarr"),
                    ],
                )
                res["runs"].append({"grid": g, **eng})
                print(
                    f"memory {g}^3 chunks {args.memory_chunks}: worker peak RSS "
                    f"{eng['worker_peak_rss_mib']} MiB, {eng['wall_s']:.1f} s"
                )
            res["machine"]["load_average_at_end"] = os.getloadavg()
            (out_dir / "paint-memory.json").write_text(json.dumps(res, indent=2))
    if "seams" in parts:
        extra = [
            "--seam-grid",
            str(args.seam_grid),
            "--margins",
            args.margins,
            "--seam-config",
            args.seam_config,
        ]
        if args.seam_checkpoint:
            extra += ["--seam-checkpoint", args.seam_checkpoint]
        res = {"machine": _machine(), **_run("seams", args, extra)}
        for row in res["curve"]:
            print(
                f"margin {row['margin']:4d}: max |err| / std = {row['max_rel']:.3e}, "
                f"rms / std = {row['rms'] / row['std']:.3e}"
            )
        tag = "" if args.seam_config == "{}" and not args.seam_checkpoint else f"-{args.seam_tag}"
        (out_dir / f"paint-seams{tag}.json").write_text(json.dumps(res, indent=2))
    if "rounding" in parts:
        res = {"machine": _machine(), "cases": {}}
        for name in ROUNDING_CASES:
            row = _rounding_case(name, args.rounding_layouts)
            res["cases"][name] = row
            print(
                f"{name:26s} voxels differing up to {100 * row['max_fraction_differing']:5.1f} %, "
                f"largest difference {row['max_rel']:.1e} of the output's largest magnitude"
            )
        res["machine"]["load_average_at_end"] = os.getloadavg()
        (out_dir / "paint-rounding.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
