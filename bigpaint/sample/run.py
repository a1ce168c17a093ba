"""``bigpaint sample``: a painted count Field becomes a halo catalogue, block by block.

The job checks its inputs first (a count Field with its mass bins; an optional finer
density Field for sub-voxel positions; an optional 3-channel velocity Field in km/s), then
samples each block of the painted grid (:mod:`bigpaint.sample.block`) as a dask task and
writes it as one Parquet part in ``<OUT>.parts/`` (a directory bigpaint owns, with the job's
token). A killed run keeps its finished parts; running the same command again samples only
the missing blocks. The parts are then merged slab by slab into ``OUT`` (written to a
temporary name and renamed), in the order (voxel, bin, rank in the voxel), and ``id`` is
the row number. The draws and that order depend on the seed and the voxel alone, so the
catalogue is the same for any ``--chunks`` (see :mod:`bigpaint.sample.streams`).

Cells with a negative expected count (a painter may undershoot zero) are sampled as zero;
how many there were, and their summed expectation, are recorded in the catalogue's
metadata (``negative_cells``, ``negative_sum``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bigpaint.axes import int3
from bigpaint.catalog_units import HALO_UNITS, with_units
from bigpaint.chunked.grid import BlockGrid
from bigpaint.errors import (
    BigpaintError,
    ConfigError,
    FieldExistsError,
    MetadataError,
    NonFiniteError,
    ShapeError,
)
from bigpaint.field import data_var, field_meta, job_token, open_field, zarr_array
from bigpaint.field_meta import FieldMeta
from bigpaint.mass_bins import mass_bins_of
from bigpaint.outputs import canonical, owned_dir, remove_owned, writing
from bigpaint.sample.block import BlockInputs, sample_block
from bigpaint.sample.masses import bin_masses
from bigpaint.sample.streams import seed_key
from bigpaint.store import stored_array

__all__ = ["SamplePlan", "SampleResult", "plan_sample", "run_sample", "sample_catalogue"]

_JOB_FILE = "job.json"
_COLUMNS = ("id", "bin", "mass", "x", "y", "z", "vx", "vy", "vz")


@dataclass(frozen=True)
class SampleResult:
    """What a sampling run wrote: the catalogue, its size, and the blocks it sampled now."""

    path: Path
    n_halos: int
    blocks_sampled: int
    blocks_total: int


@dataclass(frozen=True)
class _Source:
    url: str
    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class SamplePlan:
    """A checked sampling job: its inputs, blocks, per-block constants and job token."""

    painted: str
    output: str
    seed: int
    meta: FieldMeta
    edges: np.ndarray
    masses: str
    blocks: BlockGrid
    inputs: BlockInputs
    sources: dict[str, _Source | None]
    urls: dict[str, str | None]
    job: str


def _open(url: str) -> tuple[Any, FieldMeta]:
    ds = open_field(url)
    return ds, field_meta(ds)


def _check_counts(ds: Any, meta: FieldMeta, url: str) -> tuple[np.ndarray, int]:
    if meta.kind != "halo_count":
        raise MetadataError(
            f"{url} is a {meta.kind!r} Field; sample takes painted halo counts (kind "
            "'halo_count', expected halos per cell): give the painted count Field"
        )
    var = data_var(ds)
    n_channels = var.shape[0] if var.ndim == 4 else 1
    edges = mass_bins_of(meta, url)
    if edges is None or edges.size != n_channels + 1:
        have = "no mass bins" if edges is None else f"{edges.size} mass-bin edges"
        raise MetadataError(
            f"{url} records {have} for its {n_channels} channel(s); sample draws masses inside "
            f"each bin: record the {n_channels + 1} edges in Msun/h (provenance.mass_bins)"
        )
    return edges, n_channels


def _check_companion(
    ds: Any, meta: FieldMeta, url: str, what: str, painted: FieldMeta, shape: tuple[int, ...]
) -> None:
    if not np.allclose(meta.box_size, painted.box_size, rtol=1e-6):
        raise ShapeError(
            f"the {what} Field {url} has box {meta.box_size} Mpc/h, the painted Field "
            f"{painted.box_size}; give a {what} Field of the same box"
        )
    var = data_var(ds)
    if what == "density":
        grid = var.shape[-3:]
        ratio = grid[0] // shape[0]
        if (
            var.ndim != 3
            or ratio < 1
            or any(g != ratio * n for g, n in zip(grid, shape, strict=True))
        ):
            raise ShapeError(
                f"the density Field {url} has shape {var.shape}; sub-voxel positions need a "
                f"3-D grid a whole number of times finer than the painted {tuple(shape)}"
            )
    else:
        if var.ndim != 4 or var.shape[0] != 3 or meta.units != "km/s":
            raise ShapeError(
                f"the velocity Field {url} has shape {var.shape} in {meta.units!r}; give a "
                "Field of 3 channels (vx, vy, vz) in km/s"
            )


def _region(n_from: int, n_to: int, window: slice) -> slice:
    """The cells of an ``n_to`` grid covering ``window`` of an ``n_from`` grid, one spare
    cell each side where the grid allows."""
    lo = max(0, (window.start * n_to) // n_from - 1)
    hi = min(n_to, -(-(window.stop * n_to) // n_from) + 1)
    return slice(lo, hi)


def _part_path(parts: Path, index: Sequence[int]) -> Path:
    return parts / ("part-" + "-".join(str(int(i)) for i in index) + ".parquet")


def _sample_one(
    index: tuple[int, ...],
    window: tuple[slice, slice, slice],
    painted: _Source,
    density: _Source | None,
    velocity: _Source | None,
    inputs: BlockInputs,
    parts: str,
) -> int:
    """Sample one block and write its part (atomically); returns its number of halos."""
    import zarr

    def read(src: _Source, sl: tuple[slice, ...]) -> np.ndarray:
        group = zarr.open_group(store=src.url, mode="r", use_consolidated=False)
        return np.asarray(stored_array(group, src.name, src.url)[sl])

    lead = (slice(None),) if len(painted.shape) == 4 else ()
    expected = read(painted, (*lead, *window))
    if expected.ndim == 3:
        expected = expected[None]
    dens = None
    if density is not None:
        r = density.shape[-1] // painted.shape[-1]
        dens = read(density, tuple(slice(w.start * r, w.stop * r) for w in window))
    vel, origin, vshape = None, (0, 0, 0), None
    if velocity is not None:
        vshape = int3(velocity.shape[-3:], "the velocity grid")
        region = tuple(
            _region(n, m, w) for n, m, w in zip(painted.shape[-3:], vshape, window, strict=True)
        )
        vel = read(velocity, (slice(None), *region))
        origin = tuple(s.start for s in region)
    try:
        rows = sample_block(
            expected, window, inputs, density=dens, velocity=vel, velocity_origin=origin,
            velocity_shape=vshape,
        )  # fmt: skip
    except NonFiniteError as exc:
        raise NonFiniteError(f"{painted.url}: {exc}") from None
    neg = expected < 0
    meta = {
        b"negative_cells": str(int(neg.sum())).encode(),
        b"negative_sum": repr(float(expected[neg].sum())).encode(),
    }
    table = pa.table(rows).replace_schema_metadata(meta)
    path = _part_path(Path(parts), index)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return table.num_rows


def _merge(parts: Path, blocks: BlockGrid, tmp: Path, meta: dict[str, Any]) -> tuple[int, dict]:
    """Merge the parts slab by slab (block rows along x) into ``tmp``; the halo count and the
    summed negative-cell record."""
    writer = None
    offset, negative = 0, {"negative_cells": 0, "negative_sum": 0.0}
    try:
        for i in range(blocks.grid[0]):
            tables = []
            for j in range(blocks.grid[1]):
                for k in range(blocks.grid[2]):
                    t = pq.read_table(_part_path(parts, (i, j, k)))
                    extra = t.schema.metadata or {}
                    negative["negative_cells"] += int(extra.get(b"negative_cells", b"0"))
                    negative["negative_sum"] += float(extra.get(b"negative_sum", b"0"))
                    tables.append(t.replace_schema_metadata(None))
            slab = pa.concat_tables(tables)
            order = np.lexsort(
                (slab["rank"].to_numpy(), slab["bin"].to_numpy(), slab["voxel"].to_numpy())
            )
            slab = slab.take(pa.array(order))
            cols = {"id": pa.array(np.arange(offset, offset + slab.num_rows, dtype=np.int64))}
            cols.update({c: slab[c] for c in _COLUMNS[1:] if c in slab.column_names})
            out = with_units(pa.table(cols), HALO_UNITS)
            info = {**meta, **negative}
            out = out.replace_schema_metadata(
                {**out.schema.metadata, b"bigpaint": json.dumps(info, default=str).encode()}
            )
            if writer is None:
                writer = pq.ParquetWriter(str(tmp), out.schema)
            writer.write_table(out)
            offset += slab.num_rows
    finally:
        if writer is not None:
            writer.close()
    return offset, negative


def _str_or_none(url: str | os.PathLike[str] | None) -> str | None:
    return None if url is None else str(url)


def plan_sample(
    painted: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    seed: int,
    mass_function: str | float = "model",
    density: str | os.PathLike[str] | None = None,
    velocity: str | os.PathLike[str] | None = None,
    chunks: Any = None,
    overwrite: bool = False,
) -> SamplePlan:
    """Check the inputs of :func:`sample_catalogue` and plan its blocks, writing nothing
    (the same parameters; raises the one-line errors of bad input)."""
    painted, output = str(painted), str(output)
    if not output.endswith(".parquet"):
        raise ConfigError(f"the catalogue {output} must end in .parquet; give OUT.parquet")
    if Path(output).exists() and not overwrite:
        raise FieldExistsError(
            f"output {output} already exists; choose another path or pass --overwrite"
        )
    ds, meta = _open(painted)
    edges, n_channels = _check_counts(ds, meta, painted)
    var = data_var(ds)
    shape = int3(var.shape[-3:], "the painted grid")
    sources = {"density": density, "velocity": velocity}
    companions: dict[str, _Source | None] = {"density": None, "velocity": None}
    for what, url in sources.items():
        if url is not None:
            cds, cmeta = _open(str(url))
            _check_companion(cds, cmeta, str(url), what, meta, shape)
            cvar = data_var(cds)
            companions[what] = _Source(str(url), str(cvar.name), tuple(cvar.shape))
    masses = bin_masses(
        edges, mass_function, cosmology=meta.cosmology, redshift=meta.redshift, where=painted
    )
    layout = chunks if chunks is not None else zarr_array(ds).chunks[-3:]
    blocks = BlockGrid(shape, layout)
    keys = tuple(seed_key(seed, c) for c in range(n_channels))
    inputs = BlockInputs(shape, meta.box_size, keys, masses)
    job = job_token(
        operation="sample", painted=canonical(painted), stamp=ds.attrs.get("bigpaint_finished"),
        seed=int(seed), masses=masses.shape, chunks=blocks.chunks,
        density=canonical(density) if density else None,
        velocity=canonical(velocity) if velocity else None,
    )  # fmt: skip
    return SamplePlan(
        painted=painted, output=output, seed=int(seed), meta=meta, edges=edges,
        masses=masses.shape, blocks=blocks, inputs=inputs,
        sources={"painted": _Source(painted, str(var.name), tuple(var.shape)), **companions},
        urls={"PAINTED": painted, **{f"--{k}": _str_or_none(v) for k, v in sources.items()}},
        job=job,
    )  # fmt: skip


def run_sample(
    plan: SamplePlan, *, overwrite: bool = False, progress: bool = False
) -> SampleResult:
    """Carry out a checked :class:`SamplePlan` (see :func:`sample_catalogue`)."""
    from dask import delayed

    from bigpaint.progress import compute

    output, blocks, job = plan.output, plan.blocks, plan.job
    out = Path(output)
    parts = out.with_name(out.name + ".parts")
    with writing({"OUT": output, "parts": str(parts)}, plan.urls):
        if out.exists() and not overwrite:
            raise FieldExistsError(
                f"output {output} already exists; choose another path or pass --overwrite"
            )
        if parts.exists():
            recorded = (parts / _JOB_FILE).read_text() if (parts / _JOB_FILE).is_file() else ""
            if recorded.strip() != job:
                if not overwrite:
                    raise FieldExistsError(
                        f"{parts} holds parts of another sampling job (other inputs, seed or "
                        "chunks); pass --overwrite to start again"
                    )
                remove_owned(parts)
        owned_dir(parts, purpose="sampled catalogue parts")
        (parts / _JOB_FILE).write_text(job + "\n")
        todo = [b for b in blocks.blocks() if not _part_path(parts, b).is_file()]
        tasks = [
            delayed(_sample_one)(
                b,
                blocks.core(b),
                plan.sources["painted"],
                plan.sources["density"],
                plan.sources["velocity"],
                plan.inputs,
                str(parts),
                dask_key_name=f"sample-{job[:8]}-{'-'.join(map(str, b))}",
            )
            for b in todo
        ]
        try:
            if tasks:
                compute(*tasks, name="sample", progress=progress)
        except BigpaintError:  # bad data: a re-run would refuse it again, so keep no parts
            remove_owned(parts)
            raise
        record = {
            "format": "bigpaint-halos",
            "operation": "sample",
            "box_size": _box_record(plan.meta.box_size),
            "redshift": plan.meta.redshift,
            "cosmology": None if plan.meta.cosmology is None else plan.meta.cosmology.model_dump(),
            "mass_bins": plan.edges.tolist(),
            "mass_units": "Msun/h",
            "mass_function": plan.masses,
            "seed": plan.seed,
            "painted": plan.painted,
            "density": plan.urls["--density"],
            "velocity": plan.urls["--velocity"],
            "positions": "uniform in the voxel"
            if plan.urls["--density"] is None
            else "following the sub-voxel density",
            "bigpaint_version": _version(),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
        try:
            n, _ = _merge(parts, blocks, tmp, record)
            if out.exists():
                out.unlink()
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        remove_owned(parts)
    return SampleResult(out, n, len(todo), blocks.n_blocks)


def sample_catalogue(
    painted: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    seed: int,
    mass_function: str | float = "model",
    density: str | os.PathLike[str] | None = None,
    velocity: str | os.PathLike[str] | None = None,
    chunks: Any = None,
    overwrite: bool = False,
    progress: bool = False,
) -> SampleResult:
    """Poisson-sample a painted count Field into a halo catalogue (Parquet).

    Parameters
    ----------
    painted : path
        A ``halo_count`` Field of expected halos per cell, one channel per mass bin, with its
        mass-bin edges recorded (``provenance.mass_bins``, Msun/h).
    output : path
        The catalogue to write (``.parquet``).
    seed : int
        Non-negative; the catalogue is a function of the seed and the inputs alone.
    mass_function : "model" or float
        How masses are drawn inside a bin (:mod:`bigpaint.sample.masses`).
    density : path, optional
        A density Field on a grid a whole number of times finer than the painted one; halos
        are placed in its sub-cells with probability proportional to its (non-negative)
        values, uniformly inside the sub-cell. Without it, uniformly inside the voxel.
    velocity : path, optional
        A Field of 3 channels (vx, vy, vz) in km/s on any grid of the same box; each halo
        takes the value of the cell it lies in.
    chunks : int or sequence, optional
        Blocks of the painted grid, one task and one part each; the painted Field's own
        write blocks by default. The result does not depend on it.
    overwrite : bool
        Replace an existing catalogue (and parts of another job).
    progress : bool
        Report progress.

    Returns
    -------
    SampleResult
    """
    plan = plan_sample(
        painted, output, seed=seed, mass_function=mass_function, density=density,
        velocity=velocity, chunks=chunks, overwrite=overwrite,
    )  # fmt: skip
    return run_sample(plan, overwrite=overwrite, progress=progress)


def _box_record(box: tuple[float, float, float]) -> float | list[float]:
    """The box in Mpc/h as the FoF catalogue records it: one number for a cube."""
    return float(box[0]) if len(set(box)) == 1 else [float(b) for b in box]


def _version() -> str:
    from bigpaint.version import __version__

    return __version__
