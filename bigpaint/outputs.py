"""Where a job writes: never onto its inputs, one writer at a time, and only what it made.

Four rules guard every command that writes, and this module is the one place that holds them:

- **Path identity.** Paths are compared by what they resolve to (``./a/``, ``a``, an absolute
  spelling, a symlink and a hard-linked directory are the same store), and an output may not
  be an input, lie inside one, or hold one: ``--overwrite`` would delete the input.
- **A writer lock per output.** A job holds ``.<name>.lock`` next to each local output for
  its whole life, from the existence check to the completion marker. The lock is an
  ``fcntl.flock`` on that file, so the kernel releases it when the holder dies, however it
  dies; the next writer finds the stale file, takes it over and says so. A second live
  writer is refused with one line naming the holder (pid, host, command). Where the file
  system has no ``flock`` (some Lustre mounts), the lock file itself is the lock: one
  holding the pid of a dead process on this host is taken over; one from another host is
  refused with the path of the lock file to remove once that process is gone. Object
  stores (``s3://``, ``gs://``) cannot be locked this way and are not: run one writer per
  output there.
- **Scratch bigpaint owns.** Spill and scratch directories are subdirectories that bigpaint
  creates and marks (a ``.bigpaint-owned`` file); bigpaint deletes a directory only when it
  carries that mark, so a user's ``--spill-dir`` or ``--workdir`` and whatever else they
  hold survive.
- **Nothing half-made from a refusal.** A Field output that did not exist when the job
  started, and holds no finished block when the job fails, is removed again, so a refused
  job (a bad checkpoint, an empty particle file) leaves the directory as it found it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import logging
import os
import shutil
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bigpaint.errors import ConfigError, OutputLockedError, PathConflictError
from bigpaint.store import remove_field, store_exists, stored_array

__all__ = [
    "OWNER_MARK",
    "canonical",
    "check_apart",
    "check_scratch_home",
    "is_local",
    "job_path",
    "output_lock",
    "owned_dir",
    "remove_owned",
    "writing",
]

log = logging.getLogger(__name__)

#: Name of the file that marks a directory as bigpaint's own scratch.
OWNER_MARK = ".bigpaint-owned"


# ---------------------------------------------------------------- identity


def is_local(url: str | os.PathLike[str]) -> bool:
    """True for a local path or a ``file://`` URL."""
    s = str(url)
    return "://" not in s or s.startswith("file://")


def canonical(url: str | os.PathLike[str]) -> str:
    """What a path or URL resolves to: the one spelling two spellings of a store share.

    Local paths are made absolute with symlinks resolved (``os.path.realpath``), with no
    trailing separator; ``file://`` is dropped. Other URLs keep their protocol and lose
    duplicate and trailing slashes.
    """
    s = str(url)
    if s.startswith("file://"):
        s = s[len("file://") :]
    if is_local(s):
        return os.path.realpath(os.path.expanduser(s))
    proto, _, rest = s.partition("://")
    parts = [p for p in rest.split("/") if p]
    return f"{proto.lower()}://" + "/".join(parts)


def job_path(url: str | os.PathLike[str]) -> str:
    """The spelling of an input that job tokens use (so a rerun spelt otherwise resumes)."""
    return canonical(url)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _relation(out: str, inp: str) -> str | None:
    """How ``out`` sits against ``inp``: 'is the same store as', 'lies inside', 'holds', or None."""
    a, b = canonical(out), canonical(inp)
    sep = "/" if not is_local(a) else os.sep
    if a == b or (is_local(a) and is_local(b) and _same_file(a, b)):
        return "is the same store as"
    if a.startswith(b.rstrip(sep) + sep):
        return "lies inside"
    if b.startswith(a.rstrip(sep) + sep):
        return "holds"
    return None


def check_apart(
    outputs: Mapping[str, str | os.PathLike[str] | None],
    inputs: Mapping[str, str | os.PathLike[str] | None],
) -> None:
    """Refuse an output that is, lies inside or holds an input or another output.

    Parameters
    ----------
    outputs, inputs : mapping of label to path
        Labels name the option in the message (``"OUTPUT"``, ``"--labels"``); ``None``
        entries are skipped. Inputs that are not paths (in-memory arrays) are left out by
        the caller.

    Raises
    ------
    PathConflictError
    """
    outs = [(k, str(v)) for k, v in outputs.items() if v is not None]
    ins = [(k, str(v)) for k, v in inputs.items() if v is not None]
    for i, (ko, o) in enumerate(outs):
        for ki, p in ins:
            rel = _relation(o, p)
            if rel is not None:
                raise PathConflictError(
                    f"{ko} {o} {rel} {ki} {p}; writing there would destroy the input: "
                    "choose another path"
                )
        for ko2, o2 in outs[i + 1 :]:
            rel = _relation(o, o2)
            if rel is not None:
                raise PathConflictError(
                    f"{ko} {o} {rel} {ko2} {o2}; two outputs need two separate paths"
                )


def check_scratch_home(
    label: str,
    path: str | os.PathLike[str] | None,
    stores: Mapping[str, str | os.PathLike[str] | None],
) -> None:
    """Refuse a directory given for scratch (``--spill-dir``, ``--workdir``) that is, or lies
    inside, one of the job's inputs or outputs; holding them is fine (bigpaint works in a
    subdirectory of its own there).

    Raises
    ------
    PathConflictError
    """
    if path is None:
        return
    for k, p in stores.items():
        if p is None:
            continue
        rel = _relation(str(path), str(p))
        if rel is not None and rel != "holds":
            raise PathConflictError(
                f"{label} {path} {rel} {k} {p}; bigpaint's scratch there would mix with it: "
                "give a directory outside it"
            )


# ---------------------------------------------------------------- scratch bigpaint owns


def owned_dir(path: str | os.PathLike[str], *, purpose: str) -> Path:
    """Create ``path`` as a scratch directory bigpaint owns (reusing one it made before).

    Parameters
    ----------
    path : path
        The directory; its parents are created as needed (they are not bigpaint's).
    purpose : str
        What it holds, recorded in the mark and shown in messages.

    Raises
    ------
    PathConflictError
        ``path`` exists and bigpaint did not make it (no mark): it is never used or deleted.
    """
    p = Path(path)
    mark = p / OWNER_MARK
    if p.exists() and not mark.is_file():
        raise PathConflictError(
            f"{p} exists and bigpaint did not make it; bigpaint keeps its {purpose} in a "
            "directory of its own: move that directory away or give another location"
        )
    p.mkdir(parents=True, exist_ok=True)
    if not mark.is_file():
        mark.write_text(json.dumps({"owner": "bigpaint", "purpose": purpose}) + "\n")
    return p


def remove_owned(path: str | os.PathLike[str] | None) -> bool:
    """Delete ``path`` if bigpaint made it (it carries the mark); True when removed."""
    if path is None:
        return False
    p = Path(path)
    if not (p / OWNER_MARK).is_file():
        return False
    shutil.rmtree(p, ignore_errors=True)
    return not p.exists()


# ---------------------------------------------------------------- writer lock


_held: dict[str, tuple[int, int]] = {}  # lock path -> (owning thread id, depth)
_held_guard = threading.Lock()


def _lock_file(url: str) -> str:
    c = canonical(url)
    return os.path.join(os.path.dirname(c), f".{os.path.basename(c)}.lock")


def _holder_text(info: Mapping[str, Any]) -> str:
    bits = [f"pid {info.get('pid', '?')}", f"on host {info.get('host', '?')}"]
    if info.get("started"):
        bits.append(f"since {info['started']}")
    text = " ".join(bits)
    if info.get("command"):
        text += f": `{info['command']}`"
    return text


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 65536)
        info = json.loads(data.decode() or "{}")
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}


def _me() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bigpaint", *sys.argv[1:]])
        if os.path.basename(sys.argv[0]) in ("bigpaint", "__main__.py")
        else " ".join(sys.argv),
    }


def _write_holder(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(_me()) + "\n").encode())
    os.fsync(fd)


def _alive_here(info: Mapping[str, Any]) -> bool | None:
    """Whether the holder recorded in a lock file still runs (None: on another host)."""
    if info.get("host") != socket.gethostname():
        return None
    try:
        pid = int(info.get("pid", -1))
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _locked(what: str, url: str, info: Mapping[str, Any]) -> OutputLockedError:
    return OutputLockedError(
        f"{what} {url} is being written by another bigpaint process ({_holder_text(info)}); "
        "wait for it to finish or stop it, then run again"
    )


def _acquire_flock(path: str, what: str, url: str) -> int | None:
    """Take the flock on ``path``; the open descriptor, or None where flock is unsupported."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_holder(fd)
            os.close(fd)
            raise _locked(what, url, info) from None
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return None
            raise
        try:  # the file may have been released and unlinked between open and flock
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    old = _read_holder(fd)
    if old.get("pid") is not None:
        log.warning(
            "%s %s: taking over the lock left by %s, which is no longer running",
            what,
            url,
            _holder_text(old),
        )
    _write_holder(fd)
    return fd


def _acquire_pidfile(path: str, what: str, url: str) -> int:
    """The fallback without flock: the lock file's existence is the lock."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                with open(path, "rb") as fh:
                    info = json.loads(fh.read().decode() or "{}")
            except (OSError, ValueError, UnicodeDecodeError):
                info = {}
            alive = _alive_here(info)
            if alive is None:
                raise OutputLockedError(
                    f"{what} {url} is locked by {_holder_text(info)}; if that process is gone, "
                    f"delete {path} and run again"
                ) from None
            if alive:
                raise _locked(what, url, info) from None
            log.warning(
                "%s %s: taking over the lock left by %s, which is no longer running",
                what,
                url,
                _holder_text(info),
            )
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            continue
        _write_holder(fd)
        return fd
    raise OutputLockedError(f"{what} {url}: another process took its lock {path}; run again")


@contextlib.contextmanager
def output_lock(url: str | os.PathLike[str], *, what: str = "output") -> Iterator[None]:
    """Hold the writer lock of a local output for the duration of the block.

    Re-entrant within one thread (a pipeline stage that calls a command holding the same
    output); another thread or process is refused. URLs of object stores are not locked.

    Raises
    ------
    OutputLockedError
        Another live process (or thread) holds the lock.
    """
    url = str(url)
    if not is_local(url):
        yield
        return
    path = _lock_file(url)
    me = threading.get_ident()
    with _held_guard:
        owner = _held.get(path)
        if owner is not None and owner[0] != me:
            raise OutputLockedError(
                f"{what} {url} is being written by another thread of this process; write it once"
            )
        if owner is not None:
            _held[path] = (me, owner[1] + 1)
    if owner is not None:
        try:
            yield
        finally:
            with _held_guard:
                tid, depth = _held[path]
                _held[path] = (tid, depth - 1)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = _acquire_flock(path, what, url)
    flocked = fd is not None
    if fd is None:
        fd = _acquire_pidfile(path, what, url)
    with _held_guard:
        _held[path] = (me, 1)
    try:
        yield
    finally:
        with _held_guard:
            _held.pop(path, None)
        try:  # unlink only our own file, then let go
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                os.unlink(path)
        except FileNotFoundError:
            pass
        finally:
            if flocked:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


# ---------------------------------------------------------------- the guard every job uses


def _field_untouched(url: str, storage_options: Mapping[str, Any] | None) -> bool:
    """True when ``url`` is a Field none of whose blocks is written (safe to remove)."""
    import numpy as np
    import zarr

    try:
        kwargs: dict[str, Any] = {}
        if storage_options and not is_local(url):
            kwargs["storage_options"] = dict(storage_options)
        g = zarr.open_group(store=url, mode="r", zarr_format=3, **kwargs)
        if "bigpaint_format" not in g.attrs:
            return False
        return int(np.asarray(stored_array(g, "_bigpaint/done", url)[...]).sum()) == 0
    except Exception:  # not a Field we can read: leave it alone
        return False


@contextlib.contextmanager
def writing(
    outputs: Mapping[str, str | os.PathLike[str] | None],
    inputs: Mapping[str, str | os.PathLike[str] | None] | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """Guard one job's outputs for the duration of the block.

    Checks the outputs apart from the inputs and from each other, holds each output's writer
    lock, and, if the block fails, removes every Field output that did not exist before and
    has no finished block (a refusal leaves nothing behind; a killed run keeps what it
    finished, for resume).

    Parameters
    ----------
    outputs : mapping of label to path
        What the job writes (``None`` entries are skipped).
    inputs : mapping of label to path, optional
        What it reads.
    storage_options : mapping, optional
        fsspec options of remote outputs.
    """
    outs = {k: str(v) for k, v in outputs.items() if v is not None}
    check_apart(outs, dict(inputs or {}))
    for label, o in outs.items():
        if not o.strip():
            raise ConfigError(f"{label} is an empty path; give the path to write to")
    with contextlib.ExitStack() as stack:
        for label, o in outs.items():
            stack.enter_context(output_lock(o, what=label))
        existed = {o: store_exists(o, storage_options) for o in outs.values()}
        try:
            yield
        except Exception:
            for o, was in existed.items():
                if not was and _field_untouched(o, storage_options):
                    remove_field(o, storage_options)
            raise
