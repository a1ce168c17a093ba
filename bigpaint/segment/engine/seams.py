"""Pass 2 of the segmentation, the seams: where the foreground pieces of neighbouring blocks meet.

The block pass writes the names of the pieces on each block's six boundary layers into
three *face* arrays, one per axis, holding two planes per block along it (kept in memory, or
as a Zarr group in the scratch or a work directory that every worker sees). One task per
seam plane, the periodic wrap included, then reads the two planes that meet there and
returns the pairs of piece names that touch across it
(:func:`bigpaint.segment.components.seam_pairs`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import zarr

from bigpaint.blockwise import BlockPlan
from bigpaint.chunked.graph import run_tasks
from bigpaint.errors import ChunkingError
from bigpaint.segment import scratch as store
from bigpaint.segment.components import seam_pairs
from bigpaint.segment.engine.params import Job

__all__ = [
    "check_regular",
    "face_array",
    "face_spec",
    "faces_intact",
    "open_faces",
    "pass_seam",
    "run_seams",
    "write_faces",
]


def check_regular(plan: BlockPlan) -> None:
    """Refuse a block grid whose stored faces could not be chunked per block."""
    if any(len(set(c[:-1])) > 1 for c in plan.chunks):
        raise ChunkingError(f"a Field run needs a regular block grid, got {plan.chunks}")


def open_faces(plan: BlockPlan, path: str | None, scratch: str | None, resumed: bool) -> Any:
    """The face arrays of a run: in memory (``path`` None), or a Zarr group at ``path``,
    reopened when a resumed scratch still holds them intact (else its block records, which
    need their faces, are dropped and the faces created afresh)."""
    shape = plan.shape
    if path is None:
        return [
            np.zeros((2 * len(plan.chunks[a]), *[shape[b] for b in range(3) if b != a]), np.int64)
            for a in range(3)
        ]
    if resumed and scratch is not None and not faces_intact(path, plan):  # resumed: has scratch
        store.clear(scratch, ("blocks",), reason="seam faces lost or altered")
        resumed = False  # the block records need their faces: redo the block pass
    group = zarr.open_group(path, mode="a" if resumed else "w", zarr_format=3)
    for a in range(3):
        if resumed and f"axis{a}" in group:
            continue
        group.create_array(f"axis{a}", **face_spec(plan, a))
    return path


def write_faces(
    faces: Any, index: tuple[int, ...], core: tuple[slice, ...], names: np.ndarray
) -> None:
    """Write the piece names on the six boundary layers of block ``index``."""
    for axis in range(3):
        arr = face_array(faces, axis)
        trans = tuple(core[a] for a in range(3) if a != axis)
        g = index[axis]
        arr[(2 * g, *trans)] = np.take(names, 0, axis=axis)
        arr[(2 * g + 1, *trans)] = np.take(names, -1, axis=axis)


def run_seams(job: Job) -> list[np.ndarray]:
    """Pass 2: the touching pairs of every seam plane (one task each)."""
    plan = job.plan
    return run_tasks(
        pass_seam,
        [(a, s) for a in range(3) for s in range(len(plan.chunks[a]))],
        shared={"faces": job.faces, "plan": plan, "connectivity": job.params.connectivity},
        name="segment-seams",
        progress=job.progress,
        scheduler=job.scheduler,
    )


def face_array(faces: Any, axis: int) -> Any:
    """The face array of ``axis`` (opened for writing when the faces are stored)."""
    if isinstance(faces, str):
        return zarr.open_array(f"{faces}/axis{axis}", mode="r+")
    return faces[axis]


def face_spec(plan: BlockPlan, axis: int) -> dict[str, Any]:
    """How the face array of ``axis`` is created: two planes per block along it."""
    trans = [b for b in range(3) if b != axis]
    return {
        "shape": (2 * len(plan.chunks[axis]), *[plan.shape[b] for b in trans]),
        "chunks": (1, *[plan.chunks[b][0] for b in trans]),
        "dtype": "i8",
        "fill_value": 0,
    }


def faces_intact(path: str, plan: BlockPlan) -> bool:
    """Whether a resumed scratch still holds the three face arrays this run would create
    (same shape, dtype, chunks and codecs: nothing else is ever decoded)."""

    def meta(arr: zarr.Array) -> Any:
        d = {k: v for k, v in arr.metadata.to_dict().items() if k != "attributes"}
        return json.loads(json.dumps(d, default=str))

    try:
        for a in range(3):
            want = zarr.create_array(zarr.storage.MemoryStore(), **face_spec(plan, a))
            if meta(zarr.open_array(f"{path}/axis{a}", mode="r", zarr_format=3)) != meta(want):
                return False
    except (OSError, KeyError, ValueError, TypeError):  # zarr's errors are ValueErrors
        return False
    return True


def pass_seam(
    axis: int, seam: int, *, faces: Any, plan: BlockPlan, connectivity: int
) -> np.ndarray:
    """The piece-name pairs that touch across seam ``seam`` of ``axis`` (the plane below
    block ``seam``; seam 0 is the periodic wrap)."""
    g = len(plan.chunks[axis])
    arr = face_array(faces, axis)
    below = np.asarray(arr[2 * ((seam - 1) % g) + 1])
    above = np.asarray(arr[2 * seam])
    return seam_pairs(below, above, connectivity, (True, True))
