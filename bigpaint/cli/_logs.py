"""Logging of the ``bigpaint`` command: one handler on stderr for the ``bigpaint`` loggers.

Library modules only log (``logging.getLogger(__name__)``); this is the one place that
decides where the records go. Every line starts with the local date and time, so a batch
log (SLURM) shows when each stage and each progress line happened; messages at WARNING and
above name their level, and ``--verbose`` adds the level and logger of every line.

Levels: INFO by default (stage lines, progress, the dashboard link), DEBUG with
``--verbose``, WARNING with ``--quiet`` (no progress: :mod:`bigpaint.progress` shows
nothing when INFO is off). Other libraries' loggers (distributed, numba) are left alone.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

__all__ = ["setup_logging"]

_DATEFMT = "%Y-%m-%d %H:%M:%S"


class _StderrHandler(logging.StreamHandler):
    """Writes to the ``sys.stderr`` of the moment (click's test runner swaps it per call)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _Formatter(logging.Formatter):
    def __init__(self, verbose: bool) -> None:
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose else None
        super().__init__(fmt or "%(asctime)s %(message)s", datefmt=_DATEFMT)
        self._verbose = verbose

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        if not self._verbose and record.levelno >= logging.WARNING:
            stamp = self.formatTime(record, self.datefmt)
            line = f"{stamp} {record.levelname}: {line[len(stamp) + 1 :]}"
        return line


def setup_logging(*, verbose: bool = False, quiet: bool = False) -> None:
    """Send the ``bigpaint`` loggers to stderr at the level the flags choose.

    Idempotent: a second call (another command in the same process) replaces the handler.

    Parameters
    ----------
    verbose : bool
        DEBUG: every message, with its level and logger.
    quiet : bool
        WARNING: warnings and errors only, no progress.
    """
    log = logging.getLogger("bigpaint")
    for h in [h for h in log.handlers if isinstance(h, _StderrHandler)]:
        log.removeHandler(h)
    handler = _StderrHandler()
    handler.setFormatter(_Formatter(verbose))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
