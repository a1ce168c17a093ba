"""Protohalo catalogues from distance maps (the protohalo paper's sections 2 and 4).

Markers (periodic local maxima) -> connected components merged across chunk seams and the
periodic wrap -> a watershed per component, equal to one periodic watershed of the whole
box -> adaptive threshold -> Parquet catalogue -> halo mass function.
"""

from bigpaint.segment.calibration import Calibration, load_calibration, resolve_calibration
from bigpaint.segment.catalog import (
    RHO_CRIT,
    build_catalog,
    calibrate_catalog,
    catalog_meta,
    mean_density,
    read_catalog,
    write_catalog,
)
from bigpaint.segment.components import label_periodic, periodic_extent, union_find
from bigpaint.segment.engine import Segmentation, SegmentParams, segment
from bigpaint.segment.errors import NotADistanceMapError
from bigpaint.segment.hmf import compare_mass_functions, mass_function, plot_mass_function
from bigpaint.segment.hmf_truth import hmf_report
from bigpaint.segment.job import segment_field
from bigpaint.segment.markers import find_markers, marker_image
from bigpaint.segment.threshold import apply_calibration, calibrate, trajectory_curves
from bigpaint.segment.watershed import flood, flood_ranks, watershed_periodic

__all__ = [
    "RHO_CRIT",
    "Calibration",
    "NotADistanceMapError",
    "SegmentParams",
    "Segmentation",
    "apply_calibration",
    "build_catalog",
    "calibrate",
    "calibrate_catalog",
    "catalog_meta",
    "compare_mass_functions",
    "find_markers",
    "flood",
    "flood_ranks",
    "hmf_report",
    "label_periodic",
    "load_calibration",
    "marker_image",
    "mass_function",
    "mean_density",
    "periodic_extent",
    "plot_mass_function",
    "read_catalog",
    "resolve_calibration",
    "segment",
    "segment_field",
    "trajectory_curves",
    "union_find",
    "watershed_periodic",
    "write_catalog",
]
