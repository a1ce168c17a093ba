"""Statistics that judge a field: power and cross spectra, bispectrum, one-point and morphology,
and the bias baselines a painting is judged against.

The names below are imported on first use, so ``from bigpaint.stats.power import
power_spectrum`` does not load the bias models or the evaluation.
"""

import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bigpaint.stats.baselines import choose_smoothing, fit_bias, paint_bias
    from bigpaint.stats.bias_model import BiasModel
    from bigpaint.stats.bias_operators import bias_operators, write_bias_operators
    from bigpaint.stats.bins import kbins
    from bigpaint.stats.bispectrum import bispectrum, bispectrum_equilateral
    from bigpaint.stats.dice import dice
    from bigpaint.stats.evaluate import EvaluateConfig, Evaluation, evaluate
    from bigpaint.stats.onepoint import (
        minmax,
        order_statistics,
        pixel_pdf,
        quantiles,
        subvolume_means,
        top_fraction_thresholds,
    )
    from bigpaint.stats.peaks import peak_counts
    from bigpaint.stats.power import (
        compare_spectra,
        cross_correlation,
        power_spectrum,
        stochasticity,
        transfer_function,
    )
    from bigpaint.stats.report import bispectrum_report, onepoint_report, power_report
    from bigpaint.stats.tables import read_table, write_table
    from bigpaint.stats.verdict import Thresholds, Verdict, judge

_WHERE = {
    "choose_smoothing": "bigpaint.stats.baselines",
    "fit_bias": "bigpaint.stats.baselines",
    "paint_bias": "bigpaint.stats.baselines",
    "BiasModel": "bigpaint.stats.bias_model",
    "bias_operators": "bigpaint.stats.bias_operators",
    "write_bias_operators": "bigpaint.stats.bias_operators",
    "kbins": "bigpaint.stats.bins",
    "bispectrum_equilateral": "bigpaint.stats.bispectrum",
    "EvaluateConfig": "bigpaint.stats.evaluate",
    "Evaluation": "bigpaint.stats.evaluate",
    "evaluate": "bigpaint.stats.evaluate",
    "minmax": "bigpaint.stats.onepoint",
    "order_statistics": "bigpaint.stats.onepoint",
    "pixel_pdf": "bigpaint.stats.onepoint",
    "quantiles": "bigpaint.stats.onepoint",
    "subvolume_means": "bigpaint.stats.onepoint",
    "top_fraction_thresholds": "bigpaint.stats.onepoint",
    "peak_counts": "bigpaint.stats.peaks",
    "compare_spectra": "bigpaint.stats.power",
    "cross_correlation": "bigpaint.stats.power",
    "power_spectrum": "bigpaint.stats.power",
    "stochasticity": "bigpaint.stats.power",
    "transfer_function": "bigpaint.stats.power",
    "bispectrum_report": "bigpaint.stats.report",
    "onepoint_report": "bigpaint.stats.report",
    "power_report": "bigpaint.stats.report",
    "read_table": "bigpaint.stats.tables",
    "write_table": "bigpaint.stats.tables",
    "Thresholds": "bigpaint.stats.verdict",
    "Verdict": "bigpaint.stats.verdict",
    "judge": "bigpaint.stats.verdict",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'bigpaint.stats' has no attribute {name!r}")


def _same_name(name: str) -> property:
    """The package attribute of a function that shares its module's name: always the
    function. The import system binds the submodule to the package when it first loads it;
    that binding is ignored, so the name stays the function's and the module loads lazily."""

    def get(self: types.ModuleType) -> Any:
        return getattr(import_module(f"{__name__}.{name}"), name)

    def ignore(self: types.ModuleType, value: Any) -> None:
        pass

    return property(get, ignore)


class _Stats(types.ModuleType):
    bispectrum = _same_name("bispectrum")
    dice = _same_name("dice")


sys.modules[__name__].__class__ = _Stats


__all__ = [
    "BiasModel",
    "EvaluateConfig",
    "Evaluation",
    "Thresholds",
    "Verdict",
    "bias_operators",
    "bispectrum",
    "bispectrum_equilateral",
    "bispectrum_report",
    "choose_smoothing",
    "compare_spectra",
    "cross_correlation",
    "dice",
    "evaluate",
    "fit_bias",
    "judge",
    "kbins",
    "minmax",
    "onepoint_report",
    "order_statistics",
    "paint_bias",
    "peak_counts",
    "pixel_pdf",
    "power_report",
    "power_spectrum",
    "quantiles",
    "read_table",
    "stochasticity",
    "subvolume_means",
    "top_fraction_thresholds",
    "transfer_function",
    "write_bias_operators",
    "write_table",
]
