"""The resumable scratch of the chunked segmentation: its typed block results, kept as records.

Two passes of :func:`bigpaint.segment.segment` return one typed result per block
(:mod:`bigpaint.segment.records`: a :class:`~bigpaint.segment.records.BlockResult` from the
block pass, a :class:`~bigpaint.segment.records.FloodResult` from the flood pass). With a
scratch directory each result is also kept as a *record*, so that a rerun skips the blocks
already done.

Record format (:data:`VERSION`)::

    scratch/
        job.json                 {"format", "version", "job": shape, blocks, parameters}
        faces.zarr/              seam faces of the block pass (written by the engine)
        blocks/<i>_<j>_<k>.npz   a BlockResult
        flood/<i>_<j>_<k>.npz    a FloodResult

A record is an uncompressed ZIP archive: ``meta.json`` (format name, version, kind, block
index, scalar fields in seconds, and the dtype and shape of every array) and one ``.npy``
member per array. Nothing in it is code: arrays are read with ``numpy.load(...,
allow_pickle=False)`` and metadata with :mod:`json`, so a file planted in the scratch
(which sits next to the output, shared by every worker) executes nothing. Only the record
names of the blocks of the run are ever opened; any other file is never read.

Writing goes to a temporary name in the same directory, then :func:`os.replace`: a killed
writer leaves a stray temporary file, never a half record under its final name. Reading
checks the ZIP CRC-32 of every member, the format and version, the kind and block index,
every dtype and shape, and the run's trajectory width and merging; a record that fails
(missing, truncated, damaged, of another version, a leftover of a machine crash) is
deleted and its block recomputed, with one log line per pass. A damaged scratch therefore
costs recomputation, never a failing rerun or a wrong result. Deliberately forged records
with consistent contents are out of reach of any check short of signing them; whoever can
write the scratch can equally write the outputs.

Why not pickle: loading a pickle runs code. Why not Parquet: a record holds arrays of
several lengths (markers, pieces, regions, basin pairs), and ``.npy`` keeps each with its
exact dtype, so a resumed run is bitwise the uninterrupted one.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import uuid
import zipfile
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from bigpaint.errors import ConfigError
from bigpaint.segment.records import BlockResult, FloodResult, Record, RecordError, Result

__all__ = [
    "FORMAT",
    "VERSION",
    "clear",
    "discard",
    "load_done",
    "open_scratch",
    "read_record",
    "record_path",
    "save",
    "write_record",
]

log = logging.getLogger(__name__)

#: Format name written into every record and ``job.json``.
FORMAT = "bigpaint-segment-scratch"
#: Record format version; a record of another version is dropped and recomputed.
VERSION = 1

STAGES = ("blocks", "flood")
_NAME = re.compile(r"^\d+_\d+_\d+\.npz(\.[0-9a-f]{32}\.tmp)?$")


R = TypeVar("R", bound=Record)
_KINDS: dict[str, type[BlockResult] | type[FloodResult]] = {
    "blocks": BlockResult,
    "flood": FloodResult,
}


# ---------------------------------------------------------------- one record file


def _tmp_name(path: str) -> str:
    return f"{path}.{uuid.uuid4().hex}.tmp"  # unique across hosts sharing the scratch


def _replace_atomically(path: str, write: Any) -> None:
    tmp = _tmp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_record(path: str, result: Result, index: Sequence[int]) -> None:
    """Write ``result`` of block ``index`` to ``path`` atomically."""
    scalars, arrays = result.to_record()
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "kind": result.KIND,
        "index": [int(i) for i in index],
        "scalars": scalars,
        "arrays": {n: {"dtype": a.dtype.str, "shape": list(a.shape)} for n, a in arrays.items()},
    }

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr("meta.json", json.dumps(meta, allow_nan=False))
            for name, a in arrays.items():
                buf = io.BytesIO()
                np.save(buf, a, allow_pickle=False)
                zf.writestr(f"{name}.npy", buf.getvalue())

    _replace_atomically(path, write)


def read_record(path: str, kind: type[R], index: Sequence[int]) -> R:
    """Read and validate the record of block ``index`` at ``path``.

    Raises
    ------
    RecordError
        The file is missing, truncated or damaged, of another format or version, of another
        kind or block, or its contents fail validation.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("meta.json").decode("utf-8"))  # CRC-checked
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise RecordError("not a segmentation scratch record")
            if meta.get("version") != VERSION:
                raise RecordError(f"record version {meta.get('version')!r}, not {VERSION}")
            if meta.get("kind") != kind.KIND or meta.get("index") != [int(i) for i in index]:
                raise RecordError(f"record of {meta.get('kind')} {meta.get('index')}")
            specs, scalars = meta.get("arrays"), meta.get("scalars")
            if not isinstance(specs, dict) or not isinstance(scalars, dict):
                raise RecordError("record metadata lacks arrays or scalars")
            members = {"meta.json", *(f"{n}.npy" for n in specs)}
            if set(zf.namelist()) != members:
                raise RecordError("record members differ from its metadata")
            arrays = {}
            for name, spec in specs.items():
                a = np.load(io.BytesIO(zf.read(f"{name}.npy")), allow_pickle=False)
                if not isinstance(spec, dict) or (
                    [a.dtype.str, list(a.shape)] != [spec.get("dtype"), spec.get("shape")]
                ):
                    raise RecordError(f"array {name} differs from its metadata")
                arrays[name] = a
    except RecordError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, ValueError, TypeError,
            RecursionError) as exc:  # fmt: skip
        raise RecordError(f"unreadable ({type(exc).__name__}: {exc})") from None
    return kind.from_record(scalars, arrays)


# ---------------------------------------------------------------- the scratch directory


def record_path(scratch: str, stage: str, index: Sequence[int]) -> str:
    """Path of the record of block ``index`` in pass ``stage`` (``blocks`` or ``flood``)."""
    if stage not in _KINDS:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    return os.path.join(scratch, stage, "_".join(str(int(i)) for i in index) + ".npz")


def save(scratch: str, stage: str, index: Sequence[int], result: Result) -> None:
    """Keep a block's result of pass ``stage`` in the scratch (atomically)."""
    if not isinstance(result, _KINDS[stage]):
        raise TypeError(f"a {stage} record holds a {_KINDS[stage].__name__}")
    write_record(record_path(scratch, stage, index), result, index)


def discard(scratch: str, stage: str, index: Sequence[int]) -> None:
    """Delete a block's record of pass ``stage`` if there is one."""
    try:
        os.remove(record_path(scratch, stage, index))
    except FileNotFoundError:
        pass


def load_done(
    scratch: str | None,
    stage: str,
    blocks: Sequence[tuple[int, ...]],
    *,
    width: int,
    saddles: bool,
) -> dict[tuple[int, ...], Any]:
    """The valid records of pass ``stage``, by block index; invalid ones are deleted.

    Parameters
    ----------
    scratch : str or None
        The scratch directory; None: nothing is saved (an empty dict).
    stage : {"blocks", "flood"}
    blocks : sequence of tuple of int
        The blocks of the run; only their record names are opened.
    width : int
        Trajectory histogram columns of this run (``T + 1``, or 1 without thresholds).
    saddles : bool
        Whether this run merges by dynamics (its records carry basin saddles).
    """
    done: dict[tuple[int, ...], Any] = {}
    if scratch is None:
        return done
    kind = _KINDS[stage]
    dropped: list[str] = []
    for b in blocks:
        path = record_path(scratch, stage, b)
        if not os.path.exists(path):
            continue
        try:
            rec = read_record(path, kind, b)
            if rec.sums.width != width or (rec.sums.saddles is not None) != saddles:
                raise RecordError("record of other segmentation parameters")
        except RecordError as exc:
            dropped.append(f"{os.path.basename(path)}: {exc}")
            discard(scratch, stage, b)
            continue
        done[b] = rec
    if dropped:
        log.warning(
            "segmentation scratch %s: recomputing %d %s block(s) whose saved records were "
            "unreadable (first: %s)",
            scratch,
            len(dropped),
            stage,
            dropped[0],
        )
    return done


def clear(scratch: str, stages: Sequence[str] = STAGES, reason: str = "") -> int:
    """Delete every record (and stray temporary file) of these passes; other files stay.

    Returns the number of files deleted; logs one line giving ``reason`` when any were.
    """
    removed = 0
    for stage in stages:
        d = os.path.join(scratch, stage)
        for name in os.listdir(d) if os.path.isdir(d) else ():
            if _NAME.match(name):
                os.remove(os.path.join(d, name))
                removed += 1
    if removed:
        log.warning("segmentation scratch %s: %s; recomputing the %s pass%s",
                    scratch, reason or "records dropped", " and ".join(stages),
                    "es" if len(stages) > 1 else "")  # fmt: skip
    return removed


def open_scratch(scratch: str, state: dict[str, Any]) -> bool:
    """Create or reopen a resumable scratch directory; True when it resumes a run.

    ``state`` (JSON-able: shape, blocks, parameters, outputs) is kept in ``job.json``. A
    scratch of the same state resumes. One whose ``job.json`` is missing, unreadable or of
    another format version starts afresh: its records are deleted (the faces are rewritten
    by the engine). One of another state is refused with :class:`ConfigError`.
    """
    for stage in STAGES:
        os.makedirs(os.path.join(scratch, stage), exist_ok=True)
    path = os.path.join(scratch, "job.json")
    old: Any = None
    reason = "no job.json"
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as fh:
                old = json.load(fh)
            reason = "job.json of another format version"
        except (ValueError, OSError, RecursionError) as exc:  # JSON errors are ValueErrors
            reason = f"unreadable job.json ({type(exc).__name__})"
    if isinstance(old, dict) and old.get("format") == FORMAT and old.get("version") == VERSION:
        if old.get("job") != state:
            raise ConfigError(
                f"scratch directory {scratch} belongs to a segmentation with other inputs, "
                "blocks or parameters; remove it or choose another scratch directory"
            )
        return True
    clear(scratch, reason=reason)
    record = {"format": FORMAT, "version": VERSION, "job": state}

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(record, fh)

    _replace_atomically(path, write)
    return False
