"""``bigpaint bin CATALOG OUT``: a halo catalogue to a per-mass-bin halo-count Field.

The Field is the one ``bigpaint simulate`` writes as ``halo_counts.zarr`` (NGP counts, one
channel per mass bin, the edges recorded as ``provenance.mass_bins`` in Msun/h), so a
painter trains on a user's halos exactly as on simulate's.
"""

from __future__ import annotations

import click

from bigpaint.cli._common import parse_floats, record_options
from bigpaint.cli.deposit import parse_cosmology
from bigpaint.errors import ConfigError

__all__ = ["register"]


@click.command(name="bin")
@click.argument("catalog")
@click.argument("output")
@click.option("--grid", type=click.IntRange(min=1), required=True, help="Cells per side.")
@click.option(
    "--mass-bins",
    required=True,
    metavar="EDGES",
    help="Mass-bin edges in Msun/h, comma-separated: 1e12,1e13,1e14,1e16.",
)
@click.option(
    "--box",
    "--box-size",
    "box",
    type=float,
    default=None,
    help="Box in Mpc/h (required when the catalogue records none).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "parquet", "hdf5", "rockstar", "ahf"]),
    default="auto",
    show_default=True,
    help="Catalogue format (auto: from the content).",
)
@click.option(
    "--mass-column",
    default=None,
    help="Column of the halo mass (default: the first halo-mass column, e.g. Mvir).",
)
@click.option(
    "--position-columns",
    default=None,
    metavar="X,Y,Z",
    help="Columns of the halo centre (default: x,y,z or Xc,Yc,Zc or pos).",
)
@click.option(
    "--length-unit",
    default=None,
    metavar="UNIT",
    help="Positions' unit: Mpc/h, kpc/h or a factor to Mpc/h (default: Mpc/h; AHF: kpc/h).",
)
@click.option(
    "--mass-unit",
    type=float,
    default=None,
    metavar="FACTOR",
    help="Factor from the catalogue's masses to Msun/h (default 1: Msun/h).",
)
@click.option(
    "--chunks",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Write blocks, in cells per side.",
)
@record_options("the catalogue's, e.g. Rockstar's '#a ='")
def bin_command(
    catalog: str,
    output: str,
    grid: int,
    mass_bins: str,
    box: float | None,
    fmt: str,
    mass_column: str | None,
    position_columns: str | None,
    length_unit: str | None,
    mass_unit: float | None,
    chunks: int,
    redshift: float | None,
    cosmology: str | None,
    overwrite: bool,
) -> None:
    """Count the halos of CATALOG per cell and mass bin into the Field OUTPUT.

    CATALOG is a bigpaint Parquet catalogue (from simulate or fof), another Parquet or HDF5
    table, a Rockstar text catalogue (out_*.list, '#' header naming the columns; positions
    in Mpc/h, masses in Msun/h) or an AHF .AHF_halos file (positions in kpc/h, masses in
    Msun/h). Bin i counts halos with edge_i <= M < edge_i+1.
    """
    from bigpaint.catalogs.binning import bin_halos
    from bigpaint.catalogs.readers import read_halos

    edges = parse_floats(mass_bins, "--mass-bins")
    cosmo = parse_cosmology(cosmology)
    cols = None if position_columns is None else [c.strip() for c in position_columns.split(",")]
    if cols is not None and len(cols) not in (1, 3):
        raise ConfigError(
            f"--position-columns takes 3 names (or 1 (N, 3) column), got {position_columns!r}"
        )
    halos = read_halos(catalog, fmt=fmt, mass_column=mass_column, position_columns=cols,
                       length_unit=length_unit, mass_unit=mass_unit)  # fmt: skip
    prov = bin_halos(halos, output, grid=grid, mass_bins=edges or [], box_size=box, chunks=chunks,
                     redshift=redshift, cosmology=cosmo, overwrite=overwrite)  # fmt: skip
    click.echo(
        f"wrote {output}: {prov['n_binned']} of {prov['n_halos']} halos in {len(edges or []) - 1} "
        f"mass bins (mass column {prov['mass_column']!r} x {prov['mass_to_msun_h']:g} -> Msun/h, "
        f"positions x {prov['length_to_mpc_h']:g} -> Mpc/h; {prov['n_below_bins']} below, "
        f"{prov['n_above_bins']} above the bins)"
    )


def register(group: click.Group) -> None:
    group.add_command(bin_command)
