"""Chunked painting of a Field with a trained painter: :func:`paint` runs a
:class:`bigpaint.paint.config.PaintSpec`, :func:`paint_field` is its keyword form.

The job is planned and checked first (:func:`bigpaint.paint.plan.plan_spec`: channels,
resolution in Mpc/h per voxel against the training resolution, input kind, family and
slabs, margin, and the model card's cosmology, redshift and mass assignment); only then is
the output created. A caller that planned already (``bigpaint paint`` plans before a cluster
starts) hands its plan over, and the input Field it opened is the one painted. Painting runs through the blockwise
primitive (:func:`bigpaint.chunked.apply.apply_blockwise`): one task per output block that reads
its window with periodic context straight from Zarr and writes its core, so a killed worker's
blocks are simply run again elsewhere and a killed process resumes from the completion
markers. Each task takes the painter from the worker's cache (:mod:`bigpaint.paint.workers`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from bigpaint.blockwise import BlockInfo
from bigpaint.chunked.apply import apply_blockwise
from bigpaint.chunked.client import current_client
from bigpaint.chunked.read import FieldSource
from bigpaint.config import parse_config
from bigpaint.errors import ConfigError, NonFiniteError
from bigpaint.field import create_field, job_token, remove_field
from bigpaint.outputs import check_apart, job_path, writing
from bigpaint.paint.config import PaintSpec
from bigpaint.paint.plan import PaintPlan, SlabSpec, plan_spec
from bigpaint.paint.slabs import NoiseMaps, ProjectedSource
from bigpaint.paint.workers import (
    PainterPlugin,
    autocast_dtype,
    get_painter,
    paint_images,
    resolve_device,
)

__all__ = ["PaintBlock", "paint", "paint_field", "paint_spec", "paint_window"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PaintBlock:
    """The block function of a paint job (picklable; the painter comes from the worker cache).

    Attributes
    ----------
    checkpoint, ckpt_hash : str
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    margin : int
    read_context : tuple of 3 int
        Context the blockwise primitive reads (see :mod:`bigpaint.paint.plan`).
    slab_axis : int or None
        Projection axis of 2-D painters (their batch axis).
    box : tuple of 3 int
        Spatial shape of the painted (projected) box in voxels.
    memory_budget : int or None
    autocast : str or None
    seed : int
        Seed of position-keyed noise (noise-injecting painters).
    fixed_tile : int or None
        Paint on the global grid of tiles of this many voxels (bit-identical output for
        every chunking on that grid; :mod:`bigpaint.paint.workers`).
    """

    checkpoint: str
    ckpt_hash: str
    device: str
    margin: int
    read_context: tuple[int, int, int]
    slab_axis: int | None
    box: tuple[int, int, int]
    memory_budget: int | None = None
    autocast: str | None = None
    seed: int = 0
    fixed_tile: int | None = None

    def __call__(self, window: np.ndarray, block_info: BlockInfo) -> np.ndarray:
        dev = resolve_device(self.device)
        return paint_window(
            get_painter(self.checkpoint, self.ckpt_hash, dev),
            window,
            block_info,
            margin=self.margin,
            read_context=self.read_context,
            slab_axis=self.slab_axis,
            box=self.box,
            device=dev,
            memory_budget=self.memory_budget,
            autocast=self.autocast,
            seed=self.seed,
            fixed_tile=self.fixed_tile,
        )


def paint_window(
    painter: Any,
    window: np.ndarray,
    block_info: BlockInfo,
    *,
    margin: int,
    read_context: Sequence[int],
    slab_axis: int | None,
    box: Sequence[int],
    device: Any,
    memory_budget: int | None = None,
    autocast: str | None = None,
    seed: int = 0,
    fixed_tile: int | None = None,
) -> np.ndarray:
    """Paint one block's core from its window (the body of :class:`PaintBlock`).

    Parameters
    ----------
    painter : Painter
        On ``device``, eval mode.
    window : numpy.ndarray
        ``([C,] wx, wy, wz)``: the block plus ``read_context`` voxels per side (periodic).
    block_info : BlockInfo
        The block's core in global voxels.
    margin, read_context, slab_axis, box, memory_budget, autocast, seed, fixed_tile
        As in :class:`PaintBlock`.
    device : torch.device

    Returns
    -------
    numpy.ndarray
        The core, ``([C_out,] *core)`` float32 (channel axis only when ``C_out > 1``).
    """
    x = window if window.ndim == 4 else window[None]
    core = block_info.core
    wstart = [s.start - c for s, c in zip(core, read_context, strict=True)]
    cstart = [s.start for s in core]
    cshape = [s.stop - s.start for s in core]
    if slab_axis is None:
        plane = [0, 1, 2]
        batch = x[None]
        ids = None
    else:
        plane = [a for a in range(3) if a != slab_axis]
        batch = np.moveaxis(x, 1 + slab_axis, 0)
        ids = list(range(cstart[slab_axis], cstart[slab_axis] + cshape[slab_axis]))
    noise = None
    if getattr(painter.config, "noise", False) and hasattr(painter, "forward_multiscale"):
        noise = NoiseMaps(seed, int(painter.config.levels), tuple(int(box[a]) for a in plane))
    y = paint_images(
        painter,
        batch,
        [wstart[a] for a in plane],
        [cstart[a] for a in plane],
        [cshape[a] for a in plane],
        margin=margin,
        device=device,
        memory_budget=memory_budget,
        autocast=autocast_dtype(autocast),
        noise=noise,
        batch_ids=ids,
        fixed_tile=fixed_tile,
        period=[int(box[a]) for a in plane],
    )
    y = y[0] if slab_axis is None else np.moveaxis(y, 0, 1 + slab_axis)
    return y[0] if painter.out_channels == 1 else y


def _gpu_resources(client: Any, device: str) -> dict[str, float] | None:
    """``{"GPU": 1}`` for GPU painting on workers that advertise a GPU resource."""
    if client is None or device == "cpu":
        return None
    workers = client.scheduler_info().get("workers", {}).values()
    with_gpu = [w for w in workers if w.get("resources", {}).get("GPU")]
    if device.startswith("cuda") or (
        device == "auto" and workers and len(with_gpu) == len(workers)
    ):
        return {"GPU": 1} if with_gpu else None
    return None


def _workers_per_host(client: Any) -> dict[str, int]:
    hosts: dict[str, int] = {}
    for addr in client.scheduler_info().get("workers", {}):
        host = str(addr).split("://")[-1].rsplit(":", 1)[0]
        hosts[host] = hosts.get(host, 0) + 1
    return hosts


@contextlib.contextmanager
def _local_torch_threads(client: Any) -> Any:
    """Without a cluster: one block at a time, torch uses every core (like one forward pass)."""
    if client is not None:
        yield
        return
    import dask

    with dask.config.set(num_workers=1):
        yield


def paint_field(
    checkpoint: str | Path,
    source: str,
    dest: str,
    *,
    chunks: int | Sequence[int] | None = None,
    margin: int | None = None,
    device: str = "auto",
    memory_budget: int | str | None = None,
    autocast: str | None = None,
    slab: SlabSpec | Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    resources: dict[str, float] | None = None,
    seed: int = 0,
    fixed_tile: int | None = None,
    allow_mismatch: str | Sequence[str] | None = None,
) -> None:
    """Paint the Field ``source`` with the painter in ``checkpoint`` into the Field ``dest``.

    The keyword form of :func:`paint`: the arguments become a
    :class:`bigpaint.paint.config.PaintSpec` (``source`` is its ``input``, ``dest`` its
    ``output``), which ``bigpaint paint`` and a pipeline's ``paint`` stage build too.

    Runs on the current ``dask.distributed`` client if there is one, otherwise on local
    threads (one block at a time, torch using every core). The output is resumable: the
    same call after an interruption skips finished blocks; an existing output written by
    another job (another checkpoint, input, margin, chunking, ...) is refused unless
    ``overwrite``.

    Parameters
    ----------
    checkpoint : str or Path
        Painter checkpoint directory (``bigpaint train`` writes them), or
        ``pretrained:NAME`` (``bigpaint painters list``).
    source : str
        Path or URL of the input Field (finished). Its voxel size in Mpc/h must equal the
        training resolution recorded in the checkpoint.
    dest : str
        Path or URL of the output Field: ``(x, y, z)``, or ``(channel, x, y, z)`` when the
        painter has several output channels; for 2-D painters the slab axis has ``n /
        thickness`` cells.
    chunks : int or sequence of 3 int, optional
        Output write blocks in voxels (default: the input's chunks).
    margin : int, optional
        Seam margin per side in voxels for ``same``-mode painters (U-Nets); default
        :func:`bigpaint.paint.plan.default_margin` (seam error below
        :data:`bigpaint.paint.seams.SEAM_RTOL` of the output's standard deviation,
        docs/paint.md). Fixed for ``valid`` and ``tile`` painters.
    device : {"auto", "cpu", "cuda", "cuda:N"}
        Where workers run the network (``auto``: CUDA if the worker sees a GPU).
    memory_budget : int or str, optional
        Bytes of activations per forward call (e.g. ``"2GiB"``); blocks are sub-tiled to fit.
        Default: half the free GPU memory; on CPU a third of the worker memory limit
        (:func:`bigpaint.paint.workers.default_memory_budget`).
    autocast : {None, "bf16", "fp16"}
        Mixed-precision inference (GPU); None keeps float32: chunked equals whole-box
        inference up to float32 rounding (:data:`bigpaint.paint.seams.ROUNDING_RTOL`).
    slab : SlabSpec or mapping, optional
        ``{"axis": 0|1|2|"x"|"y"|"z", "thickness": voxels}`` for 2-D painters (default
        thickness: the training projection depth).
    overwrite : bool
        Replace an existing output.
    progress : bool
        Show a progress bar.
    resources : dict, optional
        Worker resources per task (default ``{"GPU": 1}`` when painting on GPU workers
        that advertise a ``GPU`` resource, so one task runs per GPU).
    seed : int
        Seed (>= 0) of the position-keyed noise of noise-injecting painters.
    fixed_tile : int, optional
        Paint every block on the global grid of tiles of this many voxels, one tile per
        forward call: the output is then bit for bit the same for every chunking whose chunks
        are multiples of ``fixed_tile`` and any number of workers or threads. A multiple of
        the U-Net alignment (of the tile of tile painters); the memory budget must hold one
        tile's window. Default: windows follow the blocks (faster for U-Nets; other chunkings
        differ by float32 rounding, docs/paint.md).
    allow_mismatch : str or sequence of str, optional
        Model-card checks to let through: any of ``cell_size``, ``redshift``,
        ``cosmology``, ``kind``, ``mass_assignment`` (a list or ``"redshift,cosmology"``).
        Without it, an input the checkpoint's model card does not cover is refused; with
        it the paint proceeds, logs a warning and records the override in the output's
        provenance.

    Raises
    ------
    CheckpointError, ShapeError, ChunkingError, ConfigError, FieldExistsError
        Before any output is written.
    """
    spec = paint_spec(
        checkpoint,
        source,
        dest,
        chunks=chunks,
        margin=margin,
        device=device,
        memory_budget=memory_budget,
        autocast=autocast,
        slab=slab,
        overwrite=overwrite,
        seed=seed,
        fixed_tile=fixed_tile,
        allow_mismatch=allow_mismatch,
    )
    paint(spec, progress=progress, resources=resources)


def paint_spec(checkpoint: str | Path, source: str, dest: str, **keys: Any) -> PaintSpec:
    """The :class:`bigpaint.paint.config.PaintSpec` of :func:`paint_field`'s arguments
    (keys left at None take the spec's defaults); one-line :class:`ConfigError` on bad input."""
    from bigpaint.painters.card import parse_allow_mismatch

    if keys.get("allow_mismatch") is not None:  # unknown names: the card module's message
        parse_allow_mismatch(keys["allow_mismatch"])
    data = {k: v for k, v in keys.items() if v is not None}
    return parse_config(
        PaintSpec,
        {"checkpoint": str(checkpoint), "input": source, "output": dest, **data},
        "paint_field",
    )


def paint(
    spec: PaintSpec,
    *,
    plan: PaintPlan | None = None,
    progress: bool = False,
    resources: dict[str, float] | None = None,
) -> None:
    """Run the paint job ``spec`` (what :func:`paint_field`, ``bigpaint paint`` and a
    pipeline's ``paint`` stage call).

    Parameters
    ----------
    spec : PaintSpec
    plan : PaintPlan, optional
        :func:`bigpaint.paint.plan.plan_spec` of this spec, made already (the CLI plans
        before a cluster starts): used as it is, with the input Field it opened.
        Default: planned here.
    progress : bool
        Show a progress bar.
    resources : dict, optional
        Worker resources per task (see :func:`paint_field`).

    Raises
    ------
    CheckpointError, ShapeError, ChunkingError, ConfigError, FieldExistsError
        Before any output is written.
    """
    from bigpaint.painters.pretrained import resolve_checkpoint

    checkpoint = resolve_checkpoint(spec.checkpoint)
    check_apart({"output": spec.output}, {"input": spec.input, "checkpoint": checkpoint})
    autocast_dtype(spec.autocast)
    if plan is None:
        plan = plan_spec(spec)
    src = plan.source
    if plan.spec != spec or src is None:
        raise ConfigError(
            "the plan was made for another paint spec; plan it with "
            "bigpaint.paint.plan.plan_spec(spec), or leave plan out"
        )
    _log_overrides(spec, plan)
    base = FieldSource.from_field(src)
    reader: Any = base
    if plan.slab is not None:
        reader = ProjectedSource(base, plan.slab.axis, plan.slab.thickness)
    job, meta = _job_record(spec, plan, src)
    with writing({"output": spec.output}, {"input": spec.input, "checkpoint": checkpoint}):
        writer = create_field(
            spec.output,
            shape=plan.out_shape,
            chunks=plan.chunks,
            meta=meta,
            job=job,
            overwrite=spec.overwrite,
        )
        fresh = len(writer.pending()) == int(np.prod(writer.grid))
        client = current_client()
        if resources is None:
            resources = _gpu_resources(client, spec.device)
        info = plan.checkpoint
        if client is not None:
            client.register_plugin(
                PainterPlugin(info.path, info.hash, spec.device, _workers_per_host(client))
            )
        x, y, z = (int(n) for n in reader.shape[-3:])
        func = PaintBlock(
            checkpoint=str(info.path),
            ckpt_hash=info.hash,
            device=spec.device,
            margin=plan.margin,
            read_context=plan.read_context,
            slab_axis=None if plan.slab is None else plan.slab.axis,
            box=(x, y, z),
            memory_budget=spec.budget_bytes,
            autocast=spec.autocast,
            seed=spec.seed,
            fixed_tile=spec.fixed_tile,
        )
        try:
            with _local_torch_threads(client):
                apply_blockwise(
                    func,
                    reader,
                    writer,
                    plan.read_context,
                    progress=progress,
                    name=f"paint-{info.meta.family}",
                    resources=resources,
                )
        except NonFiniteError:
            if fresh:  # bad input: leave no half-written output behind
                remove_field(spec.output)
            raise


def _log_overrides(spec: PaintSpec, plan: PaintPlan) -> None:
    """Warn that the model card's checks were overridden (or had nothing to override)."""
    info = plan.checkpoint
    if plan.overridden:
        logger.warning(
            "painting %s outside the model card of %s (allowed by allow_mismatch %s): %s",
            spec.input,
            info.card.name if info.card is not None else info.path,
            ",".join(m.name for m in plan.overridden),
            "; ".join(m.text for m in plan.overridden),
        )
    elif spec.allow_mismatch and info.card is None:
        logger.warning("%s has no model card: allow_mismatch has nothing to override", info.path)


def _job_record(spec: PaintSpec, plan: PaintPlan, src: xr.Dataset) -> tuple[str, dict[str, Any]]:
    """The output's job token (what makes a resumed job the same job) and its metadata."""
    fixed: dict[str, Any] = {} if spec.fixed_tile is None else {"fixed_tile": spec.fixed_tile}
    if plan.overridden:  # the output's provenance records them
        fixed["overridden"] = [m.name for m in plan.overridden]
    job = job_token(
        operation="paint",
        checkpoint_hash=plan.checkpoint.hash,
        input=job_path(spec.input),
        input_finished=src.attrs.get("bigpaint_finished"),
        chunks=list(plan.chunks),
        margin=plan.margin,
        slab=None if plan.slab is None else [plan.slab.axis, plan.slab.thickness],
        autocast=spec.autocast,
        seed=spec.seed,
        **fixed,
    )
    meta = dict(plan.out_meta)
    meta["provenance"] = {
        **meta["provenance"],
        "config": {
            **meta["provenance"]["config"],
            "autocast": spec.autocast,
            "seed": spec.seed,
            "fixed_tile": spec.fixed_tile,
        },
    }
    return job, meta
