"""Particle catalogues read in batches: numpy/.npy arrays, Zarr arrays and dask arrays.

A :class:`ParticleSource` describes a catalogue of N particles (positions in Mpc/h, optional
masses) that is read in batches of bounded size, so that deposition never needs all the
particles in memory. Sources are picklable: a task on any worker re-opens its batch from
the file (memory-mapped ``.npy``, Zarr), or receives it as a dask dependency (in-process
dask arrays such as LPT particles). Gadget HDF5 snapshots are in :mod:`bigpaint.io.gadget`;
:func:`bigpaint.io.open.open_particles` opens any of them by path or type.

Why hand-written: the readers are thin (``numpy.load(mmap_mode="r")``, ``zarr``, ``dask``);
what is ours is the batching contract (global particle offsets for error messages, batch
boundaries on Zarr chunk boundaries). The box size a source carries is reconciled with
the user's in :mod:`bigpaint.io.box_size`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bigpaint.errors import FieldNotFoundError, NegativeMassError, ShapeError
from bigpaint.io.box_size import box3, resolve_box_size

if TYPE_CHECKING:
    import zarr

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ArrayParticles",
    "Batch",
    "DaskParticles",
    "NpyParticles",
    "ParticleSource",
    "ZarrParticles",
    "batch_spans",
    "check_masses",
    "float_positions",
]

#: Default particles per batch (48 MiB of float32 positions).
DEFAULT_BATCH_SIZE = 1 << 22


@dataclass(frozen=True)
class Batch:
    """One batch of a particle source.

    Attributes
    ----------
    index : int
        Position of the batch in the source's list.
    start : int
        Global index of the batch's first particle (for messages).
    count : int
        Number of particles.
    part : int
        File (or array) the batch comes from, for multi-file sources.
    offset : int
        Index of the first particle inside that file.
    """

    index: int
    start: int
    count: int
    part: int = 0
    offset: int = 0


def batch_spans(n: int, batch_size: int, align: int = 1) -> list[tuple[int, int]]:
    """``(start, stop)`` of the batches of ``n`` particles: at most ``batch_size`` each
    (rounded down to a multiple of ``align``, at least ``align``); one empty span for none."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    size = max(align, (batch_size // align) * align)
    return [(a, min(a + size, n)) for a in range(0, n, size)] or [(0, 0)]


def _check_positions_shape(shape: Sequence[int], what: str) -> int:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or shape[1] != 3:
        hint = "; transpose it to (N, 3)" if len(shape) == 2 and shape[0] == 3 else ""
        raise ShapeError(f"{what} must have shape (N, 3), got {shape}{hint}")
    return shape[0]


def _check_masses_shape(shape: Sequence[int], n: int, what: str) -> None:
    if tuple(int(s) for s in shape) != (n,):
        raise ShapeError(
            f"{what} must have shape ({n},) to match the positions, got {tuple(shape)}"
        )


def check_masses(masses: np.ndarray | None, what: str, offset: int = 0) -> None:
    """Refuse negative masses (one-line :class:`NegativeMassError` naming the first).

    Deposits sum masses into cells; a negative one would silently cancel real mass. NaN
    masses are left to the deposit's own scan, which names them.
    """
    if masses is None or masses.size == 0 or np.dtype(masses.dtype).kind == "u":
        return
    neg = np.asarray(masses) < 0
    if neg.any():
        i = int(np.argmax(neg))
        raise NegativeMassError(
            f"{what}: {int(neg.sum())} of {masses.size} masses are negative (first: particle "
            f"{offset + i}, mass {float(masses[i]):g}); masses must be >= 0: fix them, or "
            "deposit without masses to count particles"
        )


def _check_real(dtype: np.dtype, what: str) -> None:
    if np.dtype(dtype).kind not in "fiu":
        raise ShapeError(f"{what} must hold real numbers, got dtype {dtype}")


class ParticleSource:
    """A particle catalogue read in batches (base class).

    ``box_size`` and ``rereadable`` are plain attributes; the others are read-only
    properties (with the defaults below) that a subclass overrides by a property or by a
    dataclass field of the same name.

    Attributes
    ----------
    n_particles : int
    box_size : tuple of 3 float or None
        Periodic box from the file's metadata, in Mpc/h; None when the file has none.
    has_masses : bool
        Whether :meth:`load` returns per-particle masses.
    particle_mass : float or None
        Mass of every particle when they all have one (e.g. Gadget's MassTable), in
        ``mass_units``; None when unknown or per-particle.
    mass_units : str
        Units of the masses ("1" when the grid counts particles).
    redshift : float or None
    rereadable : bool
        True when a batch can be read again cheaply (files, in-memory arrays); False for
        dask arrays, whose batches are computed once.
    """

    box_size: tuple[float, float, float] | None = None
    rereadable: bool = True

    @property
    def n_particles(self) -> int:
        raise NotImplementedError  # pragma: no cover - abstract

    @property
    def has_masses(self) -> bool:
        return False

    @property
    def particle_mass(self) -> float | None:
        return None

    @property
    def mass_units(self) -> str:
        return "1"

    @property
    def redshift(self) -> float | None:
        return None

    def batches(self) -> list[Batch]:
        """The batches in order; their counts sum to ``n_particles``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def load(self, batch: Batch, data: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Positions ``(count, 3)`` in Mpc/h (float32 or float64) and masses or None."""
        raise NotImplementedError  # pragma: no cover - abstract

    def batch_data(self) -> list[Any] | None:
        """Per-batch dask dependencies (dask sources), else None."""
        return None

    def extra(self, batch: Batch, name: str) -> np.ndarray | None:
        """Another per-particle quantity of a batch: ``"velocities"`` (peculiar, km/s,
        ``(count, 3)``) or ``"ids"`` (int64); None when the source does not hold it."""
        return None

    def describe(self) -> str:
        """Short text for provenance."""
        return type(self).__name__


@dataclass(frozen=True, eq=False)
class ArrayParticles(ParticleSource):
    """Particles held in memory as numpy arrays.

    Parameters
    ----------
    positions : (N, 3) array
        Positions in Mpc/h.
    masses : (N,) array, optional
        Per-particle masses.
    box_size : float or 3 floats, optional
        Box in Mpc/h (arrays carry none of their own).
    batch_size : int
        Particles per batch.
    mass_units : str
        Units of ``masses``.
    """

    positions: np.ndarray
    masses: np.ndarray | None = None
    box_size: tuple[float, float, float] | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    mass_units: str = "1"

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions)
        n = _check_positions_shape(pos.shape, "positions")
        _check_real(pos.dtype, "positions")
        if pos.dtype not in (np.float32, np.float64):
            pos = pos.astype(np.float64)
        object.__setattr__(self, "positions", pos)
        if self.masses is not None:
            m = np.asarray(self.masses)
            _check_masses_shape(m.shape, n, "masses")
            _check_real(m.dtype, "masses")
            check_masses(m, "masses")
            object.__setattr__(self, "masses", m)
        object.__setattr__(self, "box_size", box3(self.box_size))

    @property
    def n_particles(self) -> int:
        return int(self.positions.shape[0])

    @property
    def has_masses(self) -> bool:
        return self.masses is not None

    def batches(self) -> list[Batch]:
        return [
            Batch(i, a, b - a)
            for i, (a, b) in enumerate(batch_spans(self.n_particles, self.batch_size))
        ]

    def load(self, batch: Batch, data: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        sl = slice(batch.start, batch.start + batch.count)
        pos = np.ascontiguousarray(self.positions[sl])
        mass = None if self.masses is None else np.ascontiguousarray(self.masses[sl])
        return pos, mass

    def describe(self) -> str:
        return f"in-memory array of {self.n_particles} particles"


@dataclass(frozen=True, eq=False)
class NpyParticles(ParticleSource):
    """Particles in ``.npy`` files, read by memory map (never loaded whole).

    Parameters
    ----------
    path : str
        ``.npy`` file of shape (N, 3), positions in Mpc/h.
    masses_path : str, optional
        ``.npy`` file of shape (N,) with the masses.
    box_size : float or 3 floats, optional
        Box in Mpc/h (``.npy`` files carry none).
    batch_size : int
        Particles per batch.
    mass_units : str
        Units of the masses.
    """

    path: str
    masses_path: str | None = None
    box_size: tuple[float, float, float] | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    mass_units: str = "1"
    _n: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        pos = _open_npy(self.path)
        n = _check_positions_shape(pos.shape, f"positions in {self.path}")
        _check_real(pos.dtype, f"positions in {self.path}")
        if self.masses_path is not None:
            m = _open_npy(self.masses_path)
            _check_masses_shape(m.shape, n, f"masses in {self.masses_path}")
            _check_real(m.dtype, f"masses in {self.masses_path}")
        object.__setattr__(self, "_n", n)
        object.__setattr__(self, "box_size", box3(self.box_size))

    @property
    def n_particles(self) -> int:
        return self._n

    @property
    def has_masses(self) -> bool:
        return self.masses_path is not None

    def batches(self) -> list[Batch]:
        return [
            Batch(i, a, b - a) for i, (a, b) in enumerate(batch_spans(self._n, self.batch_size))
        ]

    def load(self, batch: Batch, data: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        sl = slice(batch.start, batch.start + batch.count)
        pos = float_positions(np.array(_open_npy(self.path)[sl]))
        mass = None
        if self.masses_path is not None:
            mass = np.array(_open_npy(self.masses_path)[sl])
            check_masses(mass, f"masses in {self.masses_path}", batch.start)
        return pos, mass

    def describe(self) -> str:
        return os.path.abspath(self.path)


def _open_npy(path: str) -> np.ndarray:
    if not os.path.exists(path):
        raise FieldNotFoundError(f"no particle file at {path}; check the path")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise ShapeError(
            f"{path} is not a readable .npy array ({exc}); save it with numpy.save"
        ) from None


def float_positions(pos: np.ndarray) -> np.ndarray:
    """Positions as read: float32 or float64 kept (contiguous), anything else as float64."""
    if pos.dtype in (np.float32, np.float64):
        return np.ascontiguousarray(pos)
    return pos.astype(np.float64)


def _zarr_member(group: zarr.Group, name: str, url: str) -> zarr.Array:
    """The array ``name`` of a particle store's group; a group in its place is refused."""
    import zarr

    node = group[name]
    if not isinstance(node, zarr.Array):
        raise ShapeError(
            f"{url}/{name} is a Zarr group, not an array; store particles as positions (N, 3) "
            "[+ masses (N,)]"
        )
    return node


@dataclass(frozen=True, eq=False)
class ZarrParticles(ParticleSource):
    """Particles in a Zarr store: an (N, 3) array, or a group with ``positions`` (and ``masses``).

    The box size is read from the ``box_size`` attribute (Mpc/h) of the group or array when
    present. Batches end on Zarr chunk boundaries along the particle axis.

    Parameters
    ----------
    url : str
        Store path or fsspec URL.
    box_size : float or 3 floats, optional
        Box in Mpc/h; must agree with the store's ``box_size`` attribute if it has one.
    batch_size : int
        Particles per batch (rounded to whole Zarr chunks).
    """

    url: str
    box_size: tuple[float, float, float] | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    _n: int = field(default=0, repr=False)
    _chunk: int = field(default=1, repr=False)
    _masses: bool = field(default=False, repr=False)
    _pos_path: str | None = field(default=None, repr=False)
    _mass_units: str = field(default="1", repr=False)
    _redshift: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import zarr

        if "://" not in str(self.url) and not os.path.exists(self.url):
            raise FieldNotFoundError(f"no particle store at {self.url}; check the path")
        try:
            node = zarr.open(store=str(self.url), mode="r")
        except Exception as exc:  # zarr raises several types for "not a store"
            raise ShapeError(
                f"{self.url} is not a Zarr array or group ({type(exc).__name__})"
            ) from None
        attrs: dict[str, Any] = dict(node.attrs)
        if isinstance(node, zarr.Group):
            if "positions" not in node:
                raise ShapeError(
                    f"Zarr group {self.url} has no 'positions' array; store particles as "
                    "positions (N, 3) [+ masses (N,)]"
                )
            pos = _zarr_member(node, "positions", self.url)
            attrs = {**dict(pos.attrs), **attrs}
            object.__setattr__(self, "_pos_path", "positions")
            if "masses" in node:
                masses = _zarr_member(node, "masses", self.url)
                _check_masses_shape(masses.shape, pos.shape[0], f"{self.url}/masses")
                object.__setattr__(self, "_masses", True)
        else:
            pos = node
        n = _check_positions_shape(pos.shape, f"positions in {self.url}")
        _check_real(pos.dtype, f"positions in {self.url}")
        object.__setattr__(self, "_n", n)
        object.__setattr__(self, "_chunk", int(pos.chunks[0]))
        object.__setattr__(self, "_mass_units", str(attrs.get("mass_units", "1")))
        z = attrs.get("redshift")
        object.__setattr__(self, "_redshift", None if z is None else float(z))
        stored = box3(attrs["box_size"]) if "box_size" in attrs else None
        given = box3(self.box_size)
        object.__setattr__(
            self,
            "box_size",
            resolve_box_size(
                stored, given, where=f"the 'box_size' attribute of {self.url}", required=False
            ),
        )

    @property
    def n_particles(self) -> int:
        return self._n

    @property
    def has_masses(self) -> bool:
        return self._masses

    @property
    def mass_units(self) -> str:
        return self._mass_units if self._masses else "1"

    @property
    def redshift(self) -> float | None:
        return self._redshift

    def batches(self) -> list[Batch]:
        spans = batch_spans(self._n, self.batch_size, align=self._chunk)
        return [Batch(i, a, b - a) for i, (a, b) in enumerate(spans)]

    def _open(self) -> tuple[zarr.Array, zarr.Group | None]:
        """The positions array and the group holding it (None for a bare array)."""
        import zarr

        node = zarr.open(store=str(self.url), mode="r")
        if isinstance(node, zarr.Group):
            return _zarr_member(node, "positions", self.url), node
        return node, None

    def load(self, batch: Batch, data: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        pos_arr, group = self._open()
        sl = slice(batch.start, batch.start + batch.count)
        pos = float_positions(np.asarray(pos_arr[sl]))
        mass = None
        if self._masses and group is not None:
            mass = np.asarray(_zarr_member(group, "masses", self.url)[sl])
        check_masses(mass, f"{self.url}/masses", batch.start)
        return pos, mass

    def extra(self, batch: Batch, name: str) -> np.ndarray | None:
        _, group = self._open()
        if group is None or name not in ("velocities", "ids") or name not in group:
            return None
        values = _zarr_member(group, name, self.url)[batch.start : batch.start + batch.count]
        return np.asarray(values).astype(np.int64 if name == "ids" else np.float64)

    def describe(self) -> str:
        return str(self.url)


@dataclass(frozen=True, eq=False)
class DaskParticles(ParticleSource):
    """Particles produced in-process as dask arrays (e.g. LPT): each batch is one dask chunk.

    The batches enter the deposition graph as dependencies, so shared upstream work (an FFT)
    is computed once. They are not re-read: deposition routes each batch once.

    Parameters
    ----------
    positions : dask.array.Array, (N, 3)
        Positions in Mpc/h, chunked along the particle axis (the 3 coordinates are kept in
        one chunk).
    masses : dask.array.Array, (N,), optional
    box_size : float or 3 floats, optional
        Box in Mpc/h.
    mass_units : str
    """

    positions: Any
    masses: Any = None
    box_size: tuple[float, float, float] | None = None
    mass_units: str = "1"
    rereadable: bool = False

    def __post_init__(self) -> None:
        import dask.array as da

        pos = self.positions
        if not isinstance(pos, da.Array):
            raise ShapeError(f"DaskParticles needs a dask array, got {type(pos).__name__}")
        n = _check_positions_shape(pos.shape, "positions")
        if any(math.isnan(c) for c in pos.chunks[0]):
            raise ShapeError("positions have unknown chunk sizes; call compute_chunk_sizes() first")
        _check_real(pos.dtype, "positions")
        pos = pos.rechunk({1: 3})
        object.__setattr__(self, "positions", pos)
        if self.masses is not None:
            m = self.masses
            if not isinstance(m, da.Array):
                m = da.from_array(np.asarray(m), chunks=(pos.chunks[0],))
            _check_masses_shape(m.shape, n, "masses")
            object.__setattr__(self, "masses", m.rechunk((pos.chunks[0],)))
        object.__setattr__(self, "box_size", box3(self.box_size))

    @property
    def n_particles(self) -> int:
        return int(self.positions.shape[0])

    @property
    def has_masses(self) -> bool:
        return self.masses is not None

    def batches(self) -> list[Batch]:
        out, start = [], 0
        for i, c in enumerate(self.positions.chunks[0]):
            out.append(Batch(i, start, int(c), part=i))
            start += int(c)
        return out

    def batch_data(self) -> list[Any]:
        pos_blocks = self.positions.to_delayed().ravel()
        if self.masses is None:
            return [(p, None) for p in pos_blocks]
        mass_blocks = self.masses.to_delayed().ravel()
        return list(zip(pos_blocks, mass_blocks, strict=True))

    def load(self, batch: Batch, data: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        if data is None:  # computing a block alone (tests, tiny graphs)
            data = (
                self.positions.blocks[batch.part],
                None if self.masses is None else self.masses.blocks[batch.part],
            )
            data = tuple(None if d is None else d.compute(scheduler="sync") for d in data)
        pos, mass = data
        pos = float_positions(np.asarray(pos))
        if pos.shape != (batch.count, 3):
            raise ShapeError(
                f"dask chunk {batch.part} has shape {pos.shape}, expected ({batch.count}, 3)"
            )
        return pos, None if mass is None else np.asarray(mass)

    def describe(self) -> str:
        return f"dask array {self.positions.name}"
