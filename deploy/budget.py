"""Memory and time budget of a paint + statistics run, on paper, from bigpaint's own numbers.

    python deploy/budget.py --grid 2048 --painter halo-painter --chunks 256 --gpus 8

Everything structural comes from the code, so the budget follows it: the painter's context,
alignment and default seam margin (:mod:`bigpaint.painters`, :mod:`bigpaint.paint.plan`), the
activation bytes per voxel that the paint workers size their sub-tiles with
(:func:`bigpaint.paint.workers.bytes_per_voxel`), and the FFT transposes of the P(k)
(:func:`bigpaint.mesh.fft_plan.plan_fft`). The hardware rates are assumptions, given as options
and printed with the result; docs/deploy.md says where the defaults come from.

Time model (a roofline): a painted window costs ``max(FLOP / (peak * efficiency), bytes /
(bandwidth * efficiency))`` on a GPU, where FLOP = 2 x multiply-adds per voxel x window
voxels (an upper bound for valid-convolution painters, whose layers shrink towards the core)
and bytes = 2 x activation bytes per voxel x window voxels (every activation written once and
read once); reading the input and writing the output go at the file system's aggregate
bandwidth. A transform costs ``2.5 N log2 N`` flops on the CPU threads of the workers, plus
one pass of the complex array through dask's P2P shuffle per transpose (network and the
spill to local disk, at a throughput per worker), plus reading the Field.

Only 3-D painters are budgeted (the 2-D families paint projected slabs; see their pages).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GiB = 2**30


def multiply_adds_per_voxel(painter: Any) -> float:
    """Multiply-adds per painted voxel of a 3-D painter.

    ``valid`` painters (stride-1 chains, dm2gal's dense form): the weights of every
    convolution and linear layer, each applied once per voxel (the large-window limit).
    ``same`` painters (U-Nets): counted with forward hooks on a probe of ``2 * alignment``
    voxels per axis; every layer's size is a fixed fraction of the input's, so the count per
    voxel holds for any size.
    """
    import torch
    from torch import nn

    if painter.mode == "valid":
        layers = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
        return float(sum(m.weight.numel() for m in painter.modules() if isinstance(m, layers)))
    n = 2 * int(painter.alignment)
    total = [0.0]
    transposed = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)

    def hook(m: Any, inp: Any, out: Any) -> None:
        if isinstance(m, transposed):  # every input voxel scatters Cout/g x k^d products
            total[0] += inp[0].numel() * m.weight[0].numel()
        elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):  # Cin/g x k^d per output
            total[0] += out.numel() * m.weight[0].numel()
        elif isinstance(m, nn.Linear):
            total[0] += out.numel() * m.in_features

    leaves = [m for m in painter.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = painter.training
    painter.eval()
    try:
        with torch.inference_mode():
            painter.infer(torch.zeros((1, painter.in_channels) + (n,) * painter.ndim))
    finally:
        for h in handles:
            h.remove()
        painter.train(was_training)
    return total[0] / n**painter.ndim


def _gib(nbytes: float) -> str:
    return f"{nbytes / GiB:,.2f} GiB"


def _time(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:,.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"


def _table(rows: Sequence[tuple[str, str]]) -> list[str]:
    return ["| quantity | value |", "| --- | --- |", *(f"| {a} | {b} |" for a, b in rows)]


def budget(
    *,
    grid: int,
    painter: str,
    model: dict[str, Any] | None = None,
    chunks: int,
    gpus: int,
    gpu_memory: float,
    gpu_flops: float,
    gpu_bandwidth: float,
    efficiency: float,
    fft_workers: int,
    fft_threads: int,
    core_flops: float,
    shuffle: float,
    filesystem: float,
    decomposition: str = "slab",
) -> str:
    """The budget as Markdown tables (see the module docstring for the model).

    Parameters
    ----------
    grid : int
        Voxels per side of the box.
    painter : str
        Painter family; ``model`` its architecture config (default: the paper's).
    chunks : int
        Paint write blocks (voxels per side).
    gpus : int
        GPU workers painting at once.
    gpu_memory : float
        Bytes of memory per GPU.
    gpu_flops, gpu_bandwidth : float
        Peak FP32 FLOP/s and memory bandwidth (bytes/s) of one GPU.
    efficiency : float
        Fraction of both peaks that painting sustains.
    fft_workers, fft_threads : int
        Workers taking part in the FFT, and threads each.
    core_flops : float
        FLOP/s of one CPU thread on a block FFT (scipy.fft, float32).
    shuffle : float
        Bytes/s each worker moves through a P2P transpose (network, serialisation, spill).
    filesystem : float
        Aggregate bytes/s of the shared file system for reading and writing Fields.
    decomposition : {"slab", "pencil"}
    """
    from bigpaint.mesh.fft_plan import plan_fft
    from bigpaint.paint.plan import default_margin
    from bigpaint.paint.workers import bytes_per_voxel
    from bigpaint.painters import build_painter

    p = build_painter(painter, model or {})
    if p.ndim != 3:
        raise SystemExit(f"{painter} is a {p.ndim}-D painter; this budget covers 3-D painters")
    voxels = grid**3
    field = 4 * voxels
    out_field = field * p.out_channels
    margin = default_margin(p.metadata())
    align = p.alignment
    if p.mode == "same":  # windows start and end on the pooling grid
        lo = -(-(margin) // align) * align
        window = chunks + 2 * lo
    else:
        window = chunks + 2 * margin
    blocks = math.ceil(grid / chunks) ** 3
    bpv = bytes_per_voxel(p)
    macs = multiply_adds_per_voxel(p)
    win_vox = window**3
    act = bpv * win_vox
    sub_budget = gpu_memory / 2  # paint's default memory budget: half the free GPU memory
    subtiles = max(1, math.ceil(act / sub_budget))
    flop = 2 * macs * win_vox * blocks
    traffic = 2 * bpv * win_vox * blocks
    t_flop = flop / (gpu_flops * efficiency)
    t_mem = traffic / (gpu_bandwidth * efficiency)
    gpu_seconds = max(t_flop, t_mem)
    t_io = (field * p.in_channels + out_field) / filesystem

    paint_rows = [
        ("painter", f"{painter} ({p.mode}, {p.parameter_count():,} parameters)"),
        ("context per side / alignment", f"{p.context} / {align} voxels"),
        ("seam margin per side (paint default)", f"{margin} voxels"),
        ("write block / window", f"{chunks}^3 / {window}^3 voxels"),
        ("blocks (tasks)", f"{blocks:,}"),
        ("window read per block (float32)", _gib(4 * p.in_channels * win_vox)),
        ("output per block (float32)", _gib(4 * p.out_channels * chunks**3)),
        ("read amplification (window / block volume)", f"{win_vox / chunks**3:.2f}"),
        ("activation bytes per voxel (paint's estimate)", f"{bpv:,} B"),
        ("activations of one whole window", _gib(act)),
        ("sub-tiles per block at half the GPU memory", f"{subtiles}"),
        ("multiply-adds per voxel", f"{macs:,.0f}"),
        ("FLOP, whole box (upper bound)", f"{flop:.3g}"),
        ("activation traffic, whole box", f"{traffic / 1e12:,.1f} TB"),
        ("GPU time if compute-bound", _time(t_flop)),
        ("GPU time if bandwidth-bound", _time(t_mem)),
        (f"GPU wall time on {gpus} GPUs", _time(gpu_seconds / gpus)),
        ("read input + write output at the file system's rate", _time(t_io)),
        ("paint wall time (GPU and I/O overlap: the larger)", _time(max(gpu_seconds / gpus, t_io))),
    ]

    plan = plan_fft((grid,) * 3, decomposition=decomposition, itemsize=8)  # type: ignore[arg-type]
    cbytes = 8 * grid * grid * (grid // 2 + 1)
    transposes = len(plan.forward) - 1
    blocks_max = max(
        math.prod(max(c) for c in st.chunks) * (4 if i == 0 else 8)
        for i, st in enumerate(plan.forward)
    )
    fft_flop = 2.5 * voxels * math.log2(voxels)
    t_fft = fft_flop / (core_flops * fft_workers * fft_threads)
    t_shuffle = cbytes * transposes / (shuffle * fft_workers)
    t_read = field / filesystem
    per_spectrum = t_fft + t_shuffle + t_read
    fft_rows = [
        ("complex array (complex64)", _gib(cbytes)),
        ("decomposition / transposes per transform", f"{decomposition} / {transposes}"),
        (
            "blocks per stage",
            " -> ".join(f"{st.n_blocks:,}" for st in plan.forward),
        ),
        ("largest block", _gib(blocks_max)),
        (f"P2P spill per worker ({fft_workers} workers)", _gib(cbytes / fft_workers)),
        ("worker memory in flight (3 blocks per thread)", _gib(fft_threads * 3 * blocks_max)),
        ("FFT flops per transform", f"{fft_flop:.3g}"),
        ("CPU time per transform", _time(t_fft)),
        ("P2P shuffle time per transform", _time(t_shuffle)),
        ("reading the Field", _time(t_read)),
        ("one auto spectrum (one transform)", _time(per_spectrum)),
        (
            f"{p.out_channels + 1} transforms: painted channels + input (each once)",
            _time(per_spectrum * (p.out_channels + 1)),
        ),
    ]
    lines = [
        f"Budget for a {grid}^3 box (bigpaint {_version()}):",
        "",
        "Fields (float32):",
        "",
        *_table(
            [
                ("input density", _gib(field)),
                (f"painted output ({p.out_channels} channel(s))", _gib(out_field)),
            ]
        ),
        "",
        f"Paint on {gpus} GPUs of {gpu_memory / GiB:.0f} GiB, {gpu_flops / 1e12:g} TFLOP/s "
        f"FP32 and {gpu_bandwidth / 1e12:g} TB/s, at {efficiency:.0%} of both; file system "
        f"{filesystem / 1e9:g} GB/s:",
        "",
        *_table(paint_rows),
        "",
        f"P(k) on {fft_workers} workers x {fft_threads} threads at {core_flops / 1e9:g} "
        f"GFLOP/s per thread, shuffling {shuffle / 1e6:g} MB/s per worker:",
        "",
        *_table(fft_rows),
    ]
    return "\n".join(lines) + "\n"


def _version() -> str:
    import bigpaint

    return bigpaint.__version__


def _bytes(text: str) -> float:
    import dask.utils

    return float(dask.utils.parse_bytes(text))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", type=int, default=2048, help="voxels per side")
    ap.add_argument("--painter", default="halo-painter", help="painter family")
    ap.add_argument("--config", help="YAML with a 'model:' section (e.g. configs/train-*.yaml)")
    ap.add_argument("--chunks", type=int, default=256, help="paint write block, voxels")
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--gpu-memory", default="80GiB")
    ap.add_argument("--gpu-flops", type=float, default=19.5e12, help="peak FP32 FLOP/s")
    ap.add_argument("--gpu-bandwidth", type=float, default=2.0e12, help="memory bytes/s")
    ap.add_argument("--efficiency", type=float, default=0.3)
    ap.add_argument("--fft-workers", type=int, default=8)
    ap.add_argument("--fft-threads", type=int, default=8)
    ap.add_argument("--core-flops", type=float, default=2e9, help="FFT FLOP/s per thread")
    ap.add_argument("--shuffle", type=float, default=200e6, help="P2P bytes/s per worker")
    ap.add_argument("--filesystem", type=float, default=5e9, help="aggregate bytes/s")
    ap.add_argument("--decomposition", choices=["slab", "pencil"], default="slab")
    a = ap.parse_args(argv)
    model = None
    if a.config:
        import yaml

        model = yaml.safe_load(Path(a.config).read_text()).get("model")
    print(
        budget(
            grid=a.grid,
            painter=a.painter,
            model=model,
            chunks=a.chunks,
            gpus=a.gpus,
            gpu_memory=_bytes(a.gpu_memory),
            gpu_flops=a.gpu_flops,
            gpu_bandwidth=a.gpu_bandwidth,
            efficiency=a.efficiency,
            fft_workers=a.fft_workers,
            fft_threads=a.fft_threads,
            core_flops=a.core_flops,
            shuffle=a.shuffle,
            filesystem=a.filesystem,
            decomposition=a.decomposition,
        ),
        end="",
    )


if __name__ == "__main__":
    main()
