"""``bigpaint export FIELD OUT``: a Field as netCDF (.nc), HDF5 (.h5) or numpy (.npy)."""

from __future__ import annotations

import click

__all__ = ["register"]


@click.command(name="export")
@click.argument("field")
@click.argument("output")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
def export(field: str, output: str, overwrite: bool) -> None:
    """Write FIELD as OUT, in the format of OUT's suffix: .nc, .h5 or .npy.

    netCDF and HDF5 keep the coordinates, units and the Field's metadata (flattened to
    scalars and JSON text); .npy is the bare array, with the metadata in OUT.json.
    """
    from bigpaint.field_export import export_field

    click.echo(f"wrote {export_field(field, output, overwrite=overwrite)}")


def register(group: click.Group) -> None:
    group.add_command(export)
