"""The chunk primitive against whole-array references, for drawn chunk layouts."""

from __future__ import annotations

import functools

import dask
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.blockwise import BlockPlan
from bigpaint.chunked.apply import apply_blockwise
from bigpaint.chunked.graph import run_tasks
from bigpaint.chunked.read import periodic_read
from bigpaint.context import gaussian_context
from bigpaint.errors import ChunkingError, NonFiniteError, ShapeError
from bigpaint.field import create_field, open_field, write_array
from bigpaint.filters import gaussian_filter
from bigpaint.testing import chunk_layouts, regular_chunks

from .conftest import META

SHAPE = (16, 12, 10)


def _field(seed: int, shape=SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype("f4")


@given(
    chunks=chunk_layouts(SHAPE),
    sigma=st.floats(0.3, 3.0),
    truncate=st.sampled_from([1.0, 2.5, 4.0]),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=40)
def test_gaussian_equals_scipy_wrap_any_layout(chunks, sigma, truncate, seed):
    """Tolerance: bit-exact. scipy evaluates each output with the same taps in the same
    order whether or not the array is chunked, once the context covers the kernel radius."""
    a = _field(seed)
    got = gaussian_filter(a, sigma, truncate=truncate, chunks=chunks)
    ref = ndi.gaussian_filter(a, sigma, mode="wrap", truncate=truncate)
    np.testing.assert_array_equal(got, ref)


def test_context_larger_than_chunk_and_box():
    a = _field(3, (8, 8, 8))
    sigma = 3.0  # radius 12 > chunk 2 and > box 8: windows wrap more than once
    got = gaussian_filter(a, sigma, chunks=2)
    assert gaussian_context([sigma] * 3) == (12, 12, 12)
    np.testing.assert_allclose(got, ndi.gaussian_filter(a, sigma, mode="wrap"), rtol=0, atol=1e-6)


def test_single_chunk():
    a = _field(4)
    np.testing.assert_array_equal(
        gaussian_filter(a, 1.2, chunks=SHAPE), ndi.gaussian_filter(a, 1.2, mode="wrap")
    )


@given(chunks=regular_chunks(SHAPE, min_size=2), seed=st.integers(0, 100), sharded=st.booleans())
@settings(max_examples=12)
def test_field_to_field_equals_scipy(tmp_path_factory, chunks, seed, sharded):
    tmp = tmp_path_factory.mktemp("bw")
    a = _field(seed)
    src = open_field(write_array(str(tmp / "a.zarr"), a, chunks=(5, 7, 3), meta=META).url)
    kw = (
        {"shards": True, "inner_chunks": tuple(max(1, c // 2) if c % 2 == 0 else c for c in chunks)}
        if sharded
        else {}
    )
    dest = create_field(str(tmp / "b.zarr"), shape=SHAPE, chunks=chunks, meta=META, **kw)
    sig = (1.0, 1.5, 0.7)
    f = functools.partial(ndi.gaussian_filter, sigma=sig, mode="wrap")
    n = apply_blockwise(f, src, dest, gaussian_context(sig))
    assert n == int(np.prod(dest.grid))
    np.testing.assert_array_equal(
        open_field(dest.url)["delta"].values, ndi.gaussian_filter(a, sig, mode="wrap")
    )
    assert apply_blockwise(f, src, dest, gaussian_context(sig)) == 0  # finished: nothing redone


@given(
    start=st.tuples(*[st.integers(-30, 30)] * 3),
    size=st.tuples(*[st.integers(1, 25)] * 3),
)
@settings(max_examples=60)
def test_periodic_read_equals_modular_take(start, size):
    a = np.arange(7 * 5 * 6).reshape(7, 5, 6)
    window = [(s, s + n) for s, n in zip(start, size, strict=True)]
    idx = [np.arange(s, e) % n for (s, e), n in zip(window, a.shape, strict=True)]
    np.testing.assert_array_equal(periodic_read(a, window), a[np.ix_(*idx)])


def test_rolling_input_across_seam_rolls_output():
    a = _field(7)
    shift = (5, -3, 4)
    f = functools.partial(gaussian_filter, sigma=1.3, chunks=(6, 5, 5))
    np.testing.assert_array_equal(
        f(np.roll(a, shift, axis=(0, 1, 2))), np.roll(f(a), shift, axis=(0, 1, 2))
    )


def test_channels_and_core_returning_function():
    a = np.random.default_rng(0).random((2, 8, 8, 8)).astype("f4")
    out = np.empty((1, 8, 8, 8), "f4")

    def valid_sum(window):  # valid 3x3x3 box sum, channels summed: returns the core only
        s = window.sum(axis=0)
        core = sum(
            s[i : i + s.shape[0] - 2, j : j + s.shape[1] - 2, k : k + s.shape[2] - 2]
            for i in range(3)
            for j in range(3)
            for k in range(3)
        )
        return core[None]

    apply_blockwise(valid_sum, a, out, 1, chunks=(3, 5, 8))
    ref = ndi.uniform_filter(a.sum(0).astype("f8"), 3, mode="wrap") * 27
    np.testing.assert_allclose(out[0], ref, rtol=1e-5)


def test_block_info_and_one_task_per_block():
    a = np.zeros((8, 8, 8), "f4")
    out = np.empty_like(a)
    seen = []

    def tag(window, block_info):
        seen.append(block_info.index)
        return np.full(
            window.shape,
            block_info.index[0] * 100 + block_info.index[1] * 10 + block_info.index[2],
            "f4",
        )

    counted = []

    class Count(dask.callbacks.Callback):
        def _pretask(self, key, dsk, state):
            if str(key).startswith("blockwise-") and key.rsplit("-", 1)[-1].isdigit():
                counted.append(key)

    with Count():
        apply_blockwise(tag, a, out, 2, chunks=(4, (3, 5), 8))
    assert sorted(seen) == [(i, j, 0) for i in range(2) for j in range(2)]
    assert len(counted) == 4  # one task per block, no overlap/concatenate tasks
    assert out[5, 4, 0] == 110 and out[0, 0, 7] == 0


def test_plan_scales_to_many_blocks():
    plan = BlockPlan.build((2048, 2048, 2048), 64, 16)
    assert plan.n_blocks == 32**3
    assert plan.window((0, 0, 31)) == ((-16, 80), (-16, 80), (1968, 2064))


def test_errors():
    a = _field(1)
    with pytest.raises(
        NonFiniteError, match=r"1 NaN/inf values in block \(1, 0, 0\).*voxel \(8, 1, 2\)"
    ):
        b = a.copy()
        b[8, 1, 2] = np.nan
        gaussian_filter(b, 1.0, chunks=(6, 12, 10))
    with pytest.raises(ShapeError, match="must return the window"):
        apply_blockwise(lambda w: w[:1], a, np.empty_like(a), 1, chunks=8)
    with pytest.raises(ChunkingError):
        apply_blockwise(lambda w: w, a, np.empty_like(a), 1, chunks=((5, 5), 12, 10))
    with pytest.raises(ShapeError, match="differs from source"):
        apply_blockwise(lambda w: w, a, np.empty((4, 4, 4), "f4"), 1)


def test_field_dest_refuses_foreign_chunks(tmp_path):
    a = _field(2)
    dest = create_field(str(tmp_path / "d.zarr"), shape=SHAPE, chunks=8, meta=META)
    with pytest.raises(ChunkingError, match="write blocks"):
        apply_blockwise(lambda w: w, a, dest, 0, chunks=4)


def test_run_tasks_raises_first_error_with_type():
    def boom(i):
        if i == 3:
            raise ShapeError("block 3 is bad")
        return i

    with pytest.raises(ShapeError, match="block 3"):
        run_tasks(boom, [(i,) for i in range(6)])
    assert run_tasks(boom, [(i,) for i in (0, 1, 2)]) == [0, 1, 2]


def test_graph_is_one_task_per_block_at_ten_thousand_blocks():
    from bigpaint.chunked.graph import TaskGraph

    plan = BlockPlan.build((2048, 2048, 2048), 64, 16)
    calls = [(idx,) for idx in plan.blocks()]
    graph = TaskGraph("blockwise")
    shared = graph.data("plan", plan)
    keys = [graph.task(lambda i, plan: i, *call, plan=shared) for call in calls]
    dsk = graph.to_dask()
    assert len(calls) == len(keys) == 32768
    assert len(dsk) == len(calls) + 1  # + the shared plan
    deps = {k: dsk[k.key].dependencies for k in keys[:100]}
    assert all(len(d) == 1 for d in deps.values())  # each block depends on the plan only


def test_resource_annotations_reach_the_scheduler():
    from distributed import Client, LocalCluster, get_worker

    def restrictions(i):
        w = get_worker()
        key = next(k for k, ts in w.state.tasks.items() if ts.state == "executing")
        return w.state.tasks[key].resource_restrictions

    with LocalCluster(n_workers=1, processes=False, resources={"GPU": 1}) as c, Client(c):
        got = run_tasks(restrictions, [(0,), (1,)], resources={"GPU": 1})
    assert got == [{"GPU": 1}, {"GPU": 1}]


@given(
    start=st.tuples(*[st.integers(-20, 20)] * 3),
    size=st.tuples(*[st.integers(1, 30)] * 3),
    sharded=st.booleans(),
    cache=st.sampled_from(["0B", "3KiB", "64MiB"]),
)
@settings(max_examples=25)
def test_cached_field_source_reads_equal_direct_reads(
    tmp_path_factory, start, size, sharded, cache
):
    from bigpaint.chunked.read import FieldSource

    tmp = tmp_path_factory.mktemp("src")
    a = _field(11, (2, *SHAPE))  # with a channel axis
    kw = {"shards": True, "inner_chunks": (3, 2, 5)} if sharded else {}
    ds = open_field(write_array(str(tmp / "a.zarr"), a, chunks=(6, 4, 5), meta=META, **kw).url)
    src = FieldSource.from_field(ds)
    window = [(s, s + n) for s, n in zip(start, size, strict=True)]
    with dask.config.set({"bigpaint.chunk-cache": cache}):  # 3KiB: evicts constantly
        first = src.read(window)
        again = src.read(window)
    np.testing.assert_array_equal(first, periodic_read(a, window))
    np.testing.assert_array_equal(again, first)


def test_error_on_cluster_waits_for_running_blocks(tmp_path):
    """After a failing block, no other block may still write once the error is raised."""
    from distributed import Client, LocalCluster

    a = _field(5, (8, 8, 8))
    src = open_field(write_array(str(tmp_path / "a.zarr"), a, chunks=4, meta=META).url)
    dest = create_field(str(tmp_path / "b.zarr"), shape=a.shape, chunks=4, meta=META)

    def slow_then_fail(window, block_info):
        import time as _t

        if block_info.index == (0, 0, 0):
            raise NonFiniteError("first block fails")
        _t.sleep(0.3)
        return window

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False) as c, Client(c):
        with pytest.raises(NonFiniteError):
            apply_blockwise(slow_then_fail, src, dest, 0)
        done_at_raise = dest.done_mask().sum()
        import time

        time.sleep(0.8)
        assert dest.done_mask().sum() == done_at_raise  # nothing landed after the raise
