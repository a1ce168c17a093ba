"""The public task graph and its executor: dependencies, shared data, errors, both schedulers."""

from __future__ import annotations

import pytest

from bigpaint.chunked.graph import TaskGraph, run_graph
from bigpaint.errors import ShapeError


def _add(*xs: int, offset: int = 0) -> int:
    return sum(xs) + offset


def _fails(x: int) -> int:
    raise ShapeError(f"task {x} is bad")


def _diamond() -> tuple[TaskGraph, list]:
    """Two leaves on a shared value, a task taking both results, a task taking that one."""
    g = TaskGraph("t")
    ten = g.data("ten", 10)
    a = g.task(_add, 1, group="leaf", offset=ten)
    b = g.task(_add, 2, group="leaf", offset=ten)
    c = g.task(_add, a, b, group="join")
    d = g.task(_add, c, 100, group="top")
    return g, [a, b, c, d]


def test_the_graph_holds_its_nodes_and_their_dependencies():
    g, (a, b, c, d) = _diamond()
    assert len(g) == 5  # one data node + four tasks, nothing else
    assert len(g.to_dask()) == 5
    assert g.dependencies(a) == g.dependencies(b) == {f"t-ten-{g.token}"}
    assert g.dependencies(c) == {a.key, b.key}
    assert g.dependencies(d) == {c.key}
    assert a.key == f"t-leaf-{g.token}-0" and b.key == f"t-leaf-{g.token}-1"
    with pytest.raises(ValueError, match="already holds"):
        g.data("ten", 11)


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_run_graph_returns_the_wanted_results_in_order(scheduler):
    g, (a, _b, c, d) = _diamond()
    assert run_graph(g, [d, a, c], scheduler=scheduler) == [123, 11, 23]
    assert run_graph(g, [], scheduler=scheduler) == []


def test_run_graph_on_a_cluster_passes_results_between_tasks_and_raises_the_first_error():
    from distributed import Client, LocalCluster

    g, (_, _, c, d) = _diamond()
    bad = TaskGraph("bad")
    keys = [bad.task(_add, 1), bad.task(_fails, 3)]
    with LocalCluster(n_workers=1, processes=False) as cluster, Client(cluster):
        assert run_graph(g, [c, d]) == [23, 123]
        with pytest.raises(ShapeError, match="task 3 is bad"):
            run_graph(bad, keys)


def _block_sum(block, shift, offset: int = 0) -> float:
    return float(block.sum() + shift) + offset


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_upstream_array_blocks_feed_tasks_and_each_upstream_task_runs_once(scheduler):
    import threading

    import dask
    import dask.array as da
    import numpy as np

    runs: list[tuple[int, ...]] = []
    lock = threading.Lock()

    def doubled(block, block_info=None):
        with lock:
            runs.append(tuple(block_info[0]["chunk-location"]))
        return block * 2

    x = np.arange(5 * 7 * 4, dtype=np.float64).reshape(5, 7, 4)
    arr = da.from_array(x, chunks=((2, 3), (4, 3), (4,))).map_blocks(doubled, dtype=x.dtype)
    shift = dask.delayed(np.float64)(0.5)
    g = TaskGraph("up")
    blocks, shift_ref = g.upstream(arr, shift)
    ten = g.data("ten", 10)
    runs.clear()  # map_blocks may call the function on empty blocks to infer its output
    keys, want = [], []
    for i, j in np.ndindex(2, 2):
        keys.append(g.task(_block_sum, blocks[i][j][0], shift_ref, offset=ten))
        block = x[[slice(0, 2), slice(2, 5)][i], [slice(0, 4), slice(4, 7)][j]]
        want.append(float((2 * block).sum() + 0.5) + 10)
        # a second task on the same block: the upstream block is still computed once
        keys.append(g.task(_block_sum, blocks[i][j][0], 0.0))
        want.append(float((2 * block).sum()))
    assert g.dependencies(keys[0]) == {blocks[0][0][0].key, shift_ref.key, ten.key}
    assert run_graph(g, keys, scheduler=scheduler) == want
    assert sorted(runs) == [(i, j, 0) for i in range(2) for j in range(2)]
