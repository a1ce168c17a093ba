"""2-D painters on projected slabs: chunked equals whole-slab inference, any axis/thickness."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.chunked.apply import apply_blockwise
from bigpaint.field import open_field, write_array
from bigpaint.paint import paint_field, position_noise, project_slabs
from bigpaint.paint.engine import PaintBlock
from bigpaint.paint.plan import read_checkpoint_info
from bigpaint.paint.seams import periodic_paint
from bigpaint.paint.slabs import NoiseMaps
from bigpaint.painters import load_checkpoint, paint_array
from bigpaint.testing import assert_painted_close, chunk_layouts

from .conftest import make_checkpoint


def _whole_slabs(painter, x: np.ndarray, axis: int, thickness: int) -> np.ndarray:
    """Reference: project with numpy, paint each whole slab with ``paint_array``."""
    proj = np.moveaxis(project_slabs(x, axis, thickness), axis, 0)
    out = np.stack([paint_array(painter, s) for s in proj], axis=1)
    return np.moveaxis(out, 1, 1 + axis)


def test_project_slabs_sums_thickness_voxels():
    x = np.arange(4 * 3 * 2, dtype="f4").reshape(4, 3, 2)
    np.testing.assert_array_equal(project_slabs(x, 0, 2), x[0::2] + x[1::2])
    np.testing.assert_array_equal(project_slabs(x, 2, 2), x.sum(2, keepdims=True))


@settings(max_examples=5)
@given(
    axis=st.integers(0, 2),
    thickness=st.sampled_from([1, 2, 4]),
    layout=chunk_layouts((4, 16, 16), max_parts=3),
    seed=st.integers(0, 2**16),
)
def test_ember_slabs_chunked_equal_whole_slab(tmp_path_factory, axis, thickness, layout, seed):
    """EMBER (same-mode 2-D U-Net, no noise) with its full context: exact for uneven,
    unaligned in-plane chunks and any slab axis and thickness."""
    tmp = tmp_path_factory.mktemp("e")
    ck = make_checkpoint(tmp / "ember.painter", "ember", noise=False, depth=thickness)
    painter, meta = load_checkpoint(ck)
    shape = [16, 16, 16]
    shape[axis] = 4 * thickness
    x = np.abs(np.random.default_rng(seed).standard_normal(shape)).astype("f4")
    ref = _whole_slabs(painter, x, axis, thickness)
    proj = project_slabs(x, axis, thickness)
    lay = list(layout[1:])
    lay.insert(axis, layout[0])
    ctx = [meta.context + meta.alignment - 1] * 3
    ctx[axis] = 0
    info = read_checkpoint_info(ck)
    func = PaintBlock(ck, info.hash, "cpu", meta.context, tuple(ctx), axis, proj.shape)
    out = np.full(proj.shape, np.nan, "f4")
    apply_blockwise(func, proj, out, ctx, chunks=tuple(lay))
    assert_painted_close(out, ref[0])


def test_ember_with_noise_uses_position_keyed_noise(tmp_path):
    """Noise injection: chunks, sub-tiles and the whole slab see the same noise per pixel."""
    ck = make_checkpoint(tmp_path / "ember.painter", "ember", noise=True, depth=2)
    painter, meta = load_checkpoint(ck)
    for inj in painter.noises:  # noise weights start at 0; make them matter
        inj.weight.data.fill_(0.5)
    from bigpaint.painters import save_checkpoint

    save_checkpoint(painter, ck, provenance=meta.provenance)
    x = np.abs(np.random.default_rng(2).standard_normal((16, 16, 8))).astype("f4")
    src = write_array(
        str(tmp_path / "in.zarr"),
        x,
        chunks=(8, 8, 8),
        meta={"box_size": (64.0, 64.0, 32.0), "kind": "delta", "units": "1"},
    ).url
    paint_field(
        ck,
        src,
        str(tmp_path / "out.zarr"),
        chunks=(4, 8, 4),
        margin=meta.context,
        slab={"axis": "z", "thickness": 2},
        seed=11,
    )
    y = open_field(str(tmp_path / "out.zarr"))["painted_test"].values
    proj = project_slabs(x, 2, 2)
    noise = NoiseMaps(11, 2, (16, 16))
    ref = np.stack(
        [periodic_paint(painter, proj[:, :, k], noise=noise, slab=k)[0] for k in range(4)], 2
    )
    assert_painted_close(y, ref)
    other = NoiseMaps(12, 2, (16, 16))
    alt = periodic_paint(painter, proj[:, :, 0], noise=other, slab=0)[0]
    assert np.abs(alt - ref[:, :, 0]).max() > 1e-4, "the seed must change the realisation"


def test_position_noise_is_keyed_by_position_and_periodic():
    a = position_noise(3, 1, 0, (0, 0), (8, 8), (8, 8))
    b = position_noise(3, 1, 0, (-3, 5), (8, 8), (8, 8))
    np.testing.assert_array_equal(b, np.roll(a, (3, -5), (0, 1)))
    big = position_noise(3, 1, 0, (0, 0), (256, 256), (256, 256))
    assert abs(big.mean()) < 0.02 and abs(big.std() - 1) < 0.02
    assert not np.array_equal(a, position_noise(3, 2, 0, (0, 0), (8, 8), (8, 8)))


def test_cosmic_web_tiles_end_to_end(tmp_path):
    """Tile painter (fixed 32^2 tiles) through paint_field: equals per-slab tiled painting."""
    x = np.abs(np.random.default_rng(5).standard_normal((64, 8, 64))).astype("f4")

    src = write_array(
        str(tmp_path / "in.zarr"),
        x,
        chunks=(32, 8, 32),
        meta={"box_size": (256.0, 32.0, 256.0), "kind": "delta", "units": "1"},
    ).url
    ck = make_checkpoint(tmp_path / "cw.painter", "cosmic-web-gan", depth=4, grid=64, box=256.0)
    paint_field(ck, src, str(tmp_path / "out.zarr"), chunks=(20, 2, 48), slab={"axis": 1})
    out = open_field(str(tmp_path / "out.zarr"))
    y = out["painted_test"].values
    assert y.shape == (64, 2, 64)
    painter, _ = load_checkpoint(ck)
    assert_painted_close(y, _whole_slabs(painter, x, 1, 4)[0])
    assert out.attrs["provenance"]["config"]["slab"] == {"axis": 1, "thickness": 4}
