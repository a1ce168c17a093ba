"""What a Field says about itself: the metadata models and how they sit in the store.

:class:`FieldMeta` (box, kind, units, redshift, :class:`Cosmology`, provenance,
:class:`MassAssignment`) is the physics that travels with every Field. This module also
decides how that metadata is laid out on disk, so that a Field is a plain, self-describing
dataset for tools that know nothing of bigpaint:

- **netCDF-safe group attributes.** netCDF (and so ``xarray.Dataset.to_netcdf``) stores
  only strings, numbers and 1-D numeric arrays as attributes. The nested records are
  flattened into scalars: ``cosmology_Omega_m``, ..., ``mass_assignment_scheme``,
  ``mass_assignment_interlaced`` and one ``provenance_<key>`` per provenance entry. Entries
  that are not a string or a number (lists, dicts, booleans, None) are stored as JSON text
  and named in ``bigpaint_json_attrs`` (a space-separated list), so reading back is exact
  and never guesses. Missing values (no redshift, no cosmology) are left out; the
  ``bigpaint_complete`` flag stays a boolean (netCDF-3 keeps it as a byte).
  :func:`decode_attrs` turns the stored form back into the nested records bigpaint's own
  reader hands out; it also reads Fields written before the flattening (nested dicts), and
  merges records a writer added as a nested dict on top of the flattened ones.
- **CF-style variable attributes.** The data variable carries ``units`` and ``long_name``
  (:func:`variable_attrs`); the cell-centre coordinates carry ``units``, ``long_name`` and
  ``axis``. The CF standard-name table is written for Earth-system data and has no entries
  for cosmological overdensity, halo counts or distance maps, so no ``standard_name`` is
  written (a made-up one would mislead CF tools). Units follow the cosmology habit:
  ``Mpc/h`` and ``Msun/h``, where ``h`` is the dimensionless Hubble parameter (not an hour).
- **A channel coordinate.** A 4-D Field has an integer ``channel`` coordinate; a Field
  whose provenance records its mass bins (:mod:`bigpaint.mass_bins`) also has
  ``mass_lo`` and ``mass_hi`` along ``channel`` in Msun/h (:func:`channel_coords`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bigpaint.axes import float3
from bigpaint.errors import MetadataError

__all__ = [
    "JSON_ATTRS",
    "Cosmology",
    "FieldMeta",
    "MassAssignment",
    "channel_coords",
    "coordinate_attrs",
    "decode_attrs",
    "encode_attrs",
    "format_info",
    "job_token",
    "validate_meta",
    "variable_attrs",
]

#: Group attribute naming the attributes stored as JSON text (space-separated).
JSON_ATTRS = "bigpaint_json_attrs"
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_NESTED = ("cosmology", "mass_assignment", "provenance")

#: ``long_name`` of the data variable by Field kind (other kinds: the kind in words).
LONG_NAMES = {
    "delta": "matter overdensity",
    "density": "matter density",
    "mass": "mass per cell",
    "halo_count": "halo count per cell",
    "distance": "distance to the nearest protohalo boundary",
    "white_noise": "unit-variance Gaussian white noise",
    "protohalo_label": "protohalo label (0: background)",
    "labels": "region label (0: background)",
    "bias_operators": "bias-expansion operators",
}


class Cosmology(BaseModel):
    """Flat LCDM parameters carried with a Field.

    Omega_m and Omega_b are density parameters today, ``h`` is H0 / (100 km/s/Mpc),
    ``n_s`` the scalar spectral index and ``sigma_8`` the rms linear fluctuation in
    spheres of 8 Mpc/h at z=0.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    Omega_m: float = Field(0.3175, gt=0, le=1)
    Omega_b: float = Field(0.049, ge=0, lt=1)
    h: float = Field(0.6711, gt=0, lt=2)
    n_s: float = Field(0.9624, gt=0, lt=2)
    sigma_8: float = Field(0.834, gt=0, lt=3)


class MassAssignment(BaseModel):
    """How a Field's values were assigned to its cells: the window its Fourier modes carry.

    A particle deposit with scheme of order ``p`` (NGP 1, CIC 2, TSC 3, PCS 4) multiplies
    every mode by ``prod_i sinc(k_i H / 2)^p`` (``H`` the cell size in Mpc/h); the spectra
    divide that window out when their ``mas`` is ``"auto"``.

    Attributes
    ----------
    scheme : {"NGP", "CIC", "TSC", "PCS"} or None
        Scheme of the deposit; None: the values carry no assignment window (Gaussian
        fields, white noise, distance maps).
    interlaced : bool
        The deposit was averaged with a half-cell-shifted twin in Fourier space.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: Literal["NGP", "CIC", "TSC", "PCS"] | None
    interlaced: bool = False

    @field_validator("scheme", mode="before")
    @classmethod
    def _scheme_name(cls, v: Any) -> Any:
        if isinstance(v, str):
            return None if v.lower() == "none" else v.upper()
        return v

    @model_validator(mode="after")
    def _interlaced_deposit(self) -> MassAssignment:
        if self.interlaced and self.scheme is None:
            raise ValueError("an interlaced Field is a deposit: give its scheme")
        return self


class FieldMeta(BaseModel):
    """The physics and provenance that travel with every Field.

    Attributes
    ----------
    box_size : tuple of 3 float
        Periodic box side lengths in Mpc/h.
    kind : str
        What the field is: ``delta`` (overdensity), ``density``, ``halo_count``,
        ``distance``, ``white_noise``, ... (lower-case identifier).
    units : str
        Units of the values, e.g. ``"1"`` for dimensionless, ``"Msun/h"``.
    redshift : float or None
        Redshift the field describes; None when it has none (white noise).
    cosmology : Cosmology or None
    provenance : dict
        bigpaint version, operation, configuration, inputs and creation time.
    mass_assignment : MassAssignment or None
        The assignment window of the values (see :class:`MassAssignment`); None when not
        recorded (Fields written by hand or by an older bigpaint).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    box_size: tuple[float, float, float]
    kind: str
    units: str
    redshift: float | None = Field(default=None, ge=0)
    cosmology: Cosmology | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)
    mass_assignment: MassAssignment | None = None

    @field_validator("box_size", mode="before")
    @classmethod
    def _box_from_scalar(cls, v: Any) -> Any:
        if isinstance(v, (int, float)):
            return (float(v),) * 3
        return v

    @field_validator("box_size")
    @classmethod
    def _box_positive(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if not all(math.isfinite(x) and x > 0 for x in v):
            raise ValueError(f"box_size must be positive and finite in Mpc/h, got {v}")
        return v

    @field_validator("kind")
    @classmethod
    def _kind_identifier(cls, v: str) -> str:
        if not _KIND_RE.match(v):
            raise ValueError(f"kind must be a lower-case identifier like 'delta', got {v!r}")
        return v

    def cell_size(self, shape: Sequence[int]) -> tuple[float, float, float]:
        """Cell side lengths in Mpc/h for a spatial grid ``shape``."""
        return float3(L / n for L, n in zip(self.box_size, shape[-3:], strict=True))


def validate_meta(meta: FieldMeta | Mapping[str, Any]) -> FieldMeta:
    """``meta`` as a :class:`FieldMeta`, or a one-line MetadataError naming the bad entry."""
    if isinstance(meta, FieldMeta):
        return meta
    try:
        return FieldMeta(**meta)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise MetadataError(f"invalid Field metadata {where!r}: {err['msg']}") from None


def job_token(**parts: Any) -> str:
    """A stable token identifying a job: operation, parameters and inputs.

    Two calls with equal keyword values (JSON-serialisable) give the same token; it is
    how a re-run recognises its own unfinished output and resumes it.
    """
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


# ---------------------------------------------------------------- stored form


def _scalar(value: Any) -> bool:
    """True for what netCDF keeps as it is: a string or a (non-boolean) real number."""
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (str, int, float, np.integer, np.floating))


def _plain_number(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def encode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Group attributes in their netCDF-safe stored form (see the module notes).

    ``cosmology``, ``mass_assignment`` and ``provenance`` mappings are flattened into
    ``<name>_<key>`` entries; an entry that is not a string or a number (None, booleans,
    lists, dicts) becomes JSON text named in ``bigpaint_json_attrs``. Top-level None values
    are left out; top-level booleans (the ``bigpaint_complete`` flag, which plain Zarr
    readers test) and lists of numbers (``box_size``) stay as they are: netCDF keeps both.
    """
    out: dict[str, Any] = {}
    as_json: list[str] = []

    def put(key: str, value: Any) -> None:
        if _scalar(value):
            out[key] = _plain_number(value)
        else:
            out[key] = json.dumps(value, default=str, sort_keys=True)
            as_json.append(key)

    for key, value in attrs.items():
        if key == JSON_ATTRS or value is None:
            continue
        if key in _NESTED and isinstance(value, Mapping):
            for sub, v in value.items():
                put(f"{key}_{sub}", v)
        elif isinstance(value, (bool, np.bool_)):
            out[key] = bool(value)
        elif (
            isinstance(value, (list, tuple))
            and value
            and all(_scalar(v) and not isinstance(v, str) for v in value)
        ):
            out[key] = [_plain_number(v) for v in value]
        else:
            put(key, value)
    if as_json:
        out[JSON_ATTRS] = " ".join(sorted(as_json))
    return out


def decode_attrs(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The nested attributes bigpaint hands out, from the stored form of a Field's group.

    ``cosmology``, ``mass_assignment`` and ``provenance`` come back as dicts (None when the
    Field has none; provenance ``{}``), ``redshift`` and ``bigpaint_job`` as None when
    absent. A nested dict stored under the plain name (older Fields, or a writer that adds
    provenance afterwards) is merged over the flattened entries.
    """
    names = str(stored.get(JSON_ATTRS, "") or "").split()
    out: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {k: {} for k in _NESTED}
    for key, value in stored.items():
        if key == JSON_ATTRS:
            continue
        if key in names and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise MetadataError(
                    f"Field attribute {key!r} is listed as JSON in {JSON_ATTRS} but is not JSON; "
                    "the store is damaged: rewrite the attribute or the Field"
                ) from None
        if isinstance(value, np.ndarray):
            value = value.tolist()
        owner = next((n for n in _NESTED if key.startswith(n + "_")), None)
        if owner is not None:
            nested[owner][key[len(owner) + 1 :]] = _plain_number(value)
        elif key in _NESTED and isinstance(value, Mapping):
            nested[key] = {**nested[key], **value}
        else:
            out[key] = _plain_number(value)
    out["cosmology"] = nested["cosmology"] or out.get("cosmology")
    out["mass_assignment"] = nested["mass_assignment"] or out.get("mass_assignment")
    out["provenance"] = nested["provenance"]
    out.setdefault("redshift", None)
    out.setdefault("bigpaint_job", None)
    return out


# ---------------------------------------------------------------- CF-style attributes


def variable_attrs(meta: FieldMeta) -> dict[str, str]:
    """CF-style attributes of a Field's data variable: ``units`` and ``long_name``."""
    return {
        "units": meta.units,
        "long_name": LONG_NAMES.get(meta.kind, meta.kind.replace("_", " ")),
    }


def coordinate_attrs(dim: str) -> dict[str, str]:
    """CF-style attributes of a cell-centre coordinate ``x``, ``y`` or ``z`` (Mpc/h)."""
    return {"units": "Mpc/h", "long_name": f"cell centre {dim}", "axis": dim.upper()}


def channel_coords(meta: FieldMeta, n_channels: int) -> dict[str, tuple[np.ndarray, dict]]:
    """Coordinates along ``channel`` of a 4-D Field: name -> (values, attributes).

    Always ``channel`` (0, 1, ...); with mass bins recorded for exactly ``n_channels`` bins
    also ``mass_lo`` and ``mass_hi``, the bin edges in Msun/h (channel ``i`` counts halos
    with ``mass_lo[i] <= M < mass_hi[i]``).
    """
    from bigpaint.mass_bins import MASS_UNITS, mass_bins_of

    coords: dict[str, tuple[np.ndarray, dict]] = {
        "channel": (np.arange(n_channels, dtype=np.int64), {"long_name": "channel index"})
    }
    edges = mass_bins_of(meta, "the new Field")
    if edges is not None and edges.size == n_channels + 1:
        coords["mass_lo"] = (
            edges[:-1],
            {"units": MASS_UNITS, "long_name": "lower halo mass edge of the channel's bin"},
        )
        coords["mass_hi"] = (
            edges[1:],
            {"units": MASS_UNITS, "long_name": "upper halo mass edge of the channel's bin"},
        )
    return coords


# ---------------------------------------------------------------- bigpaint info


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def format_info(info: Mapping[str, Any]) -> str:
    """Human-readable text of :func:`bigpaint.field.field_info` (what ``bigpaint info`` prints)."""
    a = info["attrs"]
    state = (
        "complete"
        if info["complete"]
        else (f"UNFINISHED ({info['blocks_done']}/{info['blocks_total']} blocks written)")
    )
    box = a.get("box_size")
    shape = info["shape"]
    cell = [b / n for b, n in zip(box, shape[-3:], strict=True)] if box else None
    lines = [
        f"Field     {info['url']}",
        f"state     {state}",
        f"variable  {info['variable']} ({a.get('kind')}, units {a.get('units')!r})",
        f"shape     {shape} {info['dtype']}",
        f"chunks    {info['chunks']}" + (f"  shards {info['shards']}" if info["shards"] else ""),
        f"blocks    {info['blocks_total']} ({info['blocks_done']} written)",
        f"box       {box} Mpc/h, cell {cell} Mpc/h",
        f"redshift  {a.get('redshift')}",
        f"cosmology {a.get('cosmology')}",
        f"size      {_human_bytes(info['nbytes'])} uncompressed"
        + (f", {_human_bytes(info['stored_bytes'])} stored" if info["stored_bytes"] >= 0 else ""),
    ]
    prov = a.get("provenance") or {}
    for key in ("bigpaint_version", "operation", "created", "inputs", "config"):
        if key in prov:
            lines.append(f"{'prov.' + key:<9} {prov[key]}")
    if a.get("bigpaint_finished"):
        lines.append(f"finished  {a['bigpaint_finished']}")
    return "\n".join(lines)


def netcdf_ready(ds: Any) -> Any:
    """A shallow copy of an opened Field whose attributes netCDF can store.

    :func:`bigpaint.field.open_field` hands out the nested records (``cosmology``,
    ``provenance``, ...) as dicts; this puts them back in the flattened stored form, so
    ``netcdf_ready(ds).to_netcdf(path)`` works. ``xarray.open_zarr`` needs no such step: it
    reads the stored form directly.
    """
    out = ds.copy()
    out.attrs = encode_attrs(ds.attrs)
    return out
