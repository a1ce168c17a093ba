"""Particle sources: batches cover every particle once, in order; box sizes are settled."""

from __future__ import annotations

import pickle

import dask.array as da
import numpy as np
import pytest
import zarr

from bigpaint.errors import FieldNotFoundError, MetadataError, ShapeError
from bigpaint.io.box_size import resolve_box_size
from bigpaint.io.open import open_particles
from bigpaint.io.particles import (
    ArrayParticles,
    DaskParticles,
    NpyParticles,
    ZarrParticles,
)


def _all(src):
    parts = [src.load(b) for b in src.batches()]
    pos = np.concatenate([p for p, _ in parts])
    mass = None if parts[0][1] is None else np.concatenate([m for _, m in parts])
    return pos, mass


def test_npy_is_read_by_batches_through_a_memory_map(tmp_path, rng):
    pos = rng.uniform(0, 10, (1003, 3)).astype("f4")
    m = rng.uniform(1, 2, 1003)
    np.save(tmp_path / "p.npy", pos)
    np.save(tmp_path / "m.npy", m)
    src = open_particles(str(tmp_path / "p.npy"), box_size=10.0, masses=str(tmp_path / "m.npy"),
                         batch_size=250)  # fmt: skip
    assert isinstance(src, NpyParticles) and src.box_size == (10.0,) * 3 and src.has_masses
    assert [b.count for b in src.batches()] == [250, 250, 250, 250, 3]
    got, gm = _all(src)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, pos)
    np.testing.assert_array_equal(gm, m)
    again = pickle.loads(pickle.dumps(src))  # tasks carry the path, not the data
    assert len(pickle.dumps(src)) < 2000
    np.testing.assert_array_equal(again.load(again.batches()[4])[0], pos[1000:])


def test_zarr_group_batches_follow_chunks_and_read_attributes(tmp_path, rng):
    pos = rng.uniform(0, 5, (1000, 3))
    g = zarr.open_group(str(tmp_path / "p.zarr"), mode="w")
    g.create_array("positions", data=pos, chunks=(128, 3))
    g.attrs["box_size"] = [5.0, 5.0, 5.0]
    src = open_particles(str(tmp_path / "p.zarr"), batch_size=300)
    assert isinstance(src, ZarrParticles) and src.box_size == (5.0,) * 3 and not src.has_masses
    assert [b.count for b in src.batches()] == [256, 256, 256, 232]  # whole chunks
    np.testing.assert_array_equal(_all(src)[0], pos)
    # a bare (N, 3) array works too; its box must then be given
    zarr.create_array(str(tmp_path / "a.zarr"), data=pos, chunks=(100, 3))
    with pytest.raises(MetadataError, match="box size unknown"):
        open_particles(str(tmp_path / "a.zarr"))
    np.testing.assert_array_equal(
        _all(open_particles(str(tmp_path / "a.zarr"), box_size=5))[0], pos
    )


def test_dask_array_batches_are_its_chunks(rng):
    pos = rng.uniform(0, 1, (500, 3))
    src = open_particles(da.from_array(pos, chunks=(120, 2)), box_size=1.0)
    assert isinstance(src, DaskParticles) and not src.rereadable
    assert [b.count for b in src.batches()] == [120, 120, 120, 120, 20]
    np.testing.assert_array_equal(_all(src)[0], pos)
    assert len(src.batch_data()) == 5


def test_array_source_and_box_resolution(rng):
    pos = rng.uniform(0, 2, (10, 3))
    src = open_particles(pos, box_size=(2.0, 2.0, 4.0))
    assert isinstance(src, ArrayParticles) and src.box_size == (2.0, 2.0, 4.0)
    assert resolve_box_size((2.0,) * 3, 2.0000000001) == (2.0,) * 3
    with pytest.raises(MetadataError, match="box size 3 Mpc/h was given but the input says 2"):
        resolve_box_size((2.0,) * 3, 3.0)
    with pytest.raises(MetadataError, match="positive"):
        open_particles(pos, box_size=-1.0)
    # an opened source keeps its box; a different one is refused
    assert open_particles(src).box_size == (2.0, 2.0, 4.0)
    with pytest.raises(MetadataError):
        open_particles(src, box_size=3.0)


def test_bad_inputs_get_one_clear_error(tmp_path, rng):
    np.save(tmp_path / "t.npy", rng.uniform(0, 1, (3, 40)))
    np.save(tmp_path / "s.npy", np.array(["a", "b", "c"] * 3).reshape(3, 3))
    np.save(tmp_path / "p.npy", rng.uniform(0, 1, (40, 3)))
    with pytest.raises(ShapeError, match=r"\(N, 3\), got \(3, 40\); transpose"):
        open_particles(str(tmp_path / "t.npy"), box_size=1.0)
    with pytest.raises(ShapeError, match="real numbers"):
        open_particles(str(tmp_path / "s.npy"), box_size=1.0)
    with pytest.raises(ShapeError, match=r"shape \(40,\)"):
        open_particles(np.ones((40, 3)), box_size=1.0, masses=np.ones(41))
    with pytest.raises(FieldNotFoundError, match="no particle file"):
        open_particles(str(tmp_path / "missing.npy"), box_size=1.0)
    (tmp_path / "x.txt").write_text("1 2 3")
    with pytest.raises(ShapeError, match="cannot tell the format"):
        open_particles(str(tmp_path / "x.txt"), box_size=1.0)
    with pytest.raises(MetadataError, match=r"box size unknown.*\.npy has no box size"):
        open_particles(str(tmp_path / "p.npy"))
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("pos", data=np.zeros((4, 3)))
    with pytest.raises(ShapeError, match="no 'positions' array"):
        open_particles(str(tmp_path / "g.zarr"), box_size=1.0)


def test_a_group_where_a_particle_array_belongs_is_refused(tmp_path):
    """Groups named ``positions`` or ``masses`` are refused in one line (they used to fail on
    a missing ``shape``)."""
    g = zarr.open_group(str(tmp_path / "p.zarr"), mode="w")
    g.create_group("positions")
    with pytest.raises(ShapeError, match=r"p\.zarr/positions is a Zarr group, not an array"):
        open_particles(str(tmp_path / "p.zarr"), box_size=1.0)
    g = zarr.open_group(str(tmp_path / "m.zarr"), mode="w")
    g.create_array("positions", data=np.zeros((4, 3)))
    g.create_group("masses")
    with pytest.raises(ShapeError, match=r"m\.zarr/masses is a Zarr group, not an array"):
        open_particles(str(tmp_path / "m.zarr"), box_size=1.0)
