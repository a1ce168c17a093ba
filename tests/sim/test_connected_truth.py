"""The connected-truth catalogue: one row per connected protohalo, mass = cells x cell mass."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.errors import FieldExistsError, MetadataError, ShapeError
from bigpaint.sim.connected_truth import (
    connected_truth,
    read_connected_truth,
    write_connected_truth,
)
from tests.sim.test_truth import _periodic_pieces

MP = 1e12  # particle mass, Msun/h


def _fof(n_particles):
    """A FoF-like catalogue (sorted by mass, halo_id = row) of halos with these members."""
    n = np.asarray(n_particles, np.int64)
    return pa.table({"halo_id": np.arange(len(n)), "n_particles": n, "mass": n * MP})


def _known_labels():
    """8^3 cells of 2 Mpc/h whose connected regions are known.

    label 1 (halo 0): a 2x2x2 block plus a detached 3-cell row; the block wins;
    label 2 (halo 1): three cells in a row across the periodic x boundary (x = 6, 7, 0);
    label 4 (halo 3): one cell; halo 2 is above the cut but has no cell; halo 4 is below it.
    """
    lab = np.zeros((8, 8, 8), np.int32)
    lab[1:3, 1:3, 1:3] = 1
    lab[5, 5, 4:7] = 1
    lab[[6, 7, 0], 5, 1] = 2
    lab[4, 0, 7] = 4
    return lab


def test_known_regions_wrap_and_largest_piece():
    cat = _fof([20, 10, 8, 5, 1])
    table, labels, pieces = connected_truth(
        _known_labels(), cat, box_size=16.0, particle_mass=MP, particles=8, min_mass=3 * MP
    )
    assert table["id"].to_pylist() == [1, 2, 4]
    assert table["halo_id"].to_pylist() == [0, 1, 3]
    assert table["n_cells"].to_pylist() == [8, 3, 1]  # the detached row is not counted
    np.testing.assert_allclose(table["mass"].to_numpy(), [8 * MP, 3 * MP, MP])
    np.testing.assert_allclose(table["fof_mass"].to_numpy(), [20 * MP, 10 * MP, 5 * MP])
    assert table["fof_n_particles"].to_pylist() == [20, 10, 5]
    np.testing.assert_allclose(table["mass_fraction"].to_numpy(), [0.4, 0.3, 0.2])
    # centres in Mpc/h: the block's middle; the wrapped row's middle cell x = 7 (7.5 cells)
    centre = np.stack([table[c].to_numpy() for c in "xyz"], axis=1)
    np.testing.assert_allclose(centre, [[4.0, 4.0, 4.0], [15.0, 11.0, 3.0], [9.0, 1.0, 15.0]])
    assert labels[5, 5, 4:7].tolist() == [0, 0, 0] and np.all(labels[1:3, 1:3, 1:3] == 1)
    assert pieces["labels_in_several_pieces"] == 1 and pieces["fragment_cells"] == 3
    info = json.loads(table.schema.metadata[b"bigpaint"])
    assert info["format"] == "bigpaint-connected-protohalos"
    assert info["cell_mass"] == MP and info["complete_above"] == 3 * MP
    assert info["halos_above_cut"] == 4 and info["halos_without_cells"] == 1
    assert info["centre_undefined"] == 0 and info["box_size"] == [16.0] * 3


@pytest.mark.parametrize(
    ("particles", "grid", "cells_per_particle"), [(16, 8, 8.0), (8, 16, 0.125)]
)
def test_cell_mass_when_the_label_grid_is_not_the_particle_grid(
    particles, grid, cells_per_particle
):
    lab = np.zeros((grid,) * 3, np.int32)
    lab[:2, :3, :1] = 1
    table, _, _ = connected_truth(
        lab, _fof([100]), box_size=32.0, particle_mass=MP, particles=particles, min_mass=50 * MP
    )
    assert table["mass"].to_pylist() == [6 * MP * cells_per_particle]
    info = json.loads(table.schema.metadata[b"bigpaint"])
    # a coarse cell weighs more than a particle, so objects below cut * (n / g)^3 can be absent
    assert info["complete_above"] == 50 * MP * max(1.0, cells_per_particle)


def _brute_centre(cells, n, cell):
    """Per axis: shift the box so the region does not wrap, average, shift back (NaN when no
    shift brings it within half the box)."""
    out = []
    for c in cells.T:
        best = min(range(n), key=lambda s: np.ptp((c + s) % n))
        u = (c + best) % n
        out.append(np.nan if 2 * np.ptp(u) >= n else ((u.mean() + 0.5 - best) % n) * cell)
    return out


@given(seed=st.integers(0, 10_000), fill=st.floats(0.05, 0.7), n=st.sampled_from([5, 6, 9]))
@settings(max_examples=30, deadline=None)
def test_catalogue_equals_a_brute_force_over_pieces(seed, fill, n):
    rng = np.random.default_rng(seed)
    raw = np.where(rng.random((n, n, n)) < fill, rng.integers(1, 6, (n, n, n)), 0)
    raw = raw.astype(np.int32)
    cat = _fof([60, 50, 40, 30, 20])
    table, labels, _ = connected_truth(
        raw, cat, box_size=3.0 * n, particle_mass=MP, particles=n, min_mass=0.0
    )
    pieces = _periodic_pieces(raw)

    def size(piece):  # the largest piece wins, ties to the one with the lowest cell index
        return len(piece[1]), -min(np.ravel_multi_index(c, raw.shape) for c in piece[1])

    want_ids = sorted(np.unique(raw[raw > 0]).tolist())
    assert table["id"].to_pylist() == want_ids
    for row, lab in enumerate(want_ids):
        best = np.array(max((p for p in pieces if p[0] == lab), key=size)[1])
        assert table["n_cells"][row].as_py() == len(best) == np.count_nonzero(labels == lab)
        assert table["mass"][row].as_py() == len(best) * MP
        got = [table[c][row].as_py() for c in "xyz"]
        np.testing.assert_allclose(got, _brute_centre(best, n, 3.0), atol=1e-9)
    info = json.loads(table.schema.metadata[b"bigpaint"])
    x = np.stack([table[c].to_numpy() for c in "xyz"], axis=1)
    assert info["centre_undefined"] == int(np.count_nonzero(np.isnan(x).any(axis=1)))
    assert np.all((x[np.isfinite(x)] >= 0) & (x[np.isfinite(x)] < 3.0 * n))


def test_write_read_and_bad_input(tmp_path):
    cat = _fof([20, 10, 8, 5, 1])
    table, _, _ = connected_truth(
        _known_labels(), cat, box_size=16.0, particle_mass=MP, particles=8, min_mass=3 * MP
    )
    path = write_connected_truth(table, tmp_path / "protohalos_connected.parquet")
    got, info = read_connected_truth(path)
    assert got.equals(table) and info["grid"] == 8
    with pytest.raises(FieldExistsError, match="already exists"):
        write_connected_truth(table, path)
    # labels naming a halo the catalogue lacks, a label image that is not a cube
    with pytest.raises(MetadataError, match="does not hold"):
        connected_truth(_known_labels(), cat.slice(0, 2), box_size=16.0, particle_mass=MP,
                        particles=8, min_mass=0.0)  # fmt: skip
    with pytest.raises(ShapeError, match="cube"):
        connected_truth(np.zeros((4, 4, 5), np.int32), cat, box_size=16.0, particle_mass=MP,
                        particles=8, min_mass=0.0)  # fmt: skip
    # a FoF catalogue is not a connected truth; one that lost a column is damaged
    pq.write_table(cat, tmp_path / "halos.parquet")
    with pytest.raises(MetadataError, match="not a connected-truth catalogue"):
        read_connected_truth(tmp_path / "halos.parquet")
    pq.write_table(table.drop_columns(["n_cells"]), tmp_path / "damaged.parquet")
    with pytest.raises(MetadataError, match=r"damaged connected-truth catalogue \(missing n_cells"):
        read_connected_truth(tmp_path / "damaged.parquet")
