"""Statistics that judge a field: power and cross spectra, bispectrum, one-point and morphology,
and the bias baselines a painting is judged against."""

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
