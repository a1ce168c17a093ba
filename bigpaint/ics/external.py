"""The user's own initial conditions in place of bigpaint's seed, for ``ics`` and ``lpt``.

Three inputs give the linear contrast ``delta_k`` at z = 0 that the LPT pipeline starts from,
so that the 2LPT twin of a user's N-body run is made from that run's own phases:

``linear_density``
    A linear density contrast on the particle grid (a Field of kind ``delta`` without a mass
    assignment window, or a ``.npy`` cube) at z = 0, or at a redshift ``z`` together with the
    growth normalisation it was scaled with: ``growth: engine`` (bigpaint's ``D1(z)``, 1
    today, of the configured cosmology) or the number ``D(z) / D(0)`` the user's code used.
    ``delta_k(0) = rfftn(delta_z) / growth``; the mean (k = 0 mode) is dropped.
``white_noise``
    Unit-variance Gaussian white noise in real space, one deviate per cell, in the convention
    of monofonIC (MUSIC2) and MUSIC with a real-space noise generator, which is also
    bigpaint's own (:mod:`bigpaint.ics.noise`): ``delta_lin = IFFT(FFT(w) sqrt(P(k) / V_cell))``
    with numpy's unnormalised forward transform ``F_k = sum_x f_x exp(-i k.x)``, the inverse
    carrying ``1 / N^3``, ``V_cell = (L / N)^3`` and the k = 0 mode zero. The multiplier is
    real and even in ``k``, so the sign of the exponent does not matter: ``delta_lin`` is the
    noise convolved with a real, symmetric kernel, with the same sign as the noise (more
    noise, more matter). monofonIC's unitary FFT (``1 / sqrt(N^3)`` both ways) divided by
    ``(dx / 2 pi)^{3/2}``, with its amplitude ``sqrt(P / (2 pi)^3)``, is the same expression.
    Its ``DoFixing`` and ``DoInversion`` are ``fixed_amplitude`` and ``paired`` here.
``particles``
    Particles at the starting redshift on a cubic lattice (a Gadget IC file or a ``.npy``
    of positions, read with :func:`bigpaint.io.open_particles`); see
    :mod:`bigpaint.ics.lattice` for how ``delta_k`` is recovered from the displacements.

Each input sits on a lattice: sample ``i`` at ``(i + o) L / N`` with ``o = 1/2`` (cell
centres: bigpaint's Fields) or ``o = 0`` (grid corners: N-GenIC, 2LPTic, MUSIC, monofonIC).
The particles of the twin start on the same lattice, so its density lines up cell for cell
with the user's run. A Field's lattice is its cell centres unless stated; a ``.npy`` has to
say; particles carry theirs (measured).

Everything that can be refused is refused by :func:`resolve_initial_conditions`, before a
cluster starts or anything is written: a box or grid that disagrees with the config, a Field
of the wrong kind, a redshift that disagrees with the file, a growth normalisation missing
where the ICs are not at z = 0.
"""

from __future__ import annotations

import os
from typing import Any

import dask.array as da
import numpy as np

from bigpaint.chunked.block_info import array_location
from bigpaint.errors import ConfigError, FieldNotFoundError, MetadataError, ShapeError
from bigpaint.ics.grf import (
    Precision,
    cube_shape,
    fft_input_chunks,
    noise_modes,
    precision_dtypes,
    shape_modes,
)
from bigpaint.ics.ic_spec import (
    LATTICES,
    ExternalICs,
    InitialConditions,
    file_identity,
    growth_normalisation,
    ic_redshift,
    same_box,
    same_grid,
)
from bigpaint.ics.lattice import particle_modes, particle_modes_array, resolve_particles
from bigpaint.ics.power import LinearPower

__all__ = [
    "ExternalICs",
    "InitialConditions",
    "external_linear_field",
    "external_modes_array",
    "initial_modes",
    "read_cube",
    "resolve_initial_conditions",
]


def initial_modes(
    ics: ExternalICs,
    *,
    power: LinearPower,
    precision: Precision = "single",
    backend: str = "slab",
    fixed_amplitude: bool = False,
    paired: bool = False,
    scratch: str | None = None,
    progress: bool = False,
) -> da.Array:
    """``delta_k`` at z = 0 of resolved external ICs (numpy ``rfftn`` layout), lazily.

    ``scratch`` (a directory bigpaint may create) is needed for particles.
    """
    shape = cube_shape(ics.grid)
    real, cplx = precision_dtypes(precision)
    chunks = fft_input_chunks(shape, precision, backend)
    if ics.kind == "particles":
        if scratch is None:
            raise ConfigError("recovering the linear field from particles needs a scratch_dir")
        return particle_modes(ics, precision=precision, backend=backend, scratch=scratch)
    cube = read_cube(ics.path, ics.is_field, chunks).astype(real)
    if ics.kind == "white_noise":
        return noise_modes(
            cube, ics.box_size, power=power, fixed_amplitude=fixed_amplitude,
            paired=paired, precision=precision, backend=backend,
        )  # fmt: skip
    from bigpaint.mesh.fft import rfftn

    fk = rfftn(cube, backend=backend, check_finite=False)
    return da.map_blocks(
        _scale_block, fk, factor=1.0 / ics.growth, dtype=cplx, meta=np.array((), cplx)
    )


def _scale_block(fk: np.ndarray, factor: float, block_info: Any = None) -> np.ndarray:
    out = fk * fk.real.dtype.type(factor)
    if all(a == 0 for a, _ in array_location(block_info)):
        out[0, 0, 0] = 0
    return out.astype(fk.dtype, copy=False)


def _npy_block(path: str, block_info: Any = None) -> np.ndarray:
    loc = block_info[None]["array-location"]
    arr = np.load(path, mmap_mode="r")
    return np.array(arr[tuple(slice(a, b) for a, b in loc)])


def read_cube(path: str, is_field: bool, chunks: Any) -> da.Array:
    """A cubic Field or ``.npy`` as a lazy dask array in ``chunks`` (each task reads its own
    block, so nothing large travels through the graph)."""
    if is_field:
        from bigpaint.field import open_field, zarr_array

        return da.from_zarr(zarr_array(open_field(path))).rechunk(chunks)
    arr = np.load(path, mmap_mode="r")
    from bigpaint.chunked.grid import BlockGrid

    grid = BlockGrid(tuple(arr.shape), chunks)
    return da.map_blocks(
        _npy_block, path=path, chunks=grid.chunks, dtype=arr.dtype, meta=np.array((), arr.dtype)
    )


def external_modes_array(
    ics: ExternalICs,
    *,
    power: LinearPower,
    fixed_amplitude: bool = False,
    paired: bool = False,
) -> np.ndarray:
    """In-memory :func:`initial_modes` (float64; the reference of the chunked path)."""
    import scipy.fft

    from bigpaint.mesh.kgrid import full_location, rfft_shape

    shape = cube_shape(ics.grid)
    if ics.kind == "particles":
        return particle_modes_array(ics)
    cube = np.asarray(read_cube(ics.path, ics.is_field, shape).compute(), dtype=np.float64)
    fk = scipy.fft.rfftn(cube)
    if ics.kind == "white_noise":
        return shape_modes(
            fk, full_location(rfft_shape(shape)), shape=shape, box_size=ics.box_size,
            power=power, fixed_amplitude=fixed_amplitude, paired=paired,
        )  # fmt: skip
    fk = fk / ics.growth
    fk[0, 0, 0] = 0
    return fk


# ---------------------------------------------------------------- resolving and refusing


def _field_cube(spec: InitialConditions, path: str) -> tuple[int, float | None, float | None, bool]:
    """Grid, box (None for .npy), recorded redshift and is_field of a cube input."""
    if path.lower().endswith(".npy"):
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise ShapeError(f"{path} is not a readable .npy array ({exc})") from None
        if arr.ndim != 3 or len(set(arr.shape)) != 1 or arr.dtype.kind != "f":
            raise ShapeError(
                f"{path} must hold a cubic (N, N, N) float array for {spec.kind}, got "
                f"shape {arr.shape} dtype {arr.dtype}"
            )
        return int(arr.shape[0]), None, None, False
    from bigpaint.field import open_field

    ds = open_field(path)
    attrs = ds.attrs
    kind = attrs.get("kind")
    var = ds[next(iter(ds.data_vars))]
    want = "white_noise" if spec.kind == "white_noise" else "delta"
    scheme = (attrs.get("mass_assignment") or {}).get("scheme")
    if kind != want or (spec.kind == "linear_density" and scheme is not None):
        what = f"kind {kind!r}" + (f" deposited with {scheme}" if scheme else "")
        raise MetadataError(
            f"{path} is a Field of {what}, not a {spec.kind.replace('_', ' ')} (kind "
            f"{want!r}{', no mass assignment' if want == 'delta' else ''}); give the "
            f"{spec.kind.replace('_', ' ')} Field of your ICs"
        )
    if var.ndim != 3 or len(set(var.shape)) != 1:
        raise ShapeError(f"{path} must be one cubic channel, got shape {tuple(var.shape)}")
    box = tuple(float(b) for b in np.atleast_1d(attrs["box_size"]))
    if len(set(box)) != 1:
        raise MetadataError(f"{path} has a non-cubic box {box}; initial conditions are cubic")
    return int(var.shape[0]), box[0], attrs.get("redshift"), True


def resolve_initial_conditions(
    spec: InitialConditions, *, grid: int, box_size: float, power: LinearPower
) -> ExternalICs:
    """Open, check and describe external ICs; every refusal is one line, nothing written.

    Raises
    ------
    MetadataError
        Box or grid other than the config's, a Field of the wrong kind, a redshift that
        disagrees with the file.
    ConfigError
        A growth normalisation or lattice that is needed and not stated.
    """
    path = os.path.abspath(os.path.expanduser(spec.path))
    if not os.path.exists(path) and spec.kind != "particles":
        raise FieldNotFoundError(f"no initial conditions at {path}; check initial_conditions.path")
    if spec.kind == "particles":
        return resolve_particles(spec, path, grid=grid, box_size=box_size, power=power)
    n, box, recorded, is_field = _field_cube(spec, path)
    same_grid(n, grid, path)
    same_box(box if box is not None else box_size, box_size, path)
    if spec.lattice is None and not is_field:
        raise ConfigError(
            f"{path} does not say where its samples sit: state initial_conditions.lattice "
            "(centres: (i + 1/2) L/N, bigpaint; corners: i L/N, N-GenIC, MUSIC, monofonIC)"
        )
    offset = LATTICES[spec.lattice or "centres"]
    if spec.kind == "white_noise":
        if spec.redshift is not None or spec.growth is not None:
            raise ConfigError(
                "a white noise has no redshift or growth; drop initial_conditions.redshift "
                "and .growth (the spectrum's own growth applies)"
            )
        z, growth, ratio = 0.0, 1.0, -3.0 / 7.0
    else:
        z = ic_redshift(spec, recorded, path)
        growth, ratio = growth_normalisation(spec, z, power, path)
    return ExternalICs(
        spec.kind, path, n, float(box_size), z, growth, ratio, offset, is_field, file_identity(path)
    )


# ---------------------------------------------------------------- the linear Field of ``ics``


def external_linear_field(
    output: str,
    initial: ExternalICs,
    *,
    power: LinearPower,
    redshift: float = 0.0,
    chunks: int | tuple[int, int, int] | None = None,
    fixed_amplitude: bool = False,
    paired: bool = False,
    precision: Precision = "single",
    backend: str = "slab",
    overwrite: bool = False,
    progress: bool = False,
) -> Any:
    """Write the linear contrast at ``redshift`` (``D1(z) delta(0)``) of external ICs.

    The Field has kind ``delta``, units ``1`` and no assignment window, like
    :func:`bigpaint.ics.grf.gaussian_field`; scratch (particles only) goes next to ``output``
    and is removed at the end or on a refusal.

    Returns
    -------
    FieldWriter
    """
    from bigpaint.chunked.grid import default_chunks
    from bigpaint.errors import BigpaintError
    from bigpaint.field import create_field, job_token
    from bigpaint.ics.grf import linear_meta, store_field
    from bigpaint.mesh.fft import irfftn
    from bigpaint.outputs import check_apart, owned_dir, remove_owned, writing

    shape = cube_shape(initial.grid)
    layout = default_chunks(chunks, shape)
    _, cplx = precision_dtypes(precision)
    d1 = float(power.background.D1(1.0 / (1.0 + redshift)))
    params = {
        "initial_conditions": initial.check(grid=shape[0], box_size=initial.box_size),
        "redshift": float(redshift),
        "fixed_amplitude": bool(fixed_amplitude),
        "paired": bool(paired),
        "precision": precision,
        "power_source": power.source,
        "D1": d1,
    }
    job = job_token(
        operation="external_linear",
        chunks=layout,
        cosmology=power.cosmology.model_dump(),
        k=float(power.k.sum()),
        p=float(power.p.sum()),
        **params,
    )
    absout = os.path.abspath(output)
    scratch = os.path.join(os.path.dirname(absout), f".{os.path.basename(absout)}.ics-{job[:12]}")
    check_apart(
        {"output": output, "scratch directory": scratch}, {"initial conditions": initial.path}
    )
    with writing({"output": output}):
        owned_dir(scratch, purpose="initial-condition scratch stores")
        try:
            fk = initial_modes(
                initial,
                power=power, precision=precision, backend=backend,
                fixed_amplitude=fixed_amplitude, paired=paired, scratch=scratch,
            )  # fmt: skip
        except BigpaintError:
            remove_owned(scratch)
            raise
        writer = create_field(
            output,
            shape=shape,
            chunks=layout,
            overwrite=overwrite,
            meta=linear_meta(initial.box_size, redshift, power, "external_linear", params),
            job=job,
        )
        lin = irfftn(fk * cplx.type(d1), shape, chunks=writer.block_chunks, backend=backend)
        store_field(lin, writer, progress=progress)
        remove_owned(scratch)
        return writer
