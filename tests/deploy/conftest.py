"""SLURM for the deployment tests, real where it can be, stand-in where it cannot.

``real_slurm``: a single-node SLURM (:mod:`tests.deploy.slurm`) started once per test run
by the first test that asks for it and stopped, with every process it started, at the end;
``SLURM_CONF`` points at it during each test that uses it. Without root or the packages
those tests skip with the reason, or fail with ``--runslurm``. The terminal summary (in
tests/conftest.py) shows ``sinfo`` from the moment the node was idle and each ``slurm``
test's outcome, so a CI log shows that they ran against the real thing.

``fake_slurm``: stand-in ``sbatch``, ``squeue`` and ``scancel`` from
``tests/deploy/bin`` on PATH, which run job scripts as local processes (see each script's
header), for what one CPU node cannot host: GPU resources. Every job still alive at the end
of a test is cancelled.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.slurm import SingleNodeSlurm, unavailable

BIN = Path(__file__).resolve().parent / "bin"
ROOT = Path(__file__).resolve().parents[2]
_SINFO = pytest.StashKey[str]()


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


@pytest.fixture(scope="session")
def slurm_can_start(request: pytest.FixtureRequest) -> None:
    """Skip (fail with ``--runslurm``) where a single-node SLURM cannot start."""
    reason = unavailable()
    if reason:
        if request.config.getoption("--runslurm"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def _single_node_slurm(
    slurm_can_start: None,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SingleNodeSlurm]:
    slurm = SingleNodeSlurm(tmp_path_factory.mktemp("slurm")).start()
    request.config.stash[_SINFO] = slurm.sinfo()
    try:
        yield slurm
    finally:
        slurm.stop()


@pytest.fixture
def real_slurm(
    _single_node_slurm: SingleNodeSlurm,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> SingleNodeSlurm:
    """The session's single-node SLURM, with its clients pointed at it for this test (the
    sbatch of dask-jobqueue, of driver jobs and of bigpaint's squeue polls)."""
    for key, value in _single_node_slurm.env().items():
        monkeypatch.setenv(key, value)
    # reports carry user properties to the pytest-xdist controller, which writes the summary
    request.node.user_properties.append(("sinfo", request.config.stash.get(_SINFO, "")))
    return _single_node_slurm
