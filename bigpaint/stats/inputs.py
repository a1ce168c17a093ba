"""Normalise what the statistics accept (Field paths, opened Fields, arrays) into one record.

Every statistic takes a Field URL, an opened Field (``xarray.Dataset`` from
:func:`bigpaint.field.open_field`) or a 3-D numpy/dask array with ``box_size`` given, and
reads it lazily as a dask array chunked like its store. The physics that statistics need
(box size in Mpc/h, kind, units, how it was deposited) comes from the Field's metadata; two
fields combined must agree on grid and box (:func:`check_same_grid`).

Mass assignment. ``mas="auto"`` (:func:`resolve_mas`) compensates the window the Field's
``mass_assignment`` record names (:mod:`bigpaint.mass_assignment`). A Field without a record
whose kind comes from a deposit (:data:`DEPOSIT_KINDS`: densities, counts, ``delta``) is
refused: its window is unknown, and guessing "none" underestimates P(k) near the Nyquist
frequency by tens of per cent (CIC: ``sinc^4`` per axis). Other kinds, and bare arrays, have
no window to compensate.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from bigpaint.errors import ConfigError, MetadataError, ShapeError

if TYPE_CHECKING:
    from bigpaint.field import MassAssignment

__all__ = [
    "DENSITY_KINDS",
    "DEPOSIT_KINDS",
    "FieldInput",
    "as_input",
    "check_cubic",
    "check_same_grid",
    "resolve_interlaced",
    "resolve_mas",
]

#: Field kinds that are densities or counts of tracers: spectra turn them into the contrast
#: ``delta = rho / mean(rho) - 1`` by default (other kinds are used as they are).
DENSITY_KINDS = frozenset(
    {
        "density",
        "count",
        "halo_count",
        "galaxy_count",
        "number_density",
        "mass",
        "stellar_mass",
        "gas_density",
        "hi_density",
        "hi_mass",
    }
)
#: Kinds whose values count discrete tracers: their Poisson shot noise is ``V / sum(field)``.
COUNT_KINDS = frozenset({"count", "halo_count", "galaxy_count"})
#: Kinds that come from a particle deposit: ``mas="auto"`` refuses such a Field without a
#: mass-assignment record rather than leave its window in.
DEPOSIT_KINDS = DENSITY_KINDS | {"delta"}


@dataclass(frozen=True)
class FieldInput:
    """A field ready for statistics.

    Attributes
    ----------
    data : dask.array.Array or numpy.ndarray
        3-D, chunked like the source; a numpy array stays one when the caller asked for it
        (``as_input(..., in_memory=True)``).
    box_size : tuple of 3 float
        Periodic box side lengths in Mpc/h.
    kind, units : str
        From the Field metadata (``"field"`` and ``"1"`` for bare arrays).
    provenance : dict
        The Field's provenance.
    label : str
        A name for tables and plots (the store path or ``"field"``).
    mass_assignment : MassAssignment or None
        The Field's assignment window (older provenance spellings included); None when not
        recorded, and for arrays.
    """

    data: Any  # a dask array; a numpy array only where the caller asked (in_memory)
    box_size: tuple[float, float, float]
    kind: str
    units: str
    label: str
    provenance: Mapping[str, Any] = field(default_factory=dict)
    mass_assignment: MassAssignment | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        nx, ny, nz = self.data.shape  # 3-D: as_input refuses other arrays
        return int(nx), int(ny), int(nz)

    @property
    def volume(self) -> float:
        """Box volume in (Mpc/h)^3."""
        return float(math.prod(self.box_size))


def _box(
    box_size: float | Sequence[float] | None, where: str, required: bool = True
) -> tuple[float, float, float]:
    if box_size is None and not required:
        return (math.nan,) * 3
    if box_size is None:
        raise ConfigError(f"{where}: a bare array needs box_size= (Mpc/h); or pass a Field")
    box: tuple[float, ...]
    if isinstance(box_size, (int, float, np.number)):
        box = (float(box_size),) * 3
    else:
        box = tuple(float(b) for b in box_size)
    if len(box) != 3 or not all(math.isfinite(b) and b > 0 for b in box):
        raise ConfigError(
            f"{where}: box_size must be one or three positive lengths in Mpc/h, got {box_size}"
        )
    return box


def as_input(
    obj: Any,
    *,
    box_size: float | Sequence[float] | None = None,
    label: str | None = None,
    where: str = "statistics",
    require_box: bool = True,
    in_memory: bool = False,
) -> FieldInput:
    """Open or wrap ``obj`` (Field URL, Field Dataset, numpy or dask array) for statistics.

    ``box_size`` (Mpc/h) is required for arrays (unless ``require_box=False``, for statistics
    that need no physical size: the box is then NaN) and, for Fields, must agree with the
    metadata if given. A numpy array is wrapped as a one-chunk dask array, unless
    ``in_memory`` (for statistics that work on it whole): then dask is not even imported.
    """
    if isinstance(obj, (str, bytes)) or hasattr(obj, "__fspath__"):
        from bigpaint.field import open_field

        url = str(obj if not isinstance(obj, bytes) else obj.decode())
        obj = open_field(url)
        label = label or url
    if isinstance(obj, xr.Dataset):  # the Field modules (zarr) load only for Fields
        from bigpaint.field import data_var, field_meta
        from bigpaint.mass_assignment import mass_assignment_of

        meta = field_meta(obj)
        var = data_var(obj)
        if var.ndim != 3:
            raise ShapeError(
                f"{where}: {label or 'field'} has dims {var.dims}; pass one channel, e.g. "
                "ds.isel(channel=0)"
            )
        bx, by, bz = meta.box_size
        box = (float(bx), float(by), float(bz))
        if box_size is not None and _box(box_size, where) != box:
            raise MetadataError(
                f"{where}: box_size={box_size} disagrees with the Field's {box} Mpc/h; drop box_size="
            )
        import dask.array as da

        data = var.data if isinstance(var.data, da.Array) else da.from_array(np.asarray(var.data))
        label = label or str(obj.encoding.get("bigpaint_url", "field"))
        return FieldInput(
            data,
            box,
            meta.kind,
            meta.units,
            label,
            dict(meta.provenance),
            mass_assignment_of(meta, f"{where}: {label}"),
        )
    if isinstance(obj, xr.DataArray):
        raise ConfigError(
            f"{where}: pass the Field Dataset (from open_field) or its .data, not a DataArray"
        )
    if _is_dask_array(obj) or (in_memory and isinstance(obj, np.ndarray)):
        data = obj
    elif isinstance(obj, np.ndarray):
        import dask.array as da

        data = da.from_array(obj, chunks=-1)
    else:
        raise ConfigError(
            f"{where}: expected a Field path, an opened Field or a 3-D array, got {type(obj).__name__}"
        )
    if data.ndim != 3:
        raise ShapeError(f"{where}: a field must be 3-D, got shape {tuple(data.shape)}")
    if data.dtype.kind not in "biuf":
        raise ShapeError(f"{where}: a field must hold real numbers, got dtype {data.dtype}")
    return FieldInput(data, _box(box_size, where, require_box), "field", "1", label or "field", {})


def _is_dask_array(obj: Any) -> bool:
    """Whether ``obj`` is a dask array, without importing dask (none exists before it is)."""
    mod = sys.modules.get("dask.array")
    return mod is not None and isinstance(obj, mod.Array)


def check_same_grid(a: FieldInput, b: FieldInput, where: str) -> None:
    """Refuse two fields with different grids (ShapeError) or boxes (MetadataError)."""
    if a.shape != b.shape:
        raise ShapeError(
            f"{where}: fields have different grids {a.shape} ({a.label}) and {b.shape} ({b.label}); "
            "resample one onto the other's grid first"
        )
    if all(map(math.isfinite, a.box_size + b.box_size)) and not np.allclose(
        a.box_size, b.box_size, rtol=1e-9, atol=0
    ):
        raise MetadataError(
            f"{where}: fields have different box sizes {a.box_size} ({a.label}) and {b.box_size} "
            f"({b.label}) Mpc/h; compare fields of the same box"
        )


def check_cubic(a: FieldInput, where: str) -> tuple[int, float]:
    """Grid cells per side and box side (Mpc/h) of a cubic field; refuse non-cubic ones."""
    if len(set(a.shape)) != 1:
        raise ShapeError(f"{where}: needs a cubic grid (n, n, n), got {a.shape}")
    if not np.allclose(a.box_size, a.box_size[0], rtol=1e-9, atol=0):
        raise MetadataError(f"{where}: needs a cubic box, got box_size {a.box_size} Mpc/h")
    return a.shape[0], float(a.box_size[0])


def resolve_mas(inp: FieldInput, mas: str | int | None, where: str) -> tuple[str | int | None, str]:
    """The mass-assignment scheme to compensate in ``inp``, and where it came from.

    Parameters
    ----------
    inp : FieldInput
    mas : {"auto", "NGP", "CIC", "TSC", "PCS", "none", None} or int
        ``"auto"`` reads the Field's record; anything else is used as given (names are
        checked and upper-cased, ``"none"`` is None).
    where : str
        Names the statistic in the error message.

    Returns
    -------
    scheme : str, int or None
        What :func:`bigpaint.mesh.window.mas_order` takes; None compensates nothing.
    source : str
        ``"given"``, ``"Field record"`` or why there is none (for the table's attributes).

    Raises
    ------
    MetadataError
        ``"auto"`` on a Field of a deposit kind (:data:`DEPOSIT_KINDS`) with no record.
    ConfigError
        An unknown scheme name.
    """
    from bigpaint.mesh.window import mas_order

    if mas != "auto":
        if isinstance(mas, str):
            return (str(mas).upper() if mas_order(mas) else None), "given"
        mas_order(mas)
        return mas, "given"
    rec = inp.mass_assignment
    if rec is not None:
        return rec.scheme, "Field record"
    if inp.kind in DEPOSIT_KINDS:
        raise MetadataError(
            f"{where}: {inp.label} is a {inp.kind!r} Field with no mass-assignment record, so "
            "'auto' cannot know its window; give the scheme with --mas/--mas-b (mas=): NGP, CIC, "
            "TSC, PCS or none"
        )
    return None, f"none (a {inp.kind!r} field has no assignment window)"


def resolve_interlaced(inp: FieldInput, interlaced: bool | None) -> bool:
    """Whether ``inp`` was interlaced: as given, else from its record (False without one)."""
    if interlaced is not None:
        return bool(interlaced)
    rec = inp.mass_assignment
    return bool(rec is not None and rec.interlaced)
