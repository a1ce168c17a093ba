"""The quickstart: the pipeline runner applied to the embedded default config.

``bigpaint/pipeline/defaults/quickstart.yaml`` (shipped inside the package) runs every
stage of the engine on a laptop, each a thin call of one library function:

1. ``train-box`` and ``painter``: a small PM + FoF simulation (64^3 particles, 128 Mpc/h)
   and the halo painter trained briefly on it, to show training;
2. ``big-2lpt``: the 2LPT density of a bigger box (128^3 cells, 256 Mpc/h), chunked on the
   Dask cluster;
3. ``painted``: halo counts painted on it block by block with periodic context by the
   pretrained painter ``halo-painter-2mpc``, checked against its card;
4. ``baseline-linear`` and ``baseline-quadratic``: the bias models shipped with that
   painter (fitted on its training simulations), painted on the same density;
5. ``truth``: the same bigger box simulated with PM + FoF from the same initial
   conditions, as the painter's training simulations were;
6. ``power``, ``bispectrum`` and ``evaluate``: P(k), T(k), r_c(k), stochasticity and
   B(k1, k2, theta) of the painted against the true halo counts, and the verdict against
   the truth and both baselines;
7. ``protohalos`` and ``hmf``: protohalos segmented from the true distance map, and their
   mass function against the connected truth; ``protohalo-map``, ``protohalos-painted`` and
   ``hmf-painted``: the same from the map the pretrained protohalo U-Net paints from the
   initial density, segmented with the calibration shipped with it;
8. ``report``: ``report/index.html``, opening with the verdict, with every table (CSV) and
   figure (PNG).

A second run skips finished stages; a killed run resumes (see :mod:`bigpaint.pipeline`).
``docs/quickstart.md`` says what each stage does and what the report shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bigpaint.config import ClusterConfig, parse_config
from bigpaint.errors import ConfigError
from bigpaint.pipeline import PipelineConfig, default_config, run_pipeline
from bigpaint.pipeline.config import set_dotted

__all__ = ["CELL_MPC_H", "quickstart_config", "run_quickstart"]

#: Cell size of both quickstart boxes in Mpc/h (the pretrained painter's resolution).
CELL_MPC_H = 2.0
_TILE = 32


def _set(stages: list[dict[str, Any]], name: str, key: str, value: Any) -> None:
    for st in stages:
        if st["name"] == name:
            st["params"] = set_dotted(st["params"], key, value)
            return
    raise ConfigError(f"the embedded quickstart has no stage {name!r}")  # pragma: no cover


def quickstart_config(
    out_dir: str | Path = "bigpaint-quickstart",
    *,
    grid: int | None = None,
    chunks: int | None = None,
    train_steps: int | None = None,
) -> PipelineConfig:
    """The embedded quickstart pipeline with the command's options applied.

    Parameters
    ----------
    out_dir : path
        Run directory.
    grid : int, optional
        Cells per side of the big box (a multiple of 32; the box is ``2 grid`` Mpc/h, so
        cells stay 2 Mpc/h, the painter's training resolution). Default 128.
    chunks : int, optional
        Block size in cells of the big box's Fields (2LPT, painted, truth). Default 32.
    train_steps : int, optional
        Painter updates (default 200: a minute or two on 2 CPU cores).
    """
    data = default_config("quickstart")
    data["out"] = str(out_dir)
    stages = data["stages"]
    if grid is not None:
        if grid < _TILE or grid % _TILE:
            raise ConfigError(f"--grid must be a multiple of {_TILE} (>= {_TILE}), got {grid}")
        box = CELL_MPC_H * grid
        for key, value in (("grid", grid), ("box_size", box)):
            _set(stages, "big-2lpt", key, value)
        for key, value in (("particles", grid), ("box_size", box), ("halo_counts.grid", grid)):
            _set(stages, "truth", key, value)
    if chunks is not None:
        for name in ("big-2lpt", "painted", "truth"):
            _set(stages, name, "chunks", chunks)
    if train_steps is not None:
        _set(stages, "painter", "run.max_steps", train_steps)
    return parse_config(PipelineConfig, data, "embedded quickstart")


def run_quickstart(
    out_dir: str | Path = "bigpaint-quickstart",
    *,
    grid: int | None = None,
    chunks: int | None = None,
    train_steps: int | None = None,
    overwrite: bool = False,
    cluster: ClusterConfig | None = None,
) -> list[dict[str, Any]]:
    """Run the quickstart pipeline (see :func:`quickstart_config` for the options).

    Parameters
    ----------
    out_dir, grid, chunks, train_steps
        As :func:`quickstart_config`.
    overwrite : bool
        Redo stages whose folder holds another configuration's results.
    cluster : ClusterConfig, optional
        Replaces the config's local cluster.

    Returns
    -------
    list of dict
        The record of every stage (:func:`bigpaint.pipeline.run_pipeline`).
    """
    cfg = quickstart_config(out_dir, grid=grid, chunks=chunks, train_steps=train_steps)
    return run_pipeline(cfg, source="quickstart", overwrite=overwrite, cluster=cluster)
