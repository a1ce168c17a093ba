"""A whole pipeline on 32^3 boxes (``tiny.yaml``) and helpers to compare two runs' outputs."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

TINY = Path(__file__).with_name("tiny.yaml")

# Keys that hold wall-clock times and differ between two runs by nature, and the tokens
# derived from them: job tokens (they include the inputs' finish times) and checkpoint
# hashes (the checkpoint metadata records the training wall time; the weights are compared).
_VOLATILE = re.compile(
    r"(time|seconds|per_second|created|finished|elapsed|_at$|_s$|job|checkpoint_hash)"
)


def tiny_config(out: Path, **stage_params: dict[str, Any]) -> dict[str, Any]:
    """``tiny.yaml`` as a mapping with ``out`` set and some stages' params updated."""
    data = yaml.safe_load(TINY.read_text())
    data["out"] = str(out)
    for st in data["stages"]:
        if st["name"] in stage_params:
            st["params"] = {**copy.deepcopy(st["params"]), **stage_params[st["name"]]}
    return data


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def bigpaint(*args: str, **kw: Any) -> subprocess.Popen:
    """``python -m bigpaint ARGS`` in a new session (so it can be killed with its workers)."""
    return subprocess.Popen(
        [sys.executable, "-m", "bigpaint", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kw,
    )


def _stable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items() if not _VOLATILE.search(str(k))}
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    return obj


def _content(path: Path, rel: str) -> Any:
    """What must be identical between two runs of one config, per file type."""
    raw = path.read_bytes()
    if rel == "report/index.html":  # stage timings sit in one marked block
        from bigpaint.pipeline.report import TIMINGS_BEGIN, TIMINGS_END

        text = raw.decode()
        return text[: text.index(TIMINGS_BEGIN)] + text[text.index(TIMINGS_END) :]
    if path.suffix == ".json":
        data = json.loads(raw)
        if path.name == "zarr.json" and "attributes" in data:  # a Field's records, nested
            from bigpaint.field_meta import decode_attrs

            data["attributes"] = decode_attrs(data["attributes"])
        return _stable(data)
    if path.name.endswith("metrics.csv"):  # the elapsed_s column is wall time
        rows = list(csv.DictReader(io.StringIO(raw.decode())))
        return [_stable(r) for r in rows]
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        meta = {k: _stable(json.loads(v)) for k, v in (table.schema.metadata or {}).items()
                if k == b"bigpaint"}  # fmt: skip
        sink = pa.BufferOutputStream()  # Arrow IPC bytes: equal for equal data, NaN included
        with pa.ipc.new_stream(sink, table.schema.remove_metadata()) as w:
            w.write_table(table.replace_schema_metadata(None))
        return sink.getvalue().to_pybytes(), meta
    if path.suffix == ".pt":  # torch.save bytes vary for equal contents
        import torch

        return _tensors(torch.load(path, map_location="cpu", weights_only=True))
    return raw


def _tensors(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_tensors(v) for v in obj]
    if hasattr(obj, "numpy"):
        return (str(obj.dtype), tuple(obj.shape), obj.numpy().tobytes())
    return obj


def run_outputs(run_dir: Path) -> dict[str, Any]:
    """Every output of a run (records, scratch and timing tables left out), comparable."""
    out = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir).as_posix()
        if (
            not path.is_file()
            or rel.startswith("_pipeline/")
            or "/work/" in rel
            or "/scratch/" in rel
            or rel == "report/timings.csv"
        ):
            continue
        out[rel] = _content(path, rel)
    return out


def assert_same_outputs(a: Path, b: Path) -> None:
    oa, ob = run_outputs(a), run_outputs(b)
    assert sorted(oa) == sorted(ob), set(oa) ^ set(ob)
    differ = [k for k in oa if oa[k] != ob[k]]
    assert not differ, f"outputs differ: {differ}"


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> tuple[Path, Path]:
    """One uninterrupted run of ``tiny.yaml`` through the CLI, shared by the tests.

    Returns ``(run_path, reference)``: the run was made at ``run_path`` and moved to
    ``reference``, so a test can run again at ``run_path`` (outputs record their own paths)
    and compare with the reference.
    """
    base = tmp_path_factory.mktemp("pipeline")
    run_path, reference = base / "run", base / "reference"
    proc = bigpaint("run", str(TINY), "--out", str(run_path))
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    run_path.rename(reference)
    return run_path, reference


@pytest.fixture
def run_path(reference_run) -> Path:
    """The (empty) path the reference was made at; emptied again after the test."""
    path, _ = reference_run
    yield path
    shutil.rmtree(path, ignore_errors=True)
