"""Statistics tables on disk: plain CSV with units in a header comment, or netCDF.

Every statistic returns an ``xarray.Dataset`` whose variables and coordinates carry a
``units`` attribute and whose ``attrs`` record the conventions. A CSV table is laid out so
the common readers take it as it is::

    k,k_lo,k_hi,n_modes,P0,P2,P4
    # column_units: {"k": "h/Mpc", "k_lo": "h/Mpc", ..., "P0": "(Mpc/h)^3"}
    # dimension: bin
    # grid: 64
    0.0982,0.0785,0.1178,26,1523.1,...

The first line holds the column names, plain identifiers (``k``, ``P0``, ``n_modes``),
with ``k`` first when the table has one, then the other coordinates, then the values. A
name that is not an identifier (``P:linear`` of a flattened evaluation table) is written
with ``_`` for each other character, and ``column_names`` records the original. Comment
lines after the names give the units of every column (``column_units``), the table's
dimension and the dataset attributes (``# key: value``, JSON for anything but text). Text
cells carry no commas (each becomes ``;``), so every line splits on commas alone. So
``pandas.read_csv(path, comment="#")``, ``numpy.genfromtxt(path, delimiter=",",
names=True)`` and ``numpy.loadtxt(path, delimiter=",", skiprows=1)`` all read it;
:func:`read_table` restores the Dataset with its units, names and attributes (and still reads
the earlier layout, attributes first and ``name [units]`` headers). netCDF (``.nc``,
netCDF-3 through scipy, which xarray ships with) keeps everything natively.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bigpaint.errors import ConfigError, ShapeError

__all__ = ["read_table", "write_table"]

_HEADER = re.compile(r"^(?P<name>[^\[]+?)(?: \[(?P<units>.*)\])?$")
_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]+")


def _plain(value: Any) -> Any:
    """An attribute value netCDF-3 can store (str, number, 1-D numeric array)."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        return str(value)
    if isinstance(value, (int, float, np.integer, np.floating, str)):
        return value
    arr = np.asarray(value)
    if arr.dtype.kind in "iuf" and arr.ndim == 1:
        return arr
    return json.dumps(value, default=str)


def write_table(ds: xr.Dataset, path: str | Path) -> Path:
    """Write a statistics Dataset as CSV (``.csv``) or netCDF (``.nc``); returns the path.

    CSV needs a one-dimensional Dataset (every statistic here is one, along ``bin``,
    ``theta``, ``k``, ``top`` or ``subvolume``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".nc":
        out = ds.copy()
        out.attrs = {k: _plain(v) for k, v in ds.attrs.items()}
        for name in list(out.variables):
            out[name].attrs = {k: _plain(v) for k, v in out[name].attrs.items()}
        out.to_netcdf(path, engine="scipy")
        return path
    if suffix != ".csv":
        raise ConfigError(f"table path {path} must end in .csv or .nc")
    if len(ds.dims) != 1:
        raise ShapeError(
            f"a CSV table needs a one-dimensional Dataset, got dims {dict(ds.sizes)}; write .nc"
        )
    (dim,) = ds.dims
    order = _column_order(ds, dim)
    frame = pd.DataFrame({name: _cells(ds[name].values) for name in order})
    plain = _plain_names(order)
    frame.columns = [plain[n] for n in order]
    header: dict[str, Any] = {
        "column_units": {plain[n]: ds[n].attrs["units"] for n in order if ds[n].attrs.get("units")}
    }
    renamed = {plain[n]: str(n) for n in order if plain[n] != str(n)}
    if renamed:
        header["column_names"] = renamed
    header["dimension"] = dim
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(",".join(frame.columns) + "\n")
        for key, value in {**header, **ds.attrs}.items():
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            fh.write(f"# {key}: {' '.join(text.splitlines())}\n")
        frame.to_csv(fh, index=False, header=False, float_format="%.10g")
    return path


def _column_order(ds: xr.Dataset, dim: Hashable) -> list[Any]:
    """``k`` first (when there is one), then the dimension's coordinate, the other
    coordinates along it, and the data variables."""
    coords = [c for c in ds.coords if ds[c].dims == (dim,)]
    first = [c for c in ("k", dim) if c in coords]
    rest = [c for c in coords if c not in first]
    return list(dict.fromkeys([*first, *rest, *ds.data_vars]))


def _cells(values: np.ndarray) -> np.ndarray:
    """Column values as written: text without commas or line breaks (see the notes)."""
    if values.dtype.kind in "OUS":
        return np.array([" ".join(str(v).replace(",", ";").splitlines()) for v in values], object)
    return values


def _plain_names(names: list[Any]) -> dict[Any, str]:
    """Each column name as an identifier, unique within the table."""
    out: dict[Any, str] = {}
    used: set[str] = set()
    for name in names:
        plain = _NOT_IDENT.sub("_", str(name)).strip("_") or "column"
        if plain[0].isdigit():
            plain = f"c{plain}"
        base, i = plain, 1
        while plain in used:
            i += 1
            plain = f"{base}_{i}"
        used.add(plain)
        out[name] = plain
    return out


def read_table(path: str | Path) -> xr.Dataset:
    """Read a table written by :func:`write_table` back into a Dataset (units restored)."""
    path = Path(path)
    if path.suffix.lower() == ".nc":
        return xr.load_dataset(path, engine="scipy")
    attrs: dict[str, Any] = {}
    with path.open(encoding="utf-8") as fh:
        first = fh.readline()
        lines = [first] if first.startswith("# ") else []
        for line in fh:
            if not line.startswith("# "):
                break
            lines.append(line)
    for line in lines:
        key, _, text = line[2:].rstrip("\n").partition(": ")
        try:
            attrs[key] = json.loads(text)
        except json.JSONDecodeError:
            attrs[key] = text
    dim = str(attrs.pop("dimension", "row"))
    frame = pd.read_csv(path, comment="#")
    if "column_units" in attrs:  # names first, units in the header comment
        units = attrs.pop("column_units")
        names = attrs.pop("column_names", {})
        columns = [(names.get(c, c), units.get(c), c) for c in frame.columns]
    else:  # the earlier layout: attributes first, ``name [units]`` headers
        columns = []
        for col in frame.columns:
            m = _HEADER.match(col)
            columns.append((m.group("name"), m.group("units"), col) if m else (col, None, col))
    data = {
        name: ((dim,), frame[col].to_numpy(), {"units": units} if units else {})
        for name, units, col in columns
    }
    ds = xr.Dataset({k: v for k, v in data.items() if k != dim})
    if dim in data:
        ds = ds.assign_coords({dim: data[dim]})
    ds.attrs.update(attrs)
    return ds
