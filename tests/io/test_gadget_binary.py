"""Gadget-2/3 binary snapshots written by the test: formats 1 and 2, both byte orders, file
sets, units, and the one-line refusals of damaged files."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.errors import MetadataError
from bigpaint.io.gadget_binary import GadgetBinarySnapshot, binary_files
from bigpaint.io.open import open_particles
from tests.io.snapshot_writers import GAS_PER_FILE, write_gadget_binary

N = 500
BOX = 50.0


@pytest.fixture
def particles(rng):
    pos = rng.uniform(0, BOX, (N, 3))
    vel = rng.normal(0, 300.0, (N, 3))
    ids = rng.permutation(N).astype(np.int64) + 7
    return pos, vel, ids


def _read_all(src):
    parts = [(src.load(b), src.extra(b, "velocities"), src.extra(b, "ids")) for b in src.batches()]
    pos = np.concatenate([p[0][0] for p in parts])
    mass = None if parts[0][0][1] is None else np.concatenate([p[0][1] for p in parts])
    vel = np.concatenate([p[1] for p in parts])
    ids = np.concatenate([p[2] for p in parts])
    return pos, mass, vel, ids


@pytest.mark.parametrize(
    ("fmt", "endian", "nfiles", "dtype"),
    [(1, "<", 1, "f4"), (2, ">", 2, "f8"), (1, ">", 2, "f4"), (2, "<", 3, "f4")],
)
def test_round_trip(tmp_path, particles, fmt, endian, nfiles, dtype):
    pos, vel, ids = particles
    masses = None if dtype == "f4" else np.linspace(0.1, 0.2, N)
    stem = tmp_path / "snap_005"
    write_gadget_binary(
        stem, pos, vel, ids, box=BOX, redshift=0.5, particle_mass=0.3 if masses is None else None,
        masses=masses, nfiles=nfiles, fmt=fmt, endian=endian, dtype=dtype,
        id_dtype="u8" if dtype == "f8" else "u4",
    )  # fmt: skip
    # the set opens from any of its files, its stem or its directory
    names = [stem] if nfiles == 1 else [stem, stem.with_name("snap_005.1"), tmp_path]
    for name in names:
        src = open_particles(str(name), length_unit="Mpc/h", batch_size=97)
        assert isinstance(src, GadgetBinarySnapshot)
        assert len(src.files) == nfiles and src.n_particles == N
    got_pos, got_mass, got_vel, got_ids = _read_all(src)
    rtol = 1e-6 if dtype == "f4" else 1e-14
    np.testing.assert_allclose(got_pos, pos, rtol=rtol)
    # Gadget stores sqrt(a) dx/dt; the reader gives peculiar km/s back
    np.testing.assert_allclose(got_vel, vel, rtol=rtol * 10, atol=1e-4)
    np.testing.assert_array_equal(got_ids, ids)
    if masses is None:
        assert got_mass is None and src.particle_mass == pytest.approx(0.3)
    else:
        np.testing.assert_allclose(got_mass, masses, rtol=1e-14)
    assert src.box_size == (BOX,) * 3 and src.redshift == pytest.approx(0.5)
    prov = src.provenance()
    assert prov["header"]["SnapFormat"] == fmt
    assert prov["header"]["ByteOrder"] == ("big" if endian == ">" else "little")
    assert prov["cosmology"] == {"Omega_m": 0.3175, "Omega_Lambda": 0.6825, "h": 0.6711}
    assert prov["cosmology_missing"] == ["Omega_b", "n_s", "sigma_8"]


def test_gadget_length_unit_is_kpc_by_default(tmp_path, particles):
    pos, vel, ids = particles
    write_gadget_binary(tmp_path / "s", pos * 1000.0, vel, ids, box=BOX * 1000.0, redshift=0.0,
                        particle_mass=0.3, dtype="f8")  # fmt: skip
    src = open_particles(str(tmp_path / "s"))
    assert src.box_size == pytest.approx((BOX,) * 3)
    np.testing.assert_allclose(_read_all(src)[0], pos, rtol=1e-12)
    with pytest.raises(MetadataError, match="box size 60 Mpc/h was given but"):
        open_particles(str(tmp_path / "s"), box_size=60.0)


def _bad(tmp_path, particles, **kw):
    pos, vel, ids = particles
    return write_gadget_binary(tmp_path / "bad", pos, vel, ids, box=BOX, redshift=0.0,
                               particle_mass=0.3, **kw)  # fmt: skip


def test_truncated_files_are_refused_naming_the_block(tmp_path, particles):
    (path,) = _bad(tmp_path, particles)
    data = path.read_bytes()
    header_end = 264
    pos_end = header_end + 8 + 3 * 4 * (N + GAS_PER_FILE)
    for cut, block in ((header_end + 100, "POS"), (pos_end + 8, "VEL"), (pos_end, "VEL"),
                       (200, "HEAD"), (len(data) - 3, "MASS")):  # fmt: skip
        path.write_bytes(data[:cut])
        with pytest.raises(
            MetadataError,
            match=rf"{re.escape(str(path))} is truncated: it ends inside block '{block}'",
        ):
            open_particles(str(path), length_unit="Mpc/h")


def test_garbage_and_wrong_endian_headers_are_refused(tmp_path, particles):
    (path,) = _bad(tmp_path, particles)
    data = bytearray(path.read_bytes())
    path.write_bytes(b"\x01\x02\x03\x04" + bytes(data[4:]))
    with pytest.raises(MetadataError, match="wrong-endian or not a Gadget binary header"):
        open_particles(str(path))
    # a little-endian opening marker closed by a big-endian one
    data[260:264] = np.array([256], ">i4").tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(MetadataError, match=r"closing record marker.*wrong-endian"):
        open_particles(str(path))
    # markers right, header nonsense: a byte-swapped (subnormal) or a negative BoxSize
    data[260:264] = np.array([256], "<i4").tobytes()
    for box in (np.array([BOX], ">f8"), np.array([-BOX], "<f8")):
        data[4 + 128 : 4 + 136] = box.tobytes()
        path.write_bytes(bytes(data))
        with pytest.raises(MetadataError, match=r"BoxSize = .*wrong-endian or not a Gadget binary"):
            open_particles(str(path))


def test_incomplete_sets_are_refused(tmp_path, particles):
    paths = _bad(tmp_path, particles, nfiles=3, fmt=2)
    os.remove(paths[1])
    with pytest.raises(MetadataError, match=r"file numbers \[1\] are missing"):
        binary_files(paths[0])
    single = tmp_path / "lonely"
    os.rename(paths[0], single)
    with pytest.raises(MetadataError, match="its name has no file number"):
        open_particles(str(single))


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_cli_refuses_damaged_binary_in_one_line_and_writes_nothing(tmp_path, particles, damage):
    (path,) = _bad(tmp_path, particles)
    data = path.read_bytes()
    path.write_bytes(data[:1000] if damage == "truncated" else b"junk" + data[4:])
    out = tmp_path / "d.zarr"
    res = CliRunner().invoke(cli, ["deposit", str(path), str(out), "--grid", "8", "--workers", "1"])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and line.startswith("bigpaint: error:")
    assert ("truncated" if damage == "truncated" else "not a Gadget binary header") in line
    assert not out.exists()
