"""Tiny checkpoints and input Fields for the paint tests (shared small painter configs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bigpaint.field import write_array
from bigpaint.painters import save_checkpoint

from ..painters._small import _one_thread, small

__all__ = ["BOX", "_one_thread", "make_checkpoint", "make_field", "small"]

#: Box side in Mpc/h of the test Fields.
BOX = 64.0


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


@pytest.fixture
def ckpt_dir(tmp_path: Path) -> Path:
    return tmp_path
