"""The stage kinds a pipeline can run: each validates its params and calls ONE library function.

=============  ===========================================  ==================================
kind           calls                                        writes (under ``OUT/<name>/``)
=============  ===========================================  ==================================
``simulate``   :func:`bigpaint.sim.simulate`                the simulation's truth Fields,
                                                            ``halos.parquet``, ``summary.json``
``train``      :func:`bigpaint.train.train`                 ``best.painter``, ``last.painter``,
                                                            ``metrics.csv``
``ics``        :func:`bigpaint.ics.config.run_ics`          ``delta_lin.zarr``
``lpt``        :func:`bigpaint.ics.config.run_lpt`          ``density.zarr``
``paint``      :func:`bigpaint.paint.paint`                 ``painted.zarr``
``baseline``   :func:`bigpaint.stats.baselines.fit_bias`,   ``model.json``, ``painted.zarr``
               :func:`bigpaint.stats.baselines.paint_bias`
``power``      :func:`bigpaint.stats.spec.run_power`        ``power.csv``, ``power.png``
``bispectrum`` :func:`bigpaint.stats.spec.run_bispectrum`   ``bispectrum.csv``/``.png``
``evaluate``   :func:`bigpaint.stats.evaluate.evaluate`     ``verdict.json``, tables, figures
``segment``    :func:`bigpaint.segment.spec.run_segment`    ``catalog.parquet``
``hmf``        :func:`bigpaint.segment.hmf_report`          ``hmf.csv``, ``hmf.png``
``report``     :func:`bigpaint.pipeline.report.write_report`  ``index.html`` and copies of
                                                            every table and figure
=============  ===========================================  ==================================

The judging kinds (``baseline``, ``power``, ``bispectrum``, ``evaluate``) are written in
:mod:`bigpaint.pipeline.stats_stages`; ``segment``, ``paint``, ``power`` and ``bispectrum``
take the typed spec of the library and CLI (:class:`bigpaint.segment.spec.SegmentSpec`,
:class:`bigpaint.paint.PaintSpec`, :mod:`bigpaint.stats.spec`) without the paths the
pipeline sets.

Resume within a stage is the library's: Fields carry block completion markers and a job
token (``lpt``, ``ics``, ``paint`` skip finished blocks), training continues from its
``state.pt``. Stages with no partial state (``simulate``, ``segment`` and the statistics)
start again from the beginning of the stage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bigpaint.config import parse_config
from bigpaint.pipeline.stats_stages import (
    EVALUATE_OUTPUTS,
    baseline_run,
    baseline_validate,
    bispectrum_run,
    bispectrum_validate,
    evaluate_run,
    evaluate_validate,
    power_run,
    power_validate,
)

if TYPE_CHECKING:
    from bigpaint.paint import PaintSpec
    from bigpaint.segment.spec import SegmentSpec

__all__ = ["STAGE_KINDS", "StageContext", "StageKind"]


@dataclass(frozen=True)
class StageContext:
    """What a stage is told when it runs.

    Attributes
    ----------
    name : str
    dir : Path
        Its folder ``OUT/<name>/`` (exists).
    where : str
        ``"stage 'name' (kind)"`` for messages.
    log : callable
        ``log(str)`` prints one progress line.
    previous : list of dict
        Records of the stages before it (for the report).
    run_dir : Path
    """

    name: str
    dir: Path
    where: str
    log: Callable[[str], None]
    previous: list[dict[str, Any]] = field(default_factory=list)
    run_dir: Path = Path()


@dataclass(frozen=True)
class StageKind:
    """One kind of stage.

    Attributes
    ----------
    kind : str
    summary : str
        One line for ``--help`` and docs.
    inputs : tuple of str
        Dotted ``params`` keys whose values (a path or a list of paths) are inputs.
    written : tuple of str
        Dotted keys the pipeline sets (refused in ``params``).
    cluster : bool
        Needs the Dask cluster.
    validate : callable
        ``validate(params, ctx) -> config`` with the written keys filled in (one-line errors).
    outputs : callable
        ``outputs(config) -> names`` under the stage folder, for references and checks.
    run : callable
        ``run(config, ctx) -> summary`` (a small dict of numbers for the report).
    after_all : bool
        Depends on every earlier stage (the report).
    """

    kind: str
    summary: str
    inputs: tuple[str, ...]
    written: tuple[str, ...]
    cluster: bool
    validate: Callable[[dict[str, Any], StageContext], Any]
    outputs: Callable[[Any], tuple[str, ...]]
    run: Callable[[Any, StageContext], dict[str, Any]]
    after_all: bool = False


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- simulate


def _simulate_validate(params: dict[str, Any], ctx: StageContext) -> Any:
    from bigpaint.sim.simulate import SimulateConfig

    # the stage folder is the pipeline's: a killed run's partial outputs are replaced
    data = {**params, "output": str(ctx.dir), "overwrite": True}
    return parse_config(SimulateConfig, data, ctx.where)


def _simulate_outputs(cfg: Any) -> tuple[str, ...]:
    from bigpaint.sim.simulate import OUTPUTS

    return tuple(o for o in OUTPUTS if cfg.save_particles or o != "particles.zarr")


def _simulate_run(cfg: Any, ctx: StageContext) -> dict[str, Any]:
    from bigpaint.sim.simulate import simulate

    res = simulate(cfg, log=ctx.log)
    return {"n_halos": res.n_halos, "particle_mass_msun_h": res.particle_mass}


# ---------------------------------------------------------------- train


def _train_validate(params: dict[str, Any], ctx: StageContext) -> Any:
    from bigpaint.pipeline.config import set_dotted
    from bigpaint.train import TrainConfig

    return parse_config(TrainConfig, set_dotted(params, "run.out", str(ctx.dir)), ctx.where)


def _train_run(cfg: Any, ctx: StageContext) -> dict[str, Any]:
    from bigpaint.train import train

    res = train(cfg)
    return {"steps": res.steps, "best_validation_score": res.best_score}


# ---------------------------------------------------------------- ics / lpt


def _ics_validate(params: dict[str, Any], ctx: StageContext) -> Any:
    from bigpaint.ics.config import IcsConfig

    data = {**params, "output": str(ctx.dir / "delta_lin.zarr")}
    return parse_config(IcsConfig, data, ctx.where)


def _ics_run(cfg: Any, ctx: StageContext) -> dict[str, Any]:
    from bigpaint.ics.config import run_ics

    cfg.check_tile()
    writer = run_ics(cfg)
    return {"grid": writer.shape[0]}


def _lpt_validate(params: dict[str, Any], ctx: StageContext) -> Any:
    from bigpaint.ics.config import LptConfig

    data = {
        **params,
        "output": str(ctx.dir / "density.zarr"),
        "scratch_dir": str(ctx.dir / "scratch"),
    }
    return parse_config(LptConfig, data, ctx.where)


def _lpt_run(cfg: Any, ctx: StageContext) -> dict[str, Any]:
    from bigpaint.ics.config import run_lpt

    cfg.check_tile()
    res = run_lpt(cfg, progress=True)
    return {"grid": res.density.shape[0], "n_particles": res.n_particles}


# ---------------------------------------------------------------- paint


def _paint_validate(params: dict[str, Any], ctx: StageContext) -> PaintSpec:
    """The stage's params are a :class:`bigpaint.paint.PaintSpec` without ``output`` and
    ``overwrite``, which the pipeline sets (``source`` is accepted for ``input``)."""
    from bigpaint.paint import PaintSpec
    from bigpaint.painters.card import parse_allow_mismatch

    if params.get("allow_mismatch") is not None:
        parse_allow_mismatch(params["allow_mismatch"], f"{ctx.where}: params.allow_mismatch")
    data = {**params, "output": str(ctx.dir / "painted.zarr"), "overwrite": False}
    return parse_config(PaintSpec, data, ctx.where)


def _paint_run(cfg: PaintSpec, ctx: StageContext) -> dict[str, Any]:
    from bigpaint.paint import paint

    paint(cfg, progress=True)
    return {}


# ---------------------------------------------------------------- segment / hmf


def _segment_validate(params: dict[str, Any], ctx: StageContext) -> SegmentSpec:
    """The stage's params are a :class:`bigpaint.segment.spec.SegmentSpec` without
    ``output``, ``workdir``, ``overwrite`` and ``labels``, which the pipeline sets: a killed
    run resumes from the blocks saved under ``work/``, and a changed stage's folder is
    removed by the runner before it is redone."""
    from bigpaint.segment.spec import SegmentSpec

    data = {
        **params,
        "output": str(ctx.dir / "catalog.parquet"),
        "workdir": str(ctx.dir / "work"),
        "overwrite": False,
    }
    return parse_config(SegmentSpec, data, ctx.where)


def _segment_run(cfg: SegmentSpec, ctx: StageContext) -> dict[str, Any]:
    from bigpaint.segment.spec import run_segment

    (ctx.dir / "work").mkdir(exist_ok=True)
    table = run_segment(cfg, progress=True)
    return {"n_protohalos": table.num_rows}


class HmfParams(_Strict):
    """:func:`bigpaint.segment.hmf_report`: the mass function of ``catalog`` against the
    ``truth`` catalogue (``truth_kind``: what it must be, ``auto`` reads it from the file);
    ``min_mass`` (Msun/h) cuts both (e.g. the protohalo mass cut)."""

    catalog: str
    truth: str | None = None
    truth_kind: Literal["auto", "connected", "fof"] = "auto"
    bins: int | list[float] = 12
    column: str = "mass"
    truth_column: str = "mass"
    box_size: float | None = Field(None, gt=0)
    min_count: int = Field(20, ge=0)
    min_mass: float = Field(0.0, ge=0)


def _hmf_run(cfg: HmfParams, ctx: StageContext) -> dict[str, Any]:
    from bigpaint.segment import hmf_report

    ds, _ = hmf_report(cfg.catalog, **cfg.model_dump(exclude={"catalog"}), out=ctx.dir / "hmf.csv")
    summary = {"n_haloes": int(ds["count"].sum())}
    if "count_truth" in ds:
        summary["n_haloes_truth"] = int(ds["count_truth"].sum())
        summary["truth_kind"] = ds.attrs["truth_kind"]
    return summary


# ---------------------------------------------------------------- report


class ReportParams(_Strict):
    """The report: a title and up to six Fields whose mid-plane slices it shows, with one
    title each (default: the Field's label in an evaluation, else its path)."""

    title: str = "bigpaint pipeline report"
    slices: list[str] = Field(default_factory=list, max_length=6)
    slice_titles: list[str] | None = None

    @model_validator(mode="after")
    def _one_title_per_slice(self) -> ReportParams:
        if self.slice_titles is not None and len(self.slice_titles) != len(self.slices):
            raise ValueError(
                f"{len(self.slice_titles)} slice_titles for {len(self.slices)} slices; give "
                "one title per slice or none"
            )
        return self


def _report_run(cfg: ReportParams, ctx: StageContext) -> dict[str, Any]:
    from bigpaint.pipeline.report import write_report

    return write_report(ctx.dir, ctx.previous, title=cfg.title, slices=cfg.slices,
                        slice_titles=cfg.slice_titles, run_dir=ctx.run_dir)  # fmt: skip


# ---------------------------------------------------------------- registry


def _typed(model: type[BaseModel]) -> Callable[[dict[str, Any], StageContext], Any]:
    def validate(params: dict[str, Any], ctx: StageContext) -> Any:
        return parse_config(model, params, ctx.where)

    return validate


def _fixed(*names: str) -> Callable[[Any], tuple[str, ...]]:
    return lambda _cfg: names


def _kinds(kinds: Sequence[StageKind]) -> dict[str, StageKind]:
    return {k.kind: k for k in kinds}


#: Every stage kind by name.
STAGE_KINDS: dict[str, StageKind] = _kinds(
    [
        StageKind(
            "simulate",
            "small PM N-body + FoF and its truth Fields (bigpaint.sim.simulate)",
            inputs=(),
            written=("output", "overwrite"),
            cluster=False,
            validate=_simulate_validate,
            outputs=_simulate_outputs,
            run=_simulate_run,
        ),
        StageKind(
            "train",
            "train a painter (bigpaint.train.train)",
            inputs=("data.inputs", "data.targets", "run.init_from"),
            written=("run.out",),
            cluster=False,
            validate=_train_validate,
            outputs=_fixed("best.painter", "last.painter", "metrics.csv"),
            run=_train_run,
        ),
        StageKind(
            "ics",
            "Gaussian linear density on the cluster (bigpaint.ics.config.run_ics)",
            inputs=(),
            written=("output",),
            cluster=True,
            validate=_ics_validate,
            outputs=_fixed("delta_lin.zarr"),
            run=_ics_run,
        ),
        StageKind(
            "lpt",
            "2LPT density on the cluster (bigpaint.ics.config.run_lpt)",
            inputs=(),
            written=("output", "scratch_dir", "particles", "linear_output"),
            cluster=True,
            validate=_lpt_validate,
            outputs=_fixed("density.zarr"),
            run=_lpt_run,
        ),
        StageKind(
            "paint",
            "chunked painting with a checkpoint (bigpaint.paint.paint)",
            inputs=("checkpoint", "input", "source"),
            written=("output", "overwrite"),
            cluster=True,
            validate=_paint_validate,
            outputs=_fixed("painted.zarr"),
            run=_paint_run,
        ),
        StageKind(
            "baseline",
            "bias-model baseline: fit on training boxes, paint a density "
            "(bigpaint.stats.baselines)",
            inputs=("training_density", "training_counts", "density", "from_model"),
            written=("model", "dest"),
            cluster=True,
            validate=baseline_validate,
            outputs=_fixed("model.json", "painted.zarr"),
            run=baseline_run,
        ),
        StageKind(
            "power",
            "P(k), T(k), r_c(k), stochasticity (bigpaint.stats.report.power_report)",
            inputs=("a", "b"),
            written=("out", "plot"),
            cluster=True,
            validate=power_validate,
            outputs=_fixed("power.csv", "power.png"),
            run=power_run,
        ),
        StageKind(
            "bispectrum",
            "B(k1, k2, theta) and Q (bigpaint.stats.report.bispectrum_report)",
            inputs=("a", "b"),
            written=("out", "plot"),
            cluster=True,
            validate=bispectrum_validate,
            outputs=_fixed("bispectrum.csv", "bispectrum.png"),
            run=bispectrum_run,
        ),
        StageKind(
            "evaluate",
            "the verdict on a painting against truth and baselines (bigpaint.stats.evaluate)",
            inputs=("painted", "truth", "baselines.linear", "baselines.quadratic", "matter"),
            written=(),
            cluster=True,
            validate=evaluate_validate,
            outputs=_fixed(*EVALUATE_OUTPUTS),
            run=evaluate_run,
        ),
        StageKind(
            "segment",
            "protohalo catalogue from a distance map (bigpaint.segment.segment_field)",
            inputs=("distance", "calibration"),
            written=("output", "workdir", "overwrite", "labels"),
            cluster=True,
            validate=_segment_validate,
            outputs=_fixed("catalog.parquet"),
            run=_segment_run,
        ),
        StageKind(
            "hmf",
            "halo mass function against a truth catalogue (bigpaint.segment.hmf_report)",
            inputs=("catalog", "truth"),
            written=(),
            cluster=False,
            validate=_typed(HmfParams),
            outputs=_fixed("hmf.csv", "hmf.png"),
            run=_hmf_run,
        ),
        StageKind(
            "report",
            "index.html with every table and figure of the run (bigpaint.pipeline.report)",
            inputs=("slices",),
            written=(),
            cluster=False,
            validate=_typed(ReportParams),
            outputs=_fixed("index.html", "summary.json"),
            run=_report_run,
            after_all=True,
        ),
    ]
)
