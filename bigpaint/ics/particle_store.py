"""The LPT particle store: Lagrangian cubes of displaced particles, written cube by cube.

A store is a Zarr group: ``positions`` (N, 3) float32 in Mpc/h, optional ``velocities``
(N, 3) float32 in km/s and ``ids`` (N,) int64 (the Lagrangian grid index ``(i N + j) N +
k``). One chunk holds one Lagrangian cube of ``block^3`` particles in C order, and a per-cube
marker in ``_bigpaint/done`` records that it is in, so an interrupted write resumes at the
first missing cube. Particles of one cube land in that cube's neighbourhood only, which keeps
the deposition that follows local.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np

from bigpaint.chunked.block_info import chunk_location
from bigpaint.errors import FieldExistsError
from bigpaint.ics.lpt_fourier import lagrangian_grid
from bigpaint.progress import compute
from bigpaint.store import remove_stale_partials, stored_array

__all__ = [
    "ParticleStore",
    "is_complete",
    "lagrangian_block",
    "open_store",
    "write_particle_block",
    "write_particles",
]


def lagrangian_block(grid: int, size: int) -> int:
    """The largest divisor of ``grid`` not above ``size``: the side of a Lagrangian cube."""
    size = max(1, min(int(size), int(grid)))
    return max(d for d in range(1, size + 1) if grid % d == 0)


@dataclass(frozen=True)
class ParticleStore:
    """Where a particle store lives and how it is cut (``grid / block`` cubes per side);
    ``lattice_offset`` places the undisplaced particles (cells, :func:`lagrangian_grid`)."""

    url: str
    grid: int
    block: int
    box_size: float
    velocities: bool
    ids: bool = True
    lattice_offset: float = 0.5

    @property
    def nblocks(self) -> int:
        return self.grid // self.block

    def block_id(self, idx: Sequence[int]) -> int:
        nb = self.nblocks
        return (int(idx[0]) * nb + int(idx[1])) * nb + int(idx[2])


def open_store(
    url: str,
    *,
    grid: int,
    block: int,
    box_size: float,
    velocities: bool,
    ids: bool,
    attrs: dict[str, Any],
    job: str,
    overwrite: bool,
    lattice_offset: float = 0.5,
) -> ParticleStore:
    """Create (or reopen, for the same ``job``) the particle store at ``url``."""
    import zarr

    store = ParticleStore(url, grid, block, box_size, velocities, ids, lattice_offset)
    n = grid**3
    per = block**3
    if os.path.exists(url) or "://" in url:
        try:
            g = zarr.open_group(store=url, mode="r")
            same = g.attrs.get("bigpaint_job") == job
        except Exception:  # not a group: foreign data
            same = False
        if same and not overwrite:
            return store
        if not overwrite and os.path.exists(url):
            raise FieldExistsError(
                f"particle output {url} already exists (written by a different job); choose "
                "another path or pass overwrite"
            )
        shutil.rmtree(url, ignore_errors=True)
    g = zarr.open_group(store=url, mode="w", zarr_format=3)
    g.attrs.update({**attrs, "bigpaint_job": job, "bigpaint_complete": False})
    g.create_array("positions", shape=(n, 3), chunks=(per, 3), dtype="f4", fill_value=np.nan)
    if velocities:
        g.create_array("velocities", shape=(n, 3), chunks=(per, 3), dtype="f4", fill_value=np.nan)
    if ids:
        g.create_array("ids", shape=(n,), chunks=(per,), dtype="i8", fill_value=-1)
    nb = grid // block
    g.create_array("_bigpaint/done", shape=(nb**3,), chunks=(1,), dtype="u1", fill_value=0)
    return store


def write_particle_block(
    *arrays: np.ndarray, store: ParticleStore, todo: frozenset[int], block_info: Any = None
) -> np.ndarray:
    """Dask block function: write one Lagrangian cube's particles (positions in Mpc/h from
    the displacements ``arrays[:3]``, velocities in km/s from ``arrays[3:]`` when present)
    into the store, if its cube id is in ``todo``; returns a one-element marker."""
    import zarr

    idx = chunk_location(block_info)
    bid = store.block_id(idx)
    if bid in todo:
        window = tuple(slice(i * store.block, (i + 1) * store.block) for i in idx)
        q = lagrangian_grid(store.grid, store.box_size, window, store.lattice_offset)
        psi = np.stack(arrays[:3]).astype(np.float64)
        pos = np.mod(q + psi, store.box_size).reshape(3, -1).T.astype(np.float32)
        pos[pos >= np.float32(store.box_size)] = 0.0
        g = zarr.open_group(store=store.url, mode="r+")
        rows = slice(bid * store.block**3, (bid + 1) * store.block**3)
        stored_array(g, "positions", store.url)[rows] = pos
        if store.velocities:
            vel = np.stack(arrays[3:6]).reshape(3, -1).T.astype(np.float32)
            stored_array(g, "velocities", store.url)[rows] = vel
        if store.ids:
            n = store.grid
            ii, jj, kk = (np.arange(s.start, s.stop, dtype=np.int64) for s in window)
            stored_array(g, "ids", store.url)[rows] = (
                (ii[:, None, None] * n + jj[None, :, None]) * n + kk[None, None, :]
            ).ravel()
        stored_array(g, "_bigpaint/done", store.url)[bid] = 1
    return np.ones((1, 1, 1), np.uint8)


def write_particles(
    store: ParticleStore,
    psi: Sequence[da.Array],
    vel: Sequence[da.Array] | None = None,
    *,
    progress: bool = False,
    block_writer: Any = None,
) -> int:
    """Write displaced Lagrangian cubes (``psi``, optional ``vel``) into a particle store
    (``progress``: see :func:`bigpaint.progress.compute`; ``block_writer`` replaces the
    per-cube task, default :func:`write_particle_block`)."""
    import zarr

    g = zarr.open_group(store=store.url, mode="r")
    done = np.asarray(stored_array(g, "_bigpaint/done", store.url)[...]).astype(bool)
    todo = frozenset(int(i) for i in np.flatnonzero(~done))
    if todo:
        cubes = ((store.block,) * store.nblocks,) * 3
        arrays = [a.rechunk(cubes) for a in (*psi, *(vel or ()))]
        flags = da.map_blocks(
            block_writer or write_particle_block,
            *arrays,
            store=store,
            todo=todo,
            chunks=tuple((1,) * store.nblocks for _ in range(3)),
            dtype=np.uint8,
            meta=np.array((), np.uint8),
        )
        compute(flags, name="lpt-particles", progress=progress)
    remove_stale_partials(store.url)
    zarr.open_group(store=store.url, mode="r+").attrs["bigpaint_complete"] = True
    return len(todo)


def is_complete(url: str) -> bool:
    """Whether the particle store at ``url`` was finished (False when absent or foreign)."""
    import zarr

    try:
        return bool(zarr.open_group(store=url, mode="r").attrs.get("bigpaint_complete"))
    except Exception:  # missing or not a group
        return False
