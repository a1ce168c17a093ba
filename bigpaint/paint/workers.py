"""What runs on a worker: the cached model, its device and threads, and sub-tiled inference.

* **One model per worker.** :func:`get_painter` keeps loaded painters in a process-wide cache
  keyed by the checkpoint's hash and the device, so a worker loads a checkpoint once however
  many blocks it paints. On a distributed cluster :class:`PainterPlugin` (a named
  ``WorkerPlugin``, one name per checkpoint hash) preloads it when the job starts and sets
  the worker's torch threads; a worker that joins later, or restarts after a crash, loads it
  on its first block.
* **Devices.** ``"auto"`` picks CUDA when the worker sees a GPU, else CPU; ``"cuda"`` without
  one is refused. Host-to-device copies go through pinned memory (``non_blocking``) on CUDA.
  Inference runs under ``torch.inference_mode`` and, on request, ``torch.autocast`` in
  bfloat16 or float16 (off by default: chunked output then equals whole-box inference).
* **Sub-tiling and batching.** A block's core is painted in sub-tiles whose windows fit a
  memory budget (estimated activation bytes per voxel times window voxels); sub-tiles with
  windows of one shape are stacked into batches up to the budget (whole slabs of a 2-D
  painter, or the fixed tiles of a ``tile`` painter, batch together). Each sub-tile gets the
  same window rule as a block (:mod:`bigpaint.paint.plan`), so sub-tiling changes the answer
  by float32 rounding only (the convolution library sums in another order for windows of
  another shape; :data:`bigpaint.paint.seams.ROUNDING_RTOL`).
* **Fixed tiles (bit-identical output).** With ``fixed_tile=T`` every block is painted on a
  global grid of ``T``-voxel tiles anchored at the origin (the last tile per axis ends at the
  box edge): each tile from its own window, one tile per forward call, whatever the block
  and the memory budget. A voxel then always goes through the same call, so the output is
  bit for bit the same for every chunking whose chunks are multiples of ``T`` and any number
  of workers (:func:`check_fixed_tile` refuses other chunks). U-Nets repaint their margin
  around every tile, which costs speed.

Why hand-written: the per-worker cache and plugin are a few lines on top of
``distributed.WorkerPlugin``; the sub-tiling follows the painter's window rule, which no
inference library knows.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bigpaint.errors import ChunkingError, ConfigError, ShapeError

__all__ = [
    "PainterPlugin",
    "autocast_dtype",
    "bytes_per_voxel",
    "check_fixed_tile",
    "clear_painter_cache",
    "default_memory_budget",
    "fixed_tile_windows",
    "get_painter",
    "paint_images",
    "resolve_device",
    "set_torch_threads",
    "subtile_windows",
]

_CACHE: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()
#: Loads per (hash, device) in this process (tests check a worker loads a model once).
LOADS: dict[tuple[str, str], int] = {}


def resolve_device(device: str) -> Any:
    """``"auto"`` -> CUDA if this process sees a GPU, else CPU; ``"cpu"``; ``"cuda[:i]"``."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r} asked for, but torch sees no CUDA GPU on this worker; "
                "use device 'cpu' or 'auto', or run on GPU workers"
            )
        return torch.device(device)
    raise ConfigError(f"device must be auto, cpu or cuda, got {device!r}")


def autocast_dtype(autocast: str | None) -> Any:
    """``None`` (off), ``"bf16"`` or ``"fp16"`` to a torch dtype."""
    import torch

    if autocast in (None, "none", "off"):
        return None
    table = {
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
    }
    if autocast not in table:
        raise ConfigError(f"autocast must be None, 'bf16' or 'fp16', got {autocast!r}")
    return table[autocast]


def get_painter(path: str, ckpt_hash: str, device: Any) -> Any:
    """The painter of checkpoint ``path`` on ``device``, loaded once per process."""
    from bigpaint.painters.checkpoint import load_checkpoint

    key = (ckpt_hash, str(device))
    painter = _CACHE.get(key)
    if painter is not None:
        return painter
    with _LOCK:
        painter = _CACHE.get(key)
        if painter is None:
            painter, _ = load_checkpoint(path, map_location=device)
            painter.prepare_inference()
            _CACHE[key] = painter
            LOADS[key] = LOADS.get(key, 0) + 1
    return painter


def clear_painter_cache() -> None:
    """Drop every cached painter of this process."""
    with _LOCK:
        _CACHE.clear()


def set_torch_threads(n: int) -> None:
    """Set torch's intra-op threads (process-wide) to ``n >= 1``."""
    import torch

    n = max(1, int(n))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def default_memory_budget(device: Any) -> int:
    """Bytes of activations one forward call may use.

    CUDA: half the free device memory. CPU: a third of the Dask worker's memory limit, or
    without one, the machine's memory over twice its cores (at least 256 MiB).
    """
    import psutil
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free // 2)
    limit = 0
    try:
        from distributed import get_worker

        limit = int(get_worker().memory_manager.memory_limit or 0)
    except (ImportError, ValueError, AttributeError):
        pass
    if limit > 0:
        return max(256 << 20, limit // 3)
    return max(256 << 20, int(psutil.virtual_memory().total // (2 * (os.cpu_count() or 1))))


try:
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPluginBase
except ImportError:  # pragma: no cover - distributed is a dependency
    _WorkerPluginBase = object  # type: ignore[assignment, misc]  # a base class either way


class PainterPlugin(_WorkerPluginBase):
    """Preload a checkpoint on every worker and set its torch threads.

    Parameters
    ----------
    path, ckpt_hash : str
        Checkpoint directory and :func:`bigpaint.paint.plan.checkpoint_hash`.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    workers_per_host : dict, optional
        Host name to the number of workers there; CPU workers get
        ``cores // (workers on the host * worker threads)`` torch threads (at least 1).
    """

    def __init__(
        self, path: str, ckpt_hash: str, device: str, workers_per_host: dict[str, int] | None = None
    ) -> None:
        self.path = path
        self.ckpt_hash = ckpt_hash
        self.device = device
        self.workers_per_host = dict(workers_per_host or {})
        self.name = f"bigpaint-painter-{ckpt_hash}-{device}"

    def setup(self, worker: Any) -> None:
        dev = resolve_device(self.device)
        if dev.type == "cpu":
            host = str(worker.address).split("://")[-1].rsplit(":", 1)[0]
            share = self.workers_per_host.get(host, 1) * max(1, int(worker.state.nthreads))
            set_torch_threads((os.cpu_count() or 1) // max(1, share))
        get_painter(self.path, self.ckpt_hash, dev)


def bytes_per_voxel(painter: Any) -> int:
    """Activation bytes per input voxel of a forward pass (float32), measured once per painter.

    A forward pass over a small probe input records the output of every leaf module; their
    total over the probe's voxels bounds the live activations per voxel from above (inference
    frees most of them early), for any input size (``valid`` painters: every layer counted at
    the input's size, as in a window much larger than the context). Cached on the painter.
    """
    import torch

    cached = getattr(painter, "_bigpaint_bytes_per_voxel", None)
    if cached is not None:
        return int(cached)
    if painter.mode == "tile":
        n = int(painter.tile)
    elif painter.mode == "same":
        n = int(painter.alignment)
    else:
        n = 2 * int(painter.context) + 2
    p = next(painter.parameters())
    x = torch.zeros((1, painter.in_channels) + (n,) * painter.ndim, dtype=p.dtype, device=p.device)
    total = [x.numel()]

    def hook(_m: Any, _i: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            # valid painters shrink the probe but not a large window: count whole channels
            total[0] += out.numel() if painter.mode != "valid" else out.shape[1] * n**painter.ndim

    leaves = [m for m in painter.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode():
            painter.infer(x)
    finally:
        for h in handles:
            h.remove()
    if total[0] == x.numel():  # a functional forward (dm2gal's dense form): count layer widths
        widths = [getattr(m, "out_channels", getattr(m, "out_features", 0)) for m in leaves]
        total[0] += sum(widths) * n**painter.ndim
    value = math.ceil(4 * total[0] / n**painter.ndim)
    painter._bigpaint_bytes_per_voxel = value
    return value


def _axis_window(t0: int, t1: int, mode: str, margin: int, align: int) -> tuple[int, int]:
    """Global window [lo, hi) that paints output [t0, t1) along one axis."""
    if mode == "valid":
        return t0 - margin, t1 + margin
    return (t0 - margin) // align * align, -(-(t1 + margin) // align) * align


def subtile_windows(
    core_start: Sequence[int],
    core_shape: Sequence[int],
    *,
    mode: str,
    margin: int,
    alignment: int,
    tile: int | None,
) -> list[tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]]:
    """Split a core into sub-tiles of at most ``tile`` voxels per axis, each with its window.

    Returns ``[(sub-tile [t0, t1) per axis, window [lo, hi) per axis), ...]`` in global
    voxels. For ``tile`` mode the sub-tiles follow the painter's fixed tile grid.
    """
    axes = []
    for s, n in zip(core_start, core_shape, strict=True):
        if mode == "tile":
            cuts = sorted({s, s + n, *range(-(-s // alignment) * alignment, s + n, alignment)})
        else:
            step = max(1, int(tile or n))
            cuts = [*range(s, s + n, step), s + n]
        axes.append([(a, b) for a, b in itertools.pairwise(cuts) if b > a])
    out = []
    for combo in itertools.product(*axes):
        win = tuple(_axis_window(a, b, mode, margin, alignment) for a, b in combo)
        out.append((tuple(combo), win))
    return out


def fixed_tile_windows(
    core_start: Sequence[int],
    core_shape: Sequence[int],
    *,
    tile: int,
    period: Sequence[int],
    mode: str,
    margin: int,
    alignment: int,
) -> list[tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]]:
    """Cut a core along the global grid of ``tile``-voxel tiles; each piece gets its tile's window.

    Tiles are ``[k tile, min((k + 1) tile, period))`` per axis, so a tile and its window
    depend on the voxel's position alone, never on the block. Returns ``[(piece [t0, t1)
    per axis, window [lo, hi) of the whole tile per axis), ...]`` in global voxels.
    """
    axes = []
    for s, n, p in zip(core_start, core_shape, period, strict=True):
        cuts = sorted({s, s + n, *range(-(-s // tile) * tile, s + n, tile)})
        pieces = []
        for a, b in itertools.pairwise(cuts):
            if b > a:
                t0 = a // tile * tile
                pieces.append(
                    ((a, b), _axis_window(t0, min(t0 + tile, p), mode, margin, alignment))
                )
        axes.append(pieces)
    return [
        (tuple(piece for piece, _ in combo), tuple(win for _, win in combo))
        for combo in itertools.product(*axes)
    ]


def check_fixed_tile(
    tile: int,
    *,
    family: str,
    mode: str,
    alignment: int,
    painter_tile: int | None,
    chunks: Sequence[int],
    shape: Sequence[int],
) -> None:
    """Refuse a fixed tile the painter or the chunks cannot take (one-line errors).

    Parameters
    ----------
    tile : int
        Fixed tile edge in voxels.
    family, mode, alignment, painter_tile
        From the checkpoint's metadata.
    chunks, shape : sequence of int
        Output chunks and box size over the painted axes (voxels).

    Raises
    ------
    ConfigError
        ``tile`` is not a positive multiple of the alignment (U-Nets) or of the painter's
        own tile (tile painters).
    ChunkingError
        A chunk is neither a multiple of ``tile`` nor the whole axis.
    """
    step = int(painter_tile or 1) if mode == "tile" else int(alignment)
    if int(tile) < 1 or int(tile) % step:
        what = "tile" if mode == "tile" else "alignment"
        raise ConfigError(
            f"fixed_tile must be a positive multiple of {family}'s {what} ({step} voxels), "
            f"got {tile}"
        )
    bad = [c for c, n in zip(chunks, shape, strict=True) if c % tile and c < n]
    if bad:
        raise ChunkingError(
            f"fixed_tile {tile} needs chunks that are multiples of it, got chunks "
            f"{tuple(int(c) for c in chunks)}; give chunks of {tile}, {2 * tile}, ... voxels, "
            f"or a fixed_tile that divides {bad[0]}"
        )


def _subtile_size(
    core_start: Sequence[int],
    core_shape: Sequence[int],
    *,
    mode: str,
    margin: int,
    align: int,
    bpv: int,
    budget: int,
) -> int:
    """Largest sub-tile edge (a multiple of ``align`` where possible) whose windows fit.

    Each candidate is judged by the windows it really gets (aligned to the global pooling
    grid for ``same`` painters), not by a worst-case reach: a 128³ core with margin 32 and
    alignment 32 paints a 192³ window, where ``margin + align - 1`` per side would claim 254³
    and split the block into sub-tiles that repaint their margins many times over.
    """
    t = max(core_shape)
    while True:
        jobs = subtile_windows(
            core_start, core_shape, mode=mode, margin=margin, alignment=align, tile=t
        )
        vox = max(float(np.prod([hi - lo for lo, hi in win])) for _, win in jobs)
        if vox * bpv <= budget or t <= align:
            return t
        t = max(align, (t // 2) // align * align)


def paint_images(
    painter: Any,
    x: np.ndarray,
    window_start: Sequence[int],
    core_start: Sequence[int],
    core_shape: Sequence[int],
    *,
    margin: int,
    device: Any,
    memory_budget: int | None = None,
    autocast: Any = None,
    noise: Callable[[int, Sequence[tuple[int, int]]], list[Any]] | None = None,
    batch_ids: Sequence[int] | None = None,
    fixed_tile: int | None = None,
    period: Sequence[int] | None = None,
) -> np.ndarray:
    """Paint the core of a batch of windows, sub-tiled under a memory budget or on fixed tiles.

    Parameters
    ----------
    painter : Painter
        On ``device``, eval mode.
    x : numpy.ndarray
        ``(B, C_in, *S)``: B windows (raw units) over the painted axes, covering global voxels
        ``[window_start, window_start + S)``.
    window_start, core_start, core_shape : sequence of int
        Global voxel coordinates (per painted axis) of the window and of the core to paint.
    margin : int
        Seam margin per side (the context for ``valid`` painters).
    device : torch.device
    memory_budget : int, optional
        Bytes of activations per forward call (default :func:`default_memory_budget`).
    autocast : torch.dtype, optional
        Run the network under ``torch.autocast`` in this dtype.
    noise : callable, optional
        ``noise(batch_ids, window) -> maps`` for painters with noise injection.
    batch_ids : sequence of int, optional
        Global index of each batch entry (the slab index), passed to ``noise``.
    fixed_tile : int, optional
        Paint on the global grid of tiles of this many voxels, one tile and one batch entry
        per forward call (bit-identical output for any block layout on that grid; see the
        module docstring). The memory budget must hold one tile's window.
    period : sequence of int, optional
        Box size per painted axis in voxels (where the last fixed tile ends); required with
        ``fixed_tile``.

    Returns
    -------
    numpy.ndarray
        ``(B, C_out, *core_shape)`` float32.
    """
    nb = x.shape[0]
    budget = int(memory_budget or default_memory_budget(device))
    bpv = bytes_per_voxel(painter)
    jobs = _subtile_jobs(
        painter, core_start, core_shape, margin=margin, bpv=bpv, budget=budget,
        fixed_tile=fixed_tile, period=period,
    )  # fmt: skip
    have = [(w0, w0 + n) for w0, n in zip(window_start, x.shape[2:], strict=True)]
    for _sub, win in jobs:
        if any(lo < a or hi > b for (lo, hi), (a, b) in zip(win, have, strict=True)):
            raise ShapeError(
                f"a sub-tile needs the window {win}, outside the block's window {tuple(have)}; "
                "with fixed_tile the block's core must start and end on the tile grid"
            )
    out = np.empty((nb, painter.out_channels, *core_shape), dtype=np.float32)
    ids = list(range(nb)) if batch_ids is None else list(batch_ids)
    groups: dict[tuple[int, ...], list[tuple[Any, Any]]] = {}
    for sub, win in jobs:
        groups.setdefault(tuple(b - a for a, b in win), []).append((sub, win))
    for wshape, members in groups.items():
        per_item = float(np.prod(wshape)) * bpv
        if fixed_tile is not None and per_item > budget:
            raise ConfigError(
                f"fixed_tile {fixed_tile} gives {'x'.join(map(str, wshape))}-voxel windows that "
                f"need {per_item / 2**30:.2f} GiB of activations, over the memory budget of "
                f"{budget / 2**30:.2f} GiB; give a smaller fixed_tile or a larger memory_budget"
            )
        # equal windows batch together, except on fixed tiles: the batch size changes the
        # convolution algorithm, and so the rounding
        batch = 1 if fixed_tile is not None else max(1, int(budget // max(per_item, 1.0)))
        items = [(b, sub, win) for sub, win in members for b in range(nb)]
        for k in range(0, len(items), batch):
            part = items[k : k + batch]
            windows = []
            for b, _sub, win in part:
                idx: tuple[int | slice, ...] = (b, slice(None), *_slices(win, window_start))
                windows.append(x[idx])
            maps = None
            if noise is not None:
                maps = _stack_noise(noise, [ids[b] for b, _, _ in part], [w for _, _, w in part])
            y = _forward(painter, np.stack(windows), device, autocast, maps)
            for (b, sub, win), yi in zip(part, y, strict=True):
                _place(out, b, yi, painter, sub, win, core_start, margin)
    return out


def _slices(window: Sequence[tuple[int, int]], origin: Sequence[int]) -> tuple[slice, ...]:
    """The global voxel ranges ``window`` as slices of an array starting at ``origin``."""
    return tuple(slice(lo - o, hi - o) for (lo, hi), o in zip(window, origin, strict=True))


def _subtile_jobs(
    painter: Any,
    core_start: Sequence[int],
    core_shape: Sequence[int],
    *,
    margin: int,
    bpv: int,
    budget: int,
    fixed_tile: int | None,
    period: Sequence[int] | None,
) -> list[tuple[Any, Any]]:
    """The (sub-core, window) pairs painting a core: sub-tiles under the memory budget, the
    painter's own tiles, or the global grid of fixed tiles."""
    mode, align = painter.mode, painter.alignment
    if mode == "tile":
        align = int(painter.tile)
    if fixed_tile is None:
        tile = _subtile_size(
            core_start, core_shape, mode=mode, margin=margin, align=align, bpv=bpv, budget=budget
        )
        return subtile_windows(
            core_start, core_shape, mode=mode, margin=margin, alignment=align, tile=tile
        )
    if mode == "tile":  # the painter's own tiles are the fixed grid already
        return subtile_windows(
            core_start, core_shape, mode=mode, margin=0, alignment=align, tile=None
        )
    if period is None:
        raise ShapeError("paint_images needs the box size (period) to paint fixed tiles")
    return fixed_tile_windows(
        core_start,
        core_shape,
        tile=int(fixed_tile),
        period=period,
        mode=mode,
        margin=margin,
        alignment=align,
    )


def _forward(
    painter: Any, raw: np.ndarray, device: Any, autocast: Any, noise: list[Any] | None
) -> np.ndarray:
    """Paint a batch of raw windows ``(B, C_in, *W)``: normalize, run the network on
    ``device`` (with the ``noise`` maps of noise-injecting painters), invert the output
    normalization; float32 ``(B, C_out, ...)`` on the host."""
    import torch

    from bigpaint.painters.base import apply_norms, invert_norms

    arr = apply_norms(painter.input_norm, raw.astype(np.float32), 1)
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    cuda = getattr(device, "type", "cpu") == "cuda"
    t = t.pin_memory().to(device, non_blocking=True) if cuda else t.to(device)
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=autocast, enabled=autocast is not None),
    ):
        if noise is not None:
            y = painter.forward_multiscale(t, noise=[m.to(device) for m in noise])[-1]
        else:
            y = painter.infer(t)
    return invert_norms(painter.output_norm, y.float(), 1).cpu().numpy()


def _place(
    out: np.ndarray,
    b: int,
    painted: np.ndarray,
    painter: Any,
    sub: Sequence[tuple[int, int]],
    window: Sequence[tuple[int, int]],
    core_start: Sequence[int],
    margin: int,
) -> None:
    """Copy the sub-core ``sub`` of the output ``painted`` from ``window`` into entry ``b``
    of ``out`` (the core starting at ``core_start``)."""
    first = window if painter.mode != "valid" else [(lo + margin, hi - margin) for lo, hi in window]
    if painted.shape[1:] != tuple(f1 - f0 for f0, f1 in first):
        raise ShapeError(
            f"{painter.family} returned {painted.shape[1:]} for a window "
            f"{tuple(hi - lo for lo, hi in window)}; the checkpoint's mode is wrong"
        )
    src: tuple[slice, ...] = (slice(None), *_slices(sub, [f0 for f0, _ in first]))
    dst: tuple[int | slice, ...] = (b, slice(None), *_slices(sub, core_start))
    out[dst] = painted[src]


def _stack_noise(
    noise: Callable[..., list[Any]], ids: Sequence[int], windows: Sequence[Any]
) -> list[Any]:
    import torch

    per = [noise(i, w) for i, w in zip(ids, windows, strict=True)]
    return [torch.cat([p[level] for p in per], 0) for level in range(len(per[0]))]
