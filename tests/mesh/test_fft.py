"""The distributed real FFT equals numpy.fft on the whole array, for any chunk layout.

Tolerance: float64 input must agree with ``numpy.fft.rfftn`` to 1e-12 of max|F| (both are
pocketfft; in practice bit-identical); float32 input is transformed in single precision and
must agree with the float64 transform to 2e-6 of max|F|. Inverses round-trip to 1e-12
(float64) and 1e-5 (float32) of max|x|.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.errors import ChunkingError, ConfigError, NonFiniteError, ShapeError
from bigpaint.mesh.fft import fft_backends, irfftn, rfftn
from bigpaint.mesh.fft_plan import plan_fft
from bigpaint.testing import chunk_layouts

shapes = st.tuples(st.integers(1, 14), st.integers(1, 14), st.integers(1, 14))


@st.composite
def field_and_chunks(draw: st.DrawFn) -> tuple[np.ndarray, tuple]:
    shape = draw(shapes)
    chunks = draw(chunk_layouts(shape, max_parts=4))
    seed = draw(st.integers(0, 2**31 - 1))
    x = np.random.default_rng(seed).standard_normal(shape)
    return x, chunks


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.abs(b).max()), 1e-300)
    return float(np.abs(a - b).max()) / scale


@settings(max_examples=40, deadline=None)
@given(field_and_chunks(), st.sampled_from(["slab", "pencil"]), st.integers(1, 6))
def test_rfftn_equals_numpy_for_any_chunking(data, backend: str, min_blocks: int) -> None:
    x, chunks = data
    fk = rfftn(da.from_array(x, chunks=chunks), backend=backend, min_blocks=min_blocks)
    got = fk.compute(scheduler="sync")
    ref = np.fft.rfftn(x)
    assert got.shape == ref.shape
    assert got.dtype == np.complex128
    assert _rel(got, ref) <= 1e-12


@settings(max_examples=30, deadline=None)
@given(field_and_chunks(), st.sampled_from(["slab", "pencil"]), st.integers(1, 6), st.data())
def test_irfftn_round_trips_and_equals_numpy(data, backend: str, min_blocks: int, draw) -> None:
    x, _ = data
    fk_np = np.fft.rfftn(x)
    in_chunks = draw.draw(chunk_layouts(fk_np.shape, max_parts=4))
    out_chunks = draw.draw(chunk_layouts(x.shape, max_parts=3))
    back = irfftn(
        da.from_array(fk_np, chunks=in_chunks),
        x.shape,
        chunks=out_chunks,
        backend=backend,
        min_blocks=min_blocks,
    )
    assert back.chunks == out_chunks
    got = back.compute(scheduler="sync")
    assert _rel(got, np.fft.irfftn(fk_np, s=x.shape, axes=(0, 1, 2))) <= 1e-12
    assert _rel(got, x) <= 1e-12


def test_float32_is_single_precision_within_tolerance(box16: np.ndarray) -> None:
    fk = rfftn(da.from_array(box16, chunks=(6, 5, 5)))
    assert fk.dtype == np.complex64
    ref = np.fft.rfftn(box16.astype(np.float64))
    assert _rel(fk.compute(), ref) <= 2e-6
    back = irfftn(fk, box16.shape)
    assert back.dtype == np.float32
    assert _rel(back.compute(), box16) <= 1e-5


def test_periodic_roll_multiplies_by_phase(box16: np.ndarray) -> None:
    """Rolling the box across the periodic seam only changes phases (shift theorem)."""
    x = box16.astype(np.float64)
    shift = (5, -3, 7)
    a = rfftn(da.from_array(x, chunks=(6, 5, 5))).compute()
    b = rfftn(da.from_array(np.roll(x, shift, axis=(0, 1, 2)), chunks=(3, 7, 4))).compute()
    kx = np.fft.fftfreq(16)[:, None, None]
    ky = np.fft.fftfreq(16)[None, :, None]
    kz = np.fft.rfftfreq(16)[None, None, :]
    phase = np.exp(-2j * np.pi * (kx * shift[0] + ky * shift[1] + kz * shift[2]))
    assert _rel(b, a * phase) <= 1e-12


def test_plan_never_holds_more_than_block_bytes_beyond_one_plane() -> None:
    for shape in [(64, 64, 64), (33, 17, 50), (128, 8, 8)]:
        for dec in ("slab", "pencil"):
            plan = plan_fft(
                shape, decomposition=dec, itemsize=8, block_bytes=64 * 1024, min_blocks=4
            )
            for stage in plan.forward + plan.inverse:
                assert tuple(sum(c) for c in stage.chunks) == stage.shape
                for ax in stage.axes:
                    assert len(stage.chunks[ax]) == 1, "a transformed axis must be one chunk"
                # a stage block is at most block_bytes, or the minimal unit (one plane / line)
                biggest = np.prod([max(c) for c in stage.chunks]) * 8
                unit = np.prod([stage.shape[a] for a in stage.axes]) * 8
                assert biggest <= max(64 * 1024, unit) * 2
            assert plan.output_chunks[0] == (shape[0],)


def test_plan_splits_for_parallelism() -> None:
    plan = plan_fft((64, 64, 64), block_bytes=2**40, min_blocks=8)
    assert plan.forward[0].n_blocks >= 8
    assert plan.forward[1].n_blocks >= 8


def test_p2p_transpose_on_a_distributed_cluster(tmp_path) -> None:
    """The transposes run as P2P rechunks when a distributed client is active."""
    distributed = pytest.importorskip("distributed")
    x = np.random.default_rng(7).standard_normal((16, 12, 10)).astype(np.float32)
    with distributed.Client(
        processes=False,
        n_workers=2,
        threads_per_worker=1,
        dashboard_address=":0",
        local_directory=str(tmp_path),
    ) as client:
        fk = rfftn(da.from_array(x, chunks=(5, 7, 3)), min_blocks=4)
        names = {str(k[0]) if isinstance(k, tuple) else str(k) for k in dict(fk.__dask_graph__())}
        assert any("rechunk-p2p" in n or "p2p" in n for n in names)
        got = client.compute(fk).result()
        back = client.compute(irfftn(fk, x.shape, chunks=(4, 4, 4))).result()
    assert _rel(got, np.fft.rfftn(x.astype(np.float64))) <= 2e-6
    assert _rel(back, x) <= 1e-5


def test_nan_input_is_refused(box16: np.ndarray) -> None:
    bad = box16.copy()
    bad[3, 4, 5] = np.nan
    fk = rfftn(da.from_array(bad, chunks=(6, 5, 5)))
    with pytest.raises(NonFiniteError, match=r"\(3, 4, 5\)"):
        fk.compute()


def test_bad_inputs_give_clear_errors(box16: np.ndarray) -> None:
    with pytest.raises(ShapeError, match="3-D"):
        rfftn(np.zeros((4, 4)))
    with pytest.raises(ShapeError, match="real array"):
        rfftn(np.zeros((4, 4, 4), complex))
    with pytest.raises(ConfigError, match="unknown FFT backend"):
        rfftn(box16, backend="nope")
    with pytest.raises(ConfigError, match="decomposition"):
        plan_fft((4, 4, 4), decomposition="cube")  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="cannot come from"):
        irfftn(np.zeros((4, 4, 3), complex), (4, 4, 7))
    with pytest.raises(ChunkingError):
        irfftn(np.zeros((4, 4, 3), complex), (4, 4, 4), chunks=((3, 3), 4, 4))
    assert {"slab", "pencil"} <= set(fft_backends())


def test_integer_input_is_promoted() -> None:
    x = np.arange(4 * 5 * 6).reshape(4, 5, 6) % 7
    got = rfftn(da.from_array(x, chunks=2)).compute()
    assert got.dtype == np.complex128
    assert _rel(got, np.fft.rfftn(x)) <= 1e-12


def test_two_transforms_in_one_graph_stay_distinct(box16: np.ndarray) -> None:
    """Keys of different inputs must never collide (a fixed key name once merged them)."""
    a = da.from_array(box16.astype(np.float64), chunks=(6, 5, 5))
    b = da.from_array(box16[::-1].astype(np.float64), chunks=(6, 5, 5))
    fa, fb = rfftn(a), rfftn(b)
    both = (fa - fb).compute()
    np.testing.assert_allclose(
        both, np.fft.rfftn(a.compute()) - np.fft.rfftn(b.compute()), atol=1e-9
    )
    back = (irfftn(fa, box16.shape) + irfftn(fb, box16.shape)).compute()
    np.testing.assert_allclose(back, box16 + box16[::-1], atol=1e-5)


@settings(max_examples=6, deadline=None)
@given(st.sampled_from(["slab", "pencil"]), st.data())
def test_zarr_and_numpy_sources(tmp_path_factory, backend: str, data) -> None:
    """A Zarr array (the store behind a Field, read lazily in its chunks) and a numpy array
    (cut into the first stage's slabs) transform like numpy."""
    from bigpaint.field import open_field, write_array, zarr_array

    shape = data.draw(st.tuples(st.integers(6, 12), st.integers(6, 12), st.integers(6, 12)))
    x = np.random.default_rng(data.draw(st.integers(0, 999))).standard_normal(shape).astype("f4")
    chunks = data.draw(st.tuples(*(st.integers(2, n // 2) for n in shape)))
    url = str(tmp_path_factory.mktemp("fft") / "f.zarr")
    write_array(url, x, chunks=chunks, meta={"box_size": 10.0, "kind": "delta", "units": "1"})
    store = zarr_array(open_field(url))
    direct = rfftn(store, backend=backend, min_blocks=3)
    assert direct.npartitions > 1 or all(c == n for c, n in zip(chunks, shape, strict=True))
    ref = np.fft.rfftn(x.astype(np.float64))
    assert _rel(direct.compute(scheduler="sync"), ref) <= 2e-6
    assert _rel(rfftn(x, backend=backend).compute(), ref) <= 2e-6


@pytest.mark.parametrize("before", [True, False])
def test_rfftn_memory_equals_numpy_and_leaves_the_huge_page_switch(before, rng, monkeypatch):
    """The in-memory transform turns numpy's huge-page advice off while it runs (see
    ``bigpaint.mesh.fft._small_pages``): the result must be numpy's, and the switch must be
    as it was afterwards, after a failure too, and with transforms overlapping in threads."""
    from concurrent.futures import ThreadPoolExecutor

    try:
        from numpy._core.multiarray import _get_madvise_hugepage, _set_madvise_hugepage
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _get_madvise_hugepage, _set_madvise_hugepage

    from bigpaint.mesh.fft import rfftn_memory

    kept = _get_madvise_hugepage()
    _set_madvise_hugepage(before)
    try:
        x = rng.standard_normal((24, 20, 18))
        np.testing.assert_allclose(rfftn_memory(x), np.fft.rfftn(x), rtol=1e-12, atol=1e-10)
        with ThreadPoolExecutor(4) as pool:
            for got in pool.map(lambda _: rfftn_memory(x, workers=1), range(16)):
                np.testing.assert_allclose(got, np.fft.rfftn(x), rtol=1e-12, atol=1e-10)
        assert _get_madvise_hugepage() is before

        def fail(*args, **kwargs):
            assert _get_madvise_hugepage() is False
            raise MemoryError("no room")

        monkeypatch.setattr("scipy.fft.rfftn", fail)
        with pytest.raises(MemoryError):
            rfftn_memory(x)
        assert _get_madvise_hugepage() is before
    finally:
        _set_madvise_hugepage(kept)
