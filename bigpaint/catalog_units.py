"""One convention for every catalogue bigpaint writes: ids, units, and where units live.

Halo catalogues (``simulate``'s FoF halos, painted catalogues from ``bigpaint sample``) and
protohalo catalogues (``bigpaint segment``, the connected truth) are Parquet tables that
share these rules:

- **ids.** ``id`` (int64) names the row's own object. A column ``<kind>_id`` refers to an
  object of another catalogue: ``halo_id`` in the connected truth is the ``id`` of a halo
  in the FoF catalogue it came from.
- **units.** Positions ``x, y, z`` (and ``peak_x``, ...) in Mpc/h, comoving, in
  ``[0, L)``; masses in Msun/h; velocities ``vx, vy, vz`` in km/s (peculiar); volumes in
  cells, next to a ``cell_volume`` in (Mpc/h)^3 in the metadata. ``h`` is the
  dimensionless Hubble parameter.
- **where units live.** Each column's Parquet field metadata holds ``units`` (and a
  ``description`` where one helps), readable with
  ``pyarrow.parquet.read_schema(path).field("mass").metadata``; the schema metadata holds the
  same map under ``units`` (JSON), next to bigpaint's own ``bigpaint`` record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pyarrow as pa

__all__ = ["HALO_UNITS", "column_units", "halo_ids", "with_units"]

#: Units of the columns of a halo catalogue (FoF or painted).
HALO_UNITS = {
    "id": "1",
    "n_particles": "1",
    "mass": "Msun/h",
    "x": "Mpc/h",
    "y": "Mpc/h",
    "z": "Mpc/h",
    "vx": "km/s",
    "vy": "km/s",
    "vz": "km/s",
    "members": "particle ids",
    "bin": "1",
}


def with_units(
    table: pa.Table,
    units: Mapping[str, str],
    descriptions: Mapping[str, str] | None = None,
) -> pa.Table:
    """``table`` with ``units`` (and ``descriptions``) in its field and schema metadata.

    Columns absent from ``units`` get none; existing schema metadata is kept.
    """
    descriptions = descriptions or {}
    fields = []
    for f in table.schema:
        meta = dict(f.metadata or {})
        if f.name in units:
            meta[b"units"] = str(units[f.name]).encode()
        if f.name in descriptions:
            meta[b"description"] = str(descriptions[f.name]).encode()
        fields.append(f.with_metadata(meta) if meta else f)
    schema_meta = dict(table.schema.metadata or {})
    present = {f.name: str(units[f.name]) for f in table.schema if f.name in units}
    schema_meta[b"units"] = json.dumps(present).encode()
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields, metadata=schema_meta))


def column_units(schema: pa.Schema) -> dict[str, str]:
    """The units of each column that records them (field metadata first, then schema)."""
    out: dict[str, str] = {}
    raw = (schema.metadata or {}).get(b"units")
    if raw:
        out.update(json.loads(raw))
    for f in schema:
        if f.metadata and b"units" in f.metadata:
            out[f.name] = f.metadata[b"units"].decode()
    return out


def halo_ids(table: pa.Table) -> pa.ChunkedArray:
    """The ``id`` column of a halo catalogue (``halo_id`` in catalogues written before ids
    were unified)."""
    name = "id" if "id" in table.column_names else "halo_id"
    return table.column(name)
