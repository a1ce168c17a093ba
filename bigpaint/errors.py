"""The bigpaint error family.

Every error bigpaint raises on purpose is a :class:`BigpaintError`. Each subclass also
inherits the matching built-in exception, so callers can catch either
(``except FileNotFoundError`` keeps working). Messages name the bad value and the fix;
the CLI prints them as one line and exits non-zero.
"""

from __future__ import annotations

import errno as _errno
import os

__all__ = [
    "STORAGE_ERRNOS",
    "BigpaintError",
    "CheckpointError",
    "ChunkingError",
    "ConfigError",
    "DamagedStoreError",
    "FieldExistsError",
    "FieldIncompleteError",
    "FieldNotFoundError",
    "FloodTooLargeError",
    "MetadataError",
    "MissingDependencyError",
    "NegativeMassError",
    "NonFiniteError",
    "NotADistanceMapError",
    "NotAFieldError",
    "OutputLockedError",
    "ParticleBoundsError",
    "PathConflictError",
    "ShapeError",
    "StorageError",
    "TooLargeError",
    "check_writable",
    "storage_error",
]


class BigpaintError(Exception):
    """Base class of every error bigpaint raises deliberately."""


class ConfigError(BigpaintError, ValueError):
    """A configuration file or option is invalid (unknown key, bad value)."""


class FieldNotFoundError(BigpaintError, FileNotFoundError):
    """The path given as a Field does not exist."""


class NotAFieldError(BigpaintError, ValueError):
    """The path exists but holds no bigpaint Field (no Zarr group or no bigpaint metadata)."""


class FieldIncompleteError(BigpaintError, RuntimeError):
    """The Field is still being written (or its writer died) and cannot be used as an input."""


class FieldExistsError(BigpaintError, FileExistsError):
    """The output path exists and is not a resumable run of the same job."""


class MetadataError(BigpaintError, ValueError):
    """Field metadata is missing, invalid, or disagrees between Fields (box size, grid, units)."""


class ShapeError(BigpaintError, ValueError):
    """An array has the wrong number of dimensions or the wrong shape."""


class ChunkingError(BigpaintError, ValueError):
    """A chunk layout is invalid or not aligned with what the operation needs."""


class NonFiniteError(BigpaintError, ValueError):
    """An input holds NaN or infinite values."""


class MissingDependencyError(BigpaintError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""


class CheckpointError(BigpaintError, ValueError):
    """A painter checkpoint is missing, damaged, of a newer format, or does not match the
    architecture it is loaded into."""


class ParticleBoundsError(BigpaintError, ValueError):
    """Particle positions lie outside the periodic box ``[0, L]`` and wrapping was not asked for."""


class NotADistanceMapError(BigpaintError, ValueError):
    """The input is not a distance map (negative values, or a Field of another kind)."""


class FloodTooLargeError(BigpaintError, MemoryError):
    """A segmentation component is too large to flood within the memory budget."""


class PathConflictError(BigpaintError, ValueError):
    """An output path is an input path, or lies inside one, or holds one (however spelled)."""


class OutputLockedError(BigpaintError, RuntimeError):
    """Another live process is writing the same output; the message names it."""


class TooLargeError(BigpaintError, MemoryError):
    """A job cannot fit: what one task needs exceeds the memory it can have (the machine, a
    worker's memory limit, a memory budget), or a limit is too small for any task to run."""


class DamagedStoreError(BigpaintError, ValueError):
    """Stored data cannot be decoded (a truncated or overwritten chunk, metadata file or
    training state): the store is damaged and must be rewritten."""


class NegativeMassError(BigpaintError, ValueError):
    """Particle masses are negative (a mass deposit needs masses >= 0)."""


class StorageError(BigpaintError, OSError):
    """The file system refused a read or write: read-only, full, or not permitted.

    ``errno`` and ``filename`` are those of the refused call; the message is one line.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else super().__str__()


#: What each refusing errno means and what to do about it (``{dir}``: the directory).
_OS_FIXES = {
    _errno.EROFS: ("the file system is read-only", "write to a writable directory instead"),
    _errno.EACCES: (
        "permission denied",
        "write to a directory you may write to, or fix the permissions of {dir}",
    ),
    _errno.EPERM: (
        "operation not permitted",
        "write to a directory you may write to, or fix the permissions of {dir}",
    ),
    _errno.ENOSPC: (
        "no space left on the device",
        "free space there or write to a file system with room",
    ),
    _errno.EDQUOT: ("the disk quota is exceeded", "free space or write elsewhere"),
}

#: Errnos :func:`storage_error` turns into a :class:`StorageError`.
STORAGE_ERRNOS = frozenset(_OS_FIXES)


def storage_error(
    exc: OSError, path: str | os.PathLike[str] | None = None, doing: str = "write"
) -> StorageError:
    """A one-line :class:`StorageError` for an ``OSError`` that a file system raised.

    Parameters
    ----------
    exc : OSError
        The error; its ``errno`` picks the reason and the fix.
    path : path, optional
        What was being written (or read); default ``exc.filename``.
    doing : str
        ``"write"`` or ``"read"``.
    """
    where = os.fspath(path) if path is not None else exc.filename
    where = os.fsdecode(where) if where is not None else "a file"
    reason, fix = _OS_FIXES.get(
        exc.errno or -1,
        (exc.strerror or str(exc) or type(exc).__name__, "check the path and the file system"),
    )
    folder = os.path.dirname(os.path.abspath(where)) if where != "a file" else "it"
    out = StorageError(f"cannot {doing} {where}: {reason}; {fix.format(dir=folder)}")
    out.errno = exc.errno
    out.filename = (
        exc.filename if exc.filename is not None else (None if path is None else os.fspath(path))
    )
    return out


def check_writable(path: str | os.PathLike[str], what: str) -> None:
    """Refuse, before any work, a local directory bigpaint would have to create or write in
    but cannot: its nearest existing ancestor is on a read-only file system or not writable.

    URLs (``scheme://...``) are not checked. Raises :class:`StorageError` naming ``what``
    (``--workdir``, ``--spill-dir``), the path and the fix.
    """
    text = os.fspath(path)
    if "://" in text:
        return
    probe = os.path.abspath(text)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return
        probe = parent
    if not os.path.isdir(probe):
        probe = os.path.dirname(probe)
    if os.access(probe, os.W_OK | os.X_OK):
        return
    readonly = bool(os.statvfs(probe).f_flag & os.ST_RDONLY)
    code = _errno.EROFS if readonly else _errno.EACCES
    exc = storage_error(OSError(code, os.strerror(code), probe))
    raise StorageError(f"{what} {text}: {exc}")
