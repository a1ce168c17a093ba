"""Progress and logging: plain lines in batch logs, bars on terminals, --quiet and --verbose,
the dashboard link, and a whole pipeline's stderr as a SLURM log would hold it."""

from __future__ import annotations

import itertools
import logging
import os
import re
import subprocess
import sys
import time
import urllib.request
from datetime import datetime

import dask
import dask.array as da
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bigpaint.chunked.graph import run_tasks
from bigpaint.cli import cli
from bigpaint.errors import ConfigError
from bigpaint.field import write_array
from bigpaint.progress import ENV_INTERVAL, Progress, compute, format_duration, heartbeat, interval

from .conftest import META
from .pipeline.conftest import tiny_config, write_config

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ")
BLOCKS = re.compile(
    r"(?P<name>\S+): (?P<done>\d+)/(?P<total>\d+) blocks \(\d+%\), [\d.e+-]+ blocks/s, "
    r"elapsed \w+, ETA \S+$"
)


@pytest.fixture(autouse=True)
def _restore_logging():
    """The CLI configures the bigpaint logger; leave it as it was for other tests."""
    log = logging.getLogger("bigpaint")
    handlers, level = list(log.handlers), log.level
    yield
    log.handlers[:] = handlers
    log.setLevel(level)


@pytest.fixture
def lines_every(monkeypatch):
    """Progress lines every 0.2 s, INFO enabled on the bigpaint loggers (as the CLI sets)."""
    monkeypatch.setenv(ENV_INTERVAL, "0.2")
    logging.getLogger("bigpaint").setLevel(logging.INFO)


def _slow(i: int) -> int:
    time.sleep(0.05)
    return i * i


def _messages(caplog, name: str = "bigpaint.progress") -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name]


# ------------------------------------------------------------------ the pieces


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.delenv(ENV_INTERVAL, raising=False)
    assert interval() == 10.0
    monkeypatch.setenv(ENV_INTERVAL, "2.5")
    assert interval() == 2.5
    for bad in ("0", "-1", "soon", "inf", "nan"):
        monkeypatch.setenv(ENV_INTERVAL, bad)
        with pytest.raises(ConfigError, match=ENV_INTERVAL):
            interval()


def test_bad_interval_is_one_cli_line(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_INTERVAL, "soon")
    res = CliRunner().invoke(cli, ["info", str(tmp_path / "x.zarr")])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        f"bigpaint: error: {ENV_INTERVAL}='soon' is not a positive number of seconds; set it "
        "to e.g. 30 or unset it (default 10)"
    ]


def test_format_duration():
    assert [format_duration(s) for s in (0.4, 42, 185, 7620)] == ["0s", "42s", "3m05s", "2h07m"]


def test_block_work_logs_counts_every_interval_and_at_the_end(lines_every, caplog):
    caplog.set_level(logging.INFO, logger="bigpaint")
    calls = [(i,) for i in range(40)]
    assert run_tasks(_slow, calls, name="slow", progress=True, num_workers=2) == [
        i * i for i in range(40)
    ]
    msgs = _messages(caplog)
    during = [m for m in msgs if BLOCKS.match(m)]
    assert during, msgs  # 40 x 50 ms on 2 threads: about 1 s, lines every 0.2 s
    done = [int(BLOCKS.match(m)["done"]) for m in during]
    assert done == sorted(done) and all(0 <= d <= 40 for d in done)
    assert all(BLOCKS.match(m)["total"] == "40" for m in during)
    assert re.fullmatch(r"slow: 40/40 blocks done in \w+ \([\d.e+-]+ blocks/s\)", msgs[-1])
    assert not any("\r" in m for m in msgs)


def test_nothing_without_progress_or_without_info(lines_every, caplog):
    caplog.set_level(logging.INFO, logger="bigpaint")
    run_tasks(_slow, [(i,) for i in range(8)], name="quiet", progress=False)
    assert not _messages(caplog)
    logging.getLogger("bigpaint").setLevel(logging.WARNING)  # what --quiet sets
    run_tasks(_slow, [(i,) for i in range(8)], name="quiet", progress=True)
    assert not [r for r in caplog.records if r.name.startswith("bigpaint")]


def test_a_failed_run_logs_no_done_line(lines_every, caplog):
    caplog.set_level(logging.DEBUG, logger="bigpaint")

    with pytest.raises(ZeroDivisionError):
        run_tasks(_fail_at_3, [(i,) for i in range(6)], name="fails", progress=True, num_workers=1)
    msgs = _messages(caplog)
    assert not any("done in" in m for m in msgs), msgs
    stopped = [r for r in caplog.records if "stopped at" in r.getMessage()]
    assert stopped and all(r.levelno == logging.DEBUG for r in stopped)


def _fail_at_3(i: int) -> int:
    return i // (i - 3)


def test_terminal_gets_a_bar_and_no_lines(lines_every, caplog, monkeypatch, capsys):
    monkeypatch.setattr("bigpaint.progress._stderr_is_terminal", lambda: True)
    caplog.set_level(logging.INFO, logger="bigpaint")
    with Progress("bar", 10) as p:
        assert p.mode == "bar"
        for _ in range(10):
            p.update()
            time.sleep(0.03)
    assert not _messages(caplog)
    assert "bar" in capsys.readouterr().err  # tqdm drew on stderr


def test_compute_counts_tasks_locally_and_matches_dask(lines_every, caplog):
    caplog.set_level(logging.INFO, logger="bigpaint")
    x = da.random.RandomState(1).random_sample((32, 32, 32), chunks=8)
    slow = x.map_blocks(lambda b: (time.sleep(0.02), b)[1])
    got = compute(slow.sum(), (x**2).mean(), 7, name="local", scheduler="threads")
    want = dask.compute(slow.sum(), (x**2).mean(), 7, scheduler="threads")
    assert got[0] == pytest.approx(want[0], rel=1e-12) and got[1:] == want[1:]
    final = _messages(caplog)[-1]
    m = re.fullmatch(r"local: (\d+)/(\d+) tasks done in \w+ \(.*\)", final)
    assert m and m[1] == m[2] and int(m[2]) >= 64, final


def test_compute_on_a_cluster_reports_scheduler_counts(lines_every, caplog):
    from distributed import Client, LocalCluster

    caplog.set_level(logging.INFO, logger="bigpaint")
    x = da.random.RandomState(2).random_sample((32, 32, 32), chunks=8)
    slow = x.map_blocks(lambda b: (time.sleep(0.03), b)[1])
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
        ) as c,
        Client(c),
    ):
        got = compute(slow.sum(), x.max(), name="cluster")
    assert got[0] == pytest.approx(float(x.sum().compute()), rel=1e-12)
    assert got[1] == float(x.max().compute())
    msgs = _messages(caplog)
    during = [re.match(r"cluster: (\d+)/(\d+) tasks \(", m) for m in msgs]
    counts = [(int(m[1]), int(m[2])) for m in during if m]
    assert counts, msgs  # 64 blocks x 30 ms on 2 threads: about 1 s, a line every 0.2 s
    assert all(0 <= d <= t and t >= 64 for d, t in counts)
    assert [d for d, _ in counts] == sorted(d for d, _ in counts)
    assert re.fullmatch(r"cluster: (\d+)/\1 tasks done in .*", msgs[-1]), msgs[-1]


def test_heartbeat_speaks_only_when_nothing_else_does(lines_every, caplog):
    caplog.set_level(logging.INFO, logger="bigpaint")
    with heartbeat("stage"):
        time.sleep(0.7)
    beats = [m for m in _messages(caplog) if m.startswith("stage: running for")]
    assert len(beats) >= 2, _messages(caplog)
    caplog.clear()
    with heartbeat("stage"):
        run_tasks(_slow, [(i,) for i in range(20)], name="blocks", progress=True, num_workers=1)
    msgs = _messages(caplog)
    assert [m for m in msgs if BLOCKS.match(m)], msgs
    assert not [m for m in msgs if m.startswith("stage: running")], msgs


def test_the_library_configures_no_logging(tmp_path):
    """Without logging configured, progress=True prints nothing (the CLI configures it)."""
    code = (
        "import logging, time\n"
        "from bigpaint.chunked.graph import run_tasks\n"
        "run_tasks(time.sleep, [(0.05,)] * 20, name='x', progress=True, num_workers=1)\n"
        "assert not logging.getLogger('bigpaint').handlers\n"
    )
    env = {**os.environ, ENV_INTERVAL: "0.1"}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr == "" and res.stdout == ""


# ------------------------------------------------------------------ the command


@pytest.fixture
def field(tmp_path) -> str:
    rng = np.random.default_rng(0)
    return write_array(str(tmp_path / "in.zarr"), rng.standard_normal((16, 16, 16)).astype("f4"),
                       chunks=8, meta=META).url  # fmt: skip


def _smooth(field: str, out: str, *flags: str):
    cluster = os.path.join(os.path.dirname(out), "threads.yaml")
    with open(cluster, "w") as f:
        yaml.safe_dump({"cluster": {"kind": "local", "n_workers": 1, "processes": False}}, f)
    argv = [*flags, "smooth", field, out, "--sigma-mpc", "5", "--cluster", cluster]
    return CliRunner().invoke(cli, argv, catch_exceptions=False)


def test_default_quiet_and_verbose(field, tmp_path):
    res = _smooth(field, str(tmp_path / "a.zarr"))
    assert res.exit_code == 0, res.output
    err = res.stderr.splitlines()
    assert all(STAMP.match(ln) for ln in err), err
    assert any(re.search(r" smooth: 8/8 blocks done in ", ln) for ln in err), err
    assert any("dashboard http://" in ln for ln in err), err
    assert not any(" DEBUG " in ln for ln in err)

    res = _smooth(field, str(tmp_path / "b.zarr"), "--quiet")
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    assert res.stdout.startswith("wrote ")

    res = _smooth(field, str(tmp_path / "c.zarr"), "-v")
    assert res.exit_code == 0, res.output
    debug = [ln for ln in res.stderr.splitlines() if " DEBUG " in ln]
    assert any("DEBUG bigpaint.chunked.graph: smooth: 8 tasks on the cluster" in ln for ln in debug)
    assert any(
        "INFO bigpaint.progress: smooth: 8/8 blocks done" in ln for ln in res.stderr.splitlines()
    )

    res = CliRunner().invoke(cli, ["-q", "-v", "info", field], prog_name="bigpaint")
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        "bigpaint: error: --verbose and --quiet exclude each other; give one (see bigpaint --help)"
    ]


def test_dashboard_link_is_logged_and_serves(caplog):
    from bigpaint.cluster import connect
    from bigpaint.config import LocalClusterConfig

    caplog.set_level(logging.INFO, logger="bigpaint.cluster")
    cfg = LocalClusterConfig(n_workers=1, processes=False, dashboard_address=":0")
    with connect(cfg) as client:
        msgs = _messages(caplog, "bigpaint.cluster")
        link = re.search(r"dashboard (http://\S+)", " ".join(msgs))
        assert link, msgs
        assert link[1] == client.dashboard_link
        with urllib.request.urlopen(link[1], timeout=30) as page:
            assert page.status == 200


# ------------------------------------------------------------------ training


def _train_config(tmp_path, max_steps: int, log_every: int) -> str:
    rng = np.random.default_rng(1)
    delta = rng.standard_normal((32, 32, 32)).astype("f4")
    meta = {"box_size": 64.0, "units": "1", "redshift": 0.0}
    inp = write_array(str(tmp_path / "d.zarr"), delta, chunks=16, meta={**meta, "kind": "delta"})
    tgt = write_array(str(tmp_path / "rho.zarr"), (1.2 + 0.2 * delta).clip(0.1), chunks=16,
                      meta={**meta, "kind": "density"})  # fmt: skip
    cfg = {
        "family": "protohalo-unet",
        "model": {"levels": 2, "filters": 2},
        "objective": {"buffer": 2},
        "data": {"inputs": [inp.url], "targets": [tgt.url], "patch": 16,
                 "validation": {"size": 16}},
        "run": {"out": str(tmp_path / "run"), "max_steps": max_steps, "log_every": log_every,
                "val_every": 10, "checkpoint_every": 10, "val_batches": 1, "device": "cpu",
                "threads": 1, "progress": True},
    }  # fmt: skip
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_training_logs_metrics_every_log_every_steps(tmp_path):
    n, k = 23, 4
    cfg = _train_config(tmp_path, n, k)
    res = CliRunner().invoke(cli, ["train", cfg], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "\r" not in res.stderr
    steps = [int(m[1]) for m in re.finditer(r"train protohalo-unet: (\d+)/23 steps \(", res.stderr)]
    assert steps == [*range(k, n + 1, k), n]  # every k steps and the last
    for line in res.stderr.splitlines():
        if "/23 steps (" in line:
            assert re.search(
                r"steps/s, elapsed \w+, ETA \S+; phase \S+, lr [\d.e+-]+, .*loss", line
            )
    val = re.findall(r"validation at step (\d+): val_loss [\d.e+-]+, score ", res.stderr)
    assert val == ["10", "20", "23"]
    assert re.search(r"train protohalo-unet: 23/23 steps done in ", res.stderr)

    quiet = CliRunner().invoke(cli, ["-q", "train", cfg, "--out", str(tmp_path / "q")])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == "" and "trained protohalo-unet for 23 steps" in quiet.stdout


# ------------------------------------------------------------------ a whole pipeline


@pytest.fixture(scope="module")
def batch_log(tmp_path_factory):
    """The tiny pipeline (to the segmentation) run as a batch job: stderr to a file, not a
    terminal, progress lines every 0.5 s, training logging every 5 of its 40 steps."""
    root = tmp_path_factory.mktemp("batch")
    keep = ("train-box", "painter", "big-2lpt", "painted", "truth", "power", "protohalos")
    run = {"seed": 0, "max_steps": 40, "log_every": 5, "val_every": 20, "checkpoint_every": 5,
           "device": "cpu", "threads": 1, "progress": True}  # fmt: skip
    data = tiny_config(root / "run", painter={"run": run})
    data["stages"] = [s for s in data["stages"] if s["name"] in keep]
    path = write_config(root / "pipeline.yaml", data)
    with open(root / "stderr.log", "w+") as err:
        proc = subprocess.run(
            [sys.executable, "-m", "bigpaint", "run", str(path)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, ENV_INTERVAL: "0.5"},
            timeout=900,
        )
        err.seek(0)
        log = err.read()
    assert proc.returncode == 0, log
    return log


def _stage(log: list[str], name: str) -> list[str]:
    """The lines from ``name``'s start to its done line."""
    start = next(
        i for i, ln in enumerate(log) if re.search(rf"\[run\] \d+/\d+ {name} .*: start$", ln)
    )
    end = next(i for i, ln in enumerate(log) if i > start and re.search(r": done in [\d.]+ s$", ln))
    return log[start : end + 1]


def test_batch_log_has_no_carriage_returns_and_stamps_every_line(batch_log):
    assert "\r" not in batch_log
    lines = batch_log.splitlines()
    assert lines and all(STAMP.match(ln) for ln in lines), lines
    assert sum("Dask local cluster started; dashboard http://" in ln for ln in lines) == 1


def test_batch_log_has_a_line_at_least_every_few_intervals(batch_log):
    """With lines due every 0.5 s no stage is silent for 10 s (the power stage alone takes
    longer: it is seen through the stage heartbeat); at the default 10 s interval the same
    holds at 30 s. Stamps are whole seconds."""
    stamps = [datetime.fromisoformat(STAMP.match(ln)[1]) for ln in batch_log.splitlines()]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    assert max(gaps) <= 10, max(gaps)


def test_batch_log_counts_blocks_while_painting(batch_log):
    paint = _stage(batch_log.splitlines(), "painted")
    counts = [BLOCKS.match(STAMP.sub("", ln)) for ln in paint]
    during = [int(m["done"]) for m in counts if m and m["name"] == "paint-halo-painter"]
    assert during and during == sorted(during) and during[0] < 512, paint
    assert any(re.search(r"paint-halo-painter: 512/512 blocks done in ", ln) for ln in paint)


def test_batch_log_every_stage_speaks_while_it_works(batch_log):
    """Each stage that ran for a few progress intervals logged something while it ran: block
    counts, a metrics line, or (a statistic without block counts) a heartbeat."""
    lines = batch_log.splitlines()
    for name in ("train-box", "painter", "big-2lpt", "painted", "truth", "power", "protohalos"):
        stage = _stage(lines, name)
        took = float(re.search(r"done in ([\d.]+) s$", stage[-1])[1])
        if took > 2.0:
            assert len(stage) > 2, stage
    power = _stage(lines, "power")
    if float(re.search(r"done in ([\d.]+) s$", power[-1])[1]) > 2.0:
        assert any(": running for " in ln for ln in power), power


def test_batch_log_training_lines(batch_log):
    train = _stage(batch_log.splitlines(), "painter")
    steps = [
        int(m[1]) for ln in train if (m := re.search(r"train halo-painter: (\d+)/40 steps \(", ln))
    ]
    assert steps == list(range(5, 41, 5))
    assert len([ln for ln in train if "validation at step" in ln]) == 2
