"""Config files and options that are not what they claim: binary files given as YAML, keys
given twice, sizes that are junk. One line naming the file (and line) or option, and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bigpaint.config import SlurmClusterConfig, parse_config, read_yaml
from bigpaint.errors import ConfigError

from .conftest import refused

BINARY = Path(shutil.which("ls") or "/bin/ls")
SMOOTH = ["smooth", "in.zarr", "o.zarr", "--sigma-mpc", "4"]


@pytest.fixture
def program(ws: Path) -> Path:
    """A copy of a real program (an ELF binary) in the workspace."""
    if not BINARY.is_file():
        pytest.skip("no /bin/ls to copy")
    dst = ws / "program"
    shutil.copyfile(BINARY, dst)
    return dst


# ---------------------------------------------------------------- binary files given as configs


def test_program_given_as_pipeline(ws, program):
    refused(ws, ["run", "program"], r"program is not a YAML text file .*give the path of a YAML")


def test_program_given_as_cluster_file(ws, program):
    refused(
        ws,
        [*SMOOTH, "--cluster", "program"],
        r"program is not a YAML text file",
    )


def test_program_given_as_training_config(ws, program):
    refused(ws, ["train", "program"], r"program is not a YAML text file")


def test_nul_bytes_in_utf8_text(ws):
    """Valid UTF-8 but with NUL bytes (a binary blob that happens to decode) is not YAML text."""
    (ws / "blob.yaml").write_bytes(b"cluster:\n  kind: local\x00\x00\x00\n")
    refused(
        ws,
        [*SMOOTH, "--cluster", "blob.yaml"],
        r"blob\.yaml is not a YAML text file",
    )


# ---------------------------------------------------------------- keys given twice


def test_duplicate_key_in_cluster_file(ws):
    (ws / "twice.yaml").write_text("cluster:\n  kind: local\n  n_workers: 1\n  n_workers: 8\n")
    refused(
        ws,
        [*SMOOTH, "--cluster", "twice.yaml"],
        r"twice\.yaml: key 'n_workers' is given twice in one mapping \(lines 3 and 4\); keep one",
    )


def test_duplicate_top_level_key_in_pipeline(ws):
    (ws / "pipe.yaml").write_text(
        "out: runs/a\nstages:\n  - name: s\n    kind: smooth\n    params: {}\nout: runs/b\n"
    )
    refused(ws, ["run", "pipe.yaml"], r"pipe\.yaml: key 'out' is given twice .*\(lines 1 and 6\)")


def test_duplicate_key_in_a_flow_mapping(ws):
    (ws / "ics.yaml").write_text(
        "output: ics.zarr\ngrid: 16\nbox_size: 64.0\nseed: 1\ntile: 8\n"
        "cosmology: {Omega_m: 0.3, h: 0.7, Omega_m: 0.9}\n"
    )
    refused(ws, ["ics", "ics.yaml"], r"ics\.yaml: key 'Omega_m' is given twice .*\(lines 6 and 6\)")


def test_merge_keys_may_be_overridden(ws):
    """What YAML's merge key ``<<`` brings in may be overridden: that is not a duplicate."""
    (ws / "merge.yaml").write_text(
        "base: &b {kind: local, n_workers: 1}\ncluster:\n  <<: *b\n  n_workers: 2\n"
    )
    assert read_yaml(ws / "merge.yaml")["cluster"] == {"kind": "local", "n_workers": 2}


# ---------------------------------------------------------------- sizes that are junk


def test_memory_budget_that_is_not_a_size(ws):
    refused(
        ws,
        ["paint", "--checkpoint", "halo.pt", "in.zarr", "o.zarr", "--memory-budget", "lots"],
        r"--memory-budget \(memory_budget\) must be a positive size like 2GiB.*got 'lots'",
    )


def test_negative_memory_budget(ws):
    refused(
        ws,
        ["paint", "--checkpoint", "halo.pt", "in.zarr", "o.zarr", "--memory-budget=-2GiB"],
        r"must be a positive size .*got '-2GiB'",
    )


def test_worker_memory_limit_that_is_not_a_size(ws):
    (ws / "c.yaml").write_text("cluster:\n  kind: local\n  memory_limit: plenty\n")
    refused(
        ws,
        [*SMOOTH, "--cluster", "c.yaml"],
        r"c\.yaml: cluster\.memory_limit: memory_limit must be a positive size .*got 'plenty'",
    )


def test_slurm_job_memory_that_is_not_a_size():
    with pytest.raises(ConfigError, match=r"memory must be a positive size .*got '64 GB RAM'"):
        parse_config(
            SlurmClusterConfig, {"kind": "slurm", "cores": 4, "memory": "64 GB RAM"}, "slurm.yaml"
        )
