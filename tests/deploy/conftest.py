"""Stand-in SLURM for the deployment tests: ``sbatch``, ``squeue``, ``scancel`` and ``srun``
from ``tests/deploy/bin`` on PATH, which run job scripts as local processes (see each
script's header). Every job still alive at the end of a test is cancelled."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path(__file__).resolve().parent / "bin"
ROOT = Path(__file__).resolve().parents[2]


class FakeSlurm:
    """The stand-in scheduler's state directory, with helpers to read it."""

    def __init__(self, jobs: Path) -> None:
        self.jobs = jobs

    def sbatch(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
        out = subprocess.run(
            ["sbatch", "--parsable", *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def ids(self) -> list[str]:
        return sorted(p.name[4:-3] for p in self.jobs.glob("job-*.sh"))

    def state(self, job: str) -> str:
        return (self.jobs / f"job-{job}.state").read_text().strip()

    def name(self, job: str) -> str:
        return (self.jobs / f"job-{job}.name").read_text().strip()

    def alive(self) -> list[str]:
        out = subprocess.run(["squeue", "-h"], capture_output=True, text=True, check=True)
        return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]

    def wait(self, job: str, timeout: float = 120.0) -> int:
        """Wait for ``job`` to end; its exit status (-1 when it was cancelled)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if job not in self.alive():
                rc = self.jobs / f"job-{job}.rc"
                return int(rc.read_text()) if rc.exists() else -1
            time.sleep(0.2)
        raise TimeoutError(f"stand-in job {job} still running after {timeout} s")

    def wait_until(self, predicate, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.2)
        return predicate()


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlurm]:
    jobs = tmp_path / "slurm-state"
    jobs.mkdir()
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(jobs))
    slurm = FakeSlurm(jobs)
    try:
        yield slurm
    finally:
        left = slurm.alive()
        if left:
            subprocess.run(["scancel", *left], check=False)
