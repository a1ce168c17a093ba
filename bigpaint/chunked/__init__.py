"""The chunked core, on the floor below every stage: one chunk policy, one reader, one executor.

- :mod:`~bigpaint.chunked.grid`: :class:`BlockGrid`, the blocks of a grid, with the one
  normaliser of a chunk layout and the one policy for a chunk larger than the grid (it is
  refused, never clamped).
- :mod:`~bigpaint.chunked.read`: periodic window reads (:func:`periodic_read`), a finished
  Field as a reader of cached chunks (:class:`FieldSource`, :func:`chunk_cache`), and the
  region read that names a damaged chunk (:func:`read_region`).
- :mod:`~bigpaint.chunked.graph`: a public task graph (:class:`TaskGraph`: data nodes, tasks,
  the dependencies between them) and :func:`run_graph` / :func:`run_tasks`, the one executor
  (distributed client or local threads, progress, worker resources); the only module that
  touches dask's internals.
- :mod:`~bigpaint.chunked.client`: :func:`current_client`, the Dask client a chunked
  operation runs on, if any.
- :mod:`~bigpaint.chunked.apply`: :func:`apply_blockwise`, one task per block that reads the
  block with its periodic context, applies a function and writes the core.
- :mod:`~bigpaint.chunked.block_info`: where a ``map_blocks`` block lies, read from dask's
  ``block_info``.

Nothing here imports a stage; the stages (filters, deposition, painting, segmentation,
statistics) import it. The names are loaded on first use, so importing the package costs
no dask or zarr.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from bigpaint.chunked.client import current_client
from bigpaint.chunked.grid import BlockGrid

if TYPE_CHECKING:
    from bigpaint.chunked.apply import apply_blockwise
    from bigpaint.chunked.graph import Ref, TaskGraph, run_graph, run_tasks
    from bigpaint.chunked.read import FieldSource, chunk_cache, periodic_read, read_region

#: Name to the module that defines it, imported on first use.
_LAZY = {
    "apply_blockwise": "apply",
    "Ref": "graph",
    "TaskGraph": "graph",
    "run_graph": "graph",
    "run_tasks": "graph",
    "FieldSource": "read",
    "chunk_cache": "read",
    "periodic_read": "read",
    "read_region": "read",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(f"bigpaint.chunked.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'bigpaint.chunked' has no attribute {name!r}")


__all__ = [
    "BlockGrid",
    "FieldSource",
    "Ref",
    "TaskGraph",
    "apply_blockwise",
    "chunk_cache",
    "current_client",
    "periodic_read",
    "read_region",
    "run_graph",
    "run_tasks",
]
