"""Plan of a paint job: what the checkpoint needs, what the input Field offers, and the blocks.

Everything here is pure and runs before any task: the checkpoint is read (metadata and a
hash of its files, no torch; :mod:`bigpaint.paint.checkpoint_info`), the input Field is
checked against it, and the plan fixes the context each block reads, the output shape,
chunking and metadata. Every refusal is a one-line :class:`bigpaint.errors.BigpaintError`
naming the problem and the fix, raised before the output exists.

Contexts. A block paints its core ``[s, e)`` (per axis, global voxels) from a window:

``valid`` (halo painter, dm2gal dense form)
    ``[s - context, e + context)``: the network's output is exactly the core, so the chunked
    result equals whole-box periodic inference for any chunk layout.
``same`` (U-Nets)
    ``[floor((s - margin) / a) a, ceil((e + margin) / a) a)`` with ``a`` the alignment
    (``2**levels``): the window starts on the global pooling grid whatever the chunk layout,
    and its first/last ``margin`` voxels absorb the zero-padding error. With ``margin =
    context`` (the structural receptive field) the core is exact; smaller margins leave a
    seam error, measured in :mod:`bigpaint.paint.seams` (``docs/paint.md``).
``tile`` (cosmic-web autoencoder)
    ``[floor(s / t) t, ceil(e / t) t)``: the whole fixed tiles that cover the core, anchored
    at the box origin, as whole-image painting cuts them.

The blockwise primitive reads a symmetric context, so a block asks for ``margin + a - 1``
voxels (enough for any aligned window) and cuts its aligned window out of that.

Mass assignment. A painted Field has no deposit of its own, but the network learnt to
reproduce its training target cell by cell, the target's assignment window included (halo
counts deposited with NGP are painted with NGP's suppression of small-scale power). So the
output carries the ``mass_assignment`` record of the training target, which ``bigpaint
train`` stores in the checkpoint: compared with a truth deposited the same way, both
spectra are compensated alike and T(k), r_c(k) are not tilted by one window. A checkpoint
that records no target window gives an output without a record, which ``mas="auto"``
refuses for density and count kinds instead of guessing.

Model cards. When the checkpoint carries a model card (:mod:`bigpaint.painters.card`), the
input is checked against the card instead of the training provenance: cell size, redshift,
cosmology, input kind and mass assignment (:func:`bigpaint.painters.card.input_mismatches`).
A mismatch is refused in one line naming each difference and the override
(``allow_mismatch``); overridden mismatches are recorded in the output's provenance
(``model_card``). A checkpoint is named by path or as ``pretrained:NAME``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import xarray as xr

from bigpaint.axes import int3
from bigpaint.errors import CheckpointError, ChunkingError, ConfigError, ShapeError
from bigpaint.field import FieldMeta
from bigpaint.paint.checkpoint_info import CheckpointInfo, read_checkpoint_info
from bigpaint.paint.config import PaintSpec
from bigpaint.painters.base import PainterMetadata
from bigpaint.painters.card import Mismatch, input_mismatches, parse_allow_mismatch
from bigpaint.painters.checkpoint import checkpoint_hash

__all__ = [
    "CheckpointInfo",
    "PaintPlan",
    "SlabSpec",
    "check_memory_budget",
    "checkpoint_hash",
    "default_margin",
    "min_memory_budget",
    "plan_paint",
    "plan_spec",
    "read_checkpoint_info",
]

#: Relative tolerance when comparing voxel sizes in Mpc/h.
RESOLUTION_RTOL = 1e-3

#: Smallest default seam margin of ``same``-mode painters in voxels. The default is one
#: alignment but at least this, capped at the structural context; docs/paint.md has the
#: measured seam error against the margin (below 1e-3 of the output's standard deviation at
#: the default for the paper's protohalo U-Net and for the small test U-Nets).
MIN_DEFAULT_MARGIN = 16


def default_margin(meta: PainterMetadata) -> int:
    """Default seam margin per side (voxels) of a painter.

    ``valid``: the context (exact); ``tile``: 0; ``same``: one alignment but at least
    :data:`MIN_DEFAULT_MARGIN` voxels, capped at the structural context (docs/paint.md has
    the measurement). Windows start on the pooling grid, so with aligned chunks a margin is
    in effect rounded up to a multiple of the alignment anyway.
    """
    if meta.mode == "valid":
        return meta.context
    if meta.mode == "tile":
        return 0
    return min(meta.context, max(meta.alignment, MIN_DEFAULT_MARGIN))


@dataclass(frozen=True)
class SlabSpec:
    """Projected slabs of a 3-D Field for a 2-D painter.

    Attributes
    ----------
    axis : int
        Spatial axis (0, 1, 2 for x, y, z) projected along.
    thickness : int
        Slab thickness in voxels; ``thickness`` consecutive voxels are summed.
    """

    axis: int = 0
    thickness: int = 1

    @classmethod
    def parse(
        cls, value: SlabSpec | Mapping[str, Any] | None, default_thickness: int | None
    ) -> SlabSpec:
        if isinstance(value, SlabSpec):
            spec = value
        else:
            raw = dict(value or {})
            unknown = set(raw) - {"axis", "thickness"}
            if unknown:
                raise ConfigError(
                    f"unknown slab key {sorted(unknown)[0]!r}; give axis and thickness"
                )
            axis = raw.get("axis", 0)
            if isinstance(axis, str):
                if axis not in ("x", "y", "z"):
                    raise ConfigError(f"slab axis must be x, y, z or 0, 1, 2, got {axis!r}")
                axis = "xyz".index(axis)
            thickness = raw.get("thickness", default_thickness)
            if thickness is None:
                raise ConfigError(
                    "the checkpoint records no projection depth; give slab={'thickness': N} "
                    "(voxels per projected slab)"
                )
            spec = cls(int(axis), int(thickness))
        if spec.axis not in (0, 1, 2):
            raise ConfigError(f"slab axis must be 0, 1 or 2, got {spec.axis}")
        if spec.thickness < 1:
            raise ConfigError(f"slab thickness must be >= 1 voxel, got {spec.thickness}")
        return spec


@dataclass(frozen=True)
class PaintPlan:
    """A checked paint job (pure description; :func:`bigpaint.paint.paint` runs it).

    Attributes
    ----------
    checkpoint : CheckpointInfo
    source_shape : tuple of int
        Input Field shape (channel axis first when present).
    out_shape : tuple of int
        Output Field shape: ``(out_channels, ...)`` when ``out_channels > 1``; for slabs the
        slab axis has ``n / thickness`` cells.
    chunks : tuple of 3 int
        Output write blocks in voxels (output grid).
    margin : int
        Voxels of neighbourhood per side a painted voxel gets (the context for ``valid``).
    read_context : tuple of 3 int
        Context the blockwise primitive reads around each block (output grid voxels).
    slab : SlabSpec or None
    cell_size : tuple of 3 float
        Input voxel size in Mpc/h.
    out_meta : dict
        Metadata of the output Field (box, kind, units, redshift, cosmology, provenance).
    overridden : tuple of Mismatch
        The model-card mismatches ``allow_mismatch`` let through.
    source : xarray.Dataset or None
        The input Field the plan checked (kept so that painting does not open it again).
    spec : PaintSpec or None
        The spec it was planned from (:func:`plan_spec`; None from :func:`plan_paint`).
    """

    checkpoint: CheckpointInfo
    source_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    chunks: tuple[int, int, int]
    margin: int
    read_context: tuple[int, int, int]
    slab: SlabSpec | None
    cell_size: tuple[float, float, float]
    out_meta: dict[str, Any] = field(default_factory=dict)
    overridden: tuple[Mismatch, ...] = ()
    source: xr.Dataset | None = field(default=None, compare=False, repr=False)
    spec: PaintSpec | None = None

    @property
    def mode(self) -> Literal["valid", "same", "tile"]:
        return self.checkpoint.meta.mode

    @property
    def alignment(self) -> int:
        return self.checkpoint.meta.alignment


def _in_channels(shape: Sequence[int]) -> int:
    return int(shape[0]) if len(shape) == 4 else 1


def plan_paint(
    checkpoint: str | Path | CheckpointInfo,
    source: xr.Dataset,
    *,
    chunks: int | Sequence[int] | None = None,
    margin: int | None = None,
    slab: SlabSpec | Mapping[str, Any] | None = None,
    fixed_tile: int | None = None,
    allow_mismatch: str | Sequence[str] | None = None,
) -> PaintPlan:
    """Check a checkpoint against an input Field and plan the paint job.

    Parameters
    ----------
    checkpoint : path or CheckpointInfo
    source : xarray.Dataset
        The input Field (from :func:`bigpaint.field.open_field`).
    chunks : int or sequence of 3 int, optional
        Output write blocks in voxels of the output grid (default: the input's chunks; for
        slabs the input's chunks divided by the thickness along the slab axis).
    margin : int, optional
        Seam margin per side in voxels (default :func:`default_margin`); ``valid`` painters
        refuse anything but their context, ``tile`` painters anything but 0.
    slab : SlabSpec or mapping, optional
        Required for 2-D painters (default thickness: the training projection depth).
    fixed_tile : int, optional
        Tile edge of bit-identical painting (see :func:`bigpaint.paint.paint_field`); checked
        against the painter and the output chunks.
    allow_mismatch : str or sequence of str, optional
        Model-card checks to let through (``"redshift,cosmology"`` or a list of
        ``cell_size``, ``redshift``, ``cosmology``, ``kind``, ``mass_assignment``).

    Raises
    ------
    CheckpointError, ShapeError, ChunkingError, ConfigError
    """
    from bigpaint.field import field_meta, zarr_array
    from bigpaint.paint.workers import check_fixed_tile

    allowed = parse_allow_mismatch(allow_mismatch)
    info = (
        checkpoint if isinstance(checkpoint, CheckpointInfo) else read_checkpoint_info(checkpoint)
    )
    meta = info.meta
    fmeta = field_meta(source)
    arr = zarr_array(source)
    shape = tuple(int(n) for n in arr.shape)
    spatial = shape[-3:]
    url = str(source.encoding.get("bigpaint_url", "input"))
    cell, overridden = _check_input(info, fmeta, shape, allowed, url)
    spec, out_spatial, plane = _slab_layout(info, slab, spatial)
    m, reach = _margin_reach(meta, margin, [spatial[i] for i in plane], url)
    ctx = int3((reach if i in plane else 0 for i in range(3)), "the read context")
    out_chunks = _out_chunks(chunks, arr.chunks[-3:], spec, out_spatial)
    if fixed_tile is not None:
        check_fixed_tile(
            fixed_tile,
            family=meta.family,
            mode=meta.mode,
            alignment=meta.alignment,
            painter_tile=meta.tile,
            chunks=[out_chunks[i] for i in plane],
            shape=[out_spatial[i] for i in plane],
        )
    out_shape = tuple(out_spatial)
    if meta.out_channels > 1:
        out_shape = (meta.out_channels, *out_shape)
    config = {
        "margin": m,
        "slab": None if spec is None else {"axis": spec.axis, "thickness": spec.thickness},
        "chunks": list(out_chunks),
        "allow_mismatch": sorted(allowed),
    }
    return PaintPlan(
        checkpoint=info,
        source_shape=shape,
        out_shape=out_shape,
        chunks=out_chunks,
        margin=m,
        read_context=ctx,
        slab=spec,
        cell_size=cell,
        out_meta=_out_meta(info, fmeta, url, config, overridden),
        overridden=tuple(overridden),
        source=source,
    )


def _check_input(
    info: CheckpointInfo,
    fmeta: FieldMeta,
    shape: tuple[int, ...],
    allowed: frozenset[str],
    url: str,
) -> tuple[tuple[float, float, float], list[Mismatch]]:
    """Refuse an input the painter cannot paint (channels, kind, voxels, model card,
    resolution); returns the voxel size in Mpc/h and the card mismatches let through."""
    meta, ck = info.meta, info.path
    if _in_channels(shape) != meta.in_channels:
        raise CheckpointError(
            f"{ck} paints from {meta.in_channels} input channel(s), {url} has "
            f"{_in_channels(shape)}; give a Field with {meta.in_channels} channel(s)"
        )
    if (
        info.card is None
        and info.input_kinds
        and len(set(info.input_kinds)) == 1
        and fmeta.kind != info.input_kinds[0]
    ):
        raise CheckpointError(
            f"{ck} was trained on {info.input_kinds[0]!r} fields, {url} is {fmeta.kind!r}; "
            f"paint a {info.input_kinds[0]!r} Field or use a checkpoint trained on {fmeta.kind!r}"
        )
    cell = fmeta.cell_size(shape[-3:])
    if len({round(c, 9) for c in cell}) != 1:
        raise ShapeError(
            f"{url} has non-cubic voxels {tuple(round(c, 6) for c in cell)} Mpc/h; painters need "
            "cubic voxels (equal box_size / grid on every axis)"
        )
    overridden = _card_check(info, fmeta, cell[0], allowed, url)
    if (
        info.card is None
        and info.cell_size is not None
        and not math.isclose(cell[0], info.cell_size, rel_tol=RESOLUTION_RTOL)
    ):
        raise CheckpointError(
            f"{url} has {cell[0]:.6g} Mpc/h per voxel, {ck} was trained at "
            f"{info.cell_size:.6g} Mpc/h per voxel; deposit the input on a grid of "
            f"{fmeta.box_size[0] / info.cell_size:.6g} voxels per side (or use a checkpoint "
            "trained at this resolution)"
        )
    return (float(cell[0]), float(cell[1]), float(cell[2])), overridden


def _slab_layout(
    info: CheckpointInfo, slab: SlabSpec | Mapping[str, Any] | None, spatial: Sequence[int]
) -> tuple[SlabSpec | None, list[int], list[int]]:
    """The slabs of a 2-D painter (None for 3-D), the output's spatial shape and the
    painted axes."""
    meta, ck = info.meta, info.path
    if meta.ndim == 3:
        if slab is not None:
            raise CheckpointError(
                f"{ck} holds a 3-D {meta.family!r} painter; slabs are for 2-D painters, drop slab"
            )
        return None, list(spatial), [0, 1, 2]
    if meta.ndim != 2:
        raise CheckpointError(f"{ck} holds a {meta.ndim}-D painter; bigpaint paints 2-D and 3-D")
    spec = SlabSpec.parse(slab, info.projection_depth)
    if info.projection_depth is not None and spec.thickness != info.projection_depth:
        raise CheckpointError(
            f"{ck} was trained on slabs of {info.projection_depth} voxels, slab thickness "
            f"is {spec.thickness}; use thickness {info.projection_depth}"
        )
    if spatial[spec.axis] % spec.thickness:
        raise ChunkingError(
            f"slab thickness {spec.thickness} does not divide the {spatial[spec.axis]} voxels "
            f"of axis {'xyz'[spec.axis]}; choose a divisor"
        )
    out_spatial = list(spatial)
    out_spatial[spec.axis] //= spec.thickness
    return spec, out_spatial, [a for a in range(3) if a != spec.axis]


def _margin_reach(
    meta: PainterMetadata, margin: int | None, painted: Sequence[int], url: str
) -> tuple[int, int]:
    """The seam margin and the context a block reads on each painted axis (voxels);
    ``painted`` is the input's size along those axes."""
    a = meta.alignment
    if meta.mode == "valid":
        if margin is not None and int(margin) != meta.context:
            raise ConfigError(
                f"{meta.family} paints valid convolutions with context {meta.context}; its margin "
                f"is fixed at {meta.context} voxels, drop margin={margin}"
            )
        return meta.context, meta.context
    if meta.mode == "same":
        m = default_margin(meta) if margin is None else int(margin)
        if m < 0:
            raise ConfigError(f"margin must be >= 0 voxels, got {m}")
        return m, m + a - 1
    if margin not in (None, 0):
        raise ConfigError(f"{meta.family} paints whole {meta.tile}-voxel tiles; drop margin")
    bad = [n for n in painted if n % a]
    if bad:
        raise ShapeError(
            f"{meta.family} paints {a}-voxel tiles; {url} has {bad[0]} voxels on a painted "
            f"axis, not a multiple of {a}"
        )
    return 0, a - 1


def _out_chunks(
    chunks: int | Sequence[int] | None,
    in_chunks: Sequence[Any],
    spec: SlabSpec | None,
    out_spatial: Sequence[int],
) -> tuple[int, int, int]:
    """Output write blocks: ``chunks``, or the input's (divided by the slab thickness along
    the slab axis), at most the output grid."""
    if chunks is None:
        out = [int(c) for c in in_chunks]
        if spec is not None:
            out[spec.axis] = max(1, out[spec.axis] // spec.thickness)
    else:
        out = [int(c) for c in chunks] if isinstance(chunks, Iterable) else [int(chunks)] * 3
        if len(out) != 3 or any(c <= 0 for c in out):
            raise ChunkingError(f"chunks must be one or three positive integers, got {chunks!r}")
    x, y, z = (min(c, n) for c, n in zip(out, out_spatial, strict=True))
    return x, y, z


def _out_meta(
    info: CheckpointInfo,
    fmeta: FieldMeta,
    url: str,
    config: dict[str, Any],
    overridden: Sequence[Mismatch],
) -> dict[str, Any]:
    """Metadata of the output Field: the input's box, redshift and cosmology, the training
    target's kind, units and assignment window, and the provenance (``config`` holds the
    planned margin, slab, chunks and overrides)."""
    from bigpaint.mass_bins import training_mass_bins

    meta = info.meta
    card_out = None if info.card is None else info.card.output
    prov: dict[str, Any] = {
        "operation": "paint",
        "inputs": [url],
        "config": {
            "checkpoint": str(info.path),
            "checkpoint_hash": info.hash,
            "family": meta.family,
            "mode": meta.mode,
            "context": meta.context,
            "alignment": meta.alignment,
            "margin": config["margin"],
            "slab": config["slab"],
            "chunks": config["chunks"],
            "training_cell_size": info.cell_size,
            "allow_mismatch": config["allow_mismatch"],
        },
        "mass_assignment_from": "training target"
        if info.target_mass_assignment is not None
        else "not recorded by the checkpoint",
        **training_mass_bins(meta.provenance.get("targets") or []),
    }
    if info.pretrained is not None:
        prov["config"]["pretrained"] = info.pretrained
    if info.card is not None:
        prov["model_card"] = {
            "name": info.card.name,
            "overridden": [{"check": m.name, "difference": m.text} for m in overridden],
        }
    return {
        "box_size": fmeta.box_size,
        "kind": info.target_kind or (card_out.kind if card_out else "painted"),
        "units": info.target_units or (card_out.units if card_out else "1"),
        "redshift": fmeta.redshift,
        "cosmology": None if fmeta.cosmology is None else fmeta.cosmology.model_dump(),
        "provenance": prov,
        "mass_assignment": None
        if info.target_mass_assignment is None
        else info.target_mass_assignment.model_dump(),
    }


def plan_spec(spec: PaintSpec, source: xr.Dataset | None = None) -> PaintPlan:
    """Plan the job of a :class:`bigpaint.paint.config.PaintSpec` (:func:`plan_paint` on its
    keys); the plan keeps the spec and the opened input, so :func:`bigpaint.paint.paint`
    runs it without opening or planning again.

    Parameters
    ----------
    spec : PaintSpec
    source : xarray.Dataset, optional
        ``spec.input`` already opened (default: opened here).
    """
    from bigpaint.field import open_field

    plan = plan_paint(
        spec.checkpoint,
        open_field(spec.input) if source is None else source,
        chunks=spec.chunks,
        margin=spec.margin,
        slab=spec.slab_mapping,
        fixed_tile=spec.fixed_tile,
        allow_mismatch=spec.allow_mismatch,
    )
    return replace(plan, spec=spec)


def _card_check(
    info: CheckpointInfo, fmeta: FieldMeta, cell: float, allowed: frozenset[str], url: str
) -> list[Mismatch]:
    """The card's mismatches ``allowed`` lets through; the others refused in one line."""
    if info.card is None:
        return []
    found = input_mismatches(info.card, fmeta, cell)
    refused = [m for m in found if m.name not in allowed]
    if refused:
        who = f"pretrained:{info.pretrained}" if info.pretrained else info.path
        names = ",".join(m.name for m in refused)
        raise CheckpointError(
            f"{url} is not covered by the model card of {who}: "
            f"{'; '.join(m.text for m in refused)}; paint an input the card covers "
            f"(bigpaint painters show {who}), or pass --allow-mismatch {names} (allow_mismatch) "
            "to paint it anyway"
        )
    return found


def min_memory_budget(plan: PaintPlan, bytes_per_voxel: int) -> tuple[int, tuple[int, ...]]:
    """The smallest memory budget a paint job can run under, and the window it holds.

    Blocks are sub-tiled to fit the budget (:func:`bigpaint.paint.workers.paint_images`),
    but a sub-tile narrower than the margin it repaints costs more than 26 voxels of
    context per painted voxel, and at one voxel per sub-tile painting crawls for hours with
    no visible progress. So the smallest sub-tile is as wide as the margin (the context of
    ``valid`` painters), at least one alignment (one tile for ``tile`` painters), and at most
    the block; the budget must hold its window at ``bytes_per_voxel`` activation bytes per
    input voxel.

    Returns
    -------
    (int, tuple of int)
        Bytes, and the window's shape in voxels over the painted axes.
    """
    from bigpaint.paint.workers import subtile_windows

    meta = plan.checkpoint.meta
    align = int(meta.tile) if plan.mode == "tile" and meta.tile else int(meta.alignment)
    edge = align if plan.mode == "tile" else max(align, plan.margin, 1)
    axes = ([a for a in range(3) if a != plan.slab.axis] if plan.slab is not None else [0, 1, 2])[
        : meta.ndim
    ]
    core = [min(edge, plan.chunks[a]) for a in axes]
    jobs = subtile_windows(
        [0] * len(core), core, mode=plan.mode, margin=plan.margin, alignment=align, tile=edge
    )
    window = max((tuple(hi - lo for lo, hi in win) for _, win in jobs), key=math.prod)
    return math.prod(window) * int(bytes_per_voxel), window


def check_memory_budget(plan: PaintPlan, budget: int, bytes_per_voxel: int) -> None:
    """Refuse a memory budget below :func:`min_memory_budget` (one-line ConfigError)."""
    from bigpaint.config import format_bytes

    need, window = min_memory_budget(plan, bytes_per_voxel)
    if budget < need:
        raise ConfigError(
            f"memory budget {format_bytes(budget)} is below the {format_bytes(need)} that "
            f"{plan.checkpoint.meta.family} needs for its smallest sub-tile (a "
            f"{'x'.join(map(str, window))}-voxel window at {bytes_per_voxel} bytes of "
            f"activations per voxel); give --memory-budget (memory_budget) of at least "
            f"{format_bytes(need, round_up=True)}, or leave it out for the default"
        )
