"""Chunked painting equals whole-box periodic inference (``paint_array``) for any chunk layout,
up to float32 rounding (``assert_painted_close``: the tolerance docs/paint.md states)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.field import open_field
from bigpaint.paint import paint_field
from bigpaint.paint.plan import read_checkpoint_info
from bigpaint.paint.seams import SEAM_RTOL, periodic_paint, seam_error
from bigpaint.paint.workers import LOADS, clear_painter_cache
from bigpaint.painters import load_checkpoint, paint_array
from bigpaint.testing import assert_painted_close, chunk_layouts

from .conftest import make_checkpoint, make_field, small
from .conftest import paint_chunked as _chunked


@pytest.fixture(scope="module")
def halo_ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("h") / "halo.painter", "halo-painter")


@pytest.fixture(scope="module")
def dm2gal_ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("d") / "dm2gal.painter", "dm2gal")


@pytest.fixture(scope="module")
def unet_ckpt(tmp_path_factory):
    """One pooling level (context 10, alignment 2): cheap, still needs aligned windows."""
    return make_checkpoint(
        tmp_path_factory.mktemp("u") / "unet.painter", "protohalo-unet", levels=1
    )


@settings(max_examples=12)
@given(layout=chunk_layouts((9, 7, 8), max_parts=4), seed=st.integers(0, 2**16))
def test_halo_painter_chunked_equals_whole_box(halo_ckpt, layout, seed):
    """Valid convolutions: uneven chunks, chunks smaller than the context (4), wrap."""
    x = np.random.default_rng(seed).standard_normal((9, 7, 8)).astype("f4")
    painter, _ = load_checkpoint(halo_ckpt)
    ref = paint_array(painter, x)
    assert_painted_close(_chunked(halo_ckpt, x, layout), ref, channel_axis=0)


@settings(max_examples=3)
@given(layout=chunk_layouts((4, 3, 4), max_parts=2), seed=st.integers(0, 2**16))
def test_dm2gal_dense_chunked_equals_whole_box(dm2gal_ckpt, layout, seed):
    """dm2gal's dense form (context 32, far larger than the box): the window wraps many times."""
    x = np.random.default_rng(seed).standard_normal((2, 4, 3, 4)).astype("f4")
    painter, _ = load_checkpoint(dm2gal_ckpt)
    ref = paint_array(painter, x)
    assert_painted_close(_chunked(dm2gal_ckpt, x, layout), ref, channel_axis=0)


@settings(max_examples=5)
@given(layout=chunk_layouts((6, 8, 4), max_parts=3), seed=st.integers(0, 2**16))
def test_unet_full_context_is_exact_for_unaligned_chunks(unet_ckpt, layout, seed):
    """With margin = structural context, a U-Net block is exact even when chunk origins are
    not multiples of the alignment (windows are aligned to the global pooling grid)."""
    x = np.random.default_rng(seed).standard_normal((6, 8, 4)).astype("f4")
    painter, meta = load_checkpoint(unet_ckpt)
    ref = periodic_paint(painter, x)
    assert_painted_close(paint_array(painter, x), ref, channel_axis=0)
    assert_painted_close(_chunked(unet_ckpt, x, layout, margin=meta.context), ref, channel_axis=0)


@pytest.mark.parametrize("seed", [0, 3])
def test_unet_seam_error_at_default_margin_is_below_bound(seed):
    """The documented bound: max seam error < SEAM_RTOL (1e-3) of the output's std at the
    default margin (docs/paint.md), for unaligned uneven chunks; it grows when the margin
    shrinks."""
    from bigpaint.paint import default_margin

    painter = small("protohalo-unet", seed=seed).eval()
    x = np.random.default_rng(seed + 1).standard_normal((16, 16, 16)).astype("f4")
    ref = periodic_paint(painter, x)
    m = default_margin(painter.metadata())
    assert m < painter.context, "the default must be cheaper than the full context"
    at_default = seam_error(painter, x, m, chunks=((6, 10), (16,), (5, 3, 8)), reference=ref)
    assert at_default["max_rel"] < SEAM_RTOL
    worse = seam_error(painter, x, m // 4, chunks=((6, 10), (16,), (5, 3, 8)), reference=ref)
    assert worse["max_abs"] > 10 * at_default["max_abs"]


def test_subtiling_under_a_small_budget_changes_nothing(halo_ckpt, unet_ckpt):
    """Sub-tiles get the block's window rule (a U-Net at a partial margin would add seams
    within the same bound, so it is checked at its full context)."""
    x = np.random.default_rng(0).standard_normal((12, 12, 12)).astype("f4")
    for ck, margin in ((halo_ckpt, None), (unet_ckpt, 10)):
        whole = _chunked(ck, x, (12, 12, 12), margin=margin)
        tiny = _chunked(ck, x, (12, 12, 12), margin=margin, budget=3_000_000)
        assert_painted_close(tiny, whole, channel_axis=0)


def test_paint_field_end_to_end_multichannel_provenance_and_single_load(tmp_path):
    """A Field in, a Field out (channel dim for 2 outputs), provenance, one model load."""
    ck = make_checkpoint(tmp_path / "h2.painter", "halo-painter", out_channels=2)
    src = make_field(tmp_path / "in.zarr", (16, 16, 16), (6, 5, 5))
    clear_painter_cache()
    LOADS.clear()
    paint_field(ck, src, str(tmp_path / "out.zarr"), chunks=(7, 16, 5))
    out = open_field(str(tmp_path / "out.zarr"))
    y = out["painted_test"].values
    assert out["painted_test"].dims == ("channel", "x", "y", "z")
    painter, _ = load_checkpoint(ck)
    ref = paint_array(painter, open_field(src)["delta"].values)
    assert_painted_close(y, ref, channel_axis=0)
    prov = out.attrs["provenance"]
    info = read_checkpoint_info(ck)
    assert prov["operation"] == "paint"
    assert prov["config"]["checkpoint_hash"] == info.hash
    assert prov["config"]["margin"] == 4 and prov["inputs"] == [src]
    assert tuple(out.attrs["box_size"]) == (64.0, 64.0, 64.0)
    assert sum(LOADS.values()) == 1, "the model must be loaded once, not per block"
    # same call again: nothing to do, still finished
    paint_field(ck, src, str(tmp_path / "out.zarr"), chunks=(7, 16, 5))
    np.testing.assert_array_equal(open_field(str(tmp_path / "out.zarr"))["painted_test"].values, y)


def test_rolling_the_input_rolls_the_output(halo_ckpt):
    x = np.random.default_rng(9).standard_normal((10, 8, 9)).astype("f4")
    a = _chunked(halo_ckpt, x, ((4, 6), (3, 5), (9,)))
    b = _chunked(halo_ckpt, np.roll(x, (3, -2, 5), (0, 1, 2)), ((4, 6), (3, 5), (9,)))
    assert_painted_close(np.roll(a, (3, -2, 5), (1, 2, 3)), b, channel_axis=0)


def test_torch_inference_leaves_grad_mode_alone(halo_ckpt):
    x = np.zeros((6, 6, 6), "f4")
    _chunked(halo_ckpt, x, (6, 6, 6))
    assert torch.is_grad_enabled()
