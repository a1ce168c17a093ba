"""Chunked painting is whole-box inference up to float32 rounding, for every painter family,
any chunk layout, torch thread count, memory budget and worker count.

The tolerance is the one docs/paint.md states (``ROUNDING_RTOL`` of each output channel's
largest magnitude, checked by ``assert_painted_close``); the last tests show that it is
tight enough to catch a seam and that the measure it uses behaves.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.field import open_field
from bigpaint.paint import paint_field
from bigpaint.paint.seams import ROUNDING_RTOL, rounding_error
from bigpaint.paint.workers import clear_painter_cache
from bigpaint.painters import load_checkpoint
from bigpaint.testing import assert_painted_close, chunk_layouts

from .conftest import (
    CASES,
    input_field,
    make_checkpoint,
    paint_chunked,
    paint_input,
    whole_box,
)


@pytest.mark.parametrize("family", list(CASES))
@settings(max_examples=3)
@given(data=st.data())
def test_every_family_paints_within_rounding_of_the_whole_box(family_checkpoints, family, data):
    """Uneven layouts (blocks smaller than the context included), 1 or 2 torch threads, and
    a budget that sub-tiles every block or none: all within ROUNDING_RTOL of whole-box
    inference (U-Nets at margin = context, where chunking is exact in real arithmetic)."""
    _, shape, slab = CASES[family]
    layout = data.draw(chunk_layouts(shape[-3:], max_parts=3), label="layout")
    threads = data.draw(st.sampled_from([1, 2]), label="threads")
    budget = data.draw(st.sampled_from([None, 1]), label="budget")
    x = paint_input(family, data.draw(st.integers(0, 2**16), label="seed"))
    painter, _ = load_checkpoint(family_checkpoints[family])
    ref = whole_box(painter, x, slab)
    torch.set_num_threads(threads)
    clear_painter_cache()
    y = paint_chunked(family_checkpoints[family], x, layout, slab_axis=slab, budget=budget)
    assert_painted_close(y, ref, channel_axis=0)


@pytest.mark.parametrize("family", list(CASES))
def test_worker_counts_and_chunks_change_only_rounding(tmp_path, cluster, family):
    """``paint_field`` on local threads (one block at a time, 2 torch threads) and on 2
    single-threaded workers with other chunks: both within ROUNDING_RTOL of whole-box
    inference, so within twice that of each other."""
    update, _, slab = CASES[family]
    ck = make_checkpoint(
        tmp_path / "p.painter", family, depth=2 if slab is not None else None, **update
    )
    src, seen = input_field(tmp_path / "in.zarr", family)
    painter, meta = load_checkpoint(ck)
    ref = whole_box(painter, seen, slab)
    kw = {"margin": None if meta.mode != "same" else meta.context, "device": "cpu"}
    if slab is not None:
        kw["slab"] = {"axis": slab, "thickness": 2}
    plane = [n for a, n in enumerate(seen.shape[-3:]) if a != slab]
    torch.set_num_threads(2)
    paint_field(ck, src, str(tmp_path / "local.zarr"), chunks=max(plane), **kw)
    with cluster.as_current():
        paint_field(ck, src, str(tmp_path / "two.zarr"), chunks=max(2, min(plane) // 2), **kw)
    c_axis = 0 if meta.out_channels > 1 else None
    outs = [
        open_field(str(tmp_path / f"{n}.zarr"))["painted_test"].values for n in ("local", "two")
    ]
    for y in outs:
        assert_painted_close(y, ref if c_axis == 0 else ref[0], channel_axis=c_axis)
    assert_painted_close(outs[1], outs[0], channel_axis=c_axis, rtol=2 * ROUNDING_RTOL)


def test_a_seam_fails_the_rounding_tolerance_by_orders_of_magnitude(family_checkpoints):
    """The tolerance separates rounding from seams: a U-Net painted with a margin short of
    its context (a real seam) is far outside it, the full context inside."""
    painter, meta = load_checkpoint(family_checkpoints["protohalo-unet"])
    x = np.random.default_rng(3).standard_normal((8, 8, 8)).astype("f4")
    ref = whole_box(painter, x)
    layout = ((3, 5), (8,), (2, 6))
    short = paint_chunked(family_checkpoints["protohalo-unet"], x, layout, margin=1)
    assert rounding_error(short, ref, channel_axis=0) > 100 * ROUNDING_RTOL
    with pytest.raises(AssertionError, match="rounding tolerance"):
        assert_painted_close(short, ref, channel_axis=0)
    full = paint_chunked(family_checkpoints["protohalo-unet"], x, layout, margin=meta.context)
    assert_painted_close(full, ref, channel_axis=0)


def test_rounding_error_is_relative_to_each_channels_largest_magnitude():
    ref = np.stack([np.linspace(-2.0, 1.0, 8), np.linspace(0.0, 0.01, 8)])
    assert rounding_error(ref, ref, channel_axis=0) == 0.0
    big = ref.copy()
    big[0, 3] += 2e-5  # 1e-5 of channel 0's largest magnitude (2)
    assert math.isclose(rounding_error(big, ref, channel_axis=0), 1e-5, rel_tol=1e-3)
    small = ref.copy()
    small[1, 3] += 2e-7  # 2e-5 of channel 1's largest magnitude (0.01), not of the array's
    assert math.isclose(rounding_error(small, ref, channel_axis=0), 2e-5, rel_tol=1e-2)
    assert rounding_error(small, ref) < 1e-6  # one channel: scaled by the array's largest
    holes = ref.copy()
    holes[0, 0] = np.nan  # an unwritten voxel never passes
    assert rounding_error(holes, ref, channel_axis=0) == math.inf
    zero = np.zeros((2, 4))
    assert rounding_error(zero + 1e-9, zero) == math.inf
