"""A Field in a standard single-file format: netCDF, HDF5 or a numpy array.

``bigpaint export FIELD OUT`` picks the format from the suffix of ``OUT``:

==========  =================================================================================
``.nc``     netCDF through xarray: netCDF-4 when ``h5netcdf`` or ``netCDF4`` is installed,
            else netCDF-3 (64-bit offset, through scipy, which holds up to 4 GiB per variable).
            The data variable, its coordinates with their CF-style attributes, and the Field's
            attributes in their flattened, netCDF-safe form (:mod:`bigpaint.field_meta`).
``.h5``     HDF5 through h5py: the data variable as a chunked dataset (the Field's blocks),
            ``x``, ``y``, ``z`` (and ``channel``, ``mass_lo``, ``mass_hi``) as dimension
            scales attached to it, and the same attributes on the file and on the dataset.
``.npy``    the bare array (``numpy.load`` reads it, ``mmap_mode="r"`` without loading it),
            with the attributes and coordinates in ``OUT.json`` next to it.
==========  =================================================================================

Every format is written block by block (one block of the Field in memory at a time) to a
temporary name and renamed into place, so a failed export leaves no partial file.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from bigpaint.chunked.grid import BlockGrid
from bigpaint.errors import ConfigError, FieldExistsError, TooLargeError
from bigpaint.field import data_var, open_field, zarr_array
from bigpaint.field_meta import encode_attrs
from bigpaint.outputs import writing

__all__ = ["FORMATS", "export_field"]

FORMATS = (".nc", ".h5", ".npy")
_NETCDF3_LIMIT = 4 * 2**30 - 4


def _blocks(ds: Any) -> tuple[Any, BlockGrid, tuple[slice, ...]]:
    arr = zarr_array(ds)
    lead = (slice(None),) * (arr.ndim - 3)
    return (
        arr,
        BlockGrid(arr.shape[-3:], tuple(getattr(arr, "shards", None) or arr.chunks)[-3:]),
        lead,
    )


def _coords(ds: Any) -> dict[str, tuple[str, np.ndarray, dict[str, Any]]]:
    """Every 1-D coordinate of the Field: name -> (dimension, values, attributes)."""
    return {
        str(name): (str(c.dims[0]), np.asarray(c.values), dict(c.attrs))
        for name, c in ds.coords.items()
        if c.ndim == 1
    }


def _netcdf_engine() -> str:
    for module, engine in (("h5netcdf", "h5netcdf"), ("netCDF4", "netcdf4")):
        with contextlib.suppress(ImportError):
            __import__(module)
            return engine
    return "scipy"


def _write_netcdf(ds: Any, tmp: Path) -> None:
    out = ds.copy()
    out.attrs = encode_attrs(ds.attrs)
    out.encoding = {}
    for name in out.variables:
        out[name].encoding = {}
    engine = _netcdf_engine()
    var = data_var(out)
    if engine == "scipy" and var.nbytes > _NETCDF3_LIMIT:
        raise TooLargeError(
            f"the Field is {var.nbytes / 2**30:.1f} GiB; netCDF-3 (the only netCDF writer "
            "installed) holds up to 4 GiB per variable: install h5netcdf for netCDF-4, or "
            "export to .h5"
        )
    out.to_netcdf(tmp, engine=engine, format=None if engine != "scipy" else "NETCDF3_64BIT")


def _h5_attr(value: Any) -> Any:
    return value if not isinstance(value, (list, tuple)) else np.asarray(value)


def _write_h5(ds: Any, tmp: Path) -> None:
    import h5py

    arr, blocks, lead = _blocks(ds)
    var = data_var(ds)
    attrs = encode_attrs(ds.attrs)
    with h5py.File(tmp, "w") as f:
        for key, value in attrs.items():
            f.attrs[key] = _h5_attr(value)
        chunk = tuple(arr.shape[:-3]) + tuple(blocks.block_shape((0, 0, 0)))
        dset = f.create_dataset(str(var.name), shape=arr.shape, dtype=arr.dtype, chunks=chunk)
        for key, value in var.attrs.items():
            dset.attrs[key] = _h5_attr(value)
        for index in blocks.blocks():
            sl = (*lead, *blocks.core(index))
            dset[sl] = np.asarray(arr[sl])
        for name, (dim, values, cattrs) in _coords(ds).items():
            c = f.create_dataset(name, data=values)
            for key, value in cattrs.items():
                c.attrs[key] = _h5_attr(value)
            if name == dim:
                c.make_scale(name)
                dset.dims[list(var.dims).index(dim)].attach_scale(c)


def _write_npy(ds: Any, tmp: Path, sidecar: Path) -> None:
    arr, blocks, lead = _blocks(ds)
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=arr.dtype, shape=arr.shape)
    for index in blocks.blocks():
        sl = (*lead, *blocks.core(index))
        out[sl] = np.asarray(arr[sl])
    out.flush()
    del out
    var = data_var(ds)
    record = {
        "variable": str(var.name),
        "dims": list(var.dims),
        "variable_attrs": dict(var.attrs),
        "attrs": {k: v for k, v in ds.attrs.items() if v is not None},
        "coords": {
            name: {"dim": dim, "values": values.tolist(), "attrs": cattrs}
            for name, (dim, values, cattrs) in _coords(ds).items()
        },
    }
    sidecar.write_text(json.dumps(record, indent=1, default=str) + "\n")


def export_field(
    field: str | os.PathLike[str], output: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write the Field at ``field`` as ``output`` (``.nc``, ``.h5`` or ``.npy``; see the
    module notes); returns the path written."""
    field, out = str(field), Path(output)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(
            f"export writes {', '.join(FORMATS)}; {out} ends in {suffix or 'nothing'}: give "
            "one of those suffixes"
        )
    sidecar = out.with_name(out.name + ".json")
    ds = open_field(field)
    targets = {"OUT": str(out), **({"OUT.json": str(sidecar)} if suffix == ".npy" else {})}
    with writing(targets, {"FIELD": field}):
        for path in (out, sidecar) if suffix == ".npy" else (out,):
            if path.exists() and not overwrite:
                raise FieldExistsError(
                    f"output {path} already exists; choose another path or pass --overwrite"
                )
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.partial-{os.getpid()}{suffix}")
        tmp_side = sidecar.with_name(f".{sidecar.name}.partial-{os.getpid()}")
        try:
            if suffix == ".nc":
                _write_netcdf(ds, tmp)
            elif suffix == ".h5":
                _write_h5(ds, tmp)
            else:
                _write_npy(ds, tmp, tmp_side)
                os.replace(tmp_side, sidecar)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
            tmp_side.unlink(missing_ok=True)
    return out
