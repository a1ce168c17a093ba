"""Chunked painting: trained painters applied block by block to Fields of any size.

:class:`PaintSpec` is the one typed spec of a paint job and :func:`paint` runs it
(``bigpaint paint`` and a pipeline's ``paint`` stage); :func:`paint_field` is its keyword
form for library users. The plan (:mod:`bigpaint.paint.plan`) checks the checkpoint
against the input before any work, the workers (:mod:`bigpaint.paint.workers`) keep one model per process and sub-tile under a
memory budget, 2-D painters run on projected slabs (:mod:`bigpaint.paint.slabs`), and
:mod:`bigpaint.paint.seams` measures the seam error of U-Nets against the margin.
"""

from bigpaint.paint.config import PaintConfig, PaintSpec, SlabConfig
from bigpaint.paint.engine import PaintBlock, paint, paint_field, paint_spec, paint_window
from bigpaint.paint.plan import (
    CheckpointInfo,
    PaintPlan,
    SlabSpec,
    checkpoint_hash,
    default_margin,
    plan_paint,
    plan_spec,
    read_checkpoint_info,
)
from bigpaint.paint.seams import periodic_paint, periodic_twin, seam_curve, seam_error
from bigpaint.paint.slabs import ProjectedSource, position_noise, project_slabs
from bigpaint.paint.workers import PainterPlugin, get_painter, paint_images, resolve_device

__all__ = [
    "CheckpointInfo",
    "PaintBlock",
    "PaintConfig",
    "PaintPlan",
    "PaintSpec",
    "PainterPlugin",
    "ProjectedSource",
    "SlabConfig",
    "SlabSpec",
    "checkpoint_hash",
    "default_margin",
    "get_painter",
    "paint",
    "paint_field",
    "paint_images",
    "paint_spec",
    "paint_window",
    "periodic_paint",
    "periodic_twin",
    "plan_paint",
    "plan_spec",
    "position_noise",
    "project_slabs",
    "read_checkpoint_info",
    "resolve_device",
    "seam_curve",
    "seam_error",
]
