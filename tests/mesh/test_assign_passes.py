"""The deposit in passes of slabs (bigpaint.mesh.assign_planes): the same bits whatever the
pass size (so the number of passes), the scratch size (so the copies per slab) and the
thread count, and equal to the numpy reference; and so is a small grid's deposit in two
halves (bigpaint.mesh.assign_halves), whose bits differ from the passes' only by rounding.

Positions on a 1/16-cell lattice with integer masses make every NGP/CIC/TSC weight product
and every partial sum exact in float64, so there the deposit must equal the reference bit
for bit. Random positions must give the same bits with one pass per slab and with one pass
for all, a scratch of one block and one of every particle, on one and two threads; the
halves must give their own same bits on one and two threads. Every layout holds particles whose first plane is the first
or last plane of a slab (so their supports cross slab and pass edges) and on the last plane
of the grid (so they spill over the periodic wrap into plane 0).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.mesh import assign_halves, assign_planes
from bigpaint.mesh.assign import deposit, scheme_order
from tests.mesh.test_assign import reference_deposit

#: Module settings of each way through the deposit: passes (the grid kept out of the
#: small-grid halves) of one slab each, copied one block at a time, or one pass copied at
#: once; or the two halves of a small grid.
SCRATCH = {
    "one slab a pass, one block a copy": {
        "PASS_BYTES": 1, "PASS_FRACTION": 2**40, "SCRATCH_BYTES": 1, "HALVES_BYTES": 0
    },
    "one pass, one copy": {
        "PASS_BYTES": 2**40, "PASS_FRACTION": 1, "SCRATCH_BYTES": 2**40, "HALVES_BYTES": 0
    },
    "two halves": {"HALVES_BYTES": 2**40},
}  # fmt: skip
PASSES = [name for name in SCRATCH if name != "two halves"]


def _deposit(pos, shape, box, scheme, mass, scratch, threads, dtype="f8", **kwargs):
    before = numba.get_num_threads()
    settings_ = SCRATCH[scratch]
    modules = {
        name: assign_halves if name == "HALVES_BYTES" else assign_planes for name in settings_
    }
    kept = {name: getattr(modules[name], name) for name in settings_}
    for name, value in settings_.items():
        setattr(modules[name], name, value)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        return deposit(pos, shape, box, scheme=scheme, weights=mass, dtype=dtype, **kwargs)
    finally:
        numba.set_num_threads(before)
        for name, value in kept.items():
            setattr(modules[name], name, value)


def _edge_cells(shape, p) -> np.ndarray:
    """x in cells whose first plane is a slab's first or last plane, or the grid's last."""
    nx = shape[0]
    w = assign_planes.slab_width(shape, p)
    firsts = [k * w for k in range(max(1, nx // w))] + [nx - 1]
    lasts = [min(nx, (k + 1) * w) - 1 for k in range(max(1, nx // w))]
    # the first plane of a support is floor(u - 0.5) (p even) or floor(u) - (p - 1) // 2
    off = 0.5 if p % 2 == 0 else 0.0
    u = np.array([j + (p - 1) // 2 + off for j in firsts + lasts], np.float64)
    return np.concatenate([u, u + 0.25, u + 0.9375]) % nx


def _layout(rng, shape, box, p, n, lattice):
    cells = np.asarray(shape, np.float64)
    if lattice:
        u = rng.integers(0, np.asarray(shape) * 16, (n, 3)) / 16.0
    else:
        u = rng.uniform(0, 1, (n, 3)) * cells
    edge = _edge_cells(shape, p)
    u[: len(edge), 0] = edge[:n]
    return u * (np.asarray(box) / cells)


@settings(max_examples=25, deadline=None)
@given(
    nx=st.integers(9, 70),
    nyz=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    scheme=st.sampled_from(["ngp", "cic", "tsc"]),  # PCS weights hold 1/6: not exact
    n=st.integers(1, 700),
    weighted=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_lattice_deposit_equals_reference_in_any_passes_and_threads(
    nx, nyz, scheme, n, weighted, seed
):
    shape = (nx, *nyz)
    box = (float(nx), 2.0 * nyz[0], 0.5 * nyz[1])
    rng = np.random.default_rng(seed)
    p = scheme_order(scheme)
    pos = _layout(rng, shape, box, p, n, lattice=True)
    mass = rng.integers(1, 5, n).astype(np.float64) if weighted else None
    want = reference_deposit(pos, shape, box, p, weights=mass)
    for scratch in SCRATCH:
        for threads in (1, 2):
            got = _deposit(pos, shape, box, scheme, mass, scratch, threads)
            assert np.array_equal(got, want), (scratch, threads)


@settings(max_examples=15, deadline=None)
@given(
    nx=st.integers(9, 70),
    ny=st.integers(1, 6),
    scheme=st.sampled_from(["cic", "tsc", "pcs"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_positions_same_bits_in_any_passes_and_threads(nx, ny, scheme, seed):
    shape = (nx, ny, 5)
    box = (100.0, 7.0, 3.0)
    rng = np.random.default_rng(seed)
    p = scheme_order(scheme)
    pos = _layout(rng, shape, box, p, 3000, lattice=False).astype(np.float32)
    mass = rng.uniform(0.5, 2.0, len(pos))
    want = reference_deposit(pos, shape, box, p, weights=mass)
    for ways in (PASSES, ["two halves"]):  # each the same bits; the two differ in rounding
        grids = [
            _deposit(pos, shape, box, scheme, mass, scratch, threads, dtype="f4")
            for scratch in ways
            for threads in (1, 2)
        ]
        for g in grids[1:]:
            assert np.array_equal(g, grids[0])
        np.testing.assert_allclose(grids[0], want, rtol=2e-7, atol=1e-6)


@pytest.mark.parametrize(
    ("shape", "p", "slabs"),
    [((256, 256, 256), 2, 32), ((512, 512, 512), 2, 64), ((64, 64, 64), 4, 8), ((9, 4, 4), 4, 2)],
)
def test_slab_width_is_a_power_of_two_within_the_byte_limits(shape, p, slabs):
    w = assign_planes.slab_width(shape, p)
    assert w == shape[0] or w & (w - 1) == 0
    assert w >= p - 1 and shape[0] // w == slabs


@settings(max_examples=25, deadline=None)
@given(
    nx=st.integers(1, 40),
    n=st.integers(1, 3000),
    kind=st.sampled_from(["nan", "inf", "outside", "mass"]),
    nbad=st.integers(1, 5),
    threads=st.sampled_from([1, 2]),
    cubic=st.booleans(),
    way=st.sampled_from(list(SCRATCH)),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_first_pass_refuses_bad_particles_before_writing(
    nx, n, kind, nbad, threads, cubic, way, seed
):
    """The particle check runs inside the sort over the positions (one read, not two): it
    must name the same count and first particle as a separate scan, and leave ``out`` as it
    was, on a grid of one slab or many, in a cubic box (checked as one run of coordinates)
    or not; and so must the halves' check, a separate scan."""
    from bigpaint.errors import NonFiniteError, ParticleBoundsError
    from bigpaint.mesh.assign import scan_particles

    shape = (nx, 3, 4)
    box = (float(nx),) * 3 if cubic else (float(nx), 3.0, 4.0)
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 1, (n, 3)) * np.asarray(box)
    mass = np.ones(n) if kind == "mass" else None
    bad = rng.choice(n, size=min(nbad, n), replace=False)
    if kind == "mass":
        mass[bad] = np.nan
    else:
        pos[bad, rng.integers(0, 3, len(bad))] = {"nan": np.nan, "inf": -np.inf, "outside": -1.0}[
            kind
        ]
    want = scan_particles(pos, box, weights=mass)
    out = rng.uniform(0, 1, shape).astype(np.float32)
    kept = out.copy()
    error = ParticleBoundsError if kind == "outside" else NonFiniteError
    first = want.first_outside if kind == "outside" else want.first_nonfinite
    with pytest.raises(error, match=rf"^{len(bad)} of {n} particles .* particle {first[0]} at"):
        _deposit(pos, shape, box, "cic", mass, way, threads, dtype="f4", out=out)
    assert np.array_equal(out, kept)


@settings(max_examples=20, deadline=None)
@given(
    nx=st.integers(9, 70),
    scheme=st.sampled_from(["ngp", "cic", "tsc", "pcs"]),
    shift=st.sampled_from([0.0, 0.5]),
    nout=st.integers(0, 40),
    cubic=st.booleans(),
    dtype=st.sampled_from(["f4", "f8"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_wrapped_and_shifted_positions_same_bits_and_equal_reference(
    nx, scheme, shift, nout, cubic, dtype, seed
):
    """Positions outside the box (``wrap=True``), on its far faces and shifted by half a
    cell: the sort and the CIC kernel take such particles' batches particle by particle
    (the others in vector loops), and must still give the same bits in any passes and
    threads, and the reference's grid."""
    shape = (nx, 6, 5)
    box = (50.0,) * 3 if cubic else (50.0, 7.0, 3.0)
    rng = np.random.default_rng(seed)
    p = scheme_order(scheme)
    pos = _layout(rng, shape, box, p, 3000, lattice=False).astype(dtype)
    out = rng.choice(len(pos), size=nout, replace=False)
    pos[out] += (rng.integers(-2, 3, (nout, 3)) * np.asarray(box)).astype(dtype)
    pos[-10:, rng.integers(0, 3)] = box[0] if cubic else box[2]
    mass = rng.uniform(0.5, 2.0, len(pos))
    want = reference_deposit(pos, shape, box, p, weights=mass, shift=shift)
    for ways in (PASSES, ["two halves"]):
        grids = [
            _deposit(pos, shape, box, scheme, mass, scratch, threads, wrap=True, shift=shift)
            for scratch in ways
            for threads in (1, 2)
        ]
        for g in grids[1:]:
            assert np.array_equal(g, grids[0])
        np.testing.assert_allclose(grids[0], want, rtol=1e-9, atol=1e-9)
