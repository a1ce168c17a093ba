"""The one typed spec of a segmentation job, read by every front end.

:class:`SegmentSpec` is what to segment and how: ``bigpaint segment``'s flags and YAML file
(:class:`SegmentConfig`, the spec plus its ``cluster``) and a pipeline's ``segment`` stage
both become one, and :func:`run_segment` runs it through
:func:`bigpaint.segment.job.segment_field`. A pipeline stage gives the spec without
``output``, ``workdir``, ``overwrite`` and ``labels``, which the pipeline sets.

:meth:`SegmentSpec.params` is the one place where the job's keys become the engine's
:class:`bigpaint.segment.engine.SegmentParams`: ``trajectories`` becomes the ladder of
trajectory thresholds (:func:`bigpaint.segment.threshold.trajectory_ladder`), and with a
calibration the keys the spec sets explicitly must agree with the calibration's, which
brings the others.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from bigpaint.config import BlockEdges, ClusterConfig, LocalClusterConfig
from bigpaint.segment.engine.params import DEFAULT_MAX_FLOOD_GIB, SegmentParams

if TYPE_CHECKING:
    import pyarrow as pa

    from bigpaint.segment.calibration import Calibration

__all__ = ["SegmentConfig", "SegmentSpec", "run_segment"]


class SegmentSpec(BaseModel):
    """One segmentation job (see :func:`bigpaint.segment.job.segment_field` and
    :class:`bigpaint.segment.engine.SegmentParams` for each key's meaning).

    Attributes
    ----------
    distance, output : str
        The distance-map Field and the Parquet catalogue to write.
    calibration : str, optional
        Adaptive-threshold calibration: a JSON file, a painter directory that ships one, or
        ``pretrained:NAME``. It brings the segmentation keys it was made with; keys set here
        must agree with them.
    threshold, marker_threshold, h : float
        Foreground and marker thresholds, merge depth by dynamics (distance units).
    min_distance : int
        Marker half-width in voxels.
    sigma, truncate : float
        Gaussian smoothing of the marker map in voxels, and its truncation in standard
        deviations.
    connectivity : {1, 2, 3}
    trajectories : int
        Trajectory thresholds recorded, evenly from ``threshold`` to 1 (0: none; a
        calibration brings its own).
    labels : str, optional
        Also write the region labels as a Field here.
    rho_bar : float, optional
        Mean density in (Msun/h)/(Mpc/h)^3 (default: from the Field's cosmology).
    chunks : tuple of int, optional
        Blocks in voxels (one integer is the edge on every axis).
    workdir : str, optional
        Where the resumable scratch goes (default: next to ``output``).
    max_flood_gib : float
        Memory budget of flooding one connected component, GiB.
    overwrite : bool
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    distance: str
    output: str
    calibration: str | None = None
    threshold: float = 0.0
    min_distance: int = Field(2, ge=1)
    marker_threshold: float | None = None
    sigma: float = Field(0.0, ge=0)
    truncate: float = Field(4.0, gt=0)
    connectivity: int = Field(1, ge=1, le=3)
    h: float = Field(0.0, ge=0)
    trajectories: int = Field(0, ge=0)
    labels: str | None = None
    rho_bar: float | None = Field(None, gt=0)
    chunks: BlockEdges = None
    workdir: str | None = None
    max_flood_gib: float = Field(DEFAULT_MAX_FLOOD_GIB, gt=0)
    overwrite: bool = False

    def params(self, calibration: Calibration | None = None) -> SegmentParams:
        """The engine's parameters of this job (one-line ConfigError for thresholds outside
        a distance map's range or a trajectory ladder that cannot be).

        Parameters
        ----------
        calibration : Calibration, optional
            ``self.calibration`` resolved (:func:`bigpaint.segment.resolve_calibration`):
            its parameters under the keys this spec sets explicitly.
        """
        from bigpaint.segment.job import params_with_calibration
        from bigpaint.segment.threshold import check_thresholds, trajectory_ladder

        check_thresholds(self.threshold, self.marker_threshold)
        params = SegmentParams(
            threshold=self.threshold,
            min_distance=self.min_distance,
            marker_threshold=self.marker_threshold,
            sigma=self.sigma,
            truncate=self.truncate,
            connectivity=self.connectivity,
            trajectory_thresholds=trajectory_ladder(self.threshold, self.trajectories),
            h=self.h,
        )
        if calibration is None:
            return params
        given = {
            f.name: getattr(params, f.name)
            for f in fields(params)
            if f.name in self.model_fields_set
        }
        return params_with_calibration(calibration, given)


class SegmentConfig(SegmentSpec):
    """``bigpaint segment --config FILE``: a :class:`SegmentSpec` and the cluster to run it on.

    Attributes
    ----------
    cluster : cluster config
        ``kind: local | slurm | local-cuda`` (as ``--cluster`` files).
    """

    cluster: ClusterConfig = Field(default_factory=LocalClusterConfig)

    def spec(self) -> SegmentSpec:
        """The job without the cluster (the keys the file and flags set stay set)."""
        data = self.model_dump(exclude={"cluster"})
        return SegmentSpec.model_validate({k: data[k] for k in self.model_fields_set - {"cluster"}})


def run_segment(
    spec: SegmentSpec, *, calibration: Calibration | None = None, progress: bool = False
) -> pa.Table:
    """Segment ``spec.distance`` into the catalogue ``spec.output`` (what ``bigpaint
    segment`` and a pipeline's ``segment`` stage call).

    Parameters
    ----------
    spec : SegmentSpec
    calibration : Calibration, optional
        ``spec.calibration`` resolved already (default: resolved here).
    progress : bool
        Show progress bars.

    Returns
    -------
    pyarrow.Table
        The catalogue written.
    """
    from bigpaint.segment.calibration import resolve_calibration
    from bigpaint.segment.job import segment_field

    if calibration is None and spec.calibration is not None:
        calibration = resolve_calibration(spec.calibration)
    return segment_field(
        spec.distance,
        spec.output,
        spec.params(calibration),
        # the path, so that the output is checked apart from it; a resolved calibration
        # without one (given in memory) is used as it is
        calibration=spec.calibration if spec.calibration is not None else calibration,
        labels=spec.labels,
        rho_bar=spec.rho_bar,
        chunks=spec.chunks,
        overwrite=spec.overwrite,
        workdir=spec.workdir,
        max_flood_gib=spec.max_flood_gib,
        progress=progress,
    )
