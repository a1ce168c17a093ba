"""``bigpaint segment``, ``bigpaint calibrate-threshold`` and ``bigpaint hmf``.

Each parses its options and calls one function of :mod:`bigpaint.segment`: segmenting a
distance-map Field into a Parquet protohalo catalogue (on the configured cluster; options
and a ``--config`` file become one :class:`bigpaint.segment.spec.SegmentSpec`, as a
pipeline's ``segment`` stage does),
calibrating the adaptive threshold against a truth catalogue, and the halo mass function of
a catalogue (with a truth comparison, CSV table and PNG plot).
"""

from __future__ import annotations

from typing import Any

import click

from bigpaint.cli._common import cluster_options, parse_chunks

__all__ = ["register"]


#: segment's options and their SegmentSpec keys (where the names differ).
_KEYS = {"merge_h": "h"}


@click.command()
@click.argument("paths", nargs=-1, metavar="[DISTANCE OUTPUT]")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML segment config (distance, output, calibration, threshold, ..., cluster); "
    "options typed on the command line override it.",
)
@click.option(
    "--calibration",
    default=None,
    help="Adaptive-threshold calibration to apply: a JSON file from calibrate-threshold, a "
    "painter directory that ships one, or pretrained:NAME. It brings the segmentation "
    "options it was made with.",
)
@click.option(
    "--threshold", type=float, default=0.0, show_default=True, help="Foreground: distance > this."
)
@click.option(
    "--min-distance",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Markers dominate the periodic cube of this half-width (voxels).",
)
@click.option(
    "--marker-threshold",
    type=float,
    default=None,
    help="Markers need a (smoothed) distance above this (default: --threshold).",
)
@click.option(
    "--sigma",
    type=float,
    default=0.0,
    show_default=True,
    help="Gaussian smoothing of the marker map in voxels.",
)
@click.option(
    "--truncate",
    type=click.FloatRange(min=0, min_open=True),
    default=4.0,
    show_default=True,
    help="Gaussian truncation of the marker smoothing in standard deviations.",
)
@click.option(
    "--connectivity",
    type=click.IntRange(1, 3),
    default=1,
    show_default=True,
    help="Neighbours: 1 faces, 2 +edges, 3 +corners.",
)
@click.option(
    "--merge-h",
    "merge_h",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Merge basins by dynamics: a maximum less than this above its saddle to a higher "
    "one joins its region (h-maxima; e.g. 0.5 on a normalized map). 0: one region per marker.",
)
@click.option(
    "--trajectories",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Record adaptive-threshold trajectories at N thresholds from --threshold to 1 "
    "(needed to calibrate; a calibration brings its own).",
)
@click.option("--labels", default=None, help="Also write the region labels as a Field here.")
@click.option(
    "--rho-bar",
    type=float,
    default=None,
    help="Mean density in (Msun/h)/(Mpc/h)^3 (default: Omega_m * rho_crit of the Field).",
)
@click.option("--chunks", default=None, help="Blocks: N or NX,NY,NZ voxels (default: the Field's).")
@click.option(
    "--workdir",
    default=None,
    help="Where the resumable scratch goes, visible to all workers (default: next to OUTPUT).",
)
@click.option(
    "--max-flood-gib",
    type=click.FloatRange(min=0, min_open=True),
    default=4.0,
    show_default=True,
    help="Memory budget of flooding one connected component (GiB); a percolating "
    "foreground above it is refused before flooding.",
)
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@cluster_options
def segment(
    paths: tuple[str, ...],
    config_file: str | None,
    calibration: str | None,
    threshold: float,
    min_distance: int,
    marker_threshold: float | None,
    sigma: float,
    truncate: float,
    connectivity: int,
    merge_h: float,
    trajectories: int,
    labels: str | None,
    rho_bar: float | None,
    chunks: str | None,
    workdir: str | None,
    max_flood_gib: float,
    overwrite: bool,
    cluster_file: str | None,
    workers: int | None,
) -> None:
    """Segment the distance map DISTANCE into the protohalo catalogue OUTPUT (Parquet).

    Resumable: running the same command again after an interruption skips the finished
    blocks (kept in a scratch directory next to OUTPUT, or under --workdir).

    \b
    bigpaint segment dist.zarr protohalos.parquet --min-distance 2 --merge-h 0.5
    bigpaint segment --config segment.yaml
    """
    from bigpaint.cli._common import cluster_config
    from bigpaint.cluster import connect
    from bigpaint.config import load_config, parse_config
    from bigpaint.errors import ConfigError
    from bigpaint.field import field_meta, open_field
    from bigpaint.outputs import check_scratch_home, writing
    from bigpaint.segment.calibration import resolve_calibration
    from bigpaint.segment.job import resolve_rho_bar
    from bigpaint.segment.spec import SegmentConfig, run_segment

    if len(paths) not in (0, 2):
        raise ConfigError(f"give DISTANCE and OUTPUT (or neither, with --config), got {len(paths)}")
    _check_options(rho_bar=rho_bar, workdir=workdir)
    ctx = click.get_current_context()
    typed: dict[str, Any] = {
        _KEYS.get(name, name): value
        for name, value in ctx.params.items()
        if name not in ("paths", "config_file", "cluster_file", "workers", "chunks")
        and ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    }
    if chunks is not None:
        typed["chunks"] = parse_chunks(chunks)
    if paths:
        typed.update(distance=paths[0], output=paths[1])
    if config_file is not None:
        cfg = load_config(SegmentConfig, config_file, typed)
    elif not paths:
        raise ConfigError("give DISTANCE OUTPUT, or --config FILE")
    else:
        cfg = parse_config(SegmentConfig, typed, "segment options")
    if cluster_file is not None or workers is not None or config_file is None:
        cluster = cluster_config(cluster_file, workers)
    else:
        cluster = cfg.cluster
    spec = cfg.spec()
    cal = resolve_calibration(spec.calibration) if spec.calibration else None
    params = spec.params(cal)
    # refuse bad arguments and inputs before starting a cluster
    stores = {"input": spec.distance, "calibration": spec.calibration}
    outputs = {"output": spec.output, "--labels": spec.labels}
    check_scratch_home("--workdir", spec.workdir, {**stores, **outputs})
    src = open_field(spec.distance)
    meta = field_meta(src)
    resolve_rho_bar(meta, spec.rho_bar, spec.distance)
    shape = src[src.attrs["bigpaint_variable"]].shape
    params.check(shape)
    if cal is not None:
        cal.check_compatible(meta.cell_size(shape))
        cal.check_map(dict(src.attrs), spec.distance)
    with writing(outputs, stores), connect(cluster):
        table = run_segment(spec, calibration=cal, progress=True)
    click.echo(f"wrote {spec.output}: {table.num_rows} protohalos")


@click.command("calibrate-threshold")
@click.argument("catalog")
@click.argument("truth")
@click.argument("output")
@click.option("--truth-column", default="mass", show_default=True, help="Truth mass column.")
@click.option("--volume-bins", type=click.IntRange(min=2), default=8, show_default=True)
@click.option("--distance-bins", type=click.IntRange(min=2), default=40, show_default=True)
@click.option(
    "--segments", type=click.IntRange(min=1), default=2, show_default=True, help="Fit pieces."
)
@click.option(
    "--min-count",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Use volume bins with at least this many truth objects.",
)
def calibrate_threshold(
    catalog: str,
    truth: str,
    output: str,
    truth_column: str,
    volume_bins: int,
    distance_bins: int,
    segments: int,
    min_count: int,
) -> None:
    """Fit the adaptive threshold of CATALOG (segmented with --trajectories) to TRUTH; save OUTPUT."""
    from bigpaint.segment.catalog import calibrate_catalog
    from bigpaint.segment.threshold import check_calibration_bins

    check_calibration_bins(volume_bins, distance_bins, segments, min_count)

    cal = calibrate_catalog(
        catalog,
        truth,
        output,
        truth_column=truth_column,
        volume_bins=volume_bins,
        distance_bins=distance_bins,
        segments=segments,
        min_count=min_count,
    )
    click.echo(f"wrote {output}: {len(cal.points)} calibrated bins, {len(cal.log10_volume)} knots")


@click.command()
@click.argument("catalog")
@click.option(
    "--truth",
    default=None,
    help="Truth catalogue (Parquet) to compare with: the connected truth "
    "(protohalos_connected.parquet of simulate, the fair reference for a segmented map), the "
    "FoF catalogue (halos.parquet) or any catalogue with a mass column.",
)
@click.option(
    "--truth-kind",
    type=click.Choice(["auto", "connected", "fof"]),
    default="auto",
    show_default=True,
    help="The kind --truth must be (auto: read from its metadata).",
)
@click.option("--bins", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--out", default=None, help="Write OUT.csv and OUT.png.")
@click.option("--column", default="mass", show_default=True, help="Mass column (Msun/h).")
@click.option("--truth-column", default="mass", show_default=True)
@click.option("--box", type=float, default=None, help="Box side in Mpc/h if not recorded.")
@click.option(
    "--min-mass", type=float, default=0.0, help="Drop haloes lighter than this (Msun/h) first."
)
@click.option(
    "--min-count",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Bins with fewer truth haloes are not judged.",
)
def hmf(
    catalog: str,
    truth: str | None,
    truth_kind: str,
    bins: int,
    out: str | None,
    column: str,
    truth_column: str,
    box: float | None,
    min_mass: float,
    min_count: int,
) -> None:
    """Halo mass function of CATALOG, with Poisson errors (and the ratio to --truth).

    Every bin carries its count N and the count N(>M) of haloes above its lower edge, each
    with its Poisson error sqrt(N); masses in Msun/h, densities in (Mpc/h)^-3.
    """
    from bigpaint.segment.hmf_truth import hmf_report

    _check_options(box=box, min_mass=min_mass)

    ds, paths = hmf_report(
        catalog,
        truth=truth,
        out=out,
        bins=bins,
        column=column,
        truth_column=truth_column,
        box_size=box,
        min_count=min_count,
        min_mass=min_mass,
        truth_kind=truth_kind,
    )
    compare = "ratio" in ds
    head = f"{'M_lo [Msun/h]':>14}{'M_hi':>11}{'N':>7}{'±':>6}{'dn/dlog10M':>12}{'±':>10}"
    head += f"{'N(>M)':>7}{'±':>6}"
    if compare:
        head += f"{'N_truth':>8}{'±':>6}{'ratio':>7}{'±':>7}"
        head += f"{'N_t(>M)':>8}{'ratio(>M)':>10}{'±':>7}"
    click.echo(head)
    for i in range(ds.sizes["bin"]):
        line = (
            f"{ds.m_lo.values[i]:>14.3e}{ds.m_hi.values[i]:>11.3e}"
            f"{int(ds['count'].values[i]):>7d}{ds.count_err.values[i]:>6.1f}"
            f"{ds.dn_dlog10m.values[i]:>12.3e}{ds.dn_dlog10m_err.values[i]:>10.2e}"
            f"{int(ds.count_above.values[i]):>7d}{ds.count_above_err.values[i]:>6.1f}"
        )
        if compare:
            mark = "" if ds.well_sampled.values[i] else "  (few)"
            mark += "" if ds.truth_complete.values[i] else "  (truth incomplete)"
            line += (
                f"{int(ds.count_truth.values[i]):>8d}{ds.count_err_truth.values[i]:>6.1f}"
                f"{ds.ratio.values[i]:>7.3f}{ds.ratio_err.values[i]:>7.3f}"
                f"{int(ds.count_above_truth.values[i]):>8d}{ds.ratio_above.values[i]:>10.3f}"
                f"{ds.ratio_above_err.values[i]:>7.3f}{mark}"
            )
        click.echo(line)
    if compare:
        kind = {"connected": "connected truth", "fof": "FoF truth"}.get(ds.attrs["truth_kind"])
        if kind:
            click.echo(f"truth: {kind} ({truth})")
        complete = ds.attrs["truth_complete_above"]
        where = f" and M_lo >= {complete:.3e} Msun/h (truth complete)" if complete > 0 else ""
        click.echo(
            f"max |ratio - 1| over bins with >= {min_count} truth haloes{where}: "
            f"{ds.attrs['max_abs_deviation']:.3f}"
        )
    for p in paths:
        click.echo(f"wrote {p}")


def _check_options(
    *,
    rho_bar: float | None = None,
    workdir: str | None = None,
    box: float | None = None,
    min_mass: float | None = None,
) -> None:
    """Refuse option values out of range (one-line errors), before any work."""
    import math

    from bigpaint.errors import ConfigError, check_writable

    if rho_bar is not None and not (math.isfinite(rho_bar) and rho_bar > 0):
        raise ConfigError(
            f"--rho-bar must be a positive mean density in (Msun/h)/(Mpc/h)^3, got {rho_bar:g}; "
            "every mass is rho_bar times a volume"
        )
    if box is not None and not (math.isfinite(box) and box > 0):
        raise ConfigError(f"--box must be a positive box side in Mpc/h, got {box}")
    if min_mass is not None and not math.isfinite(min_mass):
        raise ConfigError(
            f"--min-mass must be a finite mass in Msun/h, got {min_mass} (it would drop every "
            "halo or none)"
        )
    if workdir is not None:
        check_writable(workdir, "--workdir")


def register(group: click.Group) -> None:
    group.add_command(segment)
    group.add_command(calibrate_threshold)
    group.add_command(hmf)
