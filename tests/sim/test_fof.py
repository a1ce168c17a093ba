"""Friends-of-friends equals brute force; the catalogue's centres wrap; Parquet round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.errors import ConfigError, MetadataError, ShapeError
from bigpaint.sim.fof import (
    fof_groups,
    halo_catalogue,
    measured_mass_function,
    particle_mass,
    read_catalogue,
    write_catalogue,
)
from bigpaint.testing import assert_equivalent_labels

BOX = 10.0


def _brute_force_groups(pos, box, ll):
    n = len(pos)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    d = pos[:, None, :] - pos[None, :, :]
    d -= box * np.round(d / box)
    close = (d**2).sum(-1) < ll**2
    for i, j in zip(*np.nonzero(np.triu(close, 1)), strict=True):
        parent[find(i)] = find(j)
    return np.array([find(i) for i in range(n)])


def _clumpy(rng, n_clumps=6, per=40, background=150):
    centres = rng.uniform(0, BOX, (n_clumps, 3))
    centres[0] = [0.05, 9.95, 0.02]  # a clump across the periodic corner
    pts = [np.mod(c + rng.normal(0, 0.15, (per, 3)), BOX) for c in centres]
    pts.append(rng.uniform(0, BOX, (background, 3)))
    return np.concatenate(pts)


@given(seed=st.integers(0, 10_000), ll=st.floats(0.05, 0.6))
@settings(max_examples=15)
def test_groups_equal_brute_force(seed, ll):
    pos = _clumpy(np.random.default_rng(seed))
    got = fof_groups(pos, BOX, ll)
    want = _brute_force_groups(pos, BOX, ll)
    assert_equivalent_labels(got + 1, want + 1)


def test_catalogue_of_known_halos():
    rng = np.random.default_rng(0)
    a = np.mod(np.array([0.0, 5.0, 9.9]) + rng.normal(0, 0.02, (30, 3)), BOX)  # wraps in x and z
    b = np.array([3.0, 3.0, 3.0]) + rng.normal(0, 0.02, (50, 3))
    c = np.array([7.0, 2.0, 5.0]) + rng.normal(0, 0.02, (5, 3))  # below min_members
    far = np.array([[1.5, 8.0, 1.5], [8.5, 8.5, 8.5]])
    pos = np.concatenate([a, b, c, far])
    vel = np.zeros_like(pos)
    vel[:30] = [100.0, 0, -50]
    vel[30:80] = rng.normal(0, 10, (50, 3))
    ids = np.arange(len(pos)) * 7 + 1000
    cat = halo_catalogue(
        pos, vel, ids, box_size=BOX, particle_mass=2.0, b=0.2, min_members=10,
        groups=fof_groups(pos, BOX, 0.2),
    )  # fmt: skip
    assert cat.num_rows == 2
    assert cat["n_particles"].to_pylist() == [50, 30]  # sorted by mass
    assert cat["id"].to_pylist() == [0, 1]
    np.testing.assert_allclose(cat["mass"].to_numpy(), [100.0, 60.0])
    assert cat["members"][0].as_py() == sorted(ids[30:80].tolist())
    assert cat["members"][1].as_py() == sorted(ids[:30].tolist())
    # centre of mass with the periodic wrap: near (0, 5, 9.9), not the box middle
    d = lambda x, y: (x - y + BOX / 2) % BOX - BOX / 2  # noqa: E731
    com = np.array([cat[c][1].as_py() for c in ("x", "y", "z")])
    true = np.array([0.0, 5.0, 9.9]) + d(a, np.array([0.0, 5.0, 9.9])).mean(axis=0)
    np.testing.assert_allclose(d(com, true), 0.0, atol=1e-12)
    assert np.all((com >= 0) & (com < BOX))
    np.testing.assert_allclose([cat[c][1].as_py() for c in ("vx", "vy", "vz")], [100, 0, -50])
    np.testing.assert_allclose(
        [cat[c][0].as_py() for c in ("vx", "vy", "vz")], vel[30:80].mean(axis=0)
    )


def test_default_linking_length_is_b_times_mean_separation():
    n = 8
    q = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5
    pos = q * (BOX / n)
    # on a perfect lattice nothing is linked at b = 0.2, everything at b = 1.01
    assert halo_catalogue(pos, None, None, box_size=BOX, particle_mass=1.0).num_rows == 0
    cat = halo_catalogue(pos, None, None, box_size=BOX, particle_mass=1.0, b=1.01)
    assert cat["n_particles"].to_pylist() == [n**3]


def test_parquet_round_trip(tmp_path):
    pos = _clumpy(np.random.default_rng(3))
    cat = halo_catalogue(pos, None, None, box_size=BOX, particle_mass=5e11, b=0.3, min_members=5)
    meta = {"box_size": BOX, "particle_mass": 5e11, "redshift": 0.0}
    write_catalogue(cat, tmp_path / "h.parquet", meta)
    got, m = read_catalogue(tmp_path / "h.parquet")
    assert got.equals(cat.replace_schema_metadata(got.schema.metadata))
    assert m["box_size"] == BOX and m["units"]["mass"] == "Msun/h"
    with pytest.raises(MetadataError, match="particle_mass"):
        write_catalogue(cat, tmp_path / "x.parquet", {"box_size": BOX})
    with pytest.raises(ConfigError, match="no halo catalogue"):
        read_catalogue(tmp_path / "missing.parquet")


def test_bad_inputs_and_units():
    with pytest.raises(ShapeError, match="outside the box"):
        fof_groups(np.array([[11.0, 0, 0]]), BOX, 0.1)
    with pytest.raises(ConfigError, match="linking length"):
        fof_groups(np.zeros((2, 3)), BOX, 6.0)
    # Omega_m rho_crit L^3 / N: 0.3 * 2.775e11 * 1e6 / 1e6 (Msun/h)
    assert particle_mass(0.3, 100.0, 100**3) == pytest.approx(0.3 * 2.77536627e11, rel=1e-8)
    _, dn, c = measured_mass_function(np.array([1.5, 1.5, 3.0]), 2.0, np.array([1.0, 2.0, 4.0]))
    np.testing.assert_allclose(c, [2, 1])
    np.testing.assert_allclose(dn, [2 / (8 * np.log(2)), 1 / (8 * np.log(2))])
