"""The data of one training run: its Fields opened, checked and cut into patch samplers.

:class:`TrainingData` opens the configured Fields (the first box and any ``more_boxes``),
checks that they share one cubic grid and one box size and that their channel counts match
the painter, derives the patch geometry from the painter (``valid`` painters read
``2 * context`` voxels more than they paint, ``tile`` painters whole tiles, ``same`` painters
multiples of their alignment), fits ``"auto"`` normalizations on the training region (the
validation cube left out) and builds the training and validation
:class:`bigpaint.train.sampler.PatchSampler`.

Validation targets lie inside the validation cube: when the training patch does not fit in
it, validation patches shrink to the cube (the pixel loss of a smaller patch is still a fair
validation loss).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bigpaint.chunked.read import FieldSource
from bigpaint.errors import ConfigError, MetadataError, ShapeError
from bigpaint.train.sampler import (
    PatchSampler,
    Region,
    channel_count,
    inverse_frequency_weights,
    read_source,
)

__all__ = ["TrainingData", "default_patch"]


def default_patch(family: str) -> int:
    """The paper's output patch side for a family (voxels)."""
    return {
        "halo-painter": 50,
        "protohalo-unet": 128,
        "dm2gal": 1,
        "ember": 512,
        "cosmic-web-gan": 128,
    }.get(family, 32)


def _open_sources(urls: Sequence[str], what: str) -> tuple[list[Any], list[Any]]:
    from bigpaint.field import field_meta, open_field

    sources, metas = [], []
    for url in urls:
        ds = open_field(url)
        sources.append(FieldSource.from_field(ds))
        metas.append(field_meta(ds))
    return sources, metas


def _resolve_auto(norms: list[dict[str, Any]] | None, stats: list[tuple[float, float]]) -> Any:
    """Replace ``"auto"`` shift/scale of affine normalizations by training-region statistics."""
    if norms is None:
        return None
    if len(norms) == 1 and len(stats) > 1 and "auto" in norms[0].values():
        raise ConfigError(
            f"an 'auto' normalization is fitted per channel: give one per channel ({len(stats)})"
        )
    out = []
    for n, stat in zip(norms, stats if len(norms) > 1 else stats[:1], strict=False):
        n = dict(n)
        if n.get("shift") == "auto":
            n["shift"] = stat[0]
        if n.get("scale") == "auto":
            n["scale"] = _rms_about(stat, float(n.get("shift", 0.0)))
        out.append(n)
    return out


def _rms_about(stat: tuple[float, float], shift: float) -> float:
    """rms about ``shift`` from (mean, rms about the mean)."""
    mean, std = stat
    return math.sqrt(max(std**2 + (mean - shift) ** 2, 1e-30))


# ---------------------------------------------------------------- checks and geometry


def _common_grid(
    inputs: Sequence[Any],
    targets: Sequence[Any],
    more: Sequence[tuple[Sequence[Any], Sequence[Any]]],
) -> tuple[int, int, int]:
    """The one cubic grid of every box, whose channels must be those of the first box."""
    for i, (mi, mt) in enumerate(more):
        if [channel_count(s) for s in mi] != [channel_count(s) for s in inputs] or [
            channel_count(s) for s in mt
        ] != [channel_count(s) for s in targets]:
            raise ConfigError(
                f"training box {i + 2} has other channels than the first; give each box "
                "the same inputs and targets"
            )
    shapes = {
        tuple(s.shape[-3:]) for s in [*inputs, *targets, *(x for m in more for p in m for x in p)]
    }
    if len(shapes) != 1:
        raise ShapeError(f"training Fields must share one grid, got {sorted(shapes)}")
    (shape,) = shapes
    if len(set(shape)) != 1:
        raise ShapeError(f"training grids must be cubic, got {shape}")
    return shape


def _check_channels(painter: Any, inputs: Sequence[Any], targets: Sequence[Any]) -> None:
    c_in = sum(channel_count(s) for s in inputs)
    c_out = sum(channel_count(s) for s in targets)
    if c_in != painter.in_channels or c_out != painter.out_channels:
        raise ConfigError(
            f"{painter.family} has {painter.in_channels} input / {painter.out_channels} output "
            f"channels, the data give {c_in} / {c_out}; set model.in_channels/out_channels "
            "or change data.inputs/targets"
        )


def _validation_region(data: Any, n: int) -> Region:
    """The held-out cube of a :class:`DataConfig` on a grid of ``n`` voxels per side."""
    v = data.validation
    if v.size >= n:
        raise ConfigError(f"validation cube {v.size} must be smaller than the grid {n}")
    x, y, z = (int(o) % n for o in v.origin)
    return Region((x, y, z), v.size)


def _patch_sizes(painter: Any, data: Any) -> tuple[int, int]:
    """(input, output) patch sides in voxels of ``painter`` for ``data.patch``."""
    if painter.mode == "tile":
        return int(painter.tile), int(painter.tile)
    out_size = int(data.patch or default_patch(painter.family))
    in_size = out_size + 2 * painter.context if painter.mode == "valid" else out_size
    if painter.mode == "same" and out_size % painter.alignment:
        raise ConfigError(
            f"{painter.family} patches must be multiples of {painter.alignment} voxels, "
            f"got {out_size}"
        )
    return in_size, out_size


def _validation_out_size(painter: Any, out_size: int, region: Region) -> int:
    """The output side of validation patches: the training one, shrunk to fit the cube."""
    if painter.mode == "tile" or out_size <= region.size:
        return out_size
    if painter.mode == "valid":
        vout = region.size
    else:
        vout = region.size // painter.alignment * painter.alignment
    if vout < 1:
        raise ConfigError(
            f"validation cube {region.size} is smaller than the alignment {painter.alignment}; "
            "enlarge it"
        )
    return vout


def _sampling_weights(data: Any, targets: Sequence[Any], shape: tuple[int, ...]) -> Any:
    """dm2gal's inverse-frequency weights of the first target, or None."""
    ws = data.weighted_sampling
    if ws is None:
        return None
    full = read_source(targets[0], [(0, n) for n in shape])[0]
    return inverse_frequency_weights(full, bins=ws.bins, vmin=ws.vmin, vmax=ws.vmax)


def _box(box_size: float | Sequence[float]) -> tuple[float, ...]:
    if isinstance(box_size, int | float | np.number):
        return (float(box_size),) * 3
    return tuple(float(b) for b in box_size)


# ---------------------------------------------------------------- training data


@dataclass
class TrainingData:
    """Opened sources, patch geometry and samplers for one training run."""

    inputs: list[Any]
    targets: list[Any]
    shape: tuple[int, int, int]
    box_size: tuple[float, ...]
    validation: Region
    in_size: int
    out_size: int
    ndim: int
    projection_depth: int | None
    input_meta: list[Any]
    target_meta: list[Any]
    train: PatchSampler
    val: PatchSampler
    more_meta: list[tuple[list[Any], list[Any]]] = field(default_factory=list)

    @classmethod
    def from_sources(
        cls,
        inputs: Sequence[Any],
        targets: Sequence[Any],
        painter: Any,
        data: Any,
        *,
        seed: int = 0,
        box_size: float | Sequence[float] = 1.0,
        input_meta: Sequence[Any] = (),
        target_meta: Sequence[Any] = (),
        more: Sequence[tuple[Sequence[Any], Sequence[Any]]] = (),
    ) -> TrainingData:
        """Build from opened sources (Fields or arrays) for ``painter`` and a :class:`DataConfig`.

        Sets the painter's normalizations from ``data`` (resolving ``"auto"``). ``more``:
        the sources of further training boxes (see :attr:`DataConfig.more_boxes`).
        """
        inputs, targets = list(inputs), list(targets)
        shape = _common_grid(inputs, targets, more)
        _check_channels(painter, inputs, targets)
        region = _validation_region(data, shape[0])
        in_size, out_size = _patch_sizes(painter, data)
        depth = data.projection_depth if painter.ndim == 2 else None
        stats_in = _channel_stats(inputs, region, shape, depth)
        stats_out = _channel_stats(targets, region, shape, depth)
        painter.set_normalization(
            _resolve_auto(data.input_norm, stats_in), _resolve_auto(data.output_norm, stats_out)
        )
        common = dict(
            in_size=in_size,
            out_size=out_size,
            ndim=painter.ndim,
            validation=region,
            symmetries=data.symmetries,
            projection_depth=depth,
            weights=_sampling_weights(data, targets, shape),
        )
        train = PatchSampler(inputs, targets, split="train", seed=seed, more=more, **common)
        vout = _validation_out_size(painter, out_size, region)
        common.update(symmetries=False, out_size=vout, in_size=vout + (in_size - out_size))
        val = PatchSampler(inputs, targets, split="validation", seed=seed + 1, **common)
        return cls(
            inputs,
            targets,
            shape,
            _box(box_size),
            region,
            in_size,
            out_size,
            painter.ndim,
            depth,
            list(input_meta),
            list(target_meta),
            train,
            val,
        )

    @classmethod
    def open(cls, data: Any, painter: Any, *, seed: int = 0) -> TrainingData:
        """Open the Fields of a :class:`DataConfig` (checks grids, boxes and channels)."""
        inputs, in_meta = _open_sources(data.inputs, "input")
        targets, out_meta = _open_sources(data.targets, "target")
        more, more_meta = [], []
        for b in data.more_boxes:
            mi, mim = _open_sources(b.inputs, "input")
            mt, mtm = _open_sources(b.targets, "target")
            more.append((mi, mt))
            more_meta.append((mim, mtm))
        boxes = {
            m.box_size for m in in_meta + out_meta + [x for p in more_meta for x in p[0] + p[1]]
        }
        if len(boxes) != 1:
            raise MetadataError(
                f"training Fields disagree on the box size (Mpc/h): {sorted(boxes)}; use Fields of one simulation"
            )
        out = cls.from_sources(
            inputs,
            targets,
            painter,
            data,
            seed=seed,
            box_size=next(iter(boxes)),
            input_meta=in_meta,
            target_meta=out_meta,
            more=more,
        )
        out.more_meta = more_meta
        return out

    @property
    def cell_size(self) -> float:
        """Voxel side in Mpc/h."""
        return self.box_size[0] / self.shape[0]


def _channel_stats(
    sources: Sequence[Any], region: Region, shape: tuple[int, ...], depth: int | None
) -> list[tuple[float, float]]:
    """(mean, std) per channel over the training region, of voxels (3-D painters) or of
    slabs of ``depth`` voxels projected along x (2-D painters)."""
    n = shape[0]
    inside = [((np.arange(n) - o) % n) < region.size for o in region.origin]
    out = []
    for s in sources:
        for ch in read_source(s, [(0, m) for m in shape]):
            if depth:
                usable = n // depth * depth
                proj = ch[:usable].reshape(n // depth, depth, n, n).sum(1)
                touches = inside[0][:usable].reshape(n // depth, depth).any(1)
                assert isinstance(touches, np.ndarray)  # a 2-D reduction over one axis
                keep = ~(
                    touches[:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]
                )
                vals = proj[keep]
            else:
                keep = ~(
                    inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]
                )
                vals = ch[keep]
            out.append(
                (float(np.mean(vals, dtype=np.float64)), float(np.std(vals, dtype=np.float64)))
            )
    return out
