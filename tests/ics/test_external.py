"""External initial conditions: bigpaint's own ICs, exported as a user would hand them over
(white noise, linear density, a Gadget IC file), give back its own 2LPT twin."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.errors import ConfigError, MetadataError
from bigpaint.field import open_field
from bigpaint.ics.external import (
    InitialConditions,
    external_linear_field,
    external_modes_array,
    initial_modes,
    resolve_initial_conditions,
)
from bigpaint.ics.grf import gaussian_field, gaussian_field_array, linear_modes_array
from bigpaint.ics.lattice import particle_modes, particle_modes_array
from bigpaint.ics.lpt import lpt_density, lpt_particles_array
from bigpaint.ics.lpt_fourier import gradient_multiplier
from bigpaint.ics.noise import white_noise, white_noise_array
from bigpaint.mesh.kgrid import full_location, rfft_shape
from bigpaint.testing import regular_chunks

N, BOX, SEED, TILE, Z_IC = 16, 64.0, 3, 8, 20.0
KW = {"grid": N, "box_size": BOX, "chunks": 8, "block": 8}


@pytest.fixture(scope="module")
def own(lp, tmp_path_factory):
    """bigpaint's own seeded 2LPT twin (the reference every route must give back)."""
    tmp = tmp_path_factory.mktemp("own")
    res = lpt_density(str(tmp / "d.zarr"), seed=SEED, tile=TILE, power=lp, **KW)
    return open_field(res.density.url)["delta"].values


def _ics(lp, **spec):
    return resolve_initial_conditions(InitialConditions(**spec), grid=N, box_size=BOX, power=lp)


def write_gadget_ics(path, pos, box, redshift, kpc=True):
    """A single-file Gadget HDF5 IC file of dark-matter particles (positions in kpc/h)."""
    scale = 1000.0 if kpc else 1.0
    with h5py.File(path, "w") as f:
        h = f.create_group("Header")
        counts = [0, len(pos), 0, 0, 0, 0]
        h.attrs.update(
            BoxSize=box * scale, Redshift=redshift, Time=1 / (1 + redshift),
            NumPart_ThisFile=counts, NumPart_Total=counts, NumPart_Total_HighWord=[0] * 6,
            MassTable=[0, 1.0, 0, 0, 0, 0], NumFilesPerSnapshot=1,
        )  # fmt: skip
        f.create_group("PartType1")["Coordinates"] = (pos * scale).astype("f4")
        f["PartType1"]["ParticleIDs"] = np.arange(len(pos), dtype=np.uint32) + 1


@given(layout=regular_chunks((N, N, N), min_size=3))
@settings(max_examples=3, deadline=None)
def test_exported_white_noise_field_gives_the_same_twin(tmp_path_factory, lp, own, layout):
    tmp = tmp_path_factory.mktemp("wn")
    white_noise(str(tmp / "w.zarr"), grid=N, box_size=BOX, seed=SEED, tile=TILE, chunks=layout)
    ics = _ics(lp, kind="white_noise", path=str(tmp / "w.zarr"))
    assert ics.lattice_offset == 0.5  # a Field's samples sit at cell centres
    res = lpt_density(str(tmp / "d.zarr"), power=lp, initial=ics, **KW)
    np.testing.assert_array_equal(open_field(res.density.url)["delta"].values, own)


@given(layout=regular_chunks((N, N, N), min_size=3), stated=st.sampled_from(["engine", "number"]))
@settings(max_examples=3, deadline=None)
def test_exported_linear_field_at_the_start_gives_the_same_twin(
    tmp_path_factory, lp, own, layout, stated
):
    tmp = tmp_path_factory.mktemp("lin")
    url = str(tmp / "lin.zarr")
    gaussian_field(url, grid=N, box_size=BOX, seed=SEED, power=lp, tile=TILE, redshift=Z_IC,
                   chunks=layout, precision="double")  # fmt: skip
    d = float(lp.background.D1(1 / (1 + Z_IC)))
    ics = _ics(lp, kind="linear_density", path=url, growth="engine" if stated == "engine" else d)
    assert ics.redshift == Z_IC and ics.growth == pytest.approx(d, rel=1e-12)
    res = lpt_density(str(tmp / "d.zarr"), power=lp, initial=ics, **KW)
    got = open_field(res.density.url)["delta"].values
    np.testing.assert_allclose(got, own, atol=2e-5 * np.abs(own).max())


def test_chunked_external_modes_equal_in_memory(tmp_path, lp):
    noise = white_noise_array((N,) * 3, (slice(0, N),) * 3, seed=SEED, tile=TILE, dtype="f8")
    np.save(tmp_path / "w.npy", noise)
    lin = gaussian_field_array(N, BOX, seed=SEED, power=lp, tile=TILE)
    np.save(tmp_path / "l.npy", lin)
    want = linear_modes_array(N, BOX, seed=SEED, power=lp, tile=TILE)
    for spec in (
        {"kind": "white_noise", "path": str(tmp_path / "w.npy"), "lattice": "centres"},
        {"kind": "linear_density", "path": str(tmp_path / "l.npy"), "lattice": "corners",
         "redshift": 0.0},
    ):  # fmt: skip
        ics = _ics(lp, **spec)
        whole = external_modes_array(ics, power=lp)
        np.testing.assert_allclose(whole, want, atol=1e-9 * np.abs(want).max())
        chunked = initial_modes(ics, power=lp, precision="double").compute()
        np.testing.assert_allclose(chunked, whole, atol=1e-9 * np.abs(want).max())
    assert _ics(lp, **spec).lattice_offset == 0.0


@pytest.mark.parametrize("lattice", ["centres", "corners"])
def test_gadget_ic_file_gives_a_close_twin(tmp_path, lp, own, lattice):
    pos, _, _ = lpt_particles_array(N, BOX, seed=SEED, power=lp, redshift=Z_IC, tile=TILE)
    if lattice == "corners":  # the same ICs on the lattice of N-GenIC and monofonIC
        pos = np.mod(pos - BOX / N / 2, BOX)
    write_gadget_ics(tmp_path / "ics.hdf5", pos, BOX, Z_IC)
    ics = _ics(lp, kind="particles", path=str(tmp_path / "ics.hdf5"), growth="engine")
    assert ics.redshift == Z_IC and ics.lattice_offset == (0.5 if lattice == "centres" else 0.0)
    # the recovered linear field, chunked and in memory, is the seed's (up to the 8 modes
    # that only Nyquist planes carry, which no displacement holds)
    want = linear_modes_array(N, BOX, seed=SEED, power=lp, tile=TILE)
    whole = particle_modes_array(ics)
    chunked = particle_modes(ics, precision="double", backend="slab", scratch=str(tmp_path / "s"))
    np.testing.assert_allclose(chunked.compute(), whole, atol=1e-6 * np.abs(want).max())
    loc = full_location(rfft_shape((N,) * 3))
    keep = sum(gradient_multiplier((N,) * 3, loc, ax, BOX) ** 2 for ax in range(3)) > 0
    rms = np.sqrt(np.mean(np.abs(whole - want)[keep] ** 2) / np.mean(np.abs(want[keep]) ** 2))
    assert rms < 2e-3
    res = lpt_density(str(tmp_path / "d.zarr"), power=lp, initial=ics,
                      particles=str(tmp_path / "p.zarr"), **KW)  # fmt: skip
    got = open_field(res.density.url)["delta"].values
    if lattice == "centres":
        r = np.corrcoef(got.ravel(), own.ravel())[0, 1]
        assert r > 0.9999, r  # measured: 0.99999+ at 16^3 and 32^3
        assert np.abs(got - own).max() < 0.02 * np.abs(own).max()
    import zarr

    g = zarr.open_group(res.particles, mode="r")
    assert g.attrs["lattice_offset"] == ics.lattice_offset


def test_ics_from_particles_writes_the_linear_field(tmp_path, lp):
    pos, _, _ = lpt_particles_array(N, BOX, seed=SEED, power=lp, redshift=Z_IC, tile=TILE)
    np.save(tmp_path / "pos.npy", pos.astype("f4"))
    ics = _ics(lp, kind="particles", path=str(tmp_path / "pos.npy"), redshift=Z_IC, growth="engine")
    w = external_linear_field(str(tmp_path / "lin.zarr"), ics, power=lp, redshift=1.0, chunks=8)
    got = open_field(w.url)["delta"].values
    want = gaussian_field_array(N, BOX, seed=SEED, power=lp, tile=TILE, redshift=1.0)
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.9995  # measured 0.99984 at 16^3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lin.zarr", "pos.npy"]


def test_refusals(tmp_path, lp):
    np.save(tmp_path / "l.npy", np.zeros((N,) * 3))
    np.save(tmp_path / "small.npy", np.zeros((8,) * 3))
    with pytest.raises(ConfigError, match="state the growth normalisation"):
        _ics(lp, kind="linear_density", path=str(tmp_path / "l.npy"), lattice="centres",
             redshift=5.0)  # fmt: skip
    with pytest.raises(ConfigError, match=r"initial_conditions\.lattice"):
        _ics(lp, kind="linear_density", path=str(tmp_path / "l.npy"), redshift=0.0)
    with pytest.raises(MetadataError, match="8\\^3 grid but the config's grid is 16"):
        _ics(lp, kind="white_noise", path=str(tmp_path / "small.npy"), lattice="centres")
    white_noise(str(tmp_path / "w.zarr"), grid=N, box_size=32.0, seed=1, tile=TILE, chunks=8)
    with pytest.raises(MetadataError, match="box 32 Mpc/h but the config's box_size is 64"):
        _ics(lp, kind="white_noise", path=str(tmp_path / "w.zarr"))
    with pytest.raises(MetadataError, match="kind 'white_noise', not a linear density"):
        _ics(lp, kind="linear_density", path=str(tmp_path / "w.zarr"))
    rng = np.random.default_rng(0)  # an evolved box: no lattice left
    np.save(tmp_path / "glass.npy", rng.uniform(0, BOX, (N**3, 3)))
    with pytest.raises(MetadataError, match="not on a 16\\^3 lattice"):
        _ics(lp, kind="particles", path=str(tmp_path / "glass.npy"), redshift=0.0)
    np.save(tmp_path / "few.npy", rng.uniform(0, BOX, (100, 3)))
    with pytest.raises(MetadataError, match="hold 100 particles, not grid"):
        _ics(lp, kind="particles", path=str(tmp_path / "few.npy"), redshift=0.0)
