"""The one executor: a small public task graph and :func:`run_graph`, which runs it.

A :class:`TaskGraph` holds *data nodes* (a value that enters the graph once, however many
tasks use it: a plan, a reader, a writer) and *tasks* (a module-level function and its
arguments). A task depends on every :class:`Ref` among its arguments, positional or
keyword, at the top level: the data nodes it reads and the tasks whose results it takes.
A graph may also take dask collections as *upstream* (:meth:`TaskGraph.upstream`: a lazy
array's blocks, e.g. the output of the distributed FFT): their tasks join the graph, and
each runs once however many of the graph's tasks take its result.
:func:`run_graph` runs the tasks whose results are wanted (and whatever they depend on) on
the current distributed client (:func:`~bigpaint.chunked.client.current_client`) or on the
local threaded scheduler, with progress, worker resources and a clean failure: the first
failing task's exception is raised with its original type, tasks not yet started are
cancelled, and it returns only once no worker still runs one of them. :func:`run_tasks` is
the common case, one task per call of one function.

This is the only module that names dask's task specification (``dask._task_spec``), which
is not public: a graph is lowered to it here, because ``dask.delayed`` costs ~1 ms per task
(32k blocks: 16 s of graph building) against a few microseconds here. A graph holds its
tasks and data nodes and nothing else: no overlap, concatenate or getitem tasks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bigpaint.chunked.client import current_client
from bigpaint.progress import Progress

logger = logging.getLogger(__name__)

__all__ = ["Ref", "TaskGraph", "run_graph", "run_tasks"]


#: A node's key: a string for the graph's own nodes, a tuple for an upstream array block.
Key = str | tuple[Any, ...]


@dataclass(frozen=True)
class Ref:
    """A node of a :class:`TaskGraph`; as a task's argument, that node's value."""

    key: Key


class TaskGraph:
    """Data nodes and tasks, keyed ``{name}-...-{token}``, unique per graph.

    Parameters
    ----------
    name : str
        Prefix of every key (and the default progress label of :func:`run_graph`).
    """

    def __init__(self, name: str = "bigpaint") -> None:
        from dask.base import tokenize

        self.name = name
        self.token = tokenize(name, time.time_ns(), id(self))
        self._data: dict[str, Any] = {}
        self._tasks: dict[str, tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = {}
        self._counts: dict[str, int] = {}
        self._upstream: dict[Key, Any] = {}

    def data(self, label: str, value: Any) -> Ref:
        """Add ``value`` once as a data node named by ``label``."""
        key = f"{self.name}-{label}-{self.token}"
        if key in self._data:
            raise ValueError(f"graph {self.name!r} already holds a data node {label!r}")
        self._data[key] = value
        return Ref(key)

    def task(self, fn: Callable[..., Any], *args: Any, group: str = "", **kwargs: Any) -> Ref:
        """Add the task ``fn(*args, **kwargs)``; its :class:`Ref` arguments are its dependencies.

        Tasks of one ``group`` are numbered in the order added: ``{name}-{group}-{token}-{i}``
        (``{name}-{token}-{i}`` without a group).
        """
        i = self._counts.get(group, 0)
        self._counts[group] = i + 1
        stem = f"{self.name}-{group}" if group else self.name
        key = f"{stem}-{self.token}-{i}"
        self._tasks[key] = (fn, args, kwargs)
        return Ref(key)

    def upstream(self, *collections: Any) -> list[Any]:
        """Add dask collections whose results tasks of this graph take (as their arguments).

        The collections' graphs are optimised together, as ``dask.compute`` would, and join
        this graph: each of their tasks runs once, however many tasks take its result.

        Returns
        -------
        list
            Per collection: a :class:`Ref` for a ``dask.delayed`` value; for a dask array,
            nested lists of Refs, one per block (``refs[i][j][k]`` is block ``(i, j, k)``).
        """
        import dask
        from dask.delayed import Delayed

        def refs(keys: Any) -> Any:
            return [refs(k) for k in keys] if isinstance(keys, list) else Ref(keys)

        optimized = dask.optimize(*collections)
        out = []
        for c in optimized:
            self._upstream.update(c.__dask_graph__())
            out.append(Ref(c.key) if isinstance(c, Delayed) else refs(c.__dask_keys__()))
        return out

    def __len__(self) -> int:
        return len(self._data) + len(self._tasks) + len(self._upstream)

    def dependencies(self, ref: Ref) -> set[Key]:
        """Keys of the nodes a task reads (nothing for a data node or an upstream node)."""
        if ref.key not in self._tasks:
            return set()
        _, args, kwargs = self._tasks[ref.key]
        return {a.key for a in (*args, *kwargs.values()) if isinstance(a, Ref)}

    def to_dask(self) -> dict[Key, Any]:
        """The graph in dask's task specification (for a scheduler's ``get``)."""
        from dask._task_spec import DataNode, Task, TaskRef, convert_legacy_graph

        def lower(a: Any) -> Any:
            return TaskRef(a.key) if isinstance(a, Ref) else a

        dsk: dict[Key, Any] = dict(convert_legacy_graph(self._upstream)) if self._upstream else {}
        dsk.update({k: DataNode(k, v) for k, v in self._data.items()})
        for key, (fn, args, kwargs) in self._tasks.items():
            dsk[key] = Task(
                key, fn, *[lower(a) for a in args], **{k: lower(v) for k, v in kwargs.items()}
            )
        return dsk


def run_graph(
    graph: TaskGraph,
    keys: Sequence[Ref],
    *,
    name: str | None = None,
    progress: bool = False,
    scheduler: str | None = None,
    num_workers: int | None = None,
    resources: dict[str, float] | None = None,
) -> list[Any]:
    """Run ``graph`` and return the results of ``keys``, in their order.

    Parameters
    ----------
    graph : TaskGraph
    keys : sequence of Ref
        The tasks whose results are wanted (the tasks they depend on run too).
    name : str, optional
        Progress label (default: the graph's name).
    progress : bool
        Report progress of the wanted tasks on the ``bigpaint.progress`` logger (INFO): a bar
        when stderr is a terminal, else a line every few seconds (:mod:`bigpaint.progress`).
    scheduler : {None, "threads", "sync"}
        None: the current distributed client if there is one, else local threads. A local
        scheduler is forced for in-memory destinations.
    num_workers : int, optional
        Threads of the local threaded scheduler (default: dask's ``num_workers`` or one per
        core).
    resources : dict, optional
        Worker resources each task needs (e.g. ``{"GPU": 1}``) on a distributed cluster;
        given to the scheduler as restrictions with the graph, so no graph optimisation can
        drop them (dask #7036).
    """
    wanted = [k.key for k in keys]
    if not wanted:
        return []
    label = name or graph.name
    dsk = graph.to_dask()
    client = None if scheduler else current_client()
    logger.debug(
        "%s: %d tasks on %s", label, len(wanted), "the cluster" if client else "local threads"
    )
    prog = Progress(label, len(wanted), unit="blocks", enabled=progress)
    ok = False
    try:
        if client is not None:
            out = _run_distributed(client, dsk, wanted, prog, resources)
        else:
            out = _run_local(dsk, wanted, prog, scheduler, num_workers)
        ok = True
        return out
    finally:
        prog.close(ok=ok)


def run_tasks(
    fn: Callable[..., Any],
    calls: Sequence[tuple[Any, ...]],
    *,
    shared: dict[str, Any] | None = None,
    name: str = "bigpaint",
    progress: bool = False,
    scheduler: str | None = None,
    num_workers: int | None = None,
    resources: dict[str, float] | None = None,
) -> list[Any]:
    """Run ``fn(*call, **shared)`` for every call, one task each, and return the results.

    ``fn`` is a module-level function (picklable for distributed workers); ``shared`` values
    enter the graph once each, as data nodes (not once per task). The other parameters are
    those of :func:`run_graph`; ``name`` also prefixes the task keys.
    """
    graph = TaskGraph(name)
    refs: dict[str, Any] = {k: graph.data(k, v) for k, v in (shared or {}).items()}
    keys = [graph.task(fn, *call, **refs) for call in calls]
    return run_graph(
        graph,
        keys,
        progress=progress,
        scheduler=scheduler,
        num_workers=num_workers,
        resources=resources,
    )


def _run_distributed(
    client: Any,
    dsk: dict[Key, Any],
    wanted: list[Key],
    prog: Progress,
    resources: dict[str, float] | None,
) -> list[Any]:
    from distributed import as_completed

    futures = client.get(dsk, wanted, sync=False, resources=resources)
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    try:
        for fut in as_completed(futures):
            results[index[fut.key]] = fut.result()
            prog.update()
    except BaseException:
        client.cancel(futures)
        _drain(client, set(dsk))
        raise
    return results


def _run_local(
    dsk: dict[Key, Any],
    wanted: list[Key],
    prog: Progress,
    scheduler: str | None,
    num_workers: int | None,
) -> list[Any]:
    import dask.local
    import dask.threaded
    from dask.callbacks import Callback

    counted = set(wanted)

    class _Count(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if key in counted:
                prog.update()

    with _Count():
        if scheduler == "sync":
            return list(dask.local.get_sync(dsk, wanted))
        return list(dask.threaded.get(dsk, wanted, num_workers=num_workers))


def _running_on_workers(keys: set[Key], dask_worker: Any = None) -> int:
    states = ("executing", "long-running", "cancelled", "resumed")
    return sum(1 for k, ts in dask_worker.state.tasks.items() if k in keys and ts.state in states)


def _drain(client: Any, keys: set[Key], timeout: float = 120.0) -> None:
    """Wait until no worker still runs one of ``keys`` (cancelling cannot stop a running
    thread), so that a caller cleaning up after an error does so after the last write."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = client.run(_running_on_workers, keys)
        except Exception:  # workers gone: nothing can still write
            return
        if not any(running.values()):
            return
        time.sleep(0.05)
