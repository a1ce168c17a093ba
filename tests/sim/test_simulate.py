"""The small end-to-end simulation: outputs, their metadata, and consistency of the truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bigpaint.errors import ConfigError, FieldExistsError
from bigpaint.field import open_field
from bigpaint.sim.connected_truth import read_connected_truth
from bigpaint.sim.fof import read_catalogue
from bigpaint.sim.simulate import simulate
from bigpaint.sim.truth import connected_protohalos


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "run"
    cfg = {
        "output": str(out),
        "particles": 32,
        "box_size": 64.0,
        "tile": 16,
        "seed": 3,
        "z_init": 19.0,
        "steps": 8,
        "device": "cpu",
        "fof": {"min_members": 10},
        "halo_counts": {"grid": 16, "mass_bins": [1e12, 1e13, 1e14, 1e16]},
        "protohalo": {"min_particles": 20},
        "chunks": 12,
    }
    return cfg, simulate(cfg)


def test_outputs_and_metadata(small_run):
    cfg, res = small_run
    out = cfg["output"]
    cat, meta = read_catalogue(f"{out}/halos.parquet")
    assert res.n_halos == cat.num_rows > 5
    assert meta["particle_mass"] == pytest.approx(res.particle_mass)
    assert cat["n_particles"].to_numpy().min() >= 10
    kinds = {
        "density.zarr": ("delta", 0.0),
        "density_ic.zarr": ("delta", 19.0),
        "lpt_density.zarr": ("delta", 0.0),
        "halo_counts.zarr": ("halo_count", 0.0),
        "protohalo_labels.zarr": ("protohalo_label", 19.0),
        "protohalo_distance.zarr": ("distance", 19.0),
    }
    for name, (kind, z) in kinds.items():
        ds = open_field(f"{out}/{name}")
        assert ds.attrs["kind"] == kind and ds.attrs["redshift"] == z, name
        assert ds.attrs["cosmology"]["Omega_m"] == pytest.approx(0.3175)
    rho = open_field(f"{out}/density.zarr")["delta"].values
    lpt = open_field(f"{out}/lpt_density.zarr")["delta"].values
    assert abs(rho.mean()) < 1e-5 and abs(lpt.mean()) < 1e-5
    assert rho.std() > lpt.std()  # N-body clusters more than 2LPT on small scales
    assert np.corrcoef(rho.ravel(), lpt.ravel())[0, 1] > 0.5
    summary = json.load(open(f"{out}/summary.json"))
    assert len(summary["step_seconds"]) == 8 and summary["pm_steps_per_second"] > 0


def test_halo_counts_match_the_catalogue(small_run):
    cfg, _ = small_run
    out = cfg["output"]
    cat, _ = read_catalogue(f"{out}/halos.parquet")
    counts = open_field(f"{out}/halo_counts.zarr")["halo_count"].values
    edges = cfg["halo_counts"]["mass_bins"]
    np.testing.assert_array_equal(
        counts.sum(axis=(1, 2, 3)), np.histogram(cat["mass"].to_numpy(), edges)[0]
    )


def test_protohalo_labels_and_distances_are_consistent(small_run):
    cfg, res = small_run
    out = cfg["output"]
    cat, _ = read_catalogue(f"{out}/halos.parquet")
    labels = open_field(f"{out}/protohalo_labels.zarr")["protohalo_label"].values
    dist = open_field(f"{out}/protohalo_distance.zarr")["distance"].values
    cut = cfg["protohalo"]["min_particles"] * res.particle_mass
    mass = cat["mass"].to_numpy()
    used = np.unique(labels[labels > 0])
    assert len(used) > 0
    # every labelled cell belongs to a halo above the mass cut, and every such halo has cells
    assert np.all(mass[used - 1] >= cut)
    assert set(used.tolist()) == set((np.flatnonzero(mass >= cut) + 1).tolist())
    # each protohalo is one periodic face-connected region (fragments went to the background)
    np.testing.assert_array_equal(connected_protohalos(labels)[0], labels)
    pieces = json.load(open(f"{out}/summary.json"))["protohalo_pieces"]
    assert pieces["labels"] == len(used)
    assert pieces["labelled_cells"] - pieces["fragment_cells"] == np.count_nonzero(labels)
    # the distance map: 0 on the background, in (0, 1] inside, 1 at each object's deepest cell
    assert np.all(dist[labels == 0] == 0)
    for lab in used:
        vals = dist[labels == lab]
        assert vals.min() > 0 and vals.max() == 1.0
    # a protohalo is about as many IC cells as its halo has particles (one particle per cell)
    big = int(used.min())
    n_cells = int((labels == big).sum())
    n_part = int(cat["n_particles"][big - 1].as_py())
    assert 0.5 * n_part < n_cells <= n_part


def test_connected_truth_catalogue(small_run):
    """protohalos_connected.parquet lists every object of the label image: its cells times the
    particle mass (label grid = particle grid), and the FoF halo it came from."""
    cfg, res = small_run
    out = cfg["output"]
    cat, _ = read_catalogue(f"{out}/halos.parquet")
    labels = open_field(f"{out}/protohalo_labels.zarr")["protohalo_label"].values
    conn, info = read_connected_truth(f"{out}/protohalos_connected.parquet")
    ids, n_cells = np.unique(labels[labels > 0], return_counts=True)
    np.testing.assert_array_equal(conn["id"].to_numpy(), ids)
    np.testing.assert_array_equal(conn["n_cells"].to_numpy(), n_cells)
    np.testing.assert_allclose(conn["mass"].to_numpy(), n_cells * res.particle_mass, rtol=1e-12)
    fof = cat["mass"].to_numpy()[ids - 1]
    np.testing.assert_array_equal(conn["fof_mass"].to_numpy(), fof)
    # one particle per cell: a connected region never outweighs its FoF halo
    assert np.all(conn["mass"].to_numpy() <= fof)
    cut = cfg["protohalo"]["min_particles"] * res.particle_mass
    assert info["min_mass"] == pytest.approx(cut) == info["complete_above"]
    assert info["redshift"] == 0.0 and info["lagrangian_redshift"] == 19.0
    x = np.stack([conn[c].to_numpy() for c in "xyz"], axis=1)
    assert np.all((x >= 0) & (x < cfg["box_size"])) and info["centre_undefined"] == 0
    summary = json.load(open(f"{out}/summary.json"))["connected_truth"]
    assert summary["catalogue"] == "protohalos_connected.parquet"
    assert summary["n_protohalos"] == conn.num_rows == len(ids)
    assert summary["complete_above"] == info["complete_above"]
    assert summary["halos_without_cells"] == int(
        np.count_nonzero(cat["mass"].to_numpy() >= cut)
    ) - len(ids)


def test_existing_outputs_are_refused(small_run):
    cfg, _ = small_run
    with pytest.raises(FieldExistsError, match="overwrite"):
        simulate(cfg)


def test_bad_configs():
    with pytest.raises(ConfigError, match="not divisible by the noise tile"):
        simulate({"output": "/nonexistent/x", "particles": 40, "tile": 32})
    with pytest.raises(ConfigError, match="z_final"):
        simulate({"output": "/nonexistent/x", "z_init": 1.0, "z_final": 2.0})
    with pytest.raises(ConfigError, match="unknown key 'step'"):
        simulate({"output": "/nonexistent/x", "step": 3})
