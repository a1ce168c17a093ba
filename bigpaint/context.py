"""The one place that derives how much periodic neighbourhood (context) an operation needs.

Every chunked operation gets its context from a function here, from a filter's kernel
support or a network's receptive field, and hands it to
:func:`bigpaint.chunked.apply.apply_blockwise`. No operation computes its own overlap.

Networks: :func:`receptive_field_context` sums ``(kernel - 1) * dilation * jump`` over a chain
of layers (valid convolutions, strided or dilated); :func:`probe_context` measures the
structural receptive field of any same-size network (U-Nets with pooling, skips and
upsampling, where no closed formula is convenient) by back-propagating through a copy whose
weights are all positive, so that no cancellation can hide a dependence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "as_context",
    "gaussian_context",
    "marker_context",
    "probe_context",
    "receptive_field",
    "receptive_field_context",
]


def as_context(context: int | Sequence[int], ndim: int = 3) -> tuple[int, ...]:
    """Normalise a context (voxels on each side) to one non-negative int per spatial axis."""
    if isinstance(context, int):
        out = (context,) * ndim
    else:
        out = tuple(int(c) for c in context)
    if len(out) != ndim:
        raise ValueError(f"context needs {ndim} values (one per spatial axis), got {out}")
    if any(c < 0 for c in out):
        raise ValueError(f"context must be >= 0 voxels, got {out}")
    return out


def gaussian_context(sigma: Sequence[float], truncate: float = 4.0) -> tuple[int, ...]:
    """Kernel radius of ``scipy.ndimage.gaussian_filter`` per axis, in voxels.

    scipy uses ``radius = int(truncate * sigma + 0.5)`` taps on each side; with at least
    that much periodic context, the chunked filter equals the whole-array filter exactly.

    Parameters
    ----------
    sigma : sequence of float
        Standard deviation per axis in voxels.
    truncate : float
        Truncate the kernel at this many standard deviations.
    """
    return tuple(int(truncate * float(s) + 0.5) for s in sigma)


def marker_context(
    min_distance: int, sigma: Sequence[float] = (0.0, 0.0, 0.0), truncate: float = 4.0
) -> tuple[int, ...]:
    """Context of the watershed marker search, in voxels per axis.

    A voxel is a marker when it is the maximum of the (optionally Gaussian-smoothed) map in
    the cube of half-width ``min_distance`` around it (:mod:`bigpaint.segment.markers`). The
    smoothed value at every voxel of that cube needs the Gaussian's kernel radius, so the
    context is ``gaussian_context(sigma, truncate) + min_distance`` on each axis; with it the
    chunked markers equal the whole-array markers exactly.

    Parameters
    ----------
    min_distance : int
        Half-width of the maximum cube in voxels (>= 1).
    sigma : sequence of float
        Standard deviation of the optional smoothing per axis in voxels (0: none).
    truncate : float
        Truncate the smoothing kernel at this many standard deviations.
    """
    if int(min_distance) < 1:
        raise ValueError(f"min_distance must be >= 1 voxel, got {min_distance}")
    return tuple(g + int(min_distance) for g in gaussian_context(sigma, truncate))


def receptive_field(layers: Sequence[Sequence[int]]) -> int:
    """Receptive field (voxels along one axis) of a chain of convolution-like layers.

    Parameters
    ----------
    layers : sequence of (kernel, stride) or (kernel, stride, dilation)
        In the order the data passes them. Pooling counts as a layer; a 1x1 layer adds 0.

    Returns
    -------
    int
        ``1 + sum_i (k_i - 1) d_i J_i`` with ``J_i`` the product of the strides before layer i.
    """
    rf, jump = 1, 1
    for layer in layers:
        k, s, *rest = (int(v) for v in layer)
        d = rest[0] if rest else 1
        if k < 1 or s < 1 or d < 1:
            raise ValueError(f"kernel, stride and dilation must be >= 1, got {tuple(layer)}")
        rf += (k - 1) * d * jump
        jump *= s
    return rf


def receptive_field_context(layers: Sequence[Sequence[int]]) -> int:
    """Context (voxels on each side) of a chain of layers with a centred receptive field.

    A valid-convolution network whose output voxel ``o`` sees input ``[o, o + rf)`` needs
    ``(rf - 1) / 2`` voxels on each side of the voxel it paints. See :func:`receptive_field`.

    Raises
    ------
    ValueError
        The receptive field is even (no centre voxel): such a chain has no symmetric context.
    """
    rf = receptive_field(layers)
    if rf % 2 == 0:
        raise ValueError(f"receptive field {rf} is even: the layers have no centre voxel")
    return (rf - 1) // 2


def _positive_copy(module: Any) -> Any:
    """A float64 eval-mode copy of ``module`` whose output depends on every input in its
    structural receptive field with a strictly positive derivative.

    Weights are set to ``1 / fan_in`` and biases to 0.1 (positive activations everywhere, so
    ReLU never cuts a path), batch norms become the identity plus 0.1, and max pooling
    becomes average pooling of the same window (max pooling passes gradient to one input of
    the window only, while its output depends structurally on all of them).
    """
    import copy

    import torch
    from torch import nn

    probe = copy.deepcopy(module).double().eval()
    pools = {nn.MaxPool1d: nn.AvgPool1d, nn.MaxPool2d: nn.AvgPool2d, nn.MaxPool3d: nn.AvgPool3d}
    for name, child in list(probe.named_modules()):
        for cls, avg in pools.items():
            if type(child) is cls:
                parent = probe.get_submodule(name.rpartition(".")[0]) if "." in name else probe
                setattr(
                    parent,
                    name.rpartition(".")[2],
                    avg(child.kernel_size, child.stride, child.padding),
                )
    with torch.no_grad():
        for child in probe.modules():
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                assert child.running_mean is not None and child.running_var is not None
                child.running_mean.zero_()
                child.running_var.fill_(1.0)
        for name, p in probe.named_parameters():
            if p.ndim >= 2:
                p.fill_(1.0 / max(1, p[0].numel()))
            else:
                p.fill_(0.1 if "bias" in name.rsplit(".", 1)[-1] else 1.0)
    return probe


def probe_context(
    module: Any,
    *,
    ndim: int,
    in_channels: int,
    alignment: int = 1,
    start: int = 32,
    max_size: int = 1 << 14,
) -> int:
    """Structural context (voxels on each side) of a same-size network, by probing.

    The centre output block of ``alignment`` voxels per axis (at an aligned offset, so that
    every pooling phase is covered) is back-propagated through a positive copy of ``module``
    (see :func:`_positive_copy`); the input voxels with a non-zero derivative are exactly its
    structural receptive field. The context is the largest distance from the block to the
    edge of that field. Probe a 1-D twin of a network with cubic kernels: its context per axis
    is the same and the probe costs microseconds.

    Parameters
    ----------
    module : torch.nn.Module
        Maps ``(1, in_channels, n, ...)`` to ``(1, c, n, ...)`` for ``n`` divisible by
        ``alignment``.
    ndim : int
        Number of spatial axes of ``module``.
    in_channels : int
    alignment : int
        Offset granularity of the network (``2**levels`` for a U-Net).
    start, max_size : int
        First and largest probe size in voxels per axis (doubled until the field fits).

    Returns
    -------
    int
    """
    import torch

    probe = _positive_copy(module)
    size = max(start, 4 * alignment)
    while size <= max_size:
        size = -(-size // alignment) * alignment
        x = torch.ones((1, in_channels) + (size,) * ndim, dtype=torch.float64, requires_grad=True)
        y = probe(x)
        if tuple(y.shape[2:]) != (size,) * ndim:
            raise ValueError(
                f"probe_context needs a same-size network; {size} voxels gave {tuple(y.shape[2:])}"
            )
        lo = (size // 2) // alignment * alignment
        core = (slice(None), slice(None)) + (slice(lo, lo + alignment),) * ndim
        (grad,) = torch.autograd.grad(y[core].sum(), x)
        support = (grad[0].abs().sum(0) > 0).nonzero()
        first, last = int(support.min()), int(support.max())  # over all axes: a bounding cube
        if first > 0 and last < size - 1:
            return max(lo - first, last - (lo + alignment - 1))
        size *= 2
    raise ValueError(f"receptive field exceeds {max_size} voxels; is the network same-size?")
