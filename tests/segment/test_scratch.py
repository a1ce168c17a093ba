"""The resumable scratch of the segmentation never runs code from its files, survives damage,
and keeps each block's results exactly.

(a) A pickle whose unpickling would create a marker file, planted under every name the
scratch ever used or plausibly uses, is never loaded: no marker, and the rerun succeeds.
(b) A damaged scratch (truncated, garbage, zero-length, bit-flipped, another version,
another block's record, a record deleted mid-way, lost faces, unreadable job.json)
resumes to the uninterrupted result, bitwise. (c) Every record type round-trips exactly.
The CLI (``bigpaint segment ... --workdir``) is killed in its flood pass, its scratch
damaged and planted, and resumes to the uninterrupted catalogue.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import fields
from pathlib import Path

import dask
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bigpaint.segment.engine.blocks as blocks_phase
import bigpaint.segment.engine.flood as flood_phase
from bigpaint.errors import ConfigError, FieldIncompleteError
from bigpaint.field import create_field, open_field, write_array
from bigpaint.segment import scratch as sc
from bigpaint.segment.engine import SegmentParams, segment
from bigpaint.segment.job import segment_field
from bigpaint.segment.records import BlockResult, FloodResult, RecordError, RegionSums

from .reference import blobs
from .test_segment_resume import JOB, META, THREADS, _log, assert_same_outputs

SHAPE = (24, 24, 24)
CHUNK = 8  # 27 blocks
BLOCKS = [(i, j, k) for i in range(3) for j in range(3) for k in range(3)]
RESULT_FIELDS = ("id", "component", "volume", "centre", "marker", "peak_distance",
                 "mean_distance", "trajectory_volume", "trajectory_sum")  # fmt: skip
#: Merging by dynamics makes records carry basin saddles; trajectories widen the histograms.
PARAMS = SegmentParams(min_distance=1, trajectory_thresholds=(0.0, 0.3, 0.6, 0.9), h=0.5)


class Killed(Exception):
    """Stands for the run dying in its flood pass."""


class Payload:
    """Unpickling this creates ``marker`` (what an attacker's code could do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _payload(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker))


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """The distance Field and its uninterrupted segmentation (result and labels)."""
    tmp = tmp_path_factory.mktemp("scratch-field")
    _, d = blobs(shape=SHAPE, n=25, seed=1, big=7.0, tube=2.5)  # crosses seams and the wrap
    url = write_array(str(tmp / "dist.zarr"), d, chunks=CHUNK, meta=META).url
    ref = _run(url, tmp)
    assert ref.stats["merged_basins"] > 0 and ref.stats["spanning_components"] > 0
    labels = open_field(str(tmp / "labels.zarr"))["labels"].values
    whole = np.zeros(SHAPE, np.int64)  # and the in-memory run agrees
    np.testing.assert_array_equal(segment(d, PARAMS, chunks=CHUNK, labels=whole).id, ref.id)
    np.testing.assert_array_equal(whole, labels)
    return url, ref, labels


def _writer(path: Path):
    return create_field(str(path), shape=SHAPE, chunks=CHUNK, meta={**META, "kind": "labels"},
                        dtype="i8", job="scratch-test")  # fmt: skip


def _run(url: str, tmp: Path, **kw):
    return segment(open_field(url), PARAMS, labels=_writer(tmp / "labels.zarr"),
                   scratch=str(tmp / "scratch"), **kw)  # fmt: skip


def _interrupted(url: str, tmp: Path, monkeypatch, floods: int = 12) -> None:
    """A run killed in its flood pass after ``floods`` blocks (one worker, in order)."""
    real = flood_phase.flood_block
    calls = []

    def dying(index, *args, **kw):
        if len(calls) == floods:
            raise Killed
        calls.append(index)
        return real(index, *args, **kw)

    with monkeypatch.context() as m, dask.config.set(num_workers=1):
        m.setattr(flood_phase, "flood_block", dying)
        with pytest.raises(Killed):
            _run(url, tmp)
    assert _records(tmp, "blocks") == set(BLOCKS)
    assert _records(tmp, "flood") == set(calls) and len(calls) == floods
    with pytest.raises(FieldIncompleteError):
        open_field(str(tmp / "labels.zarr"))


def _records(tmp: Path, stage: str) -> set[tuple[int, ...]]:
    names = [p.name for p in (tmp / "scratch" / stage).iterdir() if p.suffix == ".npz"]
    return {tuple(int(i) for i in n[:-4].split("_")) for n in names}


def _assert_same(got, ref, ref_labels, tmp: Path) -> None:
    for name in RESULT_FIELDS:
        a, b = getattr(got, name), getattr(ref, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), name  # bitwise
    np.testing.assert_array_equal(open_field(str(tmp / "labels.zarr"))["labels"].values,
                                  ref_labels)  # fmt: skip
    for stage, kind in (("blocks", BlockResult), ("flood", FloodResult)):  # all valid now
        for b in BLOCKS:
            sc.read_record(sc.record_path(str(tmp / "scratch"), stage, b), kind, b)


# ---------------------------------------------------------------- (a) planted pickles


def _plant(root: Path, payload: bytes) -> list[Path]:
    """The payload under the old names, plausible new names and stray names, everywhere."""
    planted = []
    for stage in ("blocks", "flood"):
        for b in BLOCKS:
            stem = "_".join(map(str, b))
            for name in (f"{stem}.pkl", f"{stem}.pickle", f"{stem}.npy", f"{stem}.json",
                         f"{stem}.pkl.{os.getpid()}-1.tmp"):  # fmt: skip
                planted.append(root / stage / name)
    for name in ("blocks.pkl", "flood.pkl", "job.pkl", "state.pkl", "faces.pkl"):
        planted.append(root / name)
    planted.append(root / "faces.zarr" / "axis0.pkl")
    for p in planted:
        p.write_bytes(payload)
    return planted


def _npz_with_object_array(payload_obj, index, kind: str) -> bytes:
    """A well-formed record whose array member is a pickled object array."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        member = io.BytesIO()
        np.save(member, np.array([payload_obj], dtype=object), allow_pickle=True)
        meta = {"format": sc.FORMAT, "version": sc.VERSION, "kind": kind, "index": list(index),
                "scalars": {"seconds": 0.0, "span_seconds": 0.0},
                "arrays": {"sums.ids": {"dtype": "|O", "shape": [1]}}}  # fmt: skip
        zf.writestr("meta.json", json.dumps(meta))
        zf.writestr("sums.ids.npy", member.getvalue())
    return buf.getvalue()


def test_the_payload_is_live(tmp_path):
    """The planted bytes do run code when unpickled, so their absence below means something."""
    marker = tmp_path / "ran"
    pickle.loads(_payload(marker))
    assert marker.exists()


@pytest.mark.parametrize("under_record_names", [False, True])
def test_planted_pickles_are_never_loaded(field, tmp_path, monkeypatch, under_record_names):
    url, ref, ref_labels = field
    _interrupted(url, tmp_path, monkeypatch)
    marker = tmp_path / "pwned"
    root = tmp_path / "scratch"
    planted = _plant(root, _payload(marker))
    if under_record_names:  # the real record names too: a pickle, and a zip of pickled arrays
        done = sorted(_records(tmp_path, "flood"))
        for b in BLOCKS:
            if b not in done:
                (root / "flood" / ("_".join(map(str, b)) + ".npz")).write_bytes(_payload(marker))
        for b in done[:3]:
            path = root / "flood" / ("_".join(map(str, b)) + ".npz")
            path.write_bytes(_npz_with_object_array(Payload(marker), b, "flood"))
        path = root / "blocks" / "0_0_0.npz"
        path.write_bytes(_npz_with_object_array(Payload(marker), (0, 0, 0), "block"))
    got = _run(url, tmp_path)
    assert not marker.exists(), "a planted pickle was loaded"
    _assert_same(got, ref, ref_labels, tmp_path)
    assert all(p.exists() for p in planted)  # never opened, and not ours to delete
    assert got.stats["blocks_resumed"] == len(BLOCKS) - under_record_names


def test_a_pickle_as_job_json_starts_afresh(field, tmp_path, monkeypatch):
    url, ref, ref_labels = field
    _interrupted(url, tmp_path, monkeypatch)
    marker = tmp_path / "pwned"
    (tmp_path / "scratch" / "job.json").write_bytes(_payload(marker))
    got = _run(url, tmp_path)
    assert not marker.exists()
    _assert_same(got, ref, ref_labels, tmp_path)
    assert got.stats["blocks_resumed"] == got.stats["flood_blocks_resumed"] == 0


# ---------------------------------------------------------------- (b) damage


def _rec(tmp: Path, stage: str, b) -> Path:
    return Path(sc.record_path(str(tmp / "scratch"), stage, b))


def _rewrite_meta(path: Path, **changes) -> None:
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    meta = json.loads(members["meta.json"])
    meta.update(changes)
    members["meta.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("sums.offset.npy")
    at = info.header_offset + 30 + len(info.filename) + info.file_size - 3  # in the data
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


def _damage(kind: str, tmp: Path, done: list) -> tuple[int, int]:
    """Damage the scratch; returns the blocks and flood blocks the rerun must redo."""
    first, second = done[0], done[1]
    if kind == "truncated block record":
        p = _rec(tmp, "blocks", first)
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        return 1, len(BLOCKS) - len(done) + 1  # its flood record goes with it
    if kind == "truncated flood record":
        p = _rec(tmp, "flood", first)
        p.write_bytes(p.read_bytes()[:-40])
        return 0, len(BLOCKS) - len(done) + 1
    if kind == "garbage":
        _rec(tmp, "flood", first).write_bytes(np.random.default_rng(0).bytes(5000))
        _rec(tmp, "blocks", done[-1]).write_bytes(b"\x00" * 100)
        return 1, len(BLOCKS) - len(done) + 2
    if kind == "zero length":  # what a machine crash can leave after a rename
        _rec(tmp, "blocks", first).write_bytes(b"")
        return 1, len(BLOCKS) - len(done) + 1
    if kind == "flipped byte":
        _flip_a_byte(_rec(tmp, "flood", first))
        return 0, len(BLOCKS) - len(done) + 1
    if kind == "other version":
        _rewrite_meta(_rec(tmp, "flood", first), version=sc.VERSION + 1)
        _rewrite_meta(_rec(tmp, "blocks", second), version=0)
        return 1, len(BLOCKS) - len(done) + 2
    if kind == "another block's record":
        shutil.copy(_rec(tmp, "flood", second), _rec(tmp, "flood", first))
        return 0, len(BLOCKS) - len(done) + 1
    if kind == "record deleted mid-way":  # the block pass redoes it, so its flood too
        _rec(tmp, "blocks", first).unlink()
        return 1, len(BLOCKS) - len(done) + 1
    if kind == "stray temporary files":  # a writer killed before its rename
        for b in BLOCKS:
            p = _rec(tmp, "flood", b)
            Path(f"{p}.{'0' * 32}.tmp").write_bytes(b"PK\x03\x04 half a record")
        return 0, len(BLOCKS) - len(done)
    if kind == "faces lost":
        shutil.rmtree(tmp / "scratch" / "faces.zarr" / "axis1")
        return len(BLOCKS), len(BLOCKS)
    if kind == "faces of another codec":
        meta = tmp / "scratch" / "faces.zarr" / "axis2" / "zarr.json"
        m = json.loads(meta.read_text())
        m["codecs"] = [{"name": "bytes", "configuration": {"endian": "little"}}]
        meta.write_text(json.dumps(m))
        return len(BLOCKS), len(BLOCKS)
    if kind == "job.json of the old format":  # the plain state, as pickle scratches had
        path = tmp / "scratch" / "job.json"
        path.write_text(json.dumps(json.loads(path.read_text())["job"]))
        return len(BLOCKS), len(BLOCKS)
    if kind == "unreadable job.json":
        (tmp / "scratch" / "job.json").write_text('{"format": "bigpaint-segm')
        return len(BLOCKS), len(BLOCKS)
    raise AssertionError(kind)


DAMAGE = ["truncated block record", "truncated flood record", "garbage", "zero length",
          "flipped byte", "other version", "another block's record", "record deleted mid-way",
          "stray temporary files", "faces lost", "faces of another codec",
          "job.json of the old format", "unreadable job.json"]  # fmt: skip


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_scratch_resumes_to_the_uninterrupted_result(
    field, tmp_path, monkeypatch, caplog, kind
):
    url, ref, ref_labels = field
    _interrupted(url, tmp_path, monkeypatch)
    done = sorted(_records(tmp_path, "flood"))
    redo_blocks, redo_floods = _damage(kind, tmp_path, done)
    calls = {"b": [], "f": []}
    for tag, phase, name in (("b", blocks_phase, "pass_block"), ("f", flood_phase, "flood_block")):
        real = getattr(phase, name)
        monkeypatch.setattr(phase, name, lambda i, *a, _r=real, _t=tag, **k: (
            calls[_t].append(i), _r(i, *a, **k))[1])  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="bigpaint.segment.scratch"):
        got = _run(url, tmp_path)
    _assert_same(got, ref, ref_labels, tmp_path)
    assert len(calls["b"]) == redo_blocks == len(BLOCKS) - got.stats["blocks_resumed"]
    assert len(calls["f"]) == redo_floods == len(BLOCKS) - got.stats["flood_blocks_resumed"]
    warned = [r for r in caplog.records if r.name == "bigpaint.segment.scratch"]
    quiet = kind in ("stray temporary files", "record deleted mid-way")  # nothing was wrong
    assert len(warned) <= 2 and bool(warned) != quiet  # one line per pass at most
    assert all("\n" not in r.getMessage() for r in warned)
    strays = list((tmp_path / "scratch").glob("*/*.tmp"))
    assert len(strays) == (len(BLOCKS) if kind == "stray temporary files" else 0)


def test_a_scratch_of_other_parameters_is_refused(field, tmp_path, monkeypatch):
    url, _, _ = field
    _interrupted(url, tmp_path, monkeypatch)
    other = SegmentParams(min_distance=1, trajectory_thresholds=(0.0, 0.5), h=0.5)
    with pytest.raises(ConfigError, match="belongs to a segmentation with other inputs"):
        segment(open_field(url), other, labels=_writer(tmp_path / "labels.zarr"),
                scratch=str(tmp_path / "scratch"))  # fmt: skip


def test_records_of_other_parameters_are_dropped(field, tmp_path, monkeypatch):
    """Records whose shape fits another run (histogram width, saddles) are not used."""
    url, _, _ = field
    _interrupted(url, tmp_path, monkeypatch)
    root = tmp_path / "scratch"
    n_flood = len(_records(tmp_path, "flood"))
    assert len(sc.load_done(str(root), "flood", BLOCKS, width=5, saddles=True)) == n_flood
    for i, (width, saddles) in enumerate(((5, False), (3, True))):
        copy = tmp_path / f"copy{i}"
        shutil.copytree(root, copy / "scratch")
        for stage in ("blocks", "flood"):
            assert sc.load_done(str(copy / "scratch"), stage, BLOCKS, width=width,
                                saddles=saddles) == {}  # fmt: skip
            assert not _records(copy, stage)  # deleted


# ---------------------------------------------------------------- (c) round trips


def _assert_records_equal(a, b) -> None:
    assert type(a) is type(b)
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, RegionSums):
            _assert_records_equal(x, y)
        elif isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        elif isinstance(x, tuple):
            assert len(x) == len(y) == 3
            for u, v in zip(x, y, strict=True):
                assert u.dtype == v.dtype and u.tobytes() == v.tobytes()
        else:
            assert x == y and type(x) is type(y), f.name


@st.composite
def region_sums(draw):
    k, w = draw(st.integers(0, 6)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    e = draw(st.integers(0, 4))
    saddles = (
        (rng.integers(1, 10**9, e), rng.integers(1, 10**9, e), rng.standard_normal(e))
        if draw(st.booleans())
        else None
    )
    dmax = rng.standard_normal(k)
    dmax[: draw(st.integers(0, k))] = -np.inf  # a region's maximum before any voxel
    return RegionSums(
        ids=np.sort(rng.integers(1, 2**40, k)), count=rng.integers(0, 10**6, k),
        offset=rng.standard_normal((k, 3)), dsum=rng.standard_normal(k), dmax=dmax,
        hist_n=rng.integers(0, 10**6, (k, w)), hist_s=rng.standard_normal((k, w)),
        saddles=saddles,
    )  # fmt: skip


@given(sums=region_sums(), n=st.integers(0, 5), m=st.integers(0, 5), seed=st.integers(0, 99),
       index=st.tuples(*[st.integers(0, 300)] * 3))  # fmt: skip
@settings(max_examples=30)
def test_records_round_trip_exactly(tmp_path_factory, sums, n, m, seed, index):
    tmp = tmp_path_factory.mktemp("rec")
    rng = np.random.default_rng(seed)
    lo = rng.integers(0, 100, (n, 3))
    block = BlockResult(
        markers=np.sort(rng.integers(0, 10**9, m)), marker_piece=rng.integers(1, 10**9, m),
        pieces=np.sort(rng.integers(1, 10**9, n)), counts=rng.integers(1, 1000, n), lo=lo,
        hi=lo + rng.integers(1, 9, (n, 3)), touch=rng.random(n) < 0.5,
        sums=sums, seconds=float(rng.random()),
    )  # fmt: skip
    flood = FloodResult(sums, seconds=float(rng.random() * 1e3), span_seconds=0.0)
    for rec in (block, flood):
        path = str(tmp / f"{type(rec).__name__}.npz")
        sc.write_record(path, rec, index)
        _assert_records_equal(sc.read_record(path, type(rec), index), rec)
        with pytest.raises(RecordError, match="record of"):  # another block's name
            sc.read_record(path, type(rec), (index[0] + 1, *index[1:]))
        other = FloodResult if isinstance(rec, BlockResult) else BlockResult
        with pytest.raises(RecordError, match="record of"):
            sc.read_record(path, other, index)
    assert sorted(os.listdir(tmp)) == ["BlockResult.npz", "FloodResult.npz"]  # no temporaries


def test_invalid_results_are_refused():
    k = np.zeros(2, np.int64)
    good = dict(ids=k, count=k, offset=np.zeros((2, 3)), dsum=np.zeros(2), dmax=np.zeros(2),
                hist_n=np.zeros((2, 1), np.int64), hist_s=np.zeros((2, 1)))  # fmt: skip
    RegionSums(**good)
    for name, bad in (("count", np.zeros(2)), ("offset", np.zeros((2, 2))), ("ids", [1, 2]),
                      ("hist_s", np.zeros((2, 2))), ("hist_n", np.zeros((2, 0), np.int64)),
                      ("dsum", np.zeros(3)), ("dmax", np.zeros(2, np.float32))):  # fmt: skip
        with pytest.raises(RecordError, match=name.split("_")[0]):
            RegionSums(**{**good, name: bad})
    with pytest.raises(RecordError, match="saddles"):
        RegionSums(**good, saddles=(k, k[:1], np.zeros(2)))
    sums = RegionSums(**good)
    with pytest.raises(RecordError, match="seconds"):
        FloodResult(sums, seconds=float("nan"), span_seconds=0.0)
    with pytest.raises(RecordError, match="touch"):
        BlockResult(k, k, k, k, np.zeros((2, 3), np.int64), np.zeros((2, 3), np.int64),
                    touch=np.zeros(2, np.int64), sums=sums, seconds=0.0)  # fmt: skip


def test_a_run_keeps_exactly_what_it_returned(field, tmp_path, monkeypatch):
    """Every result a real run saves loads back equal, field by field, bitwise."""
    url, ref, ref_labels = field
    saved = {}
    real = sc.save

    def keep(scratch, stage, index, result):
        saved[stage, tuple(index)] = result
        real(scratch, stage, index, result)

    monkeypatch.setattr(sc, "save", keep)
    got = _run(url, tmp_path)
    _assert_same(got, ref, ref_labels, tmp_path)
    assert len(saved) == 2 * len(BLOCKS)
    root = str(tmp_path / "scratch")
    for stage in ("blocks", "flood"):
        loaded = sc.load_done(root, stage, BLOCKS, width=5, saddles=True)
        assert set(loaded) == set(BLOCKS)
        for b in BLOCKS:
            _assert_records_equal(loaded[b], saved[stage, b])


def test_a_killed_writer_leaves_no_record(tmp_path, monkeypatch):
    """os.replace is the commit point: a write that dies before it leaves the old record
    (or none), and no half record under the final name."""
    rec = FloodResult(RegionSums(*(np.zeros(0, np.int64),) * 2, np.zeros((0, 3)),
                                 np.zeros(0), np.zeros(0), np.zeros((0, 1), np.int64),
                                 np.zeros((0, 1))), seconds=1.0, span_seconds=0.0)  # fmt: skip
    path = str(tmp_path / "0_0_0.npz")

    def dies(*_a):
        raise Killed

    monkeypatch.setattr(os, "replace", dies)
    with pytest.raises(Killed):
        sc.write_record(path, rec, (0, 0, 0))
    assert os.listdir(tmp_path) == []  # the temporary file is removed too
    monkeypatch.undo()
    sc.write_record(path, rec, (0, 0, 0))
    _assert_records_equal(sc.read_record(path, FloodResult, (0, 0, 0)), rec)


# ---------------------------------------------------------------- the CLI with --workdir


def test_the_cli_resumes_a_damaged_planted_workdir_scratch(tmp_path):
    _, d = blobs(shape=SHAPE, n=25, seed=1, big=7.0, tube=2.5)
    dist = write_array(str(tmp_path / "dist.zarr"), d, chunks=CHUNK, meta=META).url
    (tmp_path / "cluster.yaml").write_text(THREADS)
    work = tmp_path / "work"
    work.mkdir()
    params = SegmentParams(trajectory_thresholds=tuple(np.linspace(0.0, 1.0, 5)))
    ref = segment_field(dist, str(tmp_path / "ref.parquet"), params,
                        labels=str(tmp_path / "ref-labels.zarr"))  # fmt: skip
    args = [tmp_path / "dist.zarr", tmp_path / "out.parquet", tmp_path / "labels.zarr",
            tmp_path / "cluster.yaml"]  # fmt: skip

    def run(log: Path, delay: float, **kw) -> subprocess.Popen:
        cmd = [sys.executable, str(JOB), *map(str, args), str(log), str(delay), "--workdir",
               str(work)]  # fmt: skip
        return subprocess.Popen(cmd, **kw)

    # run 1: killed in the flood pass
    log1 = tmp_path / "run1.log"
    proc = run(log1, 0.1, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(_log(log1)[1]) < 8:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    b1, f1 = _log(log1)
    assert len(b1) == len(BLOCKS) and 8 <= len(f1) < len(BLOCKS), "kill outside the flood pass"
    (root,) = work.iterdir()  # the job's scratch, under --workdir
    flood_done = sorted((root / "flood").glob("*.npz"))
    assert len(flood_done) >= 6
    # damage it (a flood record truncated, a block record emptied: that block's flood goes
    # with it) and plant pickles under the old and plausible names
    flood_done[0].write_bytes(flood_done[0].read_bytes()[:100])
    emptied = flood_done[1].name
    (root / "blocks" / emptied).write_bytes(b"")
    marker = tmp_path / "pwned"
    _plant(root, _payload(marker))
    # run 2: completes
    log2 = tmp_path / "run2.log"
    proc = run(log2, 0, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, out
    assert not marker.exists(), "a planted pickle was loaded"
    assert "recomputing" in out  # one warning line per pass named the dropped records
    b2, f2 = _log(log2)
    assert b2 == [emptied[:-4].replace("_", ",")]  # the only block pass redone
    assert len(f2) == len(BLOCKS) - len(flood_done) + 2  # the truncated and emptied blocks'
    assert_same_outputs(tmp_path, ref)
    assert not list(work.iterdir()), "scratch left behind"
