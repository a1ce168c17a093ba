"""Gaussian white noise that depends on the seed alone, never on chunking or workers.

The box is cut into fixed cubic noise tiles (``tile`` voxels per side, independent of the
compute chunks). Tile ``(i, j, k)`` is drawn from numpy's PCG64 generator seeded with the
sequence ``(seed, i, j, k)``, so any block can be generated alone by drawing the tiles it
overlaps and cropping. numpy's SeedSequence does the counter-based keying; nothing here is
hand-rolled randomness.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from bigpaint.axes import int3
from bigpaint.chunked.graph import run_tasks
from bigpaint.errors import ConfigError
from bigpaint.field import FieldWriter, create_field, job_token
from bigpaint.outputs import writing

__all__ = ["white_noise", "white_noise_array"]


def _check(shape: Sequence[int], tile: int, seed: int) -> None:
    if tile <= 0:
        raise ConfigError(f"noise tile must be a positive number of voxels, got {tile}")
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    bad = [n for n in shape if n % tile]
    if bad:
        raise ConfigError(
            f"grid {tuple(shape)} is not divisible by the noise tile {tile}; "
            f"choose a grid that is a multiple of {tile} or another tile size"
        )


def _tile(seed: int, index: Sequence[int], tile: int, dtype: Any) -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *index])))
    return rng.standard_normal((tile,) * 3, dtype=np.float64).astype(dtype)


def white_noise_array(
    shape: Sequence[int], window: Sequence[slice], *, seed: int, tile: int = 32, dtype: Any = "f4"
) -> np.ndarray:
    """The region ``window`` (one slice per axis, in the box) of the seeded white-noise field.

    Parameters
    ----------
    shape : sequence of 3 int
        Grid of the whole box in voxels (each a multiple of ``tile``).
    window : sequence of 3 slice
        Region to generate, within the box.
    seed : int
        The only thing the field depends on (with ``tile``).
    tile : int
        Noise tile size in voxels.
    """
    _check(shape, tile, seed)
    out = np.empty(tuple(s.stop - s.start for s in window), dtype=dtype)
    ranges = [range(s.start // tile, -(-s.stop // tile)) for s in window]
    for t in itertools.product(*ranges):
        block = _tile(seed, t, tile, dtype)
        src, dst = [], []
        for ti, s in zip(t, window, strict=True):
            a, b = max(s.start, ti * tile), min(s.stop, (ti + 1) * tile)
            src.append(slice(a - ti * tile, b - ti * tile))
            dst.append(slice(a - s.start, b - s.start))
        out[tuple(dst)] = block[tuple(src)]
    return out


def _noise_block(index: tuple[int, ...], *, writer: FieldWriter, seed: int, tile: int) -> None:
    sl = writer.block_slices(index)
    writer.write_block(
        index, white_noise_array(writer.spatial_shape, sl, seed=seed, tile=tile, dtype=writer.dtype)
    )


def white_noise(
    output: str,
    *,
    grid: int | Sequence[int],
    box_size: float | Sequence[float],
    seed: int,
    chunks: int | Sequence[int],
    tile: int = 32,
    dtype: str = "float32",
    overwrite: bool = False,
    progress: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> FieldWriter:
    """Write a unit-variance Gaussian white-noise Field, one task per block (resumable).

    Parameters
    ----------
    output : str
        Path or fsspec URL of the new Field.
    grid : int or sequence of 3 int
        Voxels per side.
    box_size : float or sequence of 3 float
        Box side in Mpc/h.
    seed : int
        Random seed; with ``tile`` the only thing the values depend on.
    chunks : int or sequence of 3 int
        Write-block size in voxels (any size: blocks need not align with tiles).
    tile : int
        Noise tile in voxels; ``grid`` must be a multiple of it.
    """
    shape = int3(grid if isinstance(grid, Iterable) else (grid,) * 3, "the noise grid")
    _check(shape, tile, seed)
    params = {"seed": seed, "tile": tile}
    with writing({"output": output}, storage_options=storage_options):
        writer = create_field(
            output,
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            overwrite=overwrite,
            meta={
                "box_size": box_size,
                "kind": "white_noise",
                "units": "1",
                "provenance": {"operation": "white_noise", "config": params},
                "mass_assignment": {"scheme": None},
            },
            job=job_token(
                operation="white_noise",
                shape=shape,
                box=box_size,
                chunks=chunks,
                dtype=dtype,
                **params,
            ),
            storage_options=storage_options,
        )
        run_tasks(
            _noise_block,
            [(idx,) for idx in writer.pending()],
            shared={"writer": writer, "seed": seed, "tile": tile},
            name="white_noise",
            progress=progress,
        )
        writer.finalize()
        return writer
