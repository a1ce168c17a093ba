"""Shared fixtures: tiny periodic boxes with deliberately uneven chunks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "bigpaint",
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    print_blob=True,
)
settings.load_profile("bigpaint")

META = {"box_size": 100.0, "kind": "delta", "units": "1", "redshift": 0.0}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")
    parser.addoption("--rungpu", action="store_true", help="run tests that need a CUDA GPU")
    parser.addoption(
        "--runslurm",
        action="store_true",
        help="fail, not skip, the slurm tests when a single-node SLURM cannot start here",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # One single-node SLURM per test process: under pytest-xdist every slurm test goes to
    # the same worker (``--dist loadgroup``), so only one SLURM starts.
    for item in items:
        if "slurm" in item.keywords:
            item.add_marker(pytest.mark.xdist_group("slurm"))
    for marker, flag in (("slow", "--runslow"), ("gpu", "--rungpu")):
        if config.getoption(flag):
            continue
        skip = pytest.mark.skip(reason=f"needs {flag}")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The real-SLURM tests' section: ``sinfo`` once the node was up and each test's outcome,
    so a CI log shows they ran against the real thing. It lives here, not in tests/deploy,
    because a pytest-xdist controller loads only this conftest; the ``sinfo`` text travels
    in each slurm test's report (``user_properties``, set by the ``real_slurm`` fixture)."""
    ran = [
        r
        for outcome in ("passed", "failed", "error")
        for r in terminalreporter.stats.get(outcome, [])
        if r.when == "call" and "slurm" in r.keywords
    ]
    if not ran:
        return
    sinfo = next(
        (v for r in ran for k, v in getattr(r, "user_properties", ()) if k == "sinfo" and v),
        None,
    )
    terminalreporter.section("tests on a real single-node SLURM")
    if sinfo is not None:
        terminalreporter.write_line("sinfo once the node was up:")
        for line in sinfo.splitlines():
            terminalreporter.write_line(f"  {line}")
    for r in ran:
        terminalreporter.write_line(f"{r.outcome.upper():7} {r.nodeid} ({r.duration:.1f} s)")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def box16(rng: np.random.Generator) -> np.ndarray:
    """A 16^3 float32 field (the classic uneven-chunk fixture: 6/5/5 chunks)."""
    return rng.standard_normal((16, 16, 16)).astype("f4")


@pytest.fixture
def field16(tmp_path: Path, box16: np.ndarray) -> str:
    """A complete 16^3 Field on disk in 6x5x5 write blocks."""
    from bigpaint.field import write_array

    url = str(tmp_path / "in.zarr")
    write_array(url, box16, chunks=(6, 5, 5), meta=META)
    return url


def tree_digest(path: str | Path) -> str:
    """Hash of every file's path and bytes under ``path`` (to prove nothing was touched)."""
    h = hashlib.sha256()
    root = Path(path)
    if not root.exists():
        return "missing"
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            p = Path(dirpath) / f
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(autouse=True)
def _no_default_client_left(request: pytest.FixtureRequest):
    """A test that leaves a default Dask client behind sends every later test's work to its
    workers (a monkeypatch or an in-memory store then silently misses): fail it instead."""
    yield
    from distributed import default_client

    try:
        client = default_client()
    except ValueError:
        return
    client.close()
    pytest.fail(f"{request.node.nodeid} left a default Dask client behind: {client}")
