"""Tiny checkpoints, input Fields, block-by-block painting and whole-box references for the
paint tests (shared small painter configs)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bigpaint.chunked.apply import apply_blockwise
from bigpaint.field import write_array
from bigpaint.paint import project_slabs
from bigpaint.paint.engine import PaintBlock
from bigpaint.paint.plan import read_checkpoint_info
from bigpaint.paint.seams import periodic_paint
from bigpaint.painters import paint_array, save_checkpoint

from ..painters._small import _one_thread, small

__all__ = [
    "BOX",
    "CASES",
    "_one_thread",
    "input_field",
    "make_checkpoint",
    "make_field",
    "paint_chunked",
    "paint_input",
    "small",
    "two_workers",
    "whole_box",
]

#: Box side in Mpc/h of the test Fields.
BOX = 64.0

#: family -> (config update, painted box ([C,] nx, ny, nz), slab axis of 2-D painters)
CASES = {
    "halo-painter": ({}, (12, 10, 11), None),
    "dm2gal": ({}, (2, 4, 3, 4), None),
    "protohalo-unet": ({"levels": 1}, (8, 6, 4), None),
    "ember": ({"noise": False}, (3, 16, 12), 0),
    "cosmic-web-gan": ({}, (64, 2, 32), 1),
}


def make_checkpoint(
    path: Path,
    family: str,
    *,
    grid: int = 16,
    box: float = BOX,
    kind: str = "delta",
    depth: int | None = None,
    seed: int = 0,
    painter=None,
    **update,
) -> str:
    """A checkpoint of the small ``family`` painter with training provenance like ``bigpaint
    train`` records (input kind, box and grid: a resolution of ``box / grid`` Mpc/h)."""
    p = painter if painter is not None else small(family, seed, **update)
    if family == "dm2gal":  # non-trivial batch-norm statistics
        import torch

        g = torch.Generator().manual_seed(seed)
        for m in p.norms:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    prov = {
        "inputs": [{"url": "train-in.zarr", "kind": kind, "units": "1", "box_size": [box] * 3}],
        "targets": [{"url": "train-out.zarr", "kind": "painted_test", "units": "1"}],
        "grid": [grid] * 3,
        "config": {"data": {"projection_depth": depth}},
    }
    return str(save_checkpoint(p, path, provenance=prov))


def make_field(path: Path, shape, chunks, *, box: float = BOX, seed: int = 1, kind="delta") -> str:
    """A finished Field of standard normal values (positive-ish for log norms)."""
    a = np.random.default_rng(seed).standard_normal(shape).astype("f4")
    return write_array(
        str(path), a, chunks=chunks, meta={"box_size": box, "kind": kind, "units": "1"}
    ).url


def paint_chunked(
    ckpt: str, x: np.ndarray, layout, *, margin=None, slab_axis=None, budget=None, fixed_tile=None
) -> np.ndarray:
    """Paint a numpy box block by block with the engine's block function (any layout).

    ``x`` is ``([C,] nx, ny, nz)`` (projected slabs along ``slab_axis`` for 2-D painters);
    returns ``(C_out, nx, ny, nz)``. ``margin`` defaults to the full context.
    """
    info = read_checkpoint_info(ckpt)
    meta = info.meta
    m = (0 if meta.mode == "tile" else meta.context) if margin is None else margin
    reach = {"valid": m, "same": m + meta.alignment - 1, "tile": (meta.tile or 1) - 1}[meta.mode]
    ctx = [reach] * 3
    if slab_axis is not None:
        ctx[slab_axis] = 0
    func = PaintBlock(
        ckpt,
        info.hash,
        "cpu",
        m,
        tuple(ctx),
        slab_axis,
        x.shape[-3:],
        budget,
        fixed_tile=fixed_tile,
    )
    out = np.full((meta.out_channels, *x.shape[-3:]), np.nan, dtype=np.float32)
    dest = out[0] if meta.out_channels == 1 else out
    apply_blockwise(func, x, dest, tuple(ctx), chunks=layout)
    return out


def whole_box(painter, x: np.ndarray, slab_axis=None) -> np.ndarray:
    """Whole-box periodic inference of ``x`` as :func:`paint_chunked` lays it out: U-Nets by
    their periodic twin, the others by ``paint_array``; 2-D painters slab by slab."""

    def one(a: np.ndarray) -> np.ndarray:
        return periodic_paint(painter, a) if painter.mode == "same" else paint_array(painter, a)

    if slab_axis is None:
        return one(x)
    slabs = np.moveaxis(x, x.ndim - 3 + slab_axis, 0)
    return np.stack([one(s) for s in slabs], axis=1 + slab_axis)


@contextlib.contextmanager
def two_workers() -> Iterator[Any]:
    """A client of a LocalCluster of 2 single-threaded worker processes (no memory limit).

    Not the default client: a session-long default would send every later test's work to
    these workers (use ``client.as_current()`` where a test paints on them)."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            memory_limit=0,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


def paint_input(family: str, seed: int) -> np.ndarray:
    """A random box of ``CASES[family]``'s shape (non-negative for the slab painters, whose
    normalizations take logarithms)."""
    x = np.random.default_rng(seed).standard_normal(CASES[family][1]).astype("f4")
    return np.abs(x) if CASES[family][2] is not None else x  # slabs: log-normalized painters


def input_field(path, family: str) -> tuple[str, np.ndarray]:
    """A 3-D input Field for paint_field and the array the painter sees (projected slabs)."""
    slab = CASES[family][2]
    x = paint_input(family, 7)
    if slab is not None:  # paint_field projects 2-voxel slabs of this box
        x = np.repeat(x, 2, axis=slab) / 2
    box = [4.0 * n for n in x.shape[-3:]]  # make_checkpoint trains at 4 Mpc/h voxels
    url = write_array(
        str(path), x, chunks=x.shape[-3:], meta={"box_size": box, "kind": "delta", "units": "1"}
    ).url
    return url, x if slab is None else project_slabs(x, slab, 2)


@pytest.fixture
def halo(tmp_path: Path) -> str:
    """A halo-painter checkpoint trained at 4 Mpc/h voxels."""
    return make_checkpoint(tmp_path / "halo.painter", "halo-painter", grid=16)


@pytest.fixture
def src(tmp_path: Path) -> str:
    """A 16^3 delta Field of 4 Mpc/h voxels in 8^3 chunks."""
    return make_field(tmp_path / "in.zarr", (16, 16, 16), 8)


@pytest.fixture(scope="session")
def family_checkpoints(tmp_path_factory) -> dict[str, str]:
    """A checkpoint of every family's ``CASES`` painter."""
    root = tmp_path_factory.mktemp("families")
    return {
        fam: make_checkpoint(root / f"{fam}.painter", fam, **update)
        for fam, (update, _, _) in CASES.items()
    }


@pytest.fixture(scope="session")
def cluster() -> Iterator[Any]:
    """A client of :func:`two_workers`, shared by the tests that only paint on it."""
    with two_workers() as client:
        yield client
