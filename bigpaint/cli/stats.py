"""``bigpaint stats power|bispectrum|onepoint``: statistics that judge a painted field.

Each subcommand parses its options and calls one function of :mod:`bigpaint.stats.report`
on the configured cluster (default: a LocalCluster; the FFT transposes then use P2P rechunks
that spill to disk). ``A`` is the field to judge, the optional ``B`` its reference (truth).
"""

from __future__ import annotations

import click

from bigpaint.cli._common import cluster_options, open_cluster, parse_floats

__all__ = ["register"]


def _mas(text: str) -> str | None:
    return None if text.lower() == "none" else text


def _check_mas(where: str, *fields: tuple[str | None, str | None]) -> None:
    """Refuse a mass assignment that cannot be resolved (bad name, ``auto`` on a Field with
    no record) from the Fields' metadata alone, before a cluster is started."""
    from bigpaint.stats.inputs import as_input, resolve_mas

    for url, mas in fields:
        if url is not None:
            resolve_mas(as_input(url, where=where), mas, where)


@click.group()
def stats() -> None:
    """Power spectra, bispectra and one-point statistics of Fields."""


@stats.command()
@click.argument("a")
@click.argument("b", required=False)
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None, help="Table to write (.csv or .nc)."
)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="PNG figure to write.")
@click.option(
    "--mas",
    default="auto",
    show_default=True,
    help="Mass assignment of A to compensate: auto (the Field's mass_assignment record; a density "
    "or count Field without one is refused), NGP, CIC, TSC, PCS or none.",
)
@click.option("--mas-b", default="auto", show_default=True, help="Mass assignment of B (as --mas).")
@click.option(
    "--compensation",
    type=click.Choice(["sinc", "aliased", "none"]),
    default="sinc",
    show_default=True,
    help="sinc^p window (Pylians) or Jing's alias sum (flat shot noise without interlacing).",
)
@click.option("--dk", type=float, default=None, help="Linear bin width in h/Mpc (default k_F).")
@click.option("--kmin", type=float, default=None, help="Lowest bin edge in h/Mpc (default k_F).")
@click.option(
    "--kmax", type=float, default=None, help="Highest bin edge in h/Mpc (default sqrt(3) k_Nyq)."
)
@click.option("--nbins", type=int, default=None, help="Number of bins (log bins: default 20).")
@click.option("--log", "log_bins", is_flag=True, help="Logarithmic k bins.")
@click.option(
    "--los",
    type=click.Choice(["x", "y", "z"]),
    default="z",
    show_default=True,
    help="Line of sight of the multipoles.",
)
@click.option(
    "--multipoles",
    default="0,2,4",
    show_default=True,
    help="Multipoles to compute (subset of 0,2,4).",
)
@click.option(
    "--contrast/--no-contrast",
    default=None,
    help="Use field/mean - 1 (default: for density and count kinds).",
)
@cluster_options
def power(
    a: str,
    b: str | None,
    out: str | None,
    plot: str | None,
    mas: str,
    mas_b: str,
    compensation: str,
    dk: float | None,
    kmin: float | None,
    kmax: float | None,
    nbins: int | None,
    log_bins: bool,
    los: str,
    multipoles: str,
    contrast: bool | None,
    cluster_file: str | None,
    workers: int | None,
) -> None:
    """P(k) of field A; with B, P_A, P_B, cross spectrum, T(k), r_c(k) and stochasticity."""
    from bigpaint.stats.report import power_report

    ells = [int(v) for v in (parse_floats(multipoles, "--multipoles") or [0])]
    _check_mas("stats power", (a, _mas(mas)), (b, _mas(mas_b)))
    with open_cluster(cluster_file, workers):
        ds = power_report(
            a,
            b,
            out=out,
            plot=plot,
            mas=_mas(mas),
            mas_b=_mas(mas_b),
            compensation=compensation,
            dk=dk,
            kmin=kmin,
            kmax=kmax,
            nbins=nbins,
            log=log_bins,
            los=los,
            multipoles=ells,
            contrast=contrast,
        )
    click.echo(
        f"{ds.sizes['bin']} k bins"
        + (f" -> {out}" if out else "")
        + (f", plot {plot}" if plot else "")
    )
    if not out:
        click.echo(ds.to_dataframe().to_string())


@stats.command(name="bispectrum")
@click.argument("a")
@click.argument("b", required=False)
@click.option("--k1", type=float, default=None, help="First side in h/Mpc.")
@click.option("--k2", type=float, default=None, help="Second side in h/Mpc.")
@click.option(
    "--theta", default=None, help="Angles between k1 and k2 in radians: list or start:stop:count."
)
@click.option(
    "--equilateral",
    default=None,
    help="Equilateral sides k in h/Mpc instead: list or start:stop:count.",
)
@click.option(
    "--shell-width",
    type=float,
    default=None,
    help="Shell width in h/Mpc (default k_F; Pylians: 2 k_F).",
)
@click.option(
    "--method",
    type=click.Choice(["auto", "crop", "distributed"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--mas",
    default="auto",
    show_default=True,
    help="Mass assignment of A and B to compensate: auto (each Field's record; a density or "
    "count Field without one is refused), NGP, CIC, TSC, PCS or none.",
)
@click.option(
    "--contrast/--no-contrast", default=None, help="Use field/mean - 1 (default by kind)."
)
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None, help="Table to write (.csv or .nc)."
)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="PNG figure to write.")
@cluster_options
def bispectrum_cmd(
    a: str,
    b: str | None,
    k1: float | None,
    k2: float | None,
    theta: str | None,
    equilateral: str | None,
    shell_width: float | None,
    method: str,
    mas: str,
    contrast: bool | None,
    out: str | None,
    plot: str | None,
    cluster_file: str | None,
    workers: int | None,
) -> None:
    """Bispectrum B(k1, k2, theta) and Q of A (and of the reference B, with their ratio)."""
    from bigpaint.stats.report import bispectrum_report

    _check_mas("stats bispectrum", (a, _mas(mas)), (b, _mas(mas)))
    with open_cluster(cluster_file, workers):
        res = bispectrum_report(
            a,
            b,
            k1=k1,
            k2=k2,
            theta=parse_floats(theta, "--theta"),
            equilateral=parse_floats(equilateral, "--equilateral"),
            out=out,
            plot=plot,
            mas=_mas(mas),
            shell_width=shell_width,
            method=method,
            contrast=contrast,
        )
    ds = res["a"]
    click.echo(f"bispectrum ({ds.attrs['method']})" + (f" -> {out}" if out else ""))
    if not out:
        click.echo(ds.to_dataframe().to_string())


@stats.command()
@click.argument("a")
@click.argument("b", required=False)
@click.option("--bins", type=int, default=100, show_default=True, help="Pixel PDF bins.")
@click.option("--log", "log_bins", is_flag=True, help="Logarithmic PDF bins (positive values).")
@click.option(
    "--range",
    "value_range",
    type=(float, float),
    default=None,
    help="PDF (and peak) range: MIN MAX.",
)
@click.option("--peak-bins", type=int, default=50, show_default=True, help="Bins of peak height.")
@click.option(
    "--subvolumes",
    type=int,
    default=4,
    show_default=True,
    help="Sub-volumes per axis (means, Dice).",
)
@click.option(
    "--top", default=None, help="Dice top fractions, e.g. 0.01,0.05,0.1 (default 1%..80%)."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Table prefix, e.g. stats/run1.csv -> stats/run1_pdf_a.csv, ...",
)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="PNG prefix.")
@cluster_options
def onepoint(
    a: str,
    b: str | None,
    bins: int,
    log_bins: bool,
    value_range: tuple[float, float] | None,
    peak_bins: int,
    subvolumes: int,
    top: str | None,
    out: str | None,
    plot: str | None,
    cluster_file: str | None,
    workers: int | None,
) -> None:
    """Pixel PDF, peak counts, sub-volume means of A (and B), and the Dice overlap of A with B."""
    from bigpaint.stats.dice import DEFAULT_TOP
    from bigpaint.stats.report import onepoint_report

    fractions = parse_floats(top, "--top") or list(DEFAULT_TOP)
    with open_cluster(cluster_file, workers):
        res = onepoint_report(
            a,
            b,
            out=out,
            plot=plot,
            bins=bins,
            log=log_bins,
            value_range=value_range,
            peak_bins=peak_bins,
            subvolumes=subvolumes,
            top=fractions,
        )
    click.echo(f"one-point statistics: {', '.join(res)}" + (f" -> {out}" if out else ""))
    if not out and "dice" in res:
        click.echo(res["dice"].to_dataframe().to_string())


def register(group: click.Group) -> None:
    group.add_command(stats)
