"""``bigpaint evaluate PAINTED TRUTH``: judge a painted halo field against the truth and baselines.

Parses the settings (``--config`` YAML with the keys of
:class:`bigpaint.stats.evaluate.EvaluateConfig`, flags on top), checks the Fields before a
cluster starts, runs :func:`bigpaint.stats.evaluate.evaluate`, writes the tables, verdict and
figures with ``--out`` and prints the verdict table.
"""

from __future__ import annotations

from typing import Any

import click

from bigpaint.cli._common import cluster_options, open_cluster, parse_floats
from bigpaint.errors import ConfigError

__all__ = ["register"]


def _baselines(items: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        name = name.strip()
        if not sep or not name or not path:
            raise ConfigError(
                f"--baseline takes NAME=FIELD (e.g. linear=linear.zarr), got {item!r}"
            )
        if name in out:
            raise ConfigError(f"--baseline {name} is given twice; give each baseline once")
        out[name] = path
    return out


def _thresholds(items: tuple[str, ...]) -> dict[str, float]:
    from bigpaint.stats.verdict import Thresholds

    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if key not in Thresholds.model_fields:
            raise ConfigError(
                f"--threshold {item!r}: unknown threshold {key!r}; known: "
                f"{', '.join(Thresholds.model_fields)}"
            )
        try:
            out[f"thresholds.{key}"] = float(value)
        except ValueError:
            raise ConfigError(f"--threshold takes KEY=NUMBER, got {item!r}") from None
        if not sep:
            raise ConfigError(f"--threshold takes KEY=NUMBER, got {item!r}")
    return out


def _config(config_file: str | None, overrides: dict[str, Any]) -> Any:
    from bigpaint.config import load_config, parse_config
    from bigpaint.pipeline.config import set_dotted
    from bigpaint.stats.evaluate import EvaluateConfig

    if config_file is not None:
        return load_config(EvaluateConfig, config_file, overrides)
    data: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is not None:
            data = set_dotted(data, key, value)
    return parse_config(EvaluateConfig, data, "bigpaint evaluate")


@click.command(name="evaluate")
@click.argument("painted")
@click.argument("truth")
@click.option(
    "--baseline",
    "baselines",
    multiple=True,
    metavar="NAME=FIELD",
    help="A baseline painting to compare with (repeat); the names 'linear' and 'quadratic' "
    "have roles in the verdict.",
)
@click.option(
    "--matter",
    default=None,
    metavar="FIELD",
    help="The simulation's matter density on the truth's grid (e.g. simulate's density.zarr): "
    "the truth's noise is then measured against it instead of assumed Poisson. Halos are "
    "sub-Poisson, so give it whenever you have it.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for the tables, verdict.json and figures (files of these names are replaced).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML file of settings and thresholds (see docs/evaluate.md); flags override it.",
)
@click.option("--kmax", type=float, default=None, help="Largest k of the verdict in h/Mpc [0.2].")
@click.option("--dk", type=float, default=None, help="k bin width up to kmax in h/Mpc [k_F].")
@click.option(
    "--total-from", type=int, default=None, help="First mass bin (channel) in the total [0]."
)
@click.option(
    "--exclude-bin",
    "exclude_bins",
    type=int,
    multiple=True,
    help="Leave a mass bin (channel) out of everything (repeat).",
)
@click.option(
    "--noise",
    type=click.Choice(["auto", "expectation", "poisson"]),
    default=None,
    help="Painting and baselines are expectations or Poisson draws [auto: integers are draws].",
)
@click.option("--k1", type=float, default=None, help="Bispectrum side k1 in h/Mpc [0.1].")
@click.option("--k2", type=float, default=None, help="Bispectrum side k2 in h/Mpc [0.2].")
@click.option("--theta", default=None, help="Triangle angles in radians: list or start:stop:count.")
@click.option("--shell-width", type=float, default=None, help="Bispectrum shell width, h/Mpc.")
@click.option(
    "--judge",
    type=click.Choice(["total", "all"]),
    default=None,
    help="Judge spectra and bispectrum on the total, or in every mass bin too [total].",
)
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="KEY=NUMBER",
    help="Replace a threshold, e.g. abundance=0.1 (repeat; see docs/evaluate.md).",
)
@click.option("--check", is_flag=True, help="Exit with status 1 unless the verdict is PASS.")
@cluster_options
@click.pass_context
def evaluate_cmd(
    ctx: click.Context,
    painted: str,
    truth: str,
    baselines: tuple[str, ...],
    matter: str | None,
    out: str | None,
    config_file: str | None,
    kmax: float | None,
    dk: float | None,
    total_from: int | None,
    exclude_bins: tuple[int, ...],
    noise: str | None,
    k1: float | None,
    k2: float | None,
    theta: str | None,
    shell_width: float | None,
    judge: str | None,
    thresholds: tuple[str, ...],
    check: bool,
    cluster_file: str | None,
    workers: int | None,
) -> None:
    """Judge PAINTED halo counts against the TRUTH and baselines: abundance, T(k), r_c(k),
    stochasticity, bispectrum and counts PDF per mass bin and total, with errors; PASS/FAIL."""
    from bigpaint.stats.evaluate import check_inputs, evaluate

    bases = _baselines(baselines)
    overrides: dict[str, Any] = {
        "kmax": kmax,
        "dk": dk,
        "total_from": total_from,
        "exclude_bins": list(exclude_bins) or None,
        "noise": noise,
        "k1": k1,
        "k2": k2,
        "theta": parse_floats(theta, "--theta"),
        "shell_width": shell_width,
        "judge": judge,
        **_thresholds(thresholds),
    }
    cfg = _config(config_file, overrides)
    check_inputs(painted, truth, bases, cfg, matter)
    inputs = {
        "PAINTED": painted,
        "TRUTH": truth,
        **{f"--baseline {k}": v for k, v in bases.items()},
        **({"--matter": matter} if matter else {}),
    }
    with open_cluster(cluster_file, workers, outputs={"--out": out}, inputs=inputs):
        ev = evaluate(painted, truth, bases, matter=matter, config=cfg)
        if out:
            ev.write(out)
    click.echo(ev.verdict.table())
    if out:
        click.echo(f"tables, verdict.json and figures -> {out}")
    if check and ev.verdict.overall != "PASS":
        ctx.exit(1)


def register(group: click.Group) -> None:
    group.add_command(evaluate_cmd)
