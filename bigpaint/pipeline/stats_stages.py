"""The pipeline stages that judge a painting: the bias baselines and the statistics.

``baseline`` fits the bias model of :mod:`bigpaint.stats.baselines` on training boxes (or
takes one fitted before) and paints a density with it; ``power`` and ``bispectrum`` take the
specs of :mod:`bigpaint.stats.spec` (those of ``bigpaint stats power|bispectrum``) without
``out`` and ``plot``, which the stage sets; ``evaluate`` gives the verdict of
:func:`bigpaint.stats.evaluate.evaluate`. :mod:`bigpaint.pipeline.stages` registers them
with the other kinds; each ``*_validate`` is ``validate(params, ctx)`` and each ``*_run`` is
``run(config, ctx)`` of a :class:`bigpaint.pipeline.stages.StageKind`.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bigpaint.config import parse_config
from bigpaint.stats.spec import BispectrumSpec, PowerSpec

if TYPE_CHECKING:
    from bigpaint.pipeline.stages import StageContext

__all__ = [
    "EVALUATE_OUTPUTS",
    "BaselineParams",
    "BispectrumParams",
    "PowerParams",
    "baseline_run",
    "baseline_validate",
    "bispectrum_run",
    "bispectrum_validate",
    "evaluate_run",
    "evaluate_validate",
    "power_run",
    "power_validate",
]


# ---------------------------------------------------------------- baseline


class BaselineParams(BaseModel):
    """:func:`bigpaint.stats.baselines.fit_bias` on the training boxes (densities and their
    halo counts, pair by pair), then :func:`bigpaint.stats.baselines.paint_bias` of
    ``density``; ``smoothing`` in Mpc/h (default: the library's). Or ``from_model``: a model
    fitted before (a JSON file, or ``pretrained:PAINTER/linear`` for the baseline fitted on
    a pretrained painter's training simulations), painted as it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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


def baseline_validate(params: dict[str, Any], ctx: StageContext) -> BaselineParams:
    data = {**params, "model": str(ctx.dir / "model.json"), "dest": str(ctx.dir / "painted.zarr")}
    return parse_config(BaselineParams, data, ctx.where)


def baseline_run(cfg: BaselineParams, ctx: StageContext) -> dict[str, Any]:
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


# ---------------------------------------------------------------- power / bispectrum


class PowerParams(PowerSpec):
    """A :class:`bigpaint.stats.spec.PowerSpec`: P(k) of ``a``, or with ``b`` (the truth) the
    auto and cross spectra, T(k), r_c(k) and stochasticity. ``summary_kmax`` (h/Mpc) is the k
    up to which the report averages T and r_c."""

    summary_kmax: float = Field(0.2, gt=0)


def power_validate(params: dict[str, Any], ctx: StageContext) -> PowerParams:
    data = {**params, "out": str(ctx.dir / "power.csv"), "plot": str(ctx.dir / "power.png")}
    return parse_config(PowerParams, data, ctx.where)


def power_run(cfg: PowerParams, ctx: StageContext) -> dict[str, Any]:
    import numpy as np

    from bigpaint.stats.spec import run_power

    ds = run_power(cfg, where=ctx.where)
    if cfg.b is None:
        return {}
    low = ds["k"].values <= cfg.summary_kmax
    return {
        f"mean T(k <= {cfg.summary_kmax})": float(np.nanmean(ds["T"].values[low])),
        f"mean r_c(k <= {cfg.summary_kmax})": float(np.nanmean(ds["r_c"].values[low])),
        "bins": int(ds.sizes["bin"]),
        "shot noise": _noise_kept(ds.attrs.get("shot_noise_true")),
    }


def _noise_kept(noise: Any) -> str:
    """What the raw spectra of a power stage hold: the truth's shot noise, not subtracted."""
    known = isinstance(noise, float) and math.isfinite(noise)
    size = f" (Poisson V/N = {noise:.4g} (Mpc/h)^3)" if known else ""
    return (
        f"kept in P_true{size}: T and r_c here are raw; an evaluate stage removes each "
        "field's own noise before comparing"
    )


class BispectrumParams(BispectrumSpec):
    """A :class:`bigpaint.stats.spec.BispectrumSpec`: B(k1, k2, theta) (or equilateral) of
    ``a`` and the truth ``b``, k in h/Mpc, theta in radians."""


def bispectrum_validate(params: dict[str, Any], ctx: StageContext) -> BispectrumParams:
    data = {
        **params,
        "out": str(ctx.dir / "bispectrum.csv"),
        "plot": str(ctx.dir / "bispectrum.png"),
    }
    return parse_config(BispectrumParams, data, ctx.where)


def bispectrum_run(cfg: BispectrumParams, ctx: StageContext) -> dict[str, Any]:
    import numpy as np

    from bigpaint.stats.spec import run_bispectrum

    res = run_bispectrum(cfg, where=ctx.where)
    if "b" not in res:
        return {}
    ratio = res["a"]["B"].values / res["b"]["B"].values
    return {
        "median B/B_true": float(np.nanmedian(ratio)),
        "shot noise": "kept in B_true: the ratio is raw; an evaluate stage removes the noise "
        "terms before comparing",
    }


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
        and thresholds of :class:`bigpaint.stats.evaluate.EvaluateConfig`; ``matter``, the
        simulation's matter density, measures the truth's noise."""

        painted: str
        truth: str
        baselines: dict[Literal["linear", "quadratic"], str] = Field(default_factory=dict)
        matter: str | None = None

    return EvaluateParams


def evaluate_validate(params: dict[str, Any], ctx: StageContext) -> Any:
    return parse_config(_evaluate_params(), params, ctx.where)


def evaluate_run(cfg: Any, ctx: StageContext) -> dict[str, Any]:
    from bigpaint.stats.evaluate import EvaluateConfig, evaluate

    settings = cfg.model_dump(include=set(EvaluateConfig.model_fields))
    ev = evaluate(cfg.painted, cfg.truth, cfg.baselines, matter=cfg.matter, config=settings)
    ev.write(ctx.dir)
    ctx.log(f"verdict {ev.verdict.overall}")
    return ev.summary()
