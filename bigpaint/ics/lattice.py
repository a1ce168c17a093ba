"""The linear field of a user's run recovered from its particles at the starting redshift.

An IC file of N^3 particles on a cubic lattice holds ``x = q + psi(q)``. Each particle is
given back its lattice site (the nearest one; the lattice offset, cell centres or corners, is
measured as the circular mean of ``x`` modulo a cell, exact because the displacement field
has no mean), and ``psi = x - q`` (periodic) is laid out on the lattice in a scratch array.

At first order ``psi = D1 psi1`` with ``psi1_k = i k delta_k / k^2``, so ``delta_L =
-div psi / D1``. The Nyquist planes carry no odd multiplier (:mod:`bigpaint.ics.lpt_fourier`),
so the inversion is the least-squares projection, exact for every mode the displacements
hold::

    A_k = D1 delta_k - D2 S2_k = -i sum_i g_i psi_i,k / sum_i g_i^2,    g_i = k_i / k^2

(``g_i`` zero on the Nyquist plane of axis ``i``; modes with every ``g_i`` zero, such as
``(N/2, 0, 0)``, are not in the displacements and are set to zero). The 2LPT correction:
``psi = D1 psi1 + D2 psi2`` with ``div psi2 = S2(delta)``, so ``delta = (A + D2 S2(delta))
/ D1`` is solved by fixed-point iteration from ``delta = A / D1``. Each step shrinks the
error by about ``(6/7) D1 sigma`` (``sigma`` the rms linear contrast per cell today), so the
``ITERATIONS`` steps leave ``~(D1 sigma)^4`` of the second-order part: far below float32 for
ICs at z >~ 10. ICs made by 2LPT are inverted to the float precision of their positions;
ICs made by 3LPT or by another discretisation of the derivatives leave their difference.
"""

from __future__ import annotations

import math
import os
import shutil
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np

from bigpaint.errors import MetadataError
from bigpaint.ics.grf import (
    Precision,
    cube_shape,
    fft_input_chunks,
    precision_dtypes,
    slab_chunks,
)
from bigpaint.ics.ic_spec import (
    LATTICES,
    ExternalICs,
    InitialConditions,
    file_identity,
    growth_normalisation,
    ic_redshift,
    same_box,
)
from bigpaint.ics.lpt_fourier import gradient_multiplier, second_order_source

if TYPE_CHECKING:
    from bigpaint.ics.power import LinearPower

__all__ = [
    "ITERATIONS",
    "lattice_displacements",
    "particle_modes",
    "particle_modes_array",
    "resolve_particles",
]

#: Fixed-point steps of the 2LPT inversion.
ITERATIONS = 4
#: Lowest lattice coherence ``|<exp(2 pi i x / dx)>|`` accepted as "particles on a lattice".
MIN_COHERENCE = 0.05


def _open(ics_path: str, box_size: float | None, options: dict[str, Any]) -> Any:
    from bigpaint.io import open_particles

    return open_particles(ics_path, box_size=box_size, **options)


def _source(path: str, box_size: float, options: dict[str, Any]) -> Any:
    """The particle source; the box from the file where it has one (.npy: the config's)."""
    return _open(path, box_size if path.lower().endswith(".npy") else None, options)


def _measure_offset(src: Any, grid: int, box: float) -> tuple[float, float]:
    """Lattice offset in cells (snapped to 0 or 1/2 within 1e-4) and the lattice coherence.

    Two read passes: the circular mean of ``x`` modulo a cell gives the offset to a few
    thousandths of a cell (biased by the skewness of the displacements); the plain mean of
    ``x - q`` about the nearest sites of that offset then gives it exactly, because the
    displacements have no mean (their k = 0 mode is zero).
    """
    acc = np.zeros(3, complex)
    for b in src.batches():
        pos, _ = src.load(b)
        acc += np.exp(2j * math.pi * np.asarray(pos, np.float64) * (grid / box)).sum(axis=0)
    acc /= max(src.n_particles, 1)
    coherence = float(np.abs(acc).min())
    if coherence < MIN_COHERENCE:
        return 0.0, coherence
    rough = np.mod(np.angle(acc) / (2 * math.pi), 1.0)
    total = np.zeros(3)
    for b in src.batches():
        u = np.asarray(src.load(b)[0], np.float64) * (grid / box) - rough
        total += (u - np.rint(u)).sum(axis=0)
    offs = np.mod(rough + total / max(src.n_particles, 1), 1.0)
    if np.abs(((offs - offs[0]) + 0.5) % 1.0 - 0.5).max() > 1e-3:
        raise MetadataError(
            f"{src.describe()}: the lattice offsets differ between axes ({np.round(offs, 4)} "
            "cells); the particles are not one cubic lattice"
        )
    off = float(offs[0])
    for snap in (0.0, 0.5, 1.0):
        if abs(off - snap) < 1e-4:
            off = snap % 1.0
    return off, coherence


def resolve_particles(
    spec: InitialConditions, path: str, *, grid: int, box_size: float, power: LinearPower
) -> ExternalICs:
    """Check particle ICs against the config and measure their lattice (one read pass)."""
    options: dict[str, Any] = {"ptype": spec.ptype}
    if spec.length_unit is not None:
        options["length_unit"] = spec.length_unit
    src = _source(path, box_size, options)
    box = src.box_size
    if box is None or len(set(box)) != 1:
        raise MetadataError(f"{path}: particle ICs need a cubic box, got {box}")
    same_box(box[0], box_size, path)
    n = int(src.n_particles)
    if n != grid**3:
        side = round(n ** (1 / 3))
        hint = f"set grid: {side}" if side**3 == n else "ICs must be a cubic lattice of N^3"
        raise MetadataError(
            f"initial conditions {path} hold {n} particles, not grid^3 = {grid**3}; {hint}"
        )
    z = ic_redshift(spec, getattr(src, "redshift", None), path)
    growth, ratio = growth_normalisation(spec, z, power, path)
    if spec.order == 1:
        ratio = 0.0  # Zel'dovich ICs: no second-order displacement to take out
    offset, coherence = _measure_offset(src, grid, float(box[0]))
    if coherence < MIN_COHERENCE:
        raise MetadataError(
            f"{path}: the particles are not on a {grid}^3 lattice (coherence {coherence:.2f}); "
            "give ICs at the starting redshift, or their linear density"
        )
    if spec.lattice is not None and abs(LATTICES[spec.lattice] - offset) > 1e-2:
        raise MetadataError(
            f"{path}: initial_conditions.lattice is {spec.lattice} but the particles sit "
            f"{offset:.3f} cells from the grid corners; drop or fix lattice"
        )
    files = getattr(src, "files", None) or (path,)
    return ExternalICs(
        "particles", path, grid, float(box_size), z, growth, ratio, offset, False,
        f"{n}-{file_identity(files[0])}", tuple(sorted(options.items())),
    )  # fmt: skip


# ---------------------------------------------------------------- displacements on the lattice


def lattice_displacements(ics: ExternalICs, out: str, *, dtype: Any = np.float32) -> str:
    """Write ``psi = x - q`` (Mpc/h) of every lattice site to ``out`` (a ``.npy`` of shape
    ``(3, N, N, N)``), reading the particles batch by batch.

    Raises
    ------
    MetadataError
        Some lattice site is claimed by no particle or by several (displacements of half a
        cell or more: the ICs start too late for a lattice to be read off them).
    """
    n, box = ics.grid, ics.box_size
    dx = box / n
    src = _source(ics.path, box, dict(ics.options))
    psi = np.lib.format.open_memmap(out, mode="w+", dtype=dtype, shape=(3, n, n, n))
    counts = np.zeros(n**3, np.uint8) if n <= 1024 else np.lib.format.open_memmap(
        out + ".claims.npy", mode="w+", dtype=np.uint8, shape=(n**3,)
    )  # fmt: skip
    for b in src.batches():
        pos = np.asarray(src.load(b)[0], np.float64)
        site = np.mod(np.rint(pos / dx - ics.lattice_offset), n).astype(np.int64)
        q = (site + ics.lattice_offset) * dx
        d = np.mod(pos - q + box / 2, box) - box / 2
        flat = (site[:, 0] * n + site[:, 1]) * n + site[:, 2]
        idx, c = np.unique(flat, return_counts=True)
        counts[idx] = np.minimum(counts[idx].astype(np.int64) + c, 255).astype(np.uint8)
        for ax in range(3):
            psi[ax].reshape(-1)[flat] = d[:, ax]
    psi.flush()
    bad = int(np.count_nonzero(counts != 1))
    del counts
    if os.path.exists(out + ".claims.npy"):
        os.remove(out + ".claims.npy")
    if bad:
        raise MetadataError(
            f"{ics.path}: {bad} of {n**3} lattice sites are claimed by no particle or by "
            "several (displacements of half a cell or more); give ICs at an earlier redshift, "
            "or their linear density"
        )
    return out


def _psi_block(path: str, axis: int, block_info: Any = None) -> np.ndarray:
    loc = block_info[None]["array-location"]
    arr = np.load(path, mmap_mode="r")
    return np.array(arr[(axis, *(slice(a, b) for a, b in loc))])


def _project_block(*psik: np.ndarray, shape: Any, box_size: float, block_info: Any = None) -> Any:
    """``A_k = -i sum g_i psi_i,k / sum g_i^2`` on one half-space block."""
    loc = [tuple(r) for r in block_info[0]["array-location"]]
    g = [gradient_multiplier(shape, loc, ax, box_size) for ax in range(3)]
    norm = g[0] ** 2 + g[1] ** 2 + g[2] ** 2
    num = sum(gi * p.astype(np.complex128) for gi, p in zip(g, psik, strict=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(norm > 0, -1j * num / np.where(norm > 0, norm, 1.0), 0.0)
    return out.astype(psik[0].dtype)


def _combine_block(a: np.ndarray, s2k: np.ndarray, d1: float, d2: float) -> np.ndarray:
    """``(A + D2 S2_k) / D1``."""
    t = a.real.dtype.type
    return ((a + s2k * t(d2)) * t(1.0 / d1)).astype(a.dtype)


def particle_modes(
    ics: ExternalICs, *, precision: Precision, backend: str, scratch: str
) -> da.Array:
    """``delta_k`` at z = 0 recovered from particle ICs, chunked (scratch under ``scratch``).

    The displacements go to ``scratch/psi.npy``; each 2LPT step stores its source as a
    scratch Field, so the graph stays one step deep.
    """
    from bigpaint.field import create_field, open_field, zarr_array
    from bigpaint.ics.grf import store_field
    from bigpaint.mesh.fft import rfftn

    shape = cube_shape(ics.grid)
    real, cplx = precision_dtypes(precision)
    os.makedirs(scratch, exist_ok=True)
    path = os.path.join(scratch, f"psi-{ics.identity}.npy")
    if not os.path.exists(path):
        lattice_displacements(ics, path + ".part.npy", dtype=real)
        os.replace(path + ".part.npy", path)
    chunks = fft_input_chunks(shape, precision, backend)
    from bigpaint.chunked.grid import BlockGrid

    bchunks = BlockGrid(shape, chunks).chunks
    psik = [
        rfftn(
            da.map_blocks(_psi_block, path=path, axis=ax, chunks=bchunks, dtype=real,
                          meta=np.array((), real)),
            backend=backend, check_finite=False,
        )
        for ax in range(3)
    ]  # fmt: skip
    a = da.map_blocks(
        _project_block, *psik, shape=shape, box_size=ics.box_size, dtype=cplx,
        meta=np.array((), cplx),
    )  # fmt: skip
    d1, d2 = ics.growth, ics.d2_ratio * ics.growth**2
    fk = a * cplx.type(1.0 / d1)
    for step in range(ITERATIONS):
        url = os.path.join(scratch, f"s2-{step}.zarr")
        shutil.rmtree(url, ignore_errors=True)
        writer = create_field(
            url, shape=shape, chunks=slab_chunks(shape), dtype=real,
            meta={"box_size": ics.box_size, "kind": "lpt_source", "units": "1"},
        )  # fmt: skip
        store_field(second_order_source(fk, shape, backend=backend), writer)
        s2 = da.from_zarr(zarr_array(open_field(writer.url)))
        s2k = rfftn(s2, backend=backend, check_finite=False).rechunk(a.chunks)
        fk = da.map_blocks(_combine_block, a, s2k, d1=d1, d2=d2, dtype=cplx,
                           meta=np.array((), cplx))  # fmt: skip
    return fk


def particle_modes_array(ics: ExternalICs) -> np.ndarray:
    """In-memory :func:`particle_modes` (float64, whole box; the reference of tests)."""
    import tempfile

    import scipy.fft

    from bigpaint.ics.lpt_fourier import second_order_source_array
    from bigpaint.mesh.kgrid import full_location, rfft_shape

    shape = cube_shape(ics.grid)
    with tempfile.TemporaryDirectory() as tmp:
        psi = np.array(np.load(lattice_displacements(ics, os.path.join(tmp, "psi.npy"),
                                                     dtype=np.float64)))  # fmt: skip
    psik = [scipy.fft.rfftn(p) for p in psi]
    info = [{"array-location": full_location(rfft_shape(shape))}]
    a = _project_block(*psik, shape=shape, box_size=ics.box_size, block_info=info)
    d1, d2 = ics.growth, ics.d2_ratio * ics.growth**2
    fk = a / d1
    for _ in range(ITERATIONS):
        fk = (a + d2 * scipy.fft.rfftn(second_order_source_array(fk, shape))) / d1
    return fk
