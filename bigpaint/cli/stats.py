"""``bigpaint stats power|bispectrum|onepoint``: statistics that judge a painted field.

Each subcommand turns its options (or a YAML file, ``--config``, which options typed on the
command line override) into one spec of :mod:`bigpaint.stats.spec`, the spec a pipeline's
``power`` and ``bispectrum`` stages take too, refuses what the Fields' metadata alone can
refuse, and runs it on the configured cluster (default: a LocalCluster; the FFT transposes
then use P2P rechunks that spill to disk). ``A`` is the field to judge, the optional ``B``
its reference (truth).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic import BaseModel

from bigpaint.cli._common import cluster_options, parse_floats

if TYPE_CHECKING:
    from bigpaint.config import ClusterConfig

__all__ = ["register"]

C = TypeVar("C", bound=BaseModel)

#: Options that are not keys of a spec, and options named otherwise in it.
_NOT_SPEC = ("paths", "config_file", "cluster_file", "workers")
_KEYS = {"log_bins": "log", "value_range": "range"}


def _channel(text: str) -> str | int:
    if text.lower() == "sum":
        return "sum"
    try:
        return int(text)
    except ValueError:
        from bigpaint.errors import ConfigError

        raise ConfigError(f"--channel must be 'sum' or a channel index, got {text!r}") from None


def _spec(model: type[C], paths: tuple[str, ...], config_file: str | None, **parse: Any) -> C:
    """The spec of the options typed on the command line (``parse``: how to read some of
    them) over the ``--config`` file's keys; A and B are the paths given."""
    from bigpaint.config import load_config, parse_config
    from bigpaint.errors import ConfigError

    ctx = click.get_current_context()
    if len(paths) > 2:
        raise ConfigError(f"give A and at most one B, got {len(paths)} paths")
    typed: dict[str, Any] = {
        _KEYS.get(name, name): parse[name](value) if name in parse else value
        for name, value in ctx.params.items()
        if name not in _NOT_SPEC
        and ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    }
    typed.update(zip(("a", "b"), paths, strict=False))
    if config_file is not None:
        return load_config(model, config_file, typed)
    if not paths:
        raise ConfigError(f"give A [B], or --config FILE (stats {ctx.info_name})")
    return parse_config(model, typed, f"stats {ctx.info_name} options")


def _cluster(
    cfg: Any, config_file: str | None, cluster_file: str | None, workers: int | None
) -> ClusterConfig:
    """``--cluster``/``--workers`` when given (or without a file), else the file's cluster."""
    from bigpaint.cli._common import cluster_config

    if cluster_file is not None or workers is not None or config_file is None:
        return cluster_config(cluster_file, workers)
    return cfg.cluster


def _config_option(keys: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        default=None,
        help=f"YAML config ({keys}, cluster); options typed on the command line override it.",
    )


@click.group()
def stats() -> None:
    """Power spectra, bispectra and one-point statistics of Fields."""


_CHANNEL = click.option(
    "--channel",
    default=None,
    help="Of a 4-D Field (e.g. halo counts per mass bin): sum (the default) or one channel's "
    "index.",
)


@stats.command()
@click.argument("paths", nargs=-1, metavar="[A [B]]")
@_config_option("a, b, channel, mas, dk, ..., out, plot")
@_CHANNEL
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
    paths: tuple[str, ...],
    config_file: str | None,
    cluster_file: str | None,
    workers: int | None,
    **_options: Any,
) -> None:
    """P(k) of field A; with B, P_A, P_B, cross spectrum, T(k), r_c(k) and stochasticity.

    \b
    bigpaint stats power painted.zarr truth.zarr --out power.csv --plot power.png
    bigpaint stats power --config power.yaml --kmax 0.5
    """
    from bigpaint.cluster import connect
    from bigpaint.stats.spec import PowerConfig, run_power

    def ells(text: str) -> list[int]:
        return [int(v) for v in (parse_floats(text, "--multipoles") or [0])]

    cfg = _spec(PowerConfig, paths, config_file, channel=_channel, multipoles=ells)
    cfg.check("stats power")
    with connect(_cluster(cfg, config_file, cluster_file, workers)):
        ds = run_power(cfg, where="stats power")
    click.echo(
        f"{ds.sizes['bin']} k bins"
        + (f" -> {cfg.out}" if cfg.out else "")
        + (f", plot {cfg.plot}" if cfg.plot else "")
    )
    if not cfg.out:
        click.echo(ds.to_dataframe().to_string())


@stats.command(name="bispectrum")
@click.argument("paths", nargs=-1, metavar="[A [B]]")
@_config_option("a, b, channel, k1, k2, theta, equilateral, ..., out, plot")
@_CHANNEL
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
    paths: tuple[str, ...],
    config_file: str | None,
    cluster_file: str | None,
    workers: int | None,
    **_options: Any,
) -> None:
    """Bispectrum B(k1, k2, theta) and Q of A (and of the reference B, with their ratio).

    \b
    bigpaint stats bispectrum painted.zarr truth.zarr --k1 0.1 --k2 0.2 --theta 0.2:3.0:8
    bigpaint stats bispectrum --config bispectrum.yaml
    """
    from bigpaint.cluster import connect
    from bigpaint.stats.spec import BispectrumConfig, run_bispectrum

    cfg = _spec(
        BispectrumConfig,
        paths,
        config_file,
        channel=_channel,
        theta=lambda text: parse_floats(text, "--theta"),
        equilateral=lambda text: parse_floats(text, "--equilateral"),
    )
    cfg.check("stats bispectrum")
    with connect(_cluster(cfg, config_file, cluster_file, workers)):
        res = run_bispectrum(cfg, where="stats bispectrum")
    ds = res["a"]
    click.echo(f"bispectrum ({ds.attrs['method']})" + (f" -> {cfg.out}" if cfg.out else ""))
    if not cfg.out:
        click.echo(ds.to_dataframe().to_string())


@stats.command()
@click.argument("paths", nargs=-1, metavar="[A [B]]")
@_config_option("a, b, channel, bins, range, top, ..., out, plot")
@_CHANNEL
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
    paths: tuple[str, ...],
    config_file: str | None,
    cluster_file: str | None,
    workers: int | None,
    **_options: Any,
) -> None:
    """Pixel PDF, peak counts, sub-volume means of A (and B), and the Dice overlap of A with B.

    \b
    bigpaint stats onepoint painted.zarr truth.zarr --out one.csv --plot one.png
    bigpaint stats onepoint --config onepoint.yaml --bins 50
    """
    from bigpaint.cluster import connect
    from bigpaint.stats.spec import OnepointConfig, run_onepoint

    cfg = _spec(
        OnepointConfig,
        paths,
        config_file,
        channel=_channel,
        top=lambda text: parse_floats(text, "--top") or None,
    )
    cfg.check("stats onepoint")
    with connect(_cluster(cfg, config_file, cluster_file, workers)):
        res = run_onepoint(cfg, where="stats onepoint")
    click.echo(f"one-point statistics: {', '.join(res)}" + (f" -> {cfg.out}" if cfg.out else ""))
    if not cfg.out and "dice" in res:
        click.echo(res["dice"].to_dataframe().to_string())


def register(group: click.Group) -> None:
    group.add_command(stats)
