"""``bigpaint train CONFIG``: train a painter on bigpaint's own Fields.

Thin: reads the YAML into :class:`bigpaint.train.config.TrainConfig` (flags override its
``run`` keys) and calls :func:`bigpaint.train.train`. Re-running the same command resumes
from the run directory's ``state.pt``.
"""

from __future__ import annotations

import click

__all__ = ["register"]


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--out", default=None, help="Run directory (overrides run.out).")
@click.option(
    "--max-steps", type=click.IntRange(min=1), default=None, help="Overrides run.max_steps."
)
@click.option(
    "--max-time", type=float, default=None, help="Wall-clock budget in seconds (run.max_time)."
)
@click.option("--seed", type=int, default=None, help="Overrides run.seed.")
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default=None,
    help="Overrides run.device.",
)
@click.option(
    "--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads (run.threads)."
)
@click.option(
    "--no-resume", is_flag=True, help="Start afresh even if the run directory has a state."
)
@click.option("--quiet", is_flag=True, help="No progress: no bar, no metrics lines.")
def train(
    config: str,
    out: str | None,
    max_steps: int | None,
    max_time: float | None,
    seed: int | None,
    device: str | None,
    threads: int | None,
    no_resume: bool,
    quiet: bool,
) -> None:
    """Train the painter described by CONFIG (configs/train-<family>.yaml)."""
    from bigpaint.config import load_config
    from bigpaint.train import TrainConfig
    from bigpaint.train import train as run_training

    overrides = {
        "run.out": out,
        "run.max_steps": max_steps,
        "run.max_time": max_time,
        "run.seed": seed,
        "run.device": device,
        "run.threads": threads,
        "run.resume": False if no_resume else None,
        "run.progress": False if quiet else None,
    }
    cfg = load_config(TrainConfig, config, overrides)
    result = run_training(cfg)
    click.echo(
        f"trained {cfg.family} for {result.steps} steps on {result.device} in {result.elapsed:.0f} s; "
        f"best validation score {result.best_score:.4g}; checkpoints {result.best} and {result.last}; "
        f"metrics {result.metrics}"
    )


def register(group: click.Group) -> None:
    """Add ``train`` to the ``bigpaint`` command group."""
    group.add_command(train)
