"""The scaling suite (benchmarks/scaling.py) at tiny sizes, so that it cannot rot."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scaling.py"


@pytest.fixture(scope="module")
def scaling():
    spec = importlib.util.spec_from_file_location("bench_scaling", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_weak_grid_doubles_the_volume_per_worker(scaling) -> None:
    for base in (12, 64, 128, 256):
        for w in (1, 2, 4, 8):
            n = scaling.weak_grid(base, w)
            assert n % 2 == 0
            assert abs(n - base * w ** (1 / 3)) <= 1  # the nearest even side
            if base >= 64:
                assert abs(n**3 / (w * base**3) - 1) < 0.05
    assert scaling.weak_grid(128, 8) == 256


def test_plan_covers_every_case_and_skips_chunks_bigger_than_the_box(scaling) -> None:
    argv = ["--out", "x", "--sizes", "16", "32", "--chunks", "8", "32", "--workers", "1", "2",
            "--weak-base", "16", "--weak-chunks", "8"]  # fmt: skip
    args = scaling.parse_args(argv)
    strong, weak = scaling.plan(args)
    assert len(strong) == len(set(strong)) == 4 * 2 * 3  # stages x workers x (16/8, 32/8, 32/32)
    assert scaling.Case("power", 16, 32, 1) not in strong
    assert {(c.grid, c.workers) for c in weak} == {(16, 1), (20, 2)}
    capped, _ = scaling.plan(scaling.parse_args([*argv, "--paint-max-grid", "16"]))
    assert set(strong) - set(capped) == {c for c in strong if c.stage == "paint" and c.grid == 32}


def test_consistency_flags_a_result_that_differs(scaling) -> None:
    base = {"stage": "power", "grid": 16, "P0": [1.0, 2.0, 3.0]}
    same = {**base, "P0": [1.0, 2.0, 3.0 * (1 + 1e-7)]}
    other = {**base, "P0": [1.0, 2.0, 3.1]}
    assert scaling.consistency([base, same]) == {"power-16": True}
    assert scaling.consistency([base, same, other]) == {"power-16": False}
    seg = {"stage": "segment", "grid": 16, "regions": 5, "volume_digest": "a"}
    assert scaling.consistency([seg, {**seg, "regions": 6}]) == {"segment-16": False}


def test_speedups_and_efficiencies_are_relative_to_one_worker(scaling) -> None:
    recs = [
        {"stage": "deposit", "grid": 16, "chunks": 8, "workers": 1, "wall_s": 4.0},
        {"stage": "deposit", "grid": 16, "chunks": 8, "workers": 2, "wall_s": 2.5},
    ]
    rows = scaling.strong_table(recs)
    assert [r["speedup"] for r in rows] == [1.0, 1.6]
    assert [r["efficiency"] for r in rows] == [1.0, 0.8]
    weak = [
        {**recs[0], "voxels_per_s": 100.0},
        {**recs[1], "grid": 20, "voxels_per_s": 150.0},
    ]
    assert [r["efficiency"] for r in scaling.weak_table(weak)] == [1.0, 0.75]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--workers", "2"], "--workers must include 1"),
        (["--sizes", "0"], "must be positive"),
        (["--stages", "fft"], "invalid choice"),
    ],
)
def test_bad_arguments_fail_with_one_line(tmp_path: Path, argv: list[str], message: str) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert message in proc.stderr.strip().splitlines()[-1]
    assert not out.exists()


def test_suite_runs_end_to_end_at_tiny_sizes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["--sizes", "12", "--chunks", "6", "--workers", "1", "2", "--weak-base", "12",
            "--weak-chunks", "6", "--memory-limit", "4GiB", "--no-warmup"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "scaling.json").read_text())
    got = {(r["stage"], r["grid"], r["chunks"], r["workers"]) for r in report["measurements"]}
    stages = ("deposit", "power", "paint", "segment")
    want = {(s, 12, 6, w) for s in stages for w in (1, 2)}
    want |= {(s, 16, 6, 2) for s in stages}  # weak scaling: 12^3 -> 16^3 on two workers
    assert got == want
    for r in report["measurements"]:
        assert r["wall_s"] > 0
        assert np.isclose(r["voxels_per_s"], r["grid"] ** 3 / r["wall_s"])
        assert len(r["worker_peak_rss_bytes"]) == r["workers"]
        assert min(r["worker_peak_rss_bytes"]) >= min(r["worker_idle_rss_bytes"]) > 0
    # chunking and worker count never change the answer
    assert report["consistent"] == {f"{s}-{n}": True for s in stages for n in (12, 16)}
    assert len(report["strong_scaling"]) == 8
    assert sorted(r["grid"] for r in report["weak_scaling"] if r["stage"] == "paint") == [12, 16]
    for name in ("scaling_strong.png", "scaling_weak.png", "scaling_throughput.png"):
        assert (out / name).stat().st_size > 10_000
        assert name in report["figures"]
    assert not (out / "work").exists()  # inputs removed without --keep-inputs
    assert "results agree across chunkings and worker counts" in proc.stdout
    table = (out / "scaling.md").read_text()
    assert table.count("| paint |") == 3 + 2  # all measurements, then the weak-scaling rows
    assert "Results agree across chunk sizes" in table
