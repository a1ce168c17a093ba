"""LPT: the Zel'dovich solution of a plane wave, the 2LPT source, D2 growth, chunked == in memory."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.errors import ConfigError, FieldExistsError
from bigpaint.field import open_field
from bigpaint.ics.cosmology import background
from bigpaint.ics.grf import linear_modes_array
from bigpaint.ics.lpt import (
    lagrangian_block,
    lagrangian_grid,
    lpt_density,
    lpt_displacement_array,
    lpt_particles_array,
    second_order_source,
    second_order_source_array,
)
from bigpaint.mesh.assign import deposit
from bigpaint.mesh.fft import rfftn
from bigpaint.testing import chunk_layouts, regular_chunks

N, BOX = 32, 100.0
KF = 2 * np.pi / BOX


def _wave(m, amp=0.3, phase=0.4):
    q = lagrangian_grid(N, BOX)
    kvec = np.asarray(m, float) * KF
    arg = np.tensordot(kvec, q, axes=1) + phase
    return amp * np.cos(arg), kvec, arg


@pytest.mark.parametrize("m", [(3, 0, 0), (2, -3, 0), (1, 2, 5), (0, 0, 15)])
def test_zeldovich_of_a_plane_wave_is_analytic(m):
    delta, kvec, arg = _wave(m)
    psi = lpt_displacement_array(np.fft.rfftn(delta), delta.shape, BOX, d1=1.0, order=1)
    want = -0.3 * kvec[:, None, None, None] / (kvec @ kvec) * np.sin(arg)
    np.testing.assert_allclose(psi, want, atol=1e-12 * np.abs(want).max())
    # and its divergence is -delta (spectrally: i k . psi_k = -delta_k)
    kx = 2 * np.pi * np.fft.fftfreq(N, d=BOX / N)
    kz = 2 * np.pi * np.fft.rfftfreq(N, d=BOX / N)
    ks = (kx[:, None, None], kx[None, :, None], kz[None, None, :])
    div_k = sum(1j * ks[i] * np.fft.rfftn(psi[i]) for i in range(3))
    np.testing.assert_allclose(div_k, -np.fft.rfftn(delta), atol=1e-9)


@pytest.mark.parametrize("m", [(3, 0, 0), (2, -3, 0), (1, 2, 5)])
def test_second_order_source_vanishes_for_a_plane_wave(m):
    delta, _, _ = _wave(m)
    s2 = second_order_source_array(np.fft.rfftn(delta), delta.shape)
    assert np.abs(s2).max() < 1e-13
    fk = rfftn(da.from_array(delta, chunks=(5, 32, 9)))
    assert np.abs(second_order_source(fk, delta.shape).compute()).max() < 1e-13


def test_second_order_source_and_psi2_of_crossed_waves_are_analytic():
    q = lagrangian_grid(N, BOX)
    k1, k2 = 2 * KF, 3 * KF
    a, b = 0.2, 0.3
    delta = a * np.cos(k1 * q[0]) + b * np.cos(k2 * q[1])
    fk = np.fft.rfftn(delta)
    s2 = second_order_source_array(fk, delta.shape)
    # phi_xx = a cos(k1 x), phi_yy = b cos(k2 y), no mixed terms
    np.testing.assert_allclose(s2, a * b * np.cos(k1 * q[0]) * np.cos(k2 * q[1]), atol=1e-13)
    psi2 = lpt_displacement_array(fk, delta.shape, BOX, d1=0.0, d2=1.0, order=2)
    # psi2 = grad phi2, phi2 = c cos(k1 x) cos(k2 y), c = -ab / (k1^2 + k2^2); x = q + D2 psi2
    # (for a locally uniform overdensity the same rules give x = q (1 - D1 d/3 - D1^2 d^2/21),
    # the second-order term of spherical collapse)
    c = -a * b / (k1**2 + k2**2)
    want_x = -c * k1 * np.sin(k1 * q[0]) * np.cos(k2 * q[1])
    want_y = -c * k2 * np.cos(k1 * q[0]) * np.sin(k2 * q[1])
    np.testing.assert_allclose(psi2[0], want_x, atol=1e-13)
    np.testing.assert_allclose(psi2[1], want_y, atol=1e-13)
    np.testing.assert_allclose(psi2[2], 0.0, atol=1e-13)


@given(layout=chunk_layouts((N, N, N), max_parts=4))
@settings(max_examples=8)
def test_chunked_source_equals_in_memory(lp, layout):
    fk0 = linear_modes_array(N, BOX, seed=7, power=lp, tile=16)
    delta = np.fft.irfftn(fk0, s=(N, N, N), axes=(0, 1, 2))
    want = second_order_source_array(np.fft.rfftn(delta), delta.shape)
    fk = rfftn(da.from_array(delta, chunks=layout))
    got = second_order_source(fk, delta.shape).compute()
    np.testing.assert_allclose(got, want, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("omega_m", [1.0, 0.3])
def test_second_order_displacement_grows_as_D2(lp, omega_m):
    bg = background({"Omega_m": omega_m, "Omega_b": 0.04})
    fk = linear_modes_array(N, BOX, seed=3, power=lp, tile=16)
    psi2 = lpt_displacement_array(fk, (N,) * 3, BOX, d1=0.0, d2=1.0, order=2)
    for z in (0.0, 1.0, 9.0):
        a = 1 / (1 + z)
        d1, d2 = float(bg.D1(a)), float(bg.D2(a))
        full = lpt_displacement_array(fk, (N,) * 3, BOX, d1=d1, d2=d2, order=2)
        first = lpt_displacement_array(fk, (N,) * 3, BOX, d1=d1, order=1)
        second = full - first
        coef = float(np.sum(second * psi2) / np.sum(psi2 * psi2))  # fitted D2(z)
        np.testing.assert_allclose(second, coef * psi2, atol=1e-10 * np.abs(second).max())
        ratio = coef / d1**2
        if omega_m == 1.0:
            assert ratio == pytest.approx(-3 / 7, rel=1e-5)
        else:
            assert ratio == pytest.approx(-3 / 7 * float(bg.Omega_m_at(a)) ** (-1 / 143), rel=0.01)


def test_velocities_follow_the_growth_rate(lp):
    z = 2.0
    a = 1 / (1 + z)
    bg = lp.background
    pos, vel, ids = lpt_particles_array(N, BOX, seed=1, power=lp, redshift=z, order=1, tile=16)
    q = lagrangian_grid(N, BOX).reshape(3, -1).T
    psi = (pos - q + BOX / 2) % BOX - BOX / 2
    vfac = 100 * a * float(bg.E(a)) * float(bg.f1(a))
    np.testing.assert_allclose(vel, vfac * psi, atol=1e-9 * np.abs(vel).max())
    np.testing.assert_array_equal(ids, np.arange(N**3))
    assert pos.min() >= 0 and pos.max() < BOX


def _in_memory_density(lp, nmesh, order=2, redshift=0.0):
    pos, _, _ = lpt_particles_array(
        N, BOX, seed=9, power=lp, redshift=redshift, order=order, tile=16
    )
    grid = deposit(pos, nmesh, BOX, scheme="cic", dtype="float64")
    return grid / grid.mean() - 1


@given(chunks=regular_chunks((N, N, N), min_size=6), block=st.sampled_from([8, 16, 32]))
@settings(max_examples=3)
def test_chunked_lpt_density_equals_in_memory(tmp_path_factory, lp, chunks, block):
    tmp = tmp_path_factory.mktemp("lpt")
    res = lpt_density(
        str(tmp / "d.zarr"), grid=N, box_size=BOX, seed=9, power=lp, tile=16, chunks=chunks,
        block=block, particles=str(tmp / "p.zarr"), velocities=True,
    )  # fmt: skip
    got = open_field(res.density.url)["delta"].values
    want = _in_memory_density(lp, N)
    np.testing.assert_allclose(got, want, atol=2e-4 * np.abs(want).max())
    assert abs(float(got.mean(dtype=np.float64))) < 1e-5
    g = zarr.open_group(res.particles, mode="r")
    ids = g["ids"][:]
    assert np.array_equal(np.sort(ids), np.arange(N**3))
    assert res.lagrangian_block == lagrangian_block(N, block)
    pos_ref, vel_ref, _ = lpt_particles_array(N, BOX, seed=9, power=lp, redshift=0.0, tile=16)
    d = (g["positions"][:] - pos_ref[ids] + BOX / 2) % BOX - BOX / 2
    assert np.abs(d).max() < 1e-4
    np.testing.assert_allclose(g["velocities"][:], vel_ref[ids], atol=1e-3 * np.abs(vel_ref).max())
    attrs = open_field(res.density.url).attrs
    assert attrs["redshift"] == 0.0 and attrs["provenance"]["operation"] == "lpt"
    assert attrs["cosmology"]["Omega_m"] == lp.cosmology.Omega_m


def test_lpt_pipeline_options_and_resume(tmp_path, lp):
    kw = {"grid": N, "box_size": BOX, "seed": 9, "power": lp, "tile": 16, "chunks": 16}
    res = lpt_density(
        str(tmp_path / "z.zarr"), order=1, nmesh=16, redshift=1.0,
        linear_output=str(tmp_path / "lin.zarr"), **kw,
    )  # fmt: skip
    got = open_field(res.density.url)["delta"].values
    np.testing.assert_allclose(got, _in_memory_density(lp, 16, order=1, redshift=1.0), atol=2e-5)
    lin = open_field(res.linear.url)["delta"].values  # type: ignore[union-attr]
    d1 = float(lp.background.growth_factor(1.0))
    want = d1 * np.fft.irfftn(
        linear_modes_array(N, BOX, seed=9, power=lp, tile=16), s=(N,) * 3, axes=(0, 1, 2)
    )
    np.testing.assert_allclose(lin, want, atol=1e-5 * np.abs(want).max())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lin.zarr", "z.zarr"]  # no scratch left
    # the same call on a finished output returns at once; another job is refused
    again = lpt_density(str(tmp_path / "z.zarr"), order=1, nmesh=16, redshift=1.0, **kw)
    assert again.density.url == res.density.url
    with pytest.raises(FieldExistsError):
        lpt_density(str(tmp_path / "z.zarr"), order=2, nmesh=16, redshift=1.0, **kw)


def test_lpt_bad_inputs(tmp_path, lp):
    url = str(tmp_path / "x.zarr")
    with pytest.raises(ConfigError, match="not divisible by the noise tile"):
        lpt_density(url, grid=40, box_size=BOX, seed=0, power=lp, tile=16)
    with pytest.raises(ConfigError, match="order"):
        lpt_density(url, grid=N, box_size=BOX, seed=0, power=lp, tile=16, order=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="redshift"):
        lpt_density(url, grid=N, box_size=BOX, seed=0, power=lp, tile=16, redshift=-1)
    for seed in (None, -1):  # no seed and no initial conditions; a negative seed
        with pytest.raises(ConfigError, match=f"seed must be a non-negative integer, got {seed}"):
            lpt_density(url, grid=N, box_size=BOX, seed=seed, power=lp, tile=16)
    assert not (tmp_path / "x.zarr").exists()
