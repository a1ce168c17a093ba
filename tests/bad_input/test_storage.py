"""Damaged stores, damaged chunks, read-only and full file systems: one line naming the store
(and the chunk), the fix, and nothing changed.

Read-only directories are real: a read-only tmpfs mounted inside the workspace when the tests
run as root (root ignores permission bits, so ``chmod`` would not stop it), ``chmod 0o555``
otherwise. A full disk is simulated by making each block write fail as a full device does
(``OSError`` 28, naming no path), which works on any machine.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from bigpaint.errors import DamagedStoreError, StorageError
from bigpaint.field import FieldWriter, create_field

from .conftest import META, refused, refused_api

CHUNK = Path("delta") / "c" / "0" / "1" / "0"  # chunk (0, 1, 0) of in.zarr's variable


def _garbage(path: Path) -> None:
    path.write_bytes(b"not what was written here\n")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:20])


def _set_attr(store: Path, key: str, value: object) -> None:
    meta = store / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"][key] = value
    meta.write_text(json.dumps(doc))


@contextlib.contextmanager
def _read_only_dir(path: Path) -> Iterator[Path]:
    """``path`` as an empty directory nobody can write to (see the module docstring)."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M,ro", "tmpfs", str(path)])
    if mounted.returncode != 0:
        pytest.skip("running as root without the right to mount a read-only tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.fixture
def ro(ws: Path) -> Iterator[Path]:
    with _read_only_dir(ws / "ro") as path:
        yield path


# ---------------------------------------------------------------- damaged Field metadata


def test_garbage_array_metadata(ws):
    _garbage(ws / "in.zarr" / "delta" / "zarr.json")
    refused(
        ws,
        ["smooth", "in.zarr", "o.zarr", "--sigma-mpc", "4"],
        r"in\.zarr is damaged: the metadata of its array 'delta' \(in\.zarr/delta/zarr\.json\) "
        r"cannot be read .*delete it and re-run",
    )


def test_garbage_group_metadata(ws):
    _garbage(ws / "in.zarr" / "zarr.json")
    refused(ws, ["info", "in.zarr"], r"in\.zarr is damaged: its group metadata .*rewritten")


def test_garbage_coordinate_metadata(ws):
    _garbage(ws / "in.zarr" / "x" / "zarr.json")
    refused(
        ws,
        ["smooth", "in.zarr", "o.zarr", "--sigma-mpc", "4"],
        r"in\.zarr is damaged: the metadata of its array 'x'",
    )


def test_missing_completion_markers(ws):
    import shutil

    shutil.rmtree(ws / "in.zarr" / "_bigpaint" / "done")
    refused(ws, ["info", "in.zarr"], r"in\.zarr is damaged: its array '_bigpaint/done' is missing")


def test_garbage_completion_marker_chunk(ws):
    """An unfinished Field whose marker chunk is garbage: ``info`` names the chunk."""
    w = create_field(str(ws / "half.zarr"), shape=(8, 8, 8), chunks=4, meta=META)
    w.write_block((0, 0, 0), np.zeros((4, 4, 4), "f4"))
    _garbage(ws / "half.zarr" / "_bigpaint" / "done" / "c" / "0" / "0" / "0")
    refused(
        ws,
        ["info", "half.zarr"],
        r"half\.zarr is damaged: chunk \(0, 0, 0\) of variable '_bigpaint/done' "
        r"\(half\.zarr/_bigpaint/done/c/0/0/0\)",
    )


def test_variable_attribute_names_a_one_dimensional_array(ws):
    _set_attr(ws / "in.zarr", "bigpaint_variable", "x")
    refused(
        ws,
        ["smooth", "in.zarr", "o.zarr", "--sigma-mpc", "4"],
        r"data variable 'x' has 1 dimensions; a Field is 3-D",
    )


def test_variable_attribute_names_a_missing_array(ws):
    _set_attr(ws / "in.zarr", "bigpaint_variable", "density")
    refused(ws, ["info", "in.zarr"], r"in\.zarr is damaged: its array 'density' is missing")


# ---------------------------------------------------------------- damaged chunks, read by each stage


_CHUNK_LINE = (
    r"in\.zarr is damaged: chunk \(0, 1, 0\) of variable 'delta' \(.*in\.zarr/delta/c/0/1/0\) "
    r"cannot be decoded \(RuntimeError: Zstd decompression error.*\); it must be rewritten"
)


def test_truncated_chunk_read_by_smooth(ws):
    from bigpaint.filters import smooth

    _truncate(ws / "in.zarr" / CHUNK)
    refused_api(ws, lambda: smooth("in.zarr", "o.zarr", 4.0), _CHUNK_LINE, DamagedStoreError)


def test_garbage_chunk_read_by_stats(ws):
    from bigpaint.stats import power_spectrum

    _garbage(ws / "in.zarr" / CHUNK)
    refused_api(ws, lambda: power_spectrum("in.zarr", mas="none"), _CHUNK_LINE, DamagedStoreError)


def test_garbage_chunk_read_by_paint(ws):
    from bigpaint.paint import paint_field

    _garbage(ws / "in.zarr" / CHUNK)
    refused_api(
        ws,
        lambda: paint_field(str(ws / "halo.pt"), "in.zarr", "o.zarr", memory_budget="64MiB"),
        _CHUNK_LINE,
        DamagedStoreError,
    )


def test_garbage_chunk_read_by_segment(ws):
    """Segmenting keeps its resumable scratch (``.seg.parquet.segment-*``) when a block fails,
    so only the files that existed before are required to be untouched here."""
    from bigpaint.segment.job import segment_field

    _garbage(ws / "dist.zarr" / "distance" / "c" / "1" / "0" / "1")
    before = {p: p.read_bytes() for p in ws.rglob("*") if p.is_file()}
    with pytest.raises(DamagedStoreError) as info:
        segment_field("dist.zarr", "seg.parquet", rho_bar=1e11)
    assert re.fullmatch(
        r"dist\.zarr is damaged: chunk \(1, 0, 1\) of variable 'distance' "
        r"\(dist\.zarr/distance/c/1/0/1\) cannot be decoded \(.*\); it must be rewritten: .*",
        str(info.value),
    ), info.value
    assert {p: p.read_bytes() for p in before} == before
    assert not (ws / "seg.parquet").exists()


# ---------------------------------------------------------------- damaged checkpoints and states


def test_truncated_checkpoint_weights(ws):
    _truncate(ws / "halo.pt" / "weights.pt")
    refused(
        ws,
        ["paint", "--checkpoint", "halo.pt", "in.zarr", "o.zarr"],
        r"halo\.pt/weights\.pt cannot be read .*damaged; copy it again or re-run bigpaint train",
    )


def test_binary_checkpoint_metadata(ws):
    (ws / "halo.pt" / "metadata.json").write_bytes(bytes(range(256)))
    refused(
        ws,
        ["paint", "--checkpoint", "halo.pt", "in.zarr", "o.zarr"],
        r"halo\.pt/metadata\.json is not JSON text; the checkpoint is damaged",
    )


def _train_config(ws: Path) -> Path:
    cfg = ws / "train.yaml"
    cfg.write_text(
        "family: halo-painter\n"
        "model: {filters: 4, blocks: 1, pointwise_layers: 1}\n"
        "objective: {kind: regression, supervised_loss: mse}\n"
        "data:\n"
        "  inputs: [in.zarr]\n"
        "  targets: [other.zarr]\n"
        "  patch: 4\n"
        "  validation: {origin: [0, 0, 0], size: 8}\n"
        "run: {out: run, max_steps: 2, device: cpu}\n"
    )
    (ws / "run").mkdir()
    return cfg


def test_damaged_training_state(ws):
    cfg = _train_config(ws)
    (ws / "run" / "state.pt").write_bytes(b"PK\x03\x04 half a zip archive")
    refused(
        ws,
        ["train", cfg],
        r"the resume state run/state\.pt cannot be read \(.*\): it is damaged; delete it to "
        r"restart the run from step 0 .*or give another run\.out",
    )


def test_training_state_of_something_else(ws):
    cfg = _train_config(ws)
    torch.save({"weights": torch.zeros(3)}, ws / "run" / "state.pt")
    refused(
        ws,
        ["train", cfg],
        r"run/state\.pt is not a bigpaint training state \(it lacks 'config'\); delete it",
    )


# ---------------------------------------------------------------- read-only and full file systems


def test_read_only_output_directory(ws, ro):
    refused(
        ws,
        ["smooth", "in.zarr", "ro/o.zarr", "--sigma-mpc", "4"],
        r"cannot write .*ro/.*(read-only|permission denied).*; write to a",
    )


def test_read_only_spill_directory(ws, ro):
    refused(
        ws,
        [
            *("deposit", "particles.npy", "o.zarr", "--grid", "16", "--box-size", "64"),
            *("--spill-dir", "ro/spill"),
        ],
        r"--spill-dir ro/spill: cannot write .*/ro: (the file system is read-only|permission)",
    )


def test_read_only_workdir(ws, ro):
    refused(
        ws,
        ["segment", "dist.zarr", "seg.parquet", "--workdir", "ro/wd"],
        r"--workdir ro/wd: cannot write .*/ro: (the file system is read-only|permission)",
    )


def test_full_disk_while_writing_blocks(ws, monkeypatch):
    """Every block write fails as on a full device: ``OSError(28)`` with no path in it."""
    from bigpaint.filters import smooth

    def full(self, index, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(FieldWriter, "write_block", full)
    err = refused_api(
        ws,
        lambda: smooth("in.zarr", "o.zarr", 4.0),
        r"cannot write o\.zarr: no space left on the device; free space there",
        StorageError,
    )
    assert err.errno == errno.ENOSPC


def test_full_disk_while_creating_the_store(ws, monkeypatch):
    """The device fills up after a few of the new store's metadata files: zarr's write fails
    with ``OSError(28)`` naming no path. The half-made store is removed."""
    import zarr.storage._local as local

    from bigpaint.filters import smooth

    real_put, written = local._put, []

    def filling(path, value, exclusive=False):
        if len(written) >= 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(path)
        return real_put(path, value, exclusive)

    monkeypatch.setattr(local, "_put", filling)
    refused_api(
        ws,
        lambda: smooth("in.zarr", "o.zarr", 4.0),
        r"cannot write o\.zarr: no space left on the device",
        StorageError,
    )
    assert written and all("o.zarr" in str(p) for p in written)
