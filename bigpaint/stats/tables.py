"""Statistics tables on disk: CSV with units in the headers, or netCDF with units in attrs.

Every statistic returns an ``xarray.Dataset`` whose variables and coordinates carry a
``units`` attribute and whose ``attrs`` record the conventions. CSV keeps both: the header
names read ``name [units]`` and the dataset attributes precede the table as ``# key: value``
comment lines (``pandas.read_csv(path, comment="#")`` reads the table; :func:`read_table`
restores the Dataset). netCDF (``.nc``, netCDF-3 through scipy, which xarray ships with) keeps
everything natively.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bigpaint.errors import ConfigError, ShapeError

__all__ = ["read_table", "write_table"]

_HEADER = re.compile(r"^(?P<name>[^\[]+?)(?: \[(?P<units>.*)\])?$")


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
    frame = ds.to_dataframe()
    if dim not in ds.coords:
        frame = frame.reset_index(drop=True)
    else:
        frame = frame.reset_index()
    columns = []
    for name in frame.columns:
        units = ds[name].attrs.get("units") if name in ds.variables else None
        columns.append(f"{name} [{units}]" if units else str(name))
    frame.columns = columns
    with path.open("w", encoding="utf-8") as fh:
        for key, value in ds.attrs.items():
            text = json.dumps(value, default=str) if not isinstance(value, str) else value
            fh.write(f"# {key}: {text}\n")
        fh.write(f"# dimension: {dim}\n")
        frame.to_csv(fh, index=False, float_format="%.10g")
    return path


def read_table(path: str | Path) -> xr.Dataset:
    """Read a table written by :func:`write_table` back into a Dataset (units restored)."""
    path = Path(path)
    if path.suffix.lower() == ".nc":
        return xr.load_dataset(path, engine="scipy")
    attrs: dict[str, Any] = {}
    dim = "row"
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith("# "):
                break
            key, _, text = line[2:].rstrip("\n").partition(": ")
            if key == "dimension":
                dim = text
                continue
            try:
                attrs[key] = json.loads(text)
            except json.JSONDecodeError:
                attrs[key] = text
    frame = pd.read_csv(path, comment="#")
    data = {}
    for col in frame.columns:
        m = _HEADER.match(col)
        name, units = (m.group("name"), m.group("units")) if m else (col, None)
        data[name] = ((dim,), frame[col].to_numpy(), {"units": units} if units else {})
    ds = xr.Dataset({k: v for k, v in data.items() if k != dim})
    if dim in data:
        ds = ds.assign_coords({dim: data[dim]})
    ds.attrs.update(attrs)
    return ds
