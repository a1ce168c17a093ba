"""Which Fields a bias model may be fitted to and painted from: one-line refusals.

A fit reads (density, counts) pairs: a 3-D density contrast (kind ``delta``) with cubic cells
and a redshift, and halo counts (kind ``halo_count``, one channel per mass bin, the edges in
Msun/h as ``provenance.mass_bins``, as :func:`bigpaint.sim.simulate` writes them) on the same
grid and box. Boxes fitted jointly must agree on everything the coefficients depend on: cell
size, redshift, cosmology (where recorded), mass bins, and the density's mass assignment
(its window is part of the operators). Painting takes a density the model covers: the
model is local, so the box may differ, but not the kind, cell size, redshift, cosmology or
mass assignment. Everything here reads metadata only; nothing is computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from bigpaint.errors import ConfigError, MetadataError, ShapeError
from bigpaint.mass_bins import MASS_UNITS, mass_bins_of
from bigpaint.stats.bias_model import BiasModel
from bigpaint.stats.bias_operators import check_density_field

__all__ = ["BaselineInputError", "TrainingBox", "check_density", "open_training"]

#: Relative tolerance on cell sizes (Mpc/h) that must agree.
_CELL_RTOL = 1e-6


class BaselineInputError(MetadataError):
    """A density or counts Field does not fit a bias model (or the other training Fields)."""


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class TrainingBox:
    """One checked (density, counts) pair of a fit."""

    density: str
    counts: str
    density_ds: xr.Dataset
    counts_ds: xr.Dataset
    shape: tuple[int, int, int]
    box_size: tuple[float, float, float]
    cell_size: float
    redshift: float
    cosmology: dict[str, float] | None
    mass_bins: tuple[float, ...]
    input_mass_assignment: dict[str, Any] | None
    target_mass_assignment: dict[str, Any] | None


def _cell(meta: Any, shape: Sequence[int], url: str, where: str) -> float:
    cell = meta.cell_size(shape)
    if not all(math.isclose(c, cell[0], rel_tol=_CELL_RTOL) for c in cell):
        raise ShapeError(
            f"{where}: {url} has non-cubic cells {tuple(round(c, 6) for c in cell)} Mpc/h; "
            "bias models need cubic cells (equal box_size / grid on every axis)"
        )
    return float(cell[0])


def _mas(meta: Any, url: str) -> dict[str, Any] | None:
    from bigpaint.mass_assignment import mass_assignment_of

    rec = mass_assignment_of(meta, url)
    return None if rec is None else rec.model_dump()


def _mass_bins(ds: xr.Dataset, url: str, where: str) -> tuple[tuple[float, ...], int]:
    from bigpaint.field import data_var, field_meta

    meta = field_meta(ds)
    if meta.kind != "halo_count":
        raise BaselineInputError(
            f"{where}: {url} is a {meta.kind!r} Field; bias models are fitted to halo counts "
            "(kind 'halo_count', one channel per mass bin), such as halo_counts.zarr of "
            "bigpaint simulate"
        )
    var = data_var(ds)
    channels = int(var.shape[0]) if var.ndim == 4 else 1
    fix = (
        f"record the {channels + 1} bin edges in {MASS_UNITS} as provenance.mass_bins "
        "(bigpaint simulate does)"
    )
    edges = mass_bins_of(meta, f"{where}: {url}")  # refuses damaged records and other units
    if edges is None:
        raise BaselineInputError(f"{where}: {url} records no mass bins; {fix}")
    if len(edges) != channels + 1:
        raise BaselineInputError(
            f"{where}: {url} records {len(edges)} mass-bin edges for its {channels} "
            f"channel(s); {fix}"
        )
    return tuple(float(e) for e in edges), channels


def _same_cosmology(a: dict[str, float] | None, b: dict[str, float] | None) -> bool:
    if a is None or b is None:
        return True
    return set(a) == set(b) and all(math.isclose(a[k], b[k], rel_tol=1e-6) for k in a)


def _open(obj: Any) -> tuple[str, xr.Dataset]:
    from bigpaint.field import open_field

    if isinstance(obj, xr.Dataset):
        return str(obj.encoding.get("bigpaint_url", "field")), obj
    return str(obj), open_field(str(obj))


def open_training(pairs: Sequence[tuple[Any, Any]], where: str = "bias fit") -> list[TrainingBox]:
    """Open and check (density, counts) pairs of Fields for a joint fit.

    Each density is a 3-D ``delta`` Field with cubic cells and a redshift; its counts a
    ``halo_count`` Field on the same grid and box with ``provenance.mass_bins``. All pairs
    share the cell size, redshift, cosmology (where recorded), mass bins and the density's
    mass assignment. Nothing is computed.

    Raises
    ------
    BaselineInputError, ShapeError, MetadataError, ConfigError
    """
    from bigpaint.field import field_meta

    if not pairs:
        raise ConfigError(f"{where}: give at least one (density, counts) pair")
    boxes: list[TrainingBox] = []
    for pair in pairs:
        if len(pair) != 2:
            raise ConfigError(f"{where}: training boxes are (density, counts) pairs, got {pair!r}")
        durl, dds = _open(pair[0])
        curl, cds = _open(pair[1])
        shape, dmeta = check_density_field(dds, where)
        cmeta = field_meta(cds)
        bins, _ = _mass_bins(cds, curl, where)
        cshape = tuple(int(n) for n in cds[cds.encoding["bigpaint_variable"]].shape[-3:])
        if cshape != shape:
            raise ShapeError(
                f"{where}: density {durl} has grid {shape}, counts {curl} {cshape}; a density "
                "and its counts must share the grid"
            )
        if not np.allclose(dmeta.box_size, cmeta.box_size, rtol=1e-9, atol=0):
            raise BaselineInputError(
                f"{where}: density {durl} has box {dmeta.box_size} Mpc/h, counts {curl} "
                f"{cmeta.box_size}; give the counts of the same box"
            )
        if dmeta.redshift is None:
            raise BaselineInputError(
                f"{where}: {durl} records no redshift; a bias model holds at one redshift, "
                "so the density must record it"
            )
        if cmeta.redshift is not None and not math.isclose(
            cmeta.redshift, dmeta.redshift, rel_tol=1e-6, abs_tol=1e-6
        ):
            raise BaselineInputError(
                f"{where}: density {durl} is at z = {dmeta.redshift:g}, counts {curl} at "
                f"z = {cmeta.redshift:g}; give fields of the same redshift"
            )
        cosmo = dmeta.cosmology or cmeta.cosmology
        boxes.append(
            TrainingBox(
                durl, curl, dds, cds, shape, tuple(dmeta.box_size),
                _cell(dmeta, shape, durl, where), float(dmeta.redshift),
                None if cosmo is None else cosmo.model_dump(), bins,
                _mas(dmeta, durl), _mas(cmeta, curl),
            )
        )  # fmt: skip
    first = boxes[0]
    for other in boxes[1:]:
        checks = (
            (math.isclose(other.cell_size, first.cell_size, rel_tol=_CELL_RTOL), "cell size",
             f"{other.cell_size:g} Mpc/h", f"{first.cell_size:g} Mpc/h"),
            (math.isclose(other.redshift, first.redshift, rel_tol=1e-6, abs_tol=1e-6),
             "redshift", f"z = {other.redshift:g}", f"z = {first.redshift:g}"),
            (np.allclose(other.mass_bins, first.mass_bins, rtol=1e-9, atol=0), "mass bins",
             str(list(other.mass_bins)), str(list(first.mass_bins))),
            (_same_cosmology(other.cosmology, first.cosmology), "cosmology",
             str(other.cosmology), str(first.cosmology)),
            (other.input_mass_assignment == first.input_mass_assignment,
             "density mass assignment", str(other.input_mass_assignment),
             str(first.input_mass_assignment)),
        )  # fmt: skip
        for ok, what, mine, theirs in checks:
            if not ok:
                raise BaselineInputError(
                    f"{where}: training box {other.density} has {what} {mine}, {first.density} "
                    f"{theirs}; a joint fit needs boxes that agree"
                )
    return boxes


def check_density(model: BiasModel, ds: xr.Dataset, where: str = "baseline paint") -> float:
    """Refuse a density Field the model does not cover; returns its cell size in Mpc/h.

    The model is local, so the box may differ from the training boxes; the cell size (to
    1e-6), kind, redshift, cosmology and mass assignment (where both record them) may not.
    """
    from bigpaint.field import field_meta

    url = str(ds.encoding.get("bigpaint_url", "the density"))
    meta = field_meta(ds)
    if meta.kind != model.input_kind:
        raise BaselineInputError(
            f"{where}: {url} is a {meta.kind!r} Field, the bias model takes "
            f"{model.input_kind!r} Fields; give the density contrast it was fitted on"
        )
    shape, _ = check_density_field(ds, where)
    cell = _cell(meta, shape, url, where)
    if not math.isclose(cell, model.cell_size, rel_tol=_CELL_RTOL):
        raise BaselineInputError(
            f"{where}: {url} has cells of {cell:.6g} Mpc/h ({meta.box_size[0]:g} Mpc/h box, "
            f"{shape[0]} cells per side), the bias model was fitted on {model.cell_size:.6g} "
            f"Mpc/h cells; deposit the density on {meta.box_size[0] / model.cell_size:g} cells "
            "per side, or fit a model at this resolution"
        )
    if meta.redshift is None or not math.isclose(
        meta.redshift, model.redshift, rel_tol=1e-6, abs_tol=1e-6
    ):
        got = "no redshift" if meta.redshift is None else f"z = {meta.redshift:g}"
        raise BaselineInputError(
            f"{where}: {url} records {got}, the bias model holds at z = {model.redshift:g}; "
            "give a density at that redshift, or fit a model at this one"
        )
    cosmo = None if meta.cosmology is None else meta.cosmology.model_dump()
    if not _same_cosmology(cosmo, model.cosmology):
        raise BaselineInputError(
            f"{where}: {url} has cosmology {cosmo}, the bias model was fitted in "
            f"{model.cosmology}; fit a model in this cosmology"
        )
    mas = _mas(meta, url)
    if mas is not None and model.input_mass_assignment is not None:
        if mas != model.input_mass_assignment:
            raise BaselineInputError(
                f"{where}: {url} was deposited with {mas}, the bias model's density with "
                f"{model.input_mass_assignment}; deposit it the same way"
            )
    return cell
