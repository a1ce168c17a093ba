"""Statistics that judge a field: power and cross spectra, bispectrum, one-point and morphology."""

from bigpaint.stats.bins import kbins
from bigpaint.stats.bispectrum import bispectrum, bispectrum_equilateral
from bigpaint.stats.dice import dice
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

__all__ = [
    "bispectrum",
    "bispectrum_equilateral",
    "bispectrum_report",
    "compare_spectra",
    "cross_correlation",
    "dice",
    "kbins",
    "minmax",
    "onepoint_report",
    "order_statistics",
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
    "write_table",
]
