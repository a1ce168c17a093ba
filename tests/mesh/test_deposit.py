"""Chunked deposition equals whole-array deposition, for any chunking, order and scheme."""

from __future__ import annotations

import os
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.errors import (
    ChunkingError,
    FieldExistsError,
    FieldIncompleteError,
    MetadataError,
    NonFiniteError,
    ShapeError,
)
from bigpaint.field import data_var, field_meta, open_field, write_array
from bigpaint.io.open import open_particles
from bigpaint.io.particles import ArrayParticles, DaskParticles
from bigpaint.mesh.assign import SCHEMES, ParticleBoundsError, deposit, scheme_order
from bigpaint.mesh.deposit import DepositPlan, deposit_blocks, deposit_to_field
from bigpaint.mesh.deposit import blocks as depmod
from bigpaint.testing import chunk_layouts

from ..conftest import tree_digest

ORDERS = ["shuffled", "sorted", "one_chunk", "seams", "corners", "lattice"]


def _edges(chunks) -> list[np.ndarray]:
    return [np.concatenate([[0], np.cumsum(c)]) for c in chunks]


def make_particles(order: str, rng: np.random.Generator, n: int, shape, box, chunks) -> np.ndarray:
    """Particles in the orders and places that stress routing.

    ``seams``/``corners`` sit exactly on, or within 1e-9 cells of, block boundaries
    (including 0 and L, i.e. across the periodic wrap); ``lattice`` is a displaced
    Lagrangian grid in grid order (the ordered input that skips the shuffle).
    """
    box = np.asarray(box, np.float64)
    shape = np.asarray(shape)
    cell = box / shape
    if order in ("shuffled", "sorted"):
        pos = rng.uniform(0, 1, (n, 3)) * box
        if order == "sorted":
            idx = np.floor(pos / cell).astype(int)
            pos = pos[np.lexsort((idx[:, 2], idx[:, 1], idx[:, 0]))]
        return pos
    if order == "one_chunk":
        k = [rng.integers(len(c)) for c in chunks]
        lo = np.array([e[i] for e, i in zip(_edges(chunks), k, strict=True)]) * cell
        hi = np.array([e[i + 1] for e, i in zip(_edges(chunks), k, strict=True)]) * cell
        return lo + rng.uniform(0, 1, (n, 3)) * (hi - lo)
    if order in ("seams", "corners"):
        pos = rng.uniform(0, 1, (n, 3)) * box
        jitter = np.array([0.0, 1e-9, -1e-9, 0.5, -0.5, 1.0])
        for a, e in enumerate(_edges(chunks)):
            on = rng.random(n) < (1.0 if order == "corners" else 0.5)
            b = rng.choice(e, n) + rng.choice(jitter, n)
            pos[on, a] = np.clip(b[on] * cell[a], 0, box[a])
        return pos
    if order == "lattice":
        q = np.stack(np.meshgrid(*[np.arange(s) + 0.5 for s in shape], indexing="ij"), -1)
        q = q.reshape(-1, 3)[: max(n, 1)] * cell
        return np.mod(q + rng.normal(0, 0.7, q.shape) * cell, box)
    raise ValueError(order)


# ---------------------------------------------------------------- the plan


def _base(u: np.ndarray, p: int) -> np.ndarray:
    """First node of a particle's support (cell-centre nodes), from the documented formulas."""
    if p in (2, 4):
        b = np.floor(u - 0.5)
    else:
        b = np.floor(u)
    return (b - (1 if p >= 3 else 0)).astype(np.int64)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 12)),
    data=st.data(),
    scheme=st.sampled_from(list(SCHEMES)),
    order=st.sampled_from(ORDERS),
    shift=st.sampled_from([0.0, 0.5]),
    seed=st.integers(0, 2**32 - 1),
)
def test_routing_sends_each_particle_to_exactly_the_blocks_it_touches(
    shape, data, scheme, order, shift, seed
):
    chunks = data.draw(chunk_layouts(shape, max_parts=4))
    box = (30.0, 40.0, 50.0)
    rng = np.random.default_rng(seed)
    pos = make_particles(order, rng, 60, shape, box, chunks)
    plan = DepositPlan(shape, chunks, box, scheme, shift)
    p = scheme_order(scheme)
    chunk_of = [np.repeat(np.arange(len(c)), c) for c in chunks]
    want = np.zeros(plan.n_blocks, np.int64)
    for x in pos:
        per_axis = []
        for a in range(3):
            u = np.mod(x[a] * (shape[a] / box[a]) + shift, shape[a])  # the kernels' arithmetic
            nodes = (_base(np.array([u]), p)[0] + np.arange(p)) % shape[a]
            per_axis.append(sorted({int(chunk_of[a][j]) for j in nodes}))
        for i in per_axis[0]:
            for j in per_axis[1]:
                for k in per_axis[2]:
                    want[plan.block_id((i, j, k))] += 1
    np.testing.assert_array_equal(plan.route_counts(pos), want)
    counts, rpos, rid = plan.route(pos, np.arange(len(pos), dtype=np.float64))
    np.testing.assert_array_equal(counts, want)
    assert len(rpos) == want.sum()
    # every routed row is a copy of its input row, grouped by block, in input order
    rid = rid.astype(np.int64)
    np.testing.assert_array_equal(rpos, pos[rid])
    off = np.concatenate([[0], np.cumsum(counts)])
    for b in np.flatnonzero(counts):
        assert np.all(np.diff(rid[off[b] : off[b + 1]]) > 0)


# ---------------------------------------------------------------- chunked == in memory


@settings(max_examples=45, deadline=None)
@given(
    shape=st.tuples(st.integers(2, 14), st.integers(2, 14), st.integers(2, 14)),
    data=st.data(),
    scheme=st.sampled_from(list(SCHEMES)),
    order=st.sampled_from(ORDERS),
    batch_size=st.sampled_from([7, 64, 10_000]),
    home_fraction=st.sampled_from([0.0, 0.5, 1.01]),
    weighted=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_chunked_deposit_equals_in_memory_deposit(
    shape, data, scheme, order, batch_size, home_fraction, weighted, seed
):
    chunks = data.draw(chunk_layouts(shape, max_parts=4))
    box = (100.0, 80.0, 60.0)
    rng = np.random.default_rng(seed)
    pos = make_particles(order, rng, 400, shape, box, chunks)
    w = rng.uniform(0.5, 2.0, len(pos)) if weighted else None
    src = ArrayParticles(pos, w, box_size=box, batch_size=batch_size)
    out = np.full(shape, np.nan)
    stats = deposit_blocks(src, out, chunks=chunks, scheme=scheme, home_fraction=home_fraction)
    want = deposit(pos, shape, box, scheme=scheme, weights=w, dtype="f8")
    total = w.sum() if weighted else len(pos)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-13 * total)
    assert stats.n_particles == len(pos)
    assert stats.total_mass == pytest.approx(total, rel=1e-14)
    if home_fraction > 1:  # a full shuffle
        assert stats.spilled_batches == stats.n_batches and stats.reread_batches == 0
    if home_fraction == 0:  # every batch re-read by the block holding most of it
        assert stats.reread_batches == stats.n_batches


def test_ordered_particles_are_not_shuffled(rng):
    """A displaced Lagrangian grid read by sub-cubes spills only its seam crossers."""
    shape, box, chunks = (32, 32, 32), (64.0,) * 3, 16
    q = np.stack(np.meshgrid(*[np.arange(32) + 0.5] * 3, indexing="ij"), -1) * 2.0
    # Lagrangian order by 16^3 sub-cubes, one per block: a batch lies mostly in its block,
    # a shuffled batch spreads over all 8 blocks
    q = q.reshape(2, 16, 2, 16, 2, 16, 3).transpose(0, 2, 4, 1, 3, 5, 6).reshape(-1, 3)
    pos = np.mod(q + rng.normal(0, 0.5, q.shape), 64.0)
    src = ArrayParticles(pos, box_size=box, batch_size=16**3)
    out = np.zeros(shape)
    stats = deposit_blocks(src, out, chunks=chunks)
    assert stats.n_batches == stats.reread_batches == 8
    assert stats.spilled_particles < 0.3 * len(pos)  # seam crossers only (with CIC copies)
    np.testing.assert_allclose(out, deposit(pos, shape, box, dtype="f8"), rtol=1e-12, atol=1e-12)
    shuffled = ArrayParticles(rng.permutation(pos), box_size=box, batch_size=16**3)
    out2 = np.zeros(shape)
    stats2 = deposit_blocks(shuffled, out2, chunks=chunks)
    assert stats2.reread_batches == 0 and stats2.spilled_batches == stats2.n_batches
    assert stats2.spilled_particles > len(pos)
    np.testing.assert_allclose(out2, out, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("quantity", ["mass", "density", "delta"])
def test_quantities(quantity, rng):
    shape, box = (8, 8, 8), (16.0, 16.0, 32.0)
    pos = rng.uniform(0, 1, (3000, 3)) * box
    w = rng.uniform(0.5, 2.0, len(pos))
    out = np.zeros(shape)
    deposit_blocks(ArrayParticles(pos, w, box_size=box), out, chunks=3, quantity=quantity)
    mass = deposit(pos, shape, box, weights=w, dtype="f8")
    want = {
        "mass": mass,
        "density": mass / (2.0 * 2.0 * 4.0),
        "delta": mass / mass.mean() - 1.0,
    }[quantity]
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)


def test_dask_particles_equal_in_memory(rng):
    pos = rng.uniform(0, 50.0, (5000, 3))
    w = rng.uniform(1, 2, len(pos))
    dpos = da.from_array(pos, chunks=(700, 1))  # split coordinates get re-joined
    src = open_particles(dpos, box_size=50.0, masses=da.from_array(w, chunks=900))
    assert isinstance(src, DaskParticles) and not src.rereadable
    out = np.zeros((10, 10, 10))
    stats = deposit_blocks(src, out, chunks=(4, 3, 5), scheme="tsc")
    assert stats.spilled_batches == stats.n_batches == 8
    want = deposit(pos, 10, 50.0, scheme="tsc", weights=w, dtype="f8")
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- into Fields


def _delta(pos, n, box, scheme="cic", w=None):
    m = deposit(pos, n, box, scheme=scheme, weights=w, dtype="f8")
    return m / m.mean() - 1.0


@settings(max_examples=6, deadline=None)
@given(
    n=st.integers(6, 14),
    data=st.data(),
    scheme=st.sampled_from(["cic", "tsc"]),
    order=st.sampled_from(["shuffled", "lattice", "seams"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_field_from_npy_equals_in_memory(tmp_path_factory, n, data, scheme, order, seed):
    chunk = data.draw(st.integers(1, n))
    tmp = tmp_path_factory.mktemp("dep")
    rng = np.random.default_rng(seed)
    pos = make_particles(order, rng, 2000, (n,) * 3, (100.0,) * 3, [(n,)] * 3).astype("f4")
    np.save(tmp / "p.npy", pos)
    url = str(tmp / "out.zarr")
    writer = deposit_to_field(
        str(tmp / "p.npy"), url, nmesh=n, chunks=chunk, box_size=100.0, scheme=scheme,
        batch_size=300,
    )  # fmt: skip
    ds = open_field(url)
    got = data_var(ds).values
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _delta(pos, n, 100.0, scheme), rtol=1e-6, atol=1e-6)
    meta = field_meta(ds)
    assert meta.kind == "delta" and meta.units == "1" and meta.box_size == (100.0,) * 3
    assert meta.provenance["operation"] == "deposit"
    assert meta.provenance["config"]["scheme"] == scheme
    assert writer.chunks == (chunk,) * 3
    assert sorted(os.listdir(tmp)) == ["out.zarr", "p.npy"]  # no spill left behind


def test_field_from_zarr_particles_with_masses(tmp_path, rng):
    pos = rng.uniform(0, 20.0, (4000, 3))
    w = rng.uniform(1, 3, len(pos)).astype("f4")
    g = zarr.open_group(str(tmp_path / "parts.zarr"), mode="w")
    g.create_array("positions", data=pos, chunks=(512, 3))
    g.create_array("masses", data=w, chunks=(512,))
    g.attrs.update({"box_size": 20.0, "mass_units": "Msun/h", "redshift": 1.5})
    url = str(tmp_path / "m.zarr")
    deposit_to_field(str(tmp_path / "parts.zarr"), url, nmesh=8, chunks=3, quantity="mass",
                     scheme="ngp", batch_size=1000)  # fmt: skip
    ds = open_field(url)
    np.testing.assert_allclose(
        data_var(ds).values, deposit(pos, 8, 20.0, scheme="ngp", weights=w, dtype="f8"), rtol=1e-6
    )
    meta = field_meta(ds)
    assert (meta.kind, meta.units, meta.redshift) == ("mass", "Msun/h", 1.5)
    with pytest.raises(MetadataError, match=r"box size 25 Mpc/h was given but .* says 20"):
        deposit_to_field(str(tmp_path / "parts.zarr"), str(tmp_path / "x.zarr"), nmesh=8,
                         box_size=25.0)  # fmt: skip
    assert not (tmp_path / "x.zarr").exists()


def test_interlaced_field_equals_in_memory_interlacing(tmp_path, rng):
    pos = rng.uniform(0, 10.0, (3000, 3))
    url = str(tmp_path / "i.zarr")
    deposit_to_field(pos, url, nmesh=12, chunks=5, box_size=10.0, interlace=True, dtype="float64")
    got = data_var(open_field(url)).values
    m = deposit(pos, 12, 10.0, dtype="f8", interlaced=True)
    np.testing.assert_allclose(got, m / m.mean() - 1.0, atol=1e-10)
    assert sorted(os.listdir(tmp_path)) == ["i.zarr"]


def test_killed_run_resumes_without_redoing_blocks(tmp_path, rng, monkeypatch):
    pos = rng.uniform(0, 30.0, (6000, 3))
    np.save(tmp_path / "p.npy", pos)
    args = dict(nmesh=12, chunks=4, box_size=30.0, scheme="tsc", batch_size=1000)
    real = depmod.deposit_block
    calls: list[tuple[int, ...]] = []

    def dies_on_block_5(index, items, **kw):
        if len(calls) == 5:
            raise RuntimeError("worker killed")
        calls.append(tuple(index))
        return real(index, items, **kw)

    monkeypatch.setattr(depmod, "deposit_block", dies_on_block_5)
    url = str(tmp_path / "out.zarr")
    # one worker thread: no block is still being written when the failure surfaces
    with dask.config.set(num_workers=1), pytest.raises(RuntimeError, match="killed"):
        deposit_to_field(str(tmp_path / "p.npy"), url, **args)
    with pytest.raises(FieldIncompleteError):
        open_field(url)
    first = list(calls)
    calls.clear()

    def counts(index, items, **kw):
        calls.append(tuple(index))
        return real(index, items, **kw)

    monkeypatch.setattr(depmod, "deposit_block", counts)
    deposit_to_field(str(tmp_path / "p.npy"), url, **args)
    assert len(first) == 5 and len(calls) == 27 - 5 and not set(first) & set(calls)
    np.testing.assert_allclose(
        data_var(open_field(url)).values, _delta(pos, 12, 30.0, "tsc"), rtol=1e-6, atol=1e-6
    )


# ---------------------------------------------------------------- bad input: nothing written


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda p: p.__setitem__((17, 1), np.nan), NonFiniteError, r"particle 17"),
        (lambda p: p.__setitem__((3, 0), 250.0), ParticleBoundsError, r"1 of 900 .* particle 3"),
        (lambda p: p.__setitem__((899, 2), -1e-3), ParticleBoundsError, r"particle 899"),
    ],
)
def test_bad_particles_write_nothing(tmp_path, rng, mutate, error, match):
    pos = rng.uniform(0, 100.0, (900, 3))
    mutate(pos)
    np.save(tmp_path / "p.npy", pos)
    with pytest.raises(error, match=match):
        deposit_to_field(str(tmp_path / "p.npy"), str(tmp_path / "o.zarr"), nmesh=8,
                         box_size=100.0, batch_size=100)  # fmt: skip
    assert sorted(os.listdir(tmp_path)) == ["p.npy"]


def test_bad_shapes_sizes_and_chunks_write_nothing(tmp_path, rng):
    np.save(tmp_path / "t.npy", rng.uniform(0, 1, (3, 50)))
    np.save(tmp_path / "p.npy", rng.uniform(0, 1, (50, 3)))
    np.save(tmp_path / "m.npy", np.ones(49))
    out = str(tmp_path / "o.zarr")
    with pytest.raises(ShapeError, match=r"\(N, 3\), got \(3, 50\); transpose"):
        deposit_to_field(str(tmp_path / "t.npy"), out, nmesh=8, box_size=1.0)
    with pytest.raises(MetadataError, match=r"box size unknown.*--box-size"):
        deposit_to_field(str(tmp_path / "p.npy"), out, nmesh=8)
    with pytest.raises(ShapeError, match=r"masses .* shape \(50,\)"):
        deposit_to_field(str(tmp_path / "p.npy"), out, nmesh=8, box_size=1.0,
                         masses=str(tmp_path / "m.npy"))  # fmt: skip
    with pytest.raises(ChunkingError, match="larger than the grid"):
        deposit_to_field(str(tmp_path / "p.npy"), out, nmesh=8, chunks=9, box_size=1.0)
    with pytest.raises(ChunkingError, match="positive"):
        deposit_to_field(str(tmp_path / "p.npy"), out, nmesh=8, chunks=(4, 0, 4), box_size=1.0)
    assert sorted(os.listdir(tmp_path)) == ["m.npy", "p.npy", "t.npy"]


def test_existing_output_of_another_job_is_refused_untouched(tmp_path, rng):
    url = str(tmp_path / "o.zarr")
    write_array(url, np.zeros((8, 8, 8), "f4"), chunks=4,
                meta={"box_size": 1.0, "kind": "delta", "units": "1"})  # fmt: skip
    before = tree_digest(url)
    with pytest.raises(FieldExistsError, match="--overwrite"):
        deposit_to_field(rng.uniform(0, 1, (10, 3)), url, nmesh=8, box_size=1.0)
    assert tree_digest(url) == before
    deposit_to_field(rng.uniform(0, 1, (10, 3)), url, nmesh=8, box_size=1.0, overwrite=True)
    assert open_field(url).attrs["bigpaint_complete"]


def test_runs_on_a_distributed_cluster(tmp_path, rng):
    """Sources and plans travel to worker processes (pickled) and give the same Field."""
    distributed = pytest.importorskip("distributed")
    pos = rng.uniform(0, 40.0, (4000, 3)).astype("f4")
    np.save(tmp_path / "p.npy", pos)
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                 dashboard_address=None) as cluster,
        distributed.Client(cluster),
    ):  # fmt: skip
        url = str(tmp_path / "o.zarr")
        deposit_to_field(str(tmp_path / "p.npy"), url, nmesh=10, chunks=4, box_size=40.0,
                         batch_size=500, home_fraction=0.3)  # fmt: skip
    np.testing.assert_allclose(
        data_var(open_field(url)).values, _delta(pos, 10, 40.0), rtol=1e-6, atol=1e-6
    )
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["o.zarr", "p.npy"]


@pytest.mark.parametrize("scheme", ["cic", "pcs"])
def test_wrapped_positions_chunked_equal_in_memory(scheme, rng):
    box = (10.0, 12.0, 14.0)
    pos = rng.uniform(-25.0, 40.0, (3000, 3))  # several boxes away on both sides
    src = ArrayParticles(pos, box_size=box, batch_size=400)
    out = np.zeros((6, 7, 5))
    deposit_blocks(src, out, chunks=((1, 5), (3, 4), (2, 2, 1)), scheme=scheme, wrap=True)
    want = deposit(pos, (6, 7, 5), box, scheme=scheme, wrap=True, dtype="f8")
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ParticleBoundsError, match=r"of 3000 particles lie outside"):
        deposit_blocks(src, np.zeros((6, 7, 5)), chunks=3, scheme=scheme)
