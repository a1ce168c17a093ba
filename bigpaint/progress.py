"""Progress that reads well on a terminal and in a batch log alike.

Long work reports through the ``bigpaint.progress`` logger at INFO. Where it goes depends on
stderr: on a terminal, a tqdm bar redrawn in place; anywhere else (a SLURM log, a pipe, a
captured stream) plain lines, never a carriage return. Block work (:class:`Progress` with
its heartbeat, used by :func:`bigpaint.chunked.graph.run_graph` and :func:`compute`) logs
``name: done/total blocks (pct), rate, elapsed, ETA`` every :func:`interval` seconds and
once at the end; training logs its metrics every ``log_every`` steps instead.

Nothing is shown unless the caller asks (the ``progress`` arguments of library functions)
and the logger is enabled for INFO. Library code never configures logging: a library user
sees progress only after configuring it (e.g. ``logging.basicConfig(level="INFO")``);
the ``bigpaint`` command does that on stderr, and its ``--quiet`` turns progress off.

The line interval is the environment variable ``BIGPAINT_PROGRESS_INTERVAL`` in seconds
(default 10), read when each piece of work starts, so a batch script sets it once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

from bigpaint.chunked.client import current_client
from bigpaint.errors import ConfigError

__all__ = ["ENV_INTERVAL", "Progress", "compute", "format_duration", "heartbeat", "interval"]

logger = logging.getLogger(__name__)

#: Environment variable holding the seconds between progress lines in batch logs.
ENV_INTERVAL = "BIGPAINT_PROGRESS_INTERVAL"
_DEFAULT_INTERVAL = 10.0


def interval() -> float:
    """Seconds between two progress lines of block work in a batch log.

    ``BIGPAINT_PROGRESS_INTERVAL`` when set (a positive number), else 10.
    """
    raw = os.environ.get(ENV_INTERVAL, "").strip()
    if not raw:
        return _DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ConfigError(
            f"{ENV_INTERVAL}={raw!r} is not a positive number of seconds; set it to e.g. 30 "
            "or unset it (default 10)"
        )
    return value


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``2h07m``: short enough for a log line."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


# When the last progress line was logged (time.monotonic), and how many Progress objects
# log lines on their own heartbeat now: heartbeat() stays silent while they speak.
_last_line = [0.0]
_beating = [0]
_lock = threading.Lock()


def _mark_line() -> None:
    _last_line[0] = time.monotonic()


class Progress:
    """Progress of a known amount of work: a bar on a terminal, log lines elsewhere.

    Parameters
    ----------
    name : str
        Label at the start of each line (e.g. the task name).
    total : int
        Units of work; may be set later with :meth:`set_total` (0: not known yet).
    unit : str
        Plural unit in lines and the bar (``"blocks"``, ``"steps"``, ``"tasks"``).
    enabled : bool
        The caller's ``progress`` argument; False shows nothing.
    initial : int
        Units already done (a resumed run); the rate counts only this run's.
    heartbeat : bool
        In a batch log, log a line every :func:`interval` seconds from a background thread
        (block work). False: lines only when :meth:`report` is called (training).

    Attributes
    ----------
    mode : {"off", "bar", "lines"}
    """

    def __init__(
        self,
        name: str,
        total: int,
        *,
        unit: str = "blocks",
        enabled: bool = True,
        initial: int = 0,
        heartbeat: bool = True,
    ) -> None:
        self.name, self.unit = name, unit
        self.total, self.done, self._initial = int(total), int(initial), int(initial)
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()
        self._closed = False
        self._bar: Any = None
        self._redirect: contextlib.ExitStack | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if not enabled or not logger.isEnabledFor(logging.INFO):
            self.mode = "off"
        elif _stderr_is_terminal():
            self.mode = "bar"
            self._start_bar()
        else:
            self.mode = "lines"
        self._every = interval() if self.mode == "lines" else 0.5
        self._heartbeat = heartbeat and self.mode == "lines"
        self._poll: Callable[[], None] | None = None
        self._counted = False
        if self._heartbeat:
            with _lock:
                _beating[0] += 1
            self._counted = True
            self._start_thread()

    def _start_bar(self) -> None:
        from tqdm.auto import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        self._bar = tqdm(
            total=self.total or None,
            initial=self.done,
            desc=self.name,
            unit=self.unit.rstrip("s") or self.unit,
            leave=False,
            file=sys.stderr,
        )
        # log lines while the bar shows are written above it, not through it
        self._redirect = contextlib.ExitStack()
        self._redirect.enter_context(
            logging_redirect_tqdm(loggers=[logging.getLogger("bigpaint"), logging.root])
        )

    def _start_thread(self) -> None:
        self._thread = threading.Thread(
            target=self._beat, name=f"progress-{self.name}", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self._every):
            if self._poll is not None:
                self._poll()
            if self._heartbeat:
                self.report()

    def start_polling(self, poll: Callable[[], None]) -> None:
        """Call ``poll()`` before each line (or every 0.5 s under a bar) to refresh counts.

        For work whose counts live elsewhere (a Dask scheduler); ``poll`` runs in the
        heartbeat thread and calls :meth:`set_total` and :meth:`set_done`.
        """
        if self.mode == "off":
            return
        self._poll = poll
        if self._thread is None:
            self._start_thread()

    def stop_polling(self) -> None:
        """Stop the heartbeat thread (waits for a poll in flight)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self._counted:
            with _lock:
                _beating[0] -= 1
            self._counted = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(ok=exc_type is None)

    def set_total(self, total: int) -> None:
        """Set the amount of work once it is known."""
        with self._lock:
            self.total = int(total)
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def update(self, n: int = 1, **postfix: Any) -> None:
        """Count ``n`` more units done; ``postfix`` values show beside the bar."""
        with self._lock:
            self.done += n
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(n)

    def set_done(self, done: int) -> None:
        """Set the units done (for feeds that report a count, not increments)."""
        with self._lock:
            delta, self.done = done - self.done, int(done)
        if self._bar is not None and delta:
            self._bar.update(delta)

    def status(self) -> str:
        """``done/total unit (pct), rate unit/s, elapsed T, ETA T`` as of now."""
        with self._lock:
            done, total = self.done, self.total
        elapsed = time.perf_counter() - self._t0
        rate = (done - self._initial) / elapsed if elapsed > 0 else 0.0
        parts = [f"{done}/{total or '?'} {self.unit}"]
        if total:
            parts[0] += f" ({100 * done / total:.0f}%)"
        parts.append(f"{rate:.3g} {self.unit}/s")
        parts.append(f"elapsed {format_duration(elapsed)}")
        if total and rate > 0:
            parts.append(f"ETA {format_duration(max(0, total - done) / rate)}")
        else:
            parts.append("ETA ?")
        return ", ".join(parts)

    def report(self, extra: str = "") -> None:
        """Log one status line now (batch logs only; a bar shows its own status)."""
        if self.mode != "lines" or self._closed:
            return
        _mark_line()
        logger.info("%s: %s%s", self.name, self.status(), f"; {extra}" if extra else "")

    def close(self, ok: bool = True) -> None:
        """Stop the heartbeat and log the final line (``done in``; ``stopped at`` at DEBUG)."""
        if self._closed:
            return
        self.stop_polling()
        self._closed = True
        if self._bar is not None:
            self._bar.close()
            if self._redirect is not None:
                self._redirect.close()
        if self.mode != "lines":
            return
        elapsed = time.perf_counter() - self._t0
        took = format_duration(elapsed)
        _mark_line()
        if not ok:  # DEBUG: the error that stopped it is the one line a user needs
            logger.debug("%s: stopped at %d/%d %s after %s",
                         self.name, self.done, self.total, self.unit, took)  # fmt: skip
        elif not self.total:  # a count that never arrived (work quicker than one poll)
            logger.info("%s: done in %s", self.name, took)
        else:
            rate = (self.done - self._initial) / elapsed if elapsed > 0 else 0.0
            logger.info("%s: %d/%d %s done in %s (%.3g %s/s)",
                        self.name, self.done, self.total, self.unit, took, rate, self.unit)  # fmt: skip


@contextlib.contextmanager
def heartbeat(name: str, *, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """Show that long work without its own counts is alive, in batch logs.

    While the ``with`` block runs, ``name: running for T`` is logged whenever no progress
    line (of any :class:`Progress`, or of this heartbeat) has been logged for
    :func:`interval` seconds, and no block work is logging its own lines meanwhile.
    Nothing on a terminal, nothing when disabled or when the logger is not enabled for INFO.

    Yields
    ------
    callable
        ``mark()``: call it after logging a line of one's own, which then counts as one.
    """
    if not enabled or not logger.isEnabledFor(logging.INFO) or _stderr_is_terminal():
        yield _mark_line
        return
    every, stop, t0 = interval(), threading.Event(), time.perf_counter()
    _mark_line()

    def beat() -> None:
        while not stop.wait(max(0.0, every - (time.monotonic() - _last_line[0]))):
            if _beating[0]:
                _mark_line()  # block progress lines are due meanwhile
            elif time.monotonic() - _last_line[0] >= every:
                _mark_line()
                logger.info("%s: running for %s", name, format_duration(time.perf_counter() - t0))

    thread = threading.Thread(target=beat, name=f"heartbeat-{name}", daemon=True)
    thread.start()
    try:
        yield _mark_line
    finally:
        stop.set()
        thread.join()


def compute(
    *args: Any, name: str, progress: bool = True, scheduler: str | None = None
) -> tuple[Any, ...]:
    """``dask.compute(*args)`` with progress counted in tasks of the whole graph.

    Runs on the current distributed client when there is one and ``scheduler`` is None
    (the count comes from the scheduler, as ``distributed.progress`` gets it), else on the
    local scheduler named by ``scheduler`` (a dask callback counts the tasks).

    Parameters
    ----------
    *args
        Dask collections (other values pass through, as with ``dask.compute``).
    name : str
        Label of the progress lines.
    progress : bool
        Report progress (see the module docstring).
    scheduler : str, optional
        As ``dask.compute``'s.
    """
    import dask

    with Progress(name, 0, unit="tasks", enabled=progress) as prog:
        if prog.mode == "off":
            return dask.compute(*args, scheduler=scheduler)
        client = None if scheduler else current_client()
        if client is not None:
            return _compute_distributed(client, args, prog)
        with _task_count(prog):
            return dask.compute(*args, scheduler=scheduler)


def _task_count(prog: Progress) -> Any:
    """A dask callback (local schedulers) feeding ``prog`` with task counts."""
    from dask.callbacks import Callback

    class _Count(Callback):
        def _start_state(self, dsk: Any, state: dict[str, Any]) -> None:
            prog.set_total(prog.total + len(dsk) - len(state["cache"]))

        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, wid: Any) -> None:
            prog.update()

    return _Count()


def _compute_distributed(client: Any, args: tuple[Any, ...], prog: Progress) -> tuple[Any, ...]:
    """Compute on ``client``; the heartbeat asks the scheduler how many tasks are done."""
    import uuid

    futures = client.compute(list(args))
    keys = [f.key for f in futures if hasattr(f, "key")]
    token = uuid.uuid4().hex
    watching = False

    def poll() -> None:
        nonlocal watching
        try:
            if not watching:
                watching = client.run_on_scheduler(_watch, token, keys)
            if watching:
                done, total = client.run_on_scheduler(_count, token)
                prog.set_total(total)
                prog.set_done(done)
        except Exception:  # scheduler gone: the gather below reports it
            logger.debug("%s: no progress from the scheduler", prog.name, exc_info=True)

    prog.start_polling(poll)
    try:
        results = tuple(client.gather(futures))
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        prog.stop_polling()
        with contextlib.suppress(Exception):
            client.run_on_scheduler(_unwatch, token)
    prog.set_done(prog.total)
    return results


# Scheduler side: the tasks each watched computation needs, by token.
_WATCHED: dict[str, set[Any]] = {}
_FINISHED = ("memory", "released", "forgotten", "erred")


def _watch(token: str, keys: list[Any], dask_scheduler: Any = None) -> bool:
    tasks = [dask_scheduler.tasks.get(k) for k in keys]
    if any(ts is None for ts in tasks):  # the graph has not arrived yet
        return False
    from distributed.diagnostics.progress import dependent_keys

    _WATCHED[token], _ = dependent_keys(tasks, complete=True)
    return True


def _count(token: str, dask_scheduler: Any = None) -> tuple[int, int]:
    keys = _WATCHED.get(token, set())
    tasks = dask_scheduler.tasks
    done = sum(1 for k in keys if k not in tasks or tasks[k].state in _FINISHED)
    return done, len(keys)


def _unwatch(token: str, dask_scheduler: Any = None) -> None:
    _WATCHED.pop(token, None)
