"""The bigpaint error family.

Every error bigpaint raises on purpose is a :class:`BigpaintError`. Each subclass also
inherits the matching built-in exception, so callers can catch either
(``except FileNotFoundError`` keeps working). Messages name the bad value and the fix;
the CLI prints them as one line and exits non-zero.
"""

from __future__ import annotations

__all__ = [
    "BigpaintError",
    "CheckpointError",
    "ChunkingError",
    "ConfigError",
    "FieldExistsError",
    "FieldIncompleteError",
    "FieldNotFoundError",
    "FloodTooLargeError",
    "MetadataError",
    "MissingDependencyError",
    "NonFiniteError",
    "NotADistanceMapError",
    "NotAFieldError",
    "OutputLockedError",
    "ParticleBoundsError",
    "PathConflictError",
    "ShapeError",
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
