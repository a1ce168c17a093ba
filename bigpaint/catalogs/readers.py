"""Halo catalogues users bring: bigpaint Parquet, other Parquet, HDF5, Rockstar and AHF text.

:func:`read_halos` reads any of them into a :class:`HaloTable`: masses in Msun/h, positions
in comoving Mpc/h, and what the file says about the box, the redshift and the cosmology.

============  ================================================  ==========================
format        how it is told                                    default units
============  ================================================  ==========================
``parquet``   ``PAR1`` magic; bigpaint's own catalogues carry   bigpaint: recorded in the
              box, redshift and cosmology in their metadata     file; else Mpc/h, Msun/h
``hdf5``      HDF5 signature; every 1-D dataset (in any group)  Mpc/h, Msun/h
              is a column, an (N, 3) ``pos``/``Coordinates``
              dataset gives x, y, z
``rockstar``  text whose ``#`` header names the columns         Mpc/h, Msun/h (Rockstar's
              (``#ID DescID Mvir ... X Y Z``); ``#a =`` and     ``#Units`` lines)
              ``#Box size:`` lines give scale factor and box
``ahf``       text whose header numbers its columns             kpc/h, Msun/h (AHF's
              (``#ID(1) hostHalo(2) Mvir(4) ... Xc(6)``)        ``.AHF_halos`` units)
============  ================================================  ==========================

The mass column is ``mass_column`` when given, else the first column, in file order, whose
name is a halo mass (``mass``, ``Mvir``, ``M200b``, ``M500c``, ``Mfof``, ``GroupMass``, ...);
Rockstar writes its chosen mass definition first, so that is the one used. A catalogue with
no such column is refused, naming the columns it has. The units are stated in the
:class:`HaloTable`'s ``info`` and can be overridden (``length_unit``, ``mass_unit``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bigpaint.errors import ConfigError, FieldNotFoundError, MetadataError, ShapeError

__all__ = ["FORMATS", "HaloTable", "read_halos"]

FORMATS = ("auto", "parquet", "hdf5", "rockstar", "ahf")
_MASS_RE = re.compile(
    r"^(m|mass|halo_?mass|group_?mass|m_?vir|m_?fof|m_?tot|m_?\d+(\.\d+)?_?(b|c|m|crit|mean)?)$",
    re.IGNORECASE,
)
_POS_NAMES = (("x", "y", "z"), ("xc", "yc", "zc"), ("pos_x", "pos_y", "pos_z"))
_POS3_NAMES = ("pos", "position", "positions", "coordinates", "grouppos", "halo_pos")
_LENGTHS = {"mpc/h": 1.0, "kpc/h": 1e-3}
_NUMBERED = re.compile(r"^(?P<name>.+?)\(\d+\)$")


@dataclass
class HaloTable:
    """Halos in engine units.

    Attributes
    ----------
    mass : (N,) float64
        Msun/h.
    pos : (N, 3) float64
        Comoving Mpc/h (as in the file, not wrapped).
    box_size : float or None
        Mpc/h, when the file records it.
    redshift : float or None
    cosmology : dict
        What the file records (complete bigpaint records, or partial headers).
    info : dict
        Format, columns used, unit factors applied, and the file's columns.
    """

    mass: np.ndarray
    pos: np.ndarray
    box_size: float | None = None
    redshift: float | None = None
    cosmology: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def _sniff(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:4] == b"PAR1":
        return "parquet"
    if head == b"\x89HDF\r\n\x1a\n":
        return "hdf5"
    header = _text_header(path)
    if header and any(_NUMBERED.match(c) for c in header[0]):
        return "ahf"
    if header:
        return "rockstar"
    raise MetadataError(
        f"cannot tell the format of {path}: it is not Parquet or HDF5, and has no '#' header line "
        "naming its columns (as Rockstar and AHF write)"
    )


def _text_header(path: Path) -> tuple[list[str], list[str]] | None:
    """The column names of a text catalogue's first ``#`` line, and its other ``#`` lines."""
    comments: list[str] = []
    names: list[str] | None = None
    with open(path, errors="replace") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            if names is None:
                names = line[1:].split()
            else:
                comments.append(line[1:].strip())
    return None if not names else (names, comments)


def _length_factor(unit: str | float | None, default: float, fmt: str) -> float:
    if unit is None:
        return default
    if isinstance(unit, str):
        key = unit.strip().lower()
        if key in _LENGTHS:
            return _LENGTHS[key]
        try:
            unit = float(unit)
        except ValueError:
            raise ConfigError(
                f"length unit {unit!r} unknown; use 'Mpc/h', 'kpc/h' or a factor to Mpc/h"
            ) from None
    f = float(unit)
    if not (math.isfinite(f) and f > 0):
        raise ConfigError(f"length unit factor must be positive, got {unit!r} ({fmt} catalogue)")
    return f


def _mass_factor(unit: float | str | None) -> float:
    if unit is None:
        return 1.0
    try:
        f = float(unit)
    except ValueError:
        raise ConfigError(
            f"mass unit must be a factor to Msun/h (e.g. 1e10), got {unit!r}"
        ) from None
    if not (math.isfinite(f) and f > 0):
        raise ConfigError(f"mass unit factor must be positive, got {unit!r}")
    return f


def _pick_mass(columns: Sequence[str], given: str | None, path: Path) -> str:
    if given is not None:
        if given not in columns:
            raise MetadataError(
                f"{path} has no column {given!r}; its columns are {_listing(columns)}"
            )
        return given
    for c in columns:
        if _MASS_RE.match(c.rsplit("/", 1)[-1]):
            return c
    raise MetadataError(
        f"{path} has no mass column (columns found: {_listing(columns)}); name the halo mass "
        "column with --mass-column"
    )


def _listing(columns: Sequence[str]) -> str:
    shown = ", ".join(columns[:24])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > 24 else "")


def _pick_positions(
    columns: Sequence[str], given: Sequence[str] | None, path: Path
) -> tuple[str, ...]:
    if given is not None:
        missing = [c for c in given if c not in columns]
        if len(given) not in (1, 3) or missing:
            raise MetadataError(
                f"{path}: position columns {list(given)} not found (columns: {_listing(columns)})"
            )
        return tuple(given)
    base = {c.rsplit("/", 1)[-1].lower(): c for c in reversed(columns)}
    for names in _POS_NAMES:
        if all(n in base for n in names):
            return tuple(base[n] for n in names)
    for n in _POS3_NAMES:
        if n in base:
            return (base[n],)
    raise MetadataError(
        f"{path} has no halo position columns (x, y, z or Xc, Yc, Zc; columns found: "
        f"{_listing(columns)}); name them with --position-columns"
    )


def read_halos(
    path: str | os.PathLike[str],
    *,
    fmt: str = "auto",
    mass_column: str | None = None,
    position_columns: Sequence[str] | None = None,
    length_unit: str | float | None = None,
    mass_unit: float | str | None = None,
) -> HaloTable:
    """Read a halo catalogue into engine units.

    Parameters
    ----------
    path : str
        The catalogue file.
    fmt : {"auto", "parquet", "hdf5", "rockstar", "ahf"}
        Format; ``auto`` tells it from the content.
    mass_column : str, optional
        Column holding the halo mass (default: the first halo-mass name in file order).
    position_columns : 3 str or 1 str, optional
        Columns of x, y, z, or one (N, 3) column (default: x/y/z, Xc/Yc/Zc, pos, ...).
    length_unit : {"Mpc/h", "kpc/h"} or float, optional
        Unit of the positions (or factor to Mpc/h); default per format (module docstring).
    mass_unit : float, optional
        Factor from the file's masses to Msun/h (default 1: Msun/h).

    Raises
    ------
    MetadataError
        Unknown format, no mass or position column, bad values.
    """
    p = Path(path)
    if not p.is_file():
        raise FieldNotFoundError(f"no halo catalogue at {p}; check the path")
    if fmt not in FORMATS:
        raise ConfigError(f"catalogue format {fmt!r} unknown; use one of {', '.join(FORMATS)}")
    kind = _sniff(p) if fmt == "auto" else fmt
    reader = {"parquet": _parquet, "hdf5": _hdf5, "rockstar": _text, "ahf": _text}[kind]
    columns, load, meta = reader(p, kind)
    mcol = _pick_mass(columns, mass_column, p)
    pcols = _pick_positions(columns, position_columns, p)
    lf = _length_factor(length_unit, 1e-3 if kind == "ahf" else 1.0, kind)
    mf = _mass_factor(mass_unit)
    mass = np.asarray(load(mcol), np.float64) * mf
    pos = (
        np.asarray(load(pcols[0]), np.float64).reshape(-1, 3)
        if len(pcols) == 1
        else np.stack([np.asarray(load(c), np.float64) for c in pcols], axis=1)
    ) * lf
    if pos.shape != (len(mass), 3):
        raise ShapeError(f"{p}: {len(mass)} masses but positions of shape {pos.shape}")
    if not (np.all(np.isfinite(mass)) and np.all(np.isfinite(pos))):
        raise MetadataError(f"{p}: the mass or position columns hold NaN or inf values")
    info = {
        "catalogue": str(p.resolve()),
        "format": kind,
        "mass_column": mcol,
        "position_columns": list(pcols),
        "length_to_mpc_h": lf,
        "mass_to_msun_h": mf,
        "columns": list(columns),
    }
    return HaloTable(mass, pos, meta.get("box_size"), meta.get("redshift"),
                     meta.get("cosmology", {}), info)  # fmt: skip


def _parquet(path: Path, kind: str) -> tuple[list[str], Any, dict[str, Any]]:
    import json

    import pyarrow.parquet as pq

    table = pq.read_table(str(path))
    meta: dict[str, Any] = {}
    raw = (table.schema.metadata or {}).get(b"bigpaint")
    if raw is not None:
        rec = json.loads(raw)
        meta["box_size"] = rec.get("box_size")
        meta["redshift"] = rec.get("redshift")
        meta["cosmology"] = dict(rec.get("cosmology") or {})
        units = rec.get("units", {})
        if units.get("mass", "Msun/h") != "Msun/h" or units.get("x", "Mpc/h") != "Mpc/h":
            raise MetadataError(
                f"{path} records units {units}; give --mass-unit and --length-unit to convert"
            )
    names = [n for n in table.column_names if table.schema.field(n).type.num_fields == 0]
    return names, lambda c: table.column(c).to_numpy(), meta


def _hdf5(path: Path, kind: str) -> tuple[list[str], Any, dict[str, Any]]:
    import h5py

    columns: list[str] = []
    meta: dict[str, Any] = {}
    with h5py.File(path, "r") as f:

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and obj.ndim in (1, 2) and obj.dtype.kind in "fiu":
                if obj.ndim == 1 or obj.shape[1] == 3:
                    columns.append(name)

        f.visititems(visit)
        attrs = {k.lower(): v for k, v in f.attrs.items()}
        for grp in ("Header", "header"):
            if grp in f:
                attrs.update({k.lower(): v for k, v in f[grp].attrs.items()})
        for key, out in (("boxsize", "box_size"), ("box_size", "box_size"),
                         ("redshift", "redshift")):  # fmt: skip
            if key in attrs:
                meta[out] = float(np.asarray(attrs[key]).ravel()[0])

    def load(name: str) -> np.ndarray:
        with h5py.File(path, "r") as f:
            return np.asarray(f[name][...])

    return columns, load, meta


def _text(path: Path, kind: str) -> tuple[list[str], Any, dict[str, Any]]:
    header = _text_header(path)
    if header is None:
        raise MetadataError(f"{path} has no '#' header line naming its columns")
    names, comments = header
    names = [m["name"] if (m := _NUMBERED.match(n)) else n for n in names]
    meta: dict[str, Any] = {}
    for line in comments:
        if m := re.match(r"a\s*=\s*([0-9.eE+-]+)", line):
            meta["redshift"] = max(0.0, 1.0 / float(m[1]) - 1.0)
        elif m := re.match(r"Box size:\s*([0-9.eE+-]+)\s*Mpc/h", line):
            meta["box_size"] = float(m[1])
        elif "Om =" in line:
            vals = dict(re.findall(r"(\w+)\s*=\s*([0-9.eE+-]+)", line))
            meta["cosmology"] = {k2: float(vals[k1]) for k1, k2 in
                                 (("Om", "Omega_m"), ("Ol", "Omega_Lambda"), ("h", "h"))
                                 if k1 in vals}  # fmt: skip
    index = {n: i for i, n in reversed(list(enumerate(names)))}
    cache: dict[str, np.ndarray] = {}

    def load(name: str) -> np.ndarray:
        if "data" not in cache:
            data = np.loadtxt(path, comments="#", ndmin=2)
            if data.size and data.shape[1] != len(names):
                raise ShapeError(
                    f"{path}: rows have {data.shape[1]} values but the header names {len(names)} "
                    "columns"
                )
            cache["data"] = data.reshape(-1, len(names))
        return cache["data"][:, index[name]]

    return list(dict.fromkeys(names)), load, meta
