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
``power``      :func:`bigpaint.stats.report.power_report`   ``power.csv``, ``power.png``
``bispectrum`` :func:`bigpaint.stats.report.bispectrum_report`  ``bispectrum.csv``/``.png``
``evaluate``   :func:`bigpaint.stats.evaluate.evaluate`        ``verdict.json``, tables, figures
``segment``    :func:`bigpaint.segment.spec.run_segment`    ``catalog.parquet``
``hmf``        :func:`bigpaint.segment.hmf_report`          ``hmf.csv``, ``hmf.png``
``report``     :func:`bigpaint.pipeline.report.write_report`  ``index.html`` and copies of
                                                            every table and figure
=============  ===========================================  ==================================

Resume within a stage is the library's: Fields carry block completion markers and a job
token (``lpt``, ``ics``, ``paint`` skip finished blocks), training continues from its
``state.pt``. Stages with no partial state (``simulate``, ``segment`` and the statistics)
start again from the beginning of the stage.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bigpaint.config import parse_config

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


# ---------------------------------------------------------------- baseline


class BaselineParams(_Strict):
    """:func:`bigpaint.stats.baselines.fit_bias` on the training boxes (densities and their
    halo counts, pair by pair), then :func:`bigpaint.stats.baselines.paint_bias` of
    ``density``; ``smoothing`` in Mpc/h (default: the library's). Or ``from_model``: a model
    fitted before (a JSON file, or ``pretrained:PAINTER/linear`` for the baseline fitted on
    a pretrained painter's training simulations), painted as it is."""

    training_density: list[str] = Field(default_factory=list)
    training_counts: list[str] = Field(default_factory=list)
    from_model: str | None = None
    density: str
    order: Literal[1, 2] = 2
    smoothing: float | None = Field(None, ge=0)
    sample: bool = False
    seed: int = Field(0, ge=0)
    chunks: int | tuple[int, int, int] | None = None
    model: str = ""
    dest: str = ""

    @model_validator(mode="after")
    def _pairs(self) -> BaselineParams:
        if (self.from_model is None) == (not self.training_density):
            raise ValueError(
                "give either training_density and training_counts (to fit a model) or "
                "from_model (a model fitted before), not both"
            )
        if self.from_model is not None and (self.smoothing is not None or self.order != 2):
            raise ValueError("from_model brings its own order and smoothing; drop them")
        if len(self.training_density) != len(self.training_counts):
            raise ValueError(
                f"training_density has {len(self.training_density)} Fields, training_counts "
                f"{len(self.training_counts)}; give one counts Field per density"
            )
        return self


def _baseline_validate(params: dict[str, Any], ctx: StageContext) -> Any:
    data = {**params, "model": str(ctx.dir / "model.json"), "dest": str(ctx.dir / "painted.zarr")}
    return parse_config(BaselineParams, data, ctx.where)


def _baseline_run(cfg: BaselineParams, ctx: StageContext) -> dict[str, Any]:
    from bigpaint.stats.baselines import DEFAULT_SMOOTHING, fit_bias, paint_bias
    from bigpaint.stats.bias_model import BiasModel

    if cfg.from_model is not None:
        model = BiasModel.load(cfg.from_model)
        model.save(cfg.model)
    elif Path(cfg.model).is_file():  # a killed run of this stage: paint with the model it fitted
        model = BiasModel.load(cfg.model)
    else:
        model = fit_bias(
            list(zip(cfg.training_density, cfg.training_counts, strict=True)),
            order=cfg.order,
            smoothing=DEFAULT_SMOOTHING if cfg.smoothing is None else cfg.smoothing,
        )
        model.save(cfg.model)
    ctx.log(model.summary())
    paint_bias(cfg.model, cfg.density, cfg.dest, sample=cfg.sample, seed=cfg.seed,
               chunks=cfg.chunks, progress=True)  # fmt: skip
    summary: dict[str, Any] = {"smoothing_mpc_h": model.smoothing}
    for b in range(model.n_bins):
        for name in model.names[1:]:
            summary[f"{name}[{b}]"] = float(model.values(name)[b])
    return summary


# ---------------------------------------------------------------- statistics


Channel = Literal["sum"] | int | None


def select_channel(url: str, channel: Channel, where: str) -> Any:
    """A 3-D Field from ``url``: one channel of a 4-D Field, or their sum (``"sum"``).

    A 3-D Field is returned as it is (its path); the sum keeps the Field's metadata, so a
    sum of halo counts per mass bin is the total halo count.
    """
    from bigpaint.errors import ConfigError
    from bigpaint.field import data_var, open_field

    ds = open_field(url)
    var = data_var(ds)
    if var.ndim == 3 or channel is None:
        return url if var.ndim == 3 else ds
    dim = str(var.dims[0])  # a Field's dimensions are named by strings
    if channel == "sum":
        summed = var.sum(dim, keep_attrs=True).astype(var.dtype)
        out = ds.drop_vars([var.name, dim], errors="ignore").assign({var.name: summed})
    else:
        n = var.shape[0]
        if not 0 <= channel < n:
            raise ConfigError(f"{where}: channel {channel} of {url} does not exist (it has {n})")
        out = ds.isel({dim: channel}).drop_vars(dim, errors="ignore")
    out.attrs = dict(ds.attrs)
    out.encoding.update(ds.encoding)
    return out


class PowerParams(_Strict):
    """:func:`bigpaint.stats.report.power_report`: P(k) of ``a``, or with ``b`` (the truth)
    the auto and cross spectra, T(k), r_c(k) and stochasticity. ``summary_kmax`` (h/Mpc) is
    the k up to which the report averages T and r_c."""

    a: str
    b: str | None = None
    channel: Channel = "sum"
    mas: str | None = "auto"
    mas_b: str | None = "auto"
    compensation: Literal["sinc", "none"] = "sinc"
    dk: float | None = Field(None, gt=0)
    kmin: float | None = Field(None, ge=0)
    kmax: float | None = Field(None, gt=0)
    nbins: int | None = Field(None, ge=1)
    log: bool = False
    contrast: bool | None = None
    summary_kmax: float = Field(0.2, gt=0)


def _power_run(cfg: PowerParams, ctx: StageContext) -> dict[str, Any]:
    import numpy as np

    from bigpaint.stats.report import power_report

    a = select_channel(cfg.a, cfg.channel, ctx.where)
    b = None if cfg.b is None else select_channel(cfg.b, cfg.channel, ctx.where)
    opts = cfg.model_dump(exclude={"a", "b", "channel", "summary_kmax"})
    ds = power_report(a, b, out=ctx.dir / "power.csv", plot=ctx.dir / "power.png", **opts)
    if b is None:
        return {}
    low = ds["k"].values <= cfg.summary_kmax
    return {
        f"mean T(k <= {cfg.summary_kmax})": float(np.nanmean(ds["T"].values[low])),
        f"mean r_c(k <= {cfg.summary_kmax})": float(np.nanmean(ds["r_c"].values[low])),
        "bins": int(ds.sizes["bin"]),
    }


class BispectrumParams(_Strict):
    """:func:`bigpaint.stats.report.bispectrum_report`: B(k1, k2, theta) (or equilateral)
    of ``a`` and the truth ``b``, k in h/Mpc, theta in radians."""

    a: str
    b: str | None = None
    channel: Channel = "sum"
    k1: float | None = Field(None, gt=0)
    k2: float | None = Field(None, gt=0)
    theta: list[float] | None = None
    equilateral: list[float] | None = None
    mas: str | None = "auto"
    shell_width: float | None = Field(None, gt=0)
    method: str = "auto"
    contrast: bool | None = None


def _bispectrum_run(cfg: BispectrumParams, ctx: StageContext) -> dict[str, Any]:
    import numpy as np

    from bigpaint.stats.report import bispectrum_report

    a = select_channel(cfg.a, cfg.channel, ctx.where)
    b = None if cfg.b is None else select_channel(cfg.b, cfg.channel, ctx.where)
    opts = cfg.model_dump(exclude={"a", "b", "channel"})
    res = bispectrum_report(
        a, b, out=ctx.dir / "bispectrum.csv", plot=ctx.dir / "bispectrum.png", **opts
    )
    if "b" not in res:
        return {}
    ratio = res["a"]["B"].values / res["b"]["B"].values
    return {"median B/B_true": float(np.nanmedian(ratio))}


# ---------------------------------------------------------------- evaluate


#: What the evaluate stage declares (it writes a CSV and figures per mass bin too).
EVALUATE_OUTPUTS = (
    "verdict.json",
    "verdict.csv",
    "levels.csv",
    "abundance.png",
    "spectra_total.csv",
    "spectra_total.png",
    "bispectrum_total.csv",
    "bispectrum_total.png",
    "pdf.png",
)


@functools.cache  # one model class; the library is imported only when a pipeline has the stage
def _evaluate_params() -> type[BaseModel]:
    from bigpaint.stats.evaluate import EvaluateConfig

    class EvaluateParams(EvaluateConfig):
        """:func:`bigpaint.stats.evaluate.evaluate`: the painting against the truth and the
        ``linear`` and ``quadratic`` baselines (paths or ``@stage/output``), with the settings
        and thresholds of :class:`bigpaint.stats.evaluate.EvaluateConfig`."""

        painted: str
        truth: str
        baselines: dict[Literal["linear", "quadratic"], str] = Field(default_factory=dict)

    return EvaluateParams


def _evaluate_validate(params: dict[str, Any], ctx: StageContext) -> Any:
    return parse_config(_evaluate_params(), params, ctx.where)


def _evaluate_run(cfg: Any, ctx: StageContext) -> dict[str, Any]:
    from bigpaint.stats.evaluate import EvaluateConfig, evaluate

    settings = cfg.model_dump(include=set(EvaluateConfig.model_fields))
    ev = evaluate(cfg.painted, cfg.truth, cfg.baselines, config=settings)
    ev.write(ctx.dir)
    ctx.log(f"verdict {ev.verdict.overall}")
    return ev.summary()


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
            validate=_baseline_validate,
            outputs=_fixed("model.json", "painted.zarr"),
            run=_baseline_run,
        ),
        StageKind(
            "power",
            "P(k), T(k), r_c(k), stochasticity (bigpaint.stats.report.power_report)",
            inputs=("a", "b"),
            written=(),
            cluster=True,
            validate=_typed(PowerParams),
            outputs=_fixed("power.csv", "power.png"),
            run=_power_run,
        ),
        StageKind(
            "bispectrum",
            "B(k1, k2, theta) and Q (bigpaint.stats.report.bispectrum_report)",
            inputs=("a", "b"),
            written=(),
            cluster=True,
            validate=_typed(BispectrumParams),
            outputs=_fixed("bispectrum.csv", "bispectrum.png"),
            run=_bispectrum_run,
        ),
        StageKind(
            "evaluate",
            "the verdict on a painting against truth and baselines (bigpaint.stats.evaluate)",
            inputs=("painted", "truth", "baselines.linear", "baselines.quadratic"),
            written=(),
            cluster=True,
            validate=_evaluate_validate,
            outputs=_fixed(*EVALUATE_OUTPUTS),
            run=_evaluate_run,
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
