"""Running pipelines: finished stages skipped, a killed middle stage resumed to identical
outputs, a changed stage refused unless --overwrite (then only it and its readers redone)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bigpaint.cli import cli
from tests.done_markers import done_so_far

from .conftest import TINY, assert_same_outputs, bigpaint, run_outputs, tiny_config, write_config


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _stage_lines(output: str) -> dict[str, str]:
    """stage name -> its last status word ("skipped", "start", "resuming", ...)."""
    status = {}
    for line in output.splitlines():
        line = line[line.find("[run] ") :]  # after the time stamp
        if line.startswith("[run] ") and "/" in line.split()[1]:
            name, rest = line.split()[2], line.split(": ", 1)[1]
            status[name] = status.get(name, "") + "|" + rest
    return status


def test_second_run_skips_every_stage_and_changes_nothing(reference_run, run_path):
    _, reference = reference_run
    shutil.copytree(reference, run_path)
    res = _cli("run", str(TINY), "--out", str(run_path))
    assert res.exit_code == 0, res.output
    lines = _stage_lines(res.output)
    assert len(lines) == 10 and all("finished earlier, skipped" in v for v in lines.values())
    assert "0 stages run, 10 skipped" in res.output
    assert_same_outputs(run_path, reference)


def test_raw_spectra_stages_say_the_truth_keeps_its_shot_noise(reference_run):
    """A power or bispectrum stage compares raw spectra (an expectation against a Poisson
    truth): its headline numbers must say so next to themselves, not leave the reader to
    set them against the verdict's noise-free ones."""
    _, reference = reference_run
    stages = json.loads((reference / "report" / "summary.json").read_text())["stages"]
    power, bispectrum = stages["power"]["shot noise"], stages["bispectrum"]["shot noise"]
    assert power.startswith("kept in P_true (Poisson V/N = ") and "raw" in power
    assert bispectrum.startswith("kept in B_true") and "raw" in bispectrum
    page = (reference / "report" / "index.html").read_text()
    assert "T and r_c here are raw" in page


def _done_blocks(field: Path) -> int:
    return int(done_so_far(field).sum())


def _killed_in(stage: str, run: Path) -> bool:
    """Is the run inside ``stage`` with part of its work saved (the moment to kill it)?"""
    if stage == "painted":  # Field completion markers: some blocks, not all
        return 16 <= _done_blocks(run / "painted" / "painted.zarr") < 512
    return (run / "painter" / "state.pt").exists()  # training state saved at step 5, 10, ...


@pytest.mark.parametrize(
    "stage",
    [
        "painted",  # block-level resume from the Field's completion markers
        pytest.param("painter", marks=pytest.mark.slow),  # training resumes from state.pt
    ],
)
def test_killed_middle_stage_resumes_to_identical_outputs(reference_run, run_path, stage):
    _, reference = reference_run
    proc = bigpaint("run", str(TINY), "--out", str(run_path))
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not _killed_in(stage, run_path):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    record = (run_path / "_pipeline" / f"{stage}.json").read_text()
    assert '"state": "started"' in record, "the kill must land inside the stage"
    if stage == "painted":
        assert 16 <= _done_blocks(run_path / "painted" / "painted.zarr") < 512

    again = bigpaint("run", str(TINY), "--out", str(run_path))
    log, _ = again.communicate(timeout=600)
    assert again.returncode == 0, log
    lines = _stage_lines(log)
    names = list(lines)
    assert "resuming" in lines[stage]
    assert all("skipped" in lines[n] for n in names[: names.index(stage)])
    assert_same_outputs(run_path, reference)


def test_changed_stage_is_refused_then_redone_with_its_readers(reference_run, run_path, tmp_path):
    _, reference = reference_run
    shutil.copytree(reference, run_path)
    before = run_outputs(run_path)
    changed = write_config(tmp_path / "changed.yaml", tiny_config(run_path, hmf={"bins": 3}))
    res = _cli("run", str(changed))
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("bigpaint: error: stage 'hmf'")
    assert "--overwrite" in lines[0]
    assert run_outputs(run_path) == before, "a refused run changed the run directory"

    res = _cli("run", str(changed), "--overwrite")
    assert res.exit_code == 0, res.output
    status = _stage_lines(res.output)
    redone = {n for n, v in status.items() if "done in" in v}
    assert redone == {"hmf", "report"}
    after = run_outputs(run_path)
    assert after["hmf/hmf.csv"] != before["hmf/hmf.csv"]
    assert after["painted/painted.zarr/zarr.json"] == before["painted/painted.zarr/zarr.json"]
