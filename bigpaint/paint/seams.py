"""Seam error of ``same``-mode painters (U-Nets) against the margin.

A U-Net pads every convolution with zeros, so a block painted from a window of its core plus
``margin`` voxels differs from whole-box inference near the window's edge; the error reaching
the core shrinks as the margin grows and vanishes at the structural context. This module
measures that error against the exact answer, **whole-box periodic inference**:
:func:`periodic_twin` is a copy of the painter whose convolutions wrap around (circular
padding; transposed convolutions run on a circularly extended input and are cropped), so
one forward pass over the whole box gives what the painter computes on the infinite periodic
repetition of the box, which is what a block with the full structural context computes. It
costs one pass over the box and no context, so the curve can be measured for the paper-size
architecture (context 222 voxels) on a small box.

``docs/paint.md`` records the curve and the default margin it justifies
(:func:`bigpaint.paint.plan.default_margin`).

**Rounding.** Even where chunked painting is exact in real arithmetic (valid and tile
painters, U-Nets at margin = context) it is not bitwise equal to whole-box inference: the
convolution library (oneDNN on CPU) picks its algorithm and blocking from the shape of each
forward call (window size, batch), so a voxel's float32 sums are accumulated in another order
when the chunking, the sub-tiling under the memory budget or the batch changes. The
difference is rounding: :data:`ROUNDING_RTOL` of each output channel's largest magnitude
bounds it (:func:`rounding_error`; the derivation and the measurements are in
``docs/paint.md``), and :data:`SEAM_RTOL` bounds the seams a U-Net's default margin leaves.

Why hand-written: torch has circular padding for convolutions only; the transposed
convolution's periodic form and the measurement are a few lines on top.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bigpaint.errors import ShapeError

__all__ = [
    "ROUNDING_RTOL",
    "SEAM_RTOL",
    "periodic_paint",
    "periodic_twin",
    "rounding_error",
    "seam_curve",
    "seam_error",
]

#: Chunked painting with the full context equals whole-box float32 inference to this
#: fraction of each output channel's largest magnitude (float32 accumulation order; about
#: 170 units in the last place). Measured worst case 6.9e-7 (docs/paint.md); a seam is
#: orders of magnitude larger.
ROUNDING_RTOL = 1e-5

#: U-Nets at the default margin: the seam error stays below this fraction of the output's
#: standard deviation (:func:`seam_error`'s ``max_rel``; measured curves in docs/paint.md).
SEAM_RTOL = 1e-3


def _circular_transpose(module: Any) -> Any:
    """A transposed convolution that treats its input as periodic (see module docstring)."""
    import torch.nn.functional as F
    from torch import nn

    class _Periodic(nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            m = self.inner
            nd = x.ndim - 2
            if any(d != 1 for d in m.dilation):
                raise ShapeError("periodic_twin handles transposed convolutions without dilation")
            q = [math.ceil(k / s) for k, s in zip(m.kernel_size, m.stride, strict=True)]
            pad = [v for qi in reversed(q) for v in (qi, qi)]
            xp = F.pad(x, pad, mode="circular")
            conv = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[nd]
            y = conv(xp, m.weight, m.bias, m.stride, 0, 0, m.groups, 1)
            sl = [
                slice(p + qi * s, p + qi * s + s * n)
                for p, qi, s, n in zip(m.padding, q, m.stride, x.shape[2:], strict=True)
            ]
            return y[(slice(None), slice(None), *sl)]

    return _Periodic(module)


def periodic_twin(painter: Any) -> Any:
    """A copy of a ``same``-mode painter computing on the periodic repetition of its input.

    Every zero-padded convolution becomes circular, every transposed convolution periodic.
    Input sizes must be multiples of the alignment (pooling grids then tile the box).
    """
    from torch import nn

    twin = copy.deepcopy(painter).eval()
    convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    transposes = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    for name, child in list(twin.named_modules()):
        if isinstance(child, convs):
            assert not isinstance(child.padding, str)  # painters pad by voxel counts
            if any(p > 0 for p in child.padding):
                child.padding_mode = "circular"
        elif isinstance(child, transposes):
            parent = twin.get_submodule(name.rpartition(".")[0]) if "." in name else twin
            key = name.rpartition(".")[2]
            if isinstance(parent, (nn.ModuleList, nn.Sequential)):
                parent[int(key)] = _circular_transpose(child)
            else:
                setattr(parent, key, _circular_transpose(child))
    return twin


def periodic_paint(painter: Any, x: np.ndarray, *, noise: Any = None, slab: int = 0) -> np.ndarray:
    """Whole-box periodic inference of a ``same``-mode painter: ``(C_in, *S)`` to ``(C_out, *S)``.

    ``noise``: a :class:`bigpaint.paint.slabs.NoiseMaps` for noise-injecting painters (the
    maps of the whole box, slab index ``slab``).
    """
    import torch

    from bigpaint.painters.base import apply_norms, invert_norms

    x = np.asarray(x, dtype=np.float32)
    if x.ndim == painter.ndim:
        x = x[None]
    if any(n % painter.alignment for n in x.shape[1:]):
        raise ShapeError(
            f"periodic inference needs sizes divisible by {painter.alignment}, got {x.shape[1:]}"
        )
    twin = periodic_twin(painter)
    t = torch.from_numpy(apply_norms(painter.input_norm, x, 0))[None]
    with torch.inference_mode():
        if noise is not None:
            maps = noise(slab, [(0, n) for n in x.shape[1:]])
            y = twin.forward_multiscale(t, noise=maps)[-1]
        else:
            y = twin.infer(t)
    return invert_norms(painter.output_norm, y[0].float(), 0).numpy()


def rounding_error(
    actual: np.ndarray, reference: np.ndarray, *, channel_axis: int | None = None
) -> float:
    """Largest ``max |actual - reference| / max |reference|`` over output channels.

    The scale is each channel's largest magnitude because float32 rounding scales with the
    sums a network accumulates, not with the value of a voxel (a voxel near zero carries the
    rounding of its large partial sums). Compare with :data:`ROUNDING_RTOL`.

    Parameters
    ----------
    actual, reference : numpy.ndarray
        Painted fields of one shape (physical units).
    channel_axis : int, optional
        Axis of the output channels (None: one channel).

    Returns
    -------
    float
        0 for equal arrays; ``inf`` where ``actual`` is not finite or a channel whose
        reference is all zeros differs.
    """
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if a.shape != r.shape:
        raise ShapeError(f"painted arrays differ in shape: {a.shape} vs {r.shape}")
    if channel_axis is None:
        a, r = a[None], r[None]
    else:
        a, r = np.moveaxis(a, channel_axis, 0), np.moveaxis(r, channel_axis, 0)
    worst = 0.0
    for ac, rc in zip(a, r, strict=True):
        diff = np.abs(ac - rc)
        if not np.isfinite(diff).all():
            return math.inf
        top = float(diff.max(initial=0.0))
        scale = float(np.abs(rc).max(initial=0.0))
        if top > 0:
            worst = max(worst, top / scale if scale > 0 else math.inf)
    return worst


def seam_error(
    painter: Any,
    x: np.ndarray,
    margin: int,
    *,
    chunks: int | Sequence[int],
    reference: np.ndarray | None = None,
) -> dict[str, float]:
    """Chunked painting of ``x`` with ``margin`` against whole-box periodic inference.

    Parameters
    ----------
    painter : Painter
        A 3-D ``same``-mode painter (2-D painters: pass a 3-D array whose first spatial axis
        holds slabs).
    x : numpy.ndarray
        ``([C,] nx, ny, nz)`` periodic box; sizes multiples of the alignment.
    margin : int
        Seam margin per side in voxels.
    chunks : int or sequence
        Block layout (dask convention).
    reference : numpy.ndarray, optional
        :func:`periodic_paint` of ``x`` (computed when omitted).

    Returns
    -------
    dict
        ``margin``, ``max_abs`` and ``rms`` of the difference, ``std`` of the reference, and
        ``max_rel = max_abs / std``.
    """
    import torch

    from bigpaint.chunked.apply import apply_blockwise
    from bigpaint.paint.engine import paint_window

    x = np.asarray(x, dtype=np.float32)
    x4 = x if x.ndim == 4 else x[None]
    slab_axis = 0 if painter.ndim == 2 else None
    if reference is None:
        if slab_axis is None:
            reference = periodic_paint(painter, x4)
        else:
            reference = np.stack(
                [periodic_paint(painter, x4[:, i]) for i in range(x4.shape[1])], axis=1
            )
    a = painter.alignment
    reach = margin + a - 1
    ctx = (0, reach, reach) if slab_axis == 0 else (reach,) * 3
    out = np.empty((painter.out_channels, *x4.shape[1:]), dtype=np.float32)
    block = functools.partial(
        paint_window,
        painter,
        margin=margin,
        read_context=ctx,
        slab_axis=slab_axis,
        box=x4.shape[1:],
        device=torch.device("cpu"),
    )
    dest = out if painter.out_channels > 1 else out[0]
    apply_blockwise(block, x4 if x.ndim == 4 else x, dest, ctx, chunks=chunks, name="seams")
    diff = out - reference
    std = float(reference.std())
    max_abs = float(np.abs(diff).max())
    return {
        "margin": int(margin),
        "max_abs": max_abs,
        "rms": float(np.sqrt((diff.astype(np.float64) ** 2).mean())),
        "std": std,
        "max_rel": max_abs / std if std > 0 else math.inf,
    }


def seam_curve(
    painter: Any, x: np.ndarray, margins: Sequence[int], *, chunks: int | Sequence[int]
) -> list[dict[str, float]]:
    """:func:`seam_error` for every margin (one reference pass shared by all)."""
    x = np.asarray(x, dtype=np.float32)
    x4 = x if x.ndim == 4 else x[None]
    if painter.ndim == 2:
        ref = np.stack([periodic_paint(painter, x4[:, i]) for i in range(x4.shape[1])], axis=1)
    else:
        ref = periodic_paint(painter, x4)
    return [seam_error(painter, x, m, chunks=chunks, reference=ref) for m in margins]
