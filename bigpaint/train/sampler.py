"""Patches for training: random crops of Fields with periodic wrap, split by region.

:class:`PatchSampler` cuts aligned (input, target) pairs from periodic sources: the target is
the centre of the input (``margin = (in_size - out_size) / 2`` voxels of context on each
side, 0 for same-size painters), read straight from Zarr through the chunk-cached
:class:`bigpaint.chunked.read.FieldSource` (:func:`bigpaint.chunked.read.periodic_read` for
in-memory arrays), so crops may cross the box edge. 2-D painters get slabs of
``projection_depth`` voxels summed along a random axis (EMBER's projected maps). One of the 48
cube (8 square) symmetries is drawn per sample and applied to both.

Train/validation split by region: a validation cube (:class:`Region`) is held out; a
training sample is drawn only where its whole input window (context and slab included) avoids
the cube on the periodic torus, so no validation voxel is ever seen in training. Validation
samples have their target inside the cube.

dm2gal's inverse-frequency sampling (:func:`inverse_frequency_weights`) draws centre voxels
with probability inversely proportional to the population of their log bin of the target.

Every random choice of a sampler comes from its one ``numpy.random.Generator``, whose state
is saved for resume. :class:`bigpaint.train.training_data.TrainingData` opens the configured
Fields and builds the training and validation samplers.

Why hand-written: torch's DataLoader knows nothing of periodic windows on Zarr, region
splits on a torus or cube symmetries; these are a few array operations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigpaint.chunked.read import periodic_read
from bigpaint.errors import ConfigError, NonFiniteError, ShapeError
from bigpaint.train.symmetry import random_symmetry

__all__ = [
    "ArraySource",
    "PatchSampler",
    "Region",
    "channel_count",
    "inverse_frequency_weights",
    "read_channels",
    "read_source",
]


# ---------------------------------------------------------------- sources


@dataclass(frozen=True)
class ArraySource:
    """An in-memory periodic array with the :class:`FieldSource` ``read(window)`` interface."""

    array: np.ndarray
    label: str = "array"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def read(self, window: Sequence[tuple[int, int]]) -> np.ndarray:
        return periodic_read(self.array, window)


def channel_count(source: Any) -> int:
    """Channels of a 3-D (one) or 4-D ``(c, n, n, n)`` source."""
    return int(source.shape[0]) if len(source.shape) == 4 else 1


def _label(source: Any) -> str:
    return str(getattr(source, "url", None) or getattr(source, "label", "array"))


def read_source(source: Any, window: Sequence[tuple[int, int]]) -> np.ndarray:
    """The periodic ``window`` of one source as float32 ``(C, x, y, z)`` (C = 1 for 3-D)."""
    a = np.asarray(source.read(window), dtype=np.float32)
    return a if a.ndim == 4 else a[None]


def read_channels(sources: Sequence[Any], window: Sequence[tuple[int, int]]) -> np.ndarray:
    """The periodic ``window`` of every source, stacked as float32 channels ``(C, x, y, z)``."""
    return np.concatenate([read_source(s, window) for s in sources], 0)


# ---------------------------------------------------------------- regions


def _overlap(a: int, la: int, b: int, lb: int, n: int) -> bool:
    """Do ``[a, a+la)`` and ``[b, b+lb)`` intersect modulo ``n``?"""
    if la >= n or lb >= n:
        return True
    return (b - a) % n < la or (a - b) % n < lb


@dataclass(frozen=True)
class Region:
    """An axis-aligned cube ``[origin, origin + size)`` of a periodic grid (voxels)."""

    origin: tuple[int, int, int]
    size: int

    def window(self) -> list[tuple[int, int]]:
        return [(o, o + self.size) for o in self.origin]

    def intersects(self, window: Sequence[tuple[int, int]], shape: Sequence[int]) -> bool:
        """Does a (periodic) window touch the cube?"""
        return all(
            _overlap(lo, hi - lo, o, self.size, n)
            for (lo, hi), o, n in zip(window, self.origin, shape, strict=True)
        )

    def contains(self, window: Sequence[tuple[int, int]], shape: Sequence[int]) -> bool:
        """Is a window inside the cube (periodically)?"""
        return all(
            (lo - o) % n + (hi - lo) <= self.size
            for (lo, hi), o, n in zip(window, self.origin, shape, strict=True)
        )


def inverse_frequency_weights(
    values: np.ndarray, *, bins: int = 100, vmin: float, vmax: float | None = None
) -> np.ndarray:
    """dm2gal's sampling weights: ``1 / count`` of each value's log bin, 0 outside ``[vmin, vmax]``.

    Parameters
    ----------
    values : numpy.ndarray
        Target values (e.g. stellar mass per voxel, Msun/h), any shape.
    bins : int
        Log-spaced bins between ``vmin`` and ``vmax`` (100 in the paper).
    vmin, vmax : float
        Range (``vmax``: the maximum of ``values`` by default).

    Returns
    -------
    numpy.ndarray
        Weights of ``values``' shape, summing to the number of non-empty bins.
    """
    v = np.asarray(values, dtype=np.float64)
    vmax = float(np.nanmax(v)) if vmax is None else float(vmax)
    if not vmax > vmin > 0:
        raise ConfigError(f"weighted sampling needs 0 < vmin < vmax, got vmin={vmin}, vmax={vmax}")
    edges = np.geomspace(vmin, vmax, bins + 1)
    inside = (v >= vmin) & (v <= vmax)
    idx = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, bins - 1)
    counts = np.bincount(idx[inside], minlength=bins)
    w = np.zeros_like(v)
    w[inside] = 1.0 / counts[idx[inside]]
    return w


# ---------------------------------------------------------------- sampler


class PatchSampler:
    """Random aligned (input, target) patches from periodic sources.

    Parameters
    ----------
    inputs, targets : sequence of FieldSource or ArraySource
        3-D ``(n, n, n)`` or 4-D ``(c, n, n, n)`` sources on one grid.
    in_size, out_size : int
        Input and target patch sides in voxels (``in_size - out_size`` even).
    ndim : {2, 3}
        Patch dimension; 2 projects slabs of ``projection_depth`` voxels.
    validation : Region
        The held-out cube.
    split : {"train", "validation"}
    symmetries : bool
        Apply a random cube/square symmetry to each pair.
    projection_depth : int, optional
        Required for ``ndim=2``.
    weights : numpy.ndarray, optional
        Per-voxel centre weights (3-D grid; ``out_size`` must be 1); see
        :func:`inverse_frequency_weights`.
    more : sequence of (inputs, targets)
        Further boxes on the same grid, training data whole (``split="train"`` only): each
        patch comes from a box drawn uniformly, the first being ``inputs, targets``.
    seed : int
    """

    def __init__(
        self,
        inputs: Sequence[Any],
        targets: Sequence[Any],
        *,
        in_size: int,
        out_size: int,
        ndim: int,
        validation: Region,
        split: str = "train",
        symmetries: bool = True,
        projection_depth: int | None = None,
        weights: np.ndarray | None = None,
        more: Sequence[tuple[Sequence[Any], Sequence[Any]]] = (),
        seed: int = 0,
    ) -> None:
        self.inputs, self.targets = list(inputs), list(targets)
        self.more = [(list(i), list(t)) for i, t in more]
        if self.more and (split != "train" or weights is not None):
            raise ConfigError(
                "more training boxes are drawn uniformly for training patches only; drop "
                "weighted_sampling or data.more_boxes"
            )
        self.shape = tuple(int(n) for n in self.inputs[0].shape[-3:])
        self.in_size, self.out_size, self.ndim = int(in_size), int(out_size), int(ndim)
        if (self.in_size - self.out_size) % 2 or self.in_size < self.out_size:
            raise ShapeError(
                f"input patch {in_size} and target patch {out_size} must differ by an even count >= 0"
            )
        self.margin = (self.in_size - self.out_size) // 2
        self.validation = validation
        self.split = split
        self.symmetries = symmetries
        if ndim == 2 and not projection_depth:
            raise ConfigError("2-D painters train on projected slabs: set data.projection_depth")
        if ndim not in (2, 3):
            raise ConfigError(f"patches are 2-D or 3-D, got ndim={ndim}")
        self.depth = int(projection_depth or 0)
        if max(self.in_size, self.depth) > min(self.shape):
            raise ShapeError(
                f"patch {self.in_size} (depth {self.depth}) exceeds the grid {self.shape}"
            )
        self.rng = np.random.default_rng(seed)
        self._cdf: np.ndarray | None = None
        if weights is not None:
            if out_size != 1 or ndim != 3:
                raise ConfigError(
                    "weighted sampling draws centre voxels: it needs 3-D patches with out_size 1"
                )
            self._cdf = self._centre_cdf(np.asarray(weights, dtype=np.float64))

    # -- state ------------------------------------------------------------------------
    def state(self) -> Mapping[str, Any]:
        return self.rng.bit_generator.state

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state

    # -- geometry ---------------------------------------------------------------------
    def _centre_cdf(self, w: np.ndarray) -> np.ndarray:
        if w.shape != self.shape:
            raise ShapeError(f"weights of shape {w.shape} do not match the grid {self.shape}")
        keep = np.ones(self.shape, dtype=bool)
        if self.split == "train":
            bad = []
            for axis, n in enumerate(self.shape):
                o = self.validation.origin[axis]
                bad.append(
                    np.array(
                        [
                            _overlap(i - self.margin, self.in_size, o, self.validation.size, n)
                            for i in range(n)
                        ]
                    )
                )
            keep &= ~(bad[0][:, None, None] & bad[1][None, :, None] & bad[2][None, None, :])
        else:
            inside = []
            for axis, n in enumerate(self.shape):
                o = self.validation.origin[axis]
                inside.append((np.arange(n) - o) % n < self.validation.size)
            keep &= inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]
        w = np.where(keep, w, 0.0).ravel()
        total = w.sum()
        if not total > 0:
            raise ConfigError(
                f"no {self.split} voxel has a positive sampling weight; lower weighted_sampling.vmin"
            )
        return np.cumsum(w) / total

    def _corner(self, axis: int | None) -> list[int]:
        """A random corner: anywhere (training, then checked) or inside the cube (validation)."""
        if self.split == "train":
            return [int(self.rng.integers(m)) for m in self.shape]
        corner = []
        for a, o in enumerate(self.validation.origin):
            extent = self.depth if a == axis else self.out_size
            room = self.validation.size - extent
            if room < 0:
                raise ConfigError(
                    f"validation cube {self.validation.size} is smaller than the {extent}-voxel "
                    "target patch; enlarge data.validation.size"
                )
            corner.append(o + int(self.rng.integers(room + 1)))
        return corner

    def _windows(
        self, *, anywhere: bool = False
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int | None]:
        """Draw one (input window, target window, projection axis) in 3-D voxel ranges
        (``anywhere``: in a box without a validation cube)."""
        n = self.shape
        for _ in range(10000):
            axis = int(self.rng.integers(3)) if self.ndim == 2 else None
            if self._cdf is not None:
                flat = int(np.searchsorted(self._cdf, self.rng.random(), side="right"))
                corner = [int(c) for c in np.unravel_index(min(flat, self._cdf.size - 1), n)]
            else:
                corner = self._corner(axis)
            win_in, win_out = [], []
            for a in range(3):
                c = corner[a]
                if axis == a:
                    win_in.append((c, c + self.depth))
                    win_out.append((c, c + self.depth))
                else:
                    win_in.append((c - self.margin, c + self.out_size + self.margin))
                    win_out.append((c, c + self.out_size))
            if anywhere or self._cdf is not None or self.split == "validation":
                return win_in, win_out, axis
            if not self.validation.intersects(win_in, n):
                return win_in, win_out, axis
        raise ConfigError(
            f"no training patch of {self.in_size} voxels fits around the validation cube "
            f"{self.validation}; make the patch or the validation cube smaller"
        )

    def _load(
        self, sources: Sequence[Any], window: list[tuple[int, int]], axis: int | None
    ) -> np.ndarray:
        arr = read_channels(sources, window)
        if axis is not None:
            arr = arr.sum(axis=1 + axis)
        if not np.isfinite(arr).all():
            raise NonFiniteError(
                f"non-finite values in {', '.join(_label(s) for s in sources)} inside window "
                f"{window}; fix or regenerate the Field"
            )
        return arr

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """``batch`` pairs: inputs ``(B, C_in, *in)`` and targets ``(B, C_out, *out)`` (float32)."""
        xs, ys = [], []
        for _ in range(batch):
            box = int(self.rng.integers(1 + len(self.more))) if self.more else 0
            if box == 0:
                win_in, win_out, axis = self._windows()
                inputs, targets = self.inputs, self.targets
            else:  # another simulation, training data whole: no cube to avoid
                win_in, win_out, axis = self._windows(anywhere=True)
                inputs, targets = self.more[box - 1]
            x = self._load(inputs, win_in, axis)
            y = self._load(targets, win_out, axis)
            if self.symmetries:
                g = random_symmetry(self.rng, self.ndim)
                x, y = g.apply(x), g.apply(y)
            xs.append(np.ascontiguousarray(x))
            ys.append(np.ascontiguousarray(y))
        return np.stack(xs), np.stack(ys)
