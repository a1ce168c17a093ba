"""What a segmentation is asked for and what it returns: parameters, result, the run's job.

:class:`SegmentParams` are the user's parameters (thresholds, marker spacing, smoothing,
connectivity, trajectory thresholds, merging by dynamics), :class:`Segmentation` the regions
a run returns, and :class:`Job` what every phase of one run shares: the map's reader, the
block plan, the outputs, the scratch and the scheduler.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bigpaint.blockwise import BlockPlan
from bigpaint.context import marker_context
from bigpaint.errors import ConfigError
from bigpaint.segment.components import check_connectivity
from bigpaint.segment.dynamics import check_h
from bigpaint.segment.markers import check_marker_params

__all__ = [
    "DEFAULT_MAX_FLOOD_GIB",
    "FLOOD_BYTES_PER_VOXEL",
    "Job",
    "SegmentParams",
    "Segmentation",
]

#: Memory of flooding a spanning component per voxel of its bounding box, bytes: the map
#: (float64 at most), the periodic labelling, mask, markers, flood ranks, index order and
#: output labels (int64 each), and scikit-image's queue and output. Measured with
#: tracemalloc: 43-46 bytes per voxel for a 306k-voxel component wrapping the box (float32
#: and float64 maps); 64 leaves headroom.
FLOOD_BYTES_PER_VOXEL = 64
#: Default budget of one flood, GiB (a component of the 512^3 benchmark floods ~0.15 MVoxel).
DEFAULT_MAX_FLOOD_GIB = 4.0


@dataclass(frozen=True)
class SegmentParams:
    """How to turn a distance map into regions.

    Attributes
    ----------
    threshold : float
        Foreground is ``distance > threshold`` (distance units; 0 for true maps).
    min_distance : int
        Markers dominate the periodic cube of this half-width, in voxels.
    marker_threshold : float or None
        Markers need a (smoothed) distance above this; None: ``threshold``.
    sigma : float
        Periodic Gaussian smoothing of the map used to find markers, in voxels (0: none);
        flooding always uses the raw map.
    truncate : float
        Gaussian truncation in standard deviations.
    connectivity : {1, 2, 3}
        Voxel neighbourhood of components and flooding (1: 6 faces, 3: 26 neighbours).
    trajectory_thresholds : tuple of float
        Increasing distance thresholds at which each region's voxels and summed distance are
        recorded (the adaptive-threshold trajectories); empty: none.
    h : float
        Merge basins by dynamics (:mod:`bigpaint.segment.dynamics`): a region whose peak lies
        less than ``h`` above its highest saddle to a higher region joins it, so each region
        holds one maximum of dynamics ``>= h`` (the h-maxima of the reference pipeline).
        Distance units; 0: no merging (one region per marker).
    """

    threshold: float = 0.0
    min_distance: int = 2
    marker_threshold: float | None = None
    sigma: float = 0.0
    truncate: float = 4.0
    connectivity: int = 1
    trajectory_thresholds: tuple[float, ...] = ()
    h: float = 0.0

    @property
    def peak_threshold(self) -> float:
        return self.threshold if self.marker_threshold is None else float(self.marker_threshold)

    @property
    def context(self) -> tuple[int, ...]:
        """Periodic context a block needs for its markers (from :mod:`bigpaint.context`)."""
        return marker_context(self.min_distance, (self.sigma,) * 3, self.truncate)

    def check(self, shape: Sequence[int]) -> None:
        """Refuse parameters that cannot work on a box of this shape (one-line errors)."""
        check_connectivity(self.connectivity)
        check_marker_params(self.min_distance, self.sigma, shape)
        check_h(self.h)
        for name in ("threshold", "truncate"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be finite, got {getattr(self, name)!r}")
        if self.truncate <= 0:
            raise ConfigError(f"truncate must be > 0 standard deviations, got {self.truncate}")
        if not math.isfinite(self.peak_threshold):
            raise ConfigError(f"marker_threshold must be finite, got {self.marker_threshold!r}")
        t = np.asarray(self.trajectory_thresholds, dtype=np.float64)
        if t.size and (not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0)):
            raise ConfigError(
                "trajectory_thresholds must be finite and strictly increasing, e.g. "
                "numpy.linspace(0, 1, 41)"
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "min_distance": self.min_distance,
            "marker_threshold": self.peak_threshold,
            "sigma": self.sigma,
            "truncate": self.truncate,
            "connectivity": self.connectivity,
            "trajectory_thresholds": list(self.trajectory_thresholds),
            "h": self.h,
        }


@dataclass
class Segmentation:
    """Regions of a segmented distance map, in voxel units.

    Attributes
    ----------
    shape : tuple of 3 int
        Box shape in voxels.
    params : SegmentParams
    id : numpy.ndarray of int64
        Region label: ``1 +`` the global linear index of its marker voxel (of its highest
        basin's marker, for a region merged by dynamics).
    component : numpy.ndarray of int64
        Name of the connected foreground component holding the region (``1 +`` its smallest
        voxel index).
    volume : numpy.ndarray of int64
        Voxels in the region (cells).
    centre : numpy.ndarray of float64, (n, 3)
        Mean voxel position in voxel units, periodic (minimum image around the marker; for
        a region merged by dynamics, around each basin's marker, then moved to the region's:
        the same while regions span less than half the box), in ``[0, n)`` per axis; voxel
        ``i`` spans ``[i, i + 1)``, so its centre is ``i + 0.5``.
    marker : numpy.ndarray of int64, (n, 3)
        Marker voxel coordinates.
    peak_distance, mean_distance : numpy.ndarray of float64
        Maximum and mean of the distance map over the region.
    trajectory_volume : numpy.ndarray of int64, (n, T)
        Voxels of the region with ``distance > trajectory_thresholds[j]``.
    trajectory_sum : numpy.ndarray of float64, (n, T)
        Sum of the distance over those voxels.
    stats : dict
        Diagnostics: markers, components, spanning components, largest component and
        largest flooded box (voxels), foreground voxels no marker reached, basins merged
        into others by dynamics, seconds per pass.
    """

    shape: tuple[int, int, int]
    params: SegmentParams
    id: np.ndarray
    component: np.ndarray
    volume: np.ndarray
    centre: np.ndarray
    marker: np.ndarray
    peak_distance: np.ndarray
    mean_distance: np.ndarray
    trajectory_volume: np.ndarray
    trajectory_sum: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.id.size)


@dataclass(frozen=True)
class Job:
    """What every phase of one segmentation run shares (picklable: it enters task graphs
    in parts, as data nodes).

    Attributes
    ----------
    source : FieldSource, zarr.Array or numpy.ndarray
        Reader of the distance map.
    plan : BlockPlan
        The blocks, with the periodic context their markers need.
    params : SegmentParams
    faces : str or list of numpy.ndarray
        The seam face arrays: a Zarr group's path, or three arrays in memory.
    labels, components : FieldWriter, numpy.ndarray or None
        The outputs.
    scratch : str or None
        The resumable scratch directory.
    scheduler : {None, "threads"}
        ``"threads"`` for in-memory data (local threads), None for the current client.
    progress : bool
        Progress bars for the block passes.
    """

    source: Any
    plan: BlockPlan
    params: SegmentParams
    faces: Any
    labels: Any
    components: Any
    scratch: str | None
    scheduler: str | None
    progress: bool

    @property
    def blocks(self) -> list[tuple[int, ...]]:
        """Block indices in the plan's order."""
        return [tuple(int(i) for i in b) for b in self.plan.blocks()]

    @property
    def record_width(self) -> int:
        """Trajectory histogram columns of this run's records."""
        return len(self.params.trajectory_thresholds) + 1
