"""One spec per statistic: ``bigpaint stats power|bispectrum|onepoint`` (flags or ``--config``,
flags over the file) and a pipeline's ``power`` and ``bispectrum`` stages build the same
spec from the same inputs, and a bad file is one line with nothing written."""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner

import bigpaint.stats.spec
from bigpaint.cli import cli
from bigpaint.field import open_field, write_array
from bigpaint.mass_assignment import NO_WINDOW
from bigpaint.pipeline.stages import STAGE_KINDS, StageContext
from bigpaint.stats import compare_spectra, read_table
from bigpaint.stats.spec import BispectrumSpec, PowerSpec
from tests.stats.reference import gaussian_field
from tests.test_cli import _one_line_error

BOX = 100.0
KF = 2 * math.pi / BOX
CLUSTER = "cluster: {kind: local, n_workers: 1, threads_per_worker: 2, processes: false}"


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, str]:
    """A prediction and its truth (3-D), and the truth twice as a 4-D Field of 2 channels."""
    root = tmp_path_factory.mktemp("spec")
    truth = gaussian_field(16, BOX, lambda k: 500 * k**-1.2, seed=1).astype("f4")
    pred = (0.9 * truth + gaussian_field(16, BOX, lambda k: 30 + 0 * k, seed=2)).astype("f4")
    meta = {"box_size": BOX, "kind": "delta", "units": "1", "mass_assignment": NO_WINDOW}
    out = {}
    for name, x in (("truth", truth), ("pred", pred), ("both", np.stack([truth, pred]))):
        out[name] = str(root / f"{name}.zarr")
        write_array(out[name], x, chunks=8, meta=meta)
    return out


@pytest.fixture
def seen(monkeypatch) -> list[object]:
    """The specs ``run_power`` and ``run_bispectrum`` are called with (they still run)."""
    specs: list[object] = []
    for name in ("run_power", "run_bispectrum"):
        real = getattr(bigpaint.stats.spec, name)

        def spy(spec, *, _real=real, **kw):
            specs.append(spec)
            return _real(spec, **kw)

        monkeypatch.setattr(bigpaint.stats.spec, name, spy)
    return specs


@pytest.fixture
def threads(tmp_path) -> str:
    path = tmp_path / "cluster.yaml"  # in-process workers: no process start-up
    path.write_text(CLUSTER + "\n")
    return str(path)


def _stage(tmp_path, kind: str) -> StageContext:
    d = tmp_path / "run" / kind
    d.mkdir(parents=True, exist_ok=True)
    return StageContext(kind, d, f"stage {kind!r} ({kind})", lambda _m: None)


def _without(spec, *keys: str) -> dict:
    return spec.model_dump(exclude={"cluster", *keys})


def test_power_config_file_alone(tmp_path, pair, seen):
    out, png = tmp_path / "cmp.csv", tmp_path / "cmp.png"
    cfg = tmp_path / "power.yaml"
    cfg.write_text(
        f"a: {pair['pred']}\nb: {pair['truth']}\nout: {out}\nplot: {png}\nmas: none\n"
        f"mas_b: none\n{CLUSTER}\n"
    )
    res = CliRunner().invoke(cli, ["stats", "power", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    (spec,) = seen
    assert spec.mas is None and spec.out == str(out) and spec.cluster.processes is False
    want = compare_spectra(pair["pred"], pair["truth"], mas=None, mas_true=None)
    np.testing.assert_allclose(read_table(out).r_c.values, want.r_c.values, rtol=1e-8)
    assert png.stat().st_size > 5000


def test_flags_override_the_file_and_positional_paths_override_a_and_b(tmp_path, pair, seen):
    out = tmp_path / "pk.csv"
    cfg = tmp_path / "power.yaml"
    cfg.write_text(f"a: {pair['truth']}\nlog: true\nnbins: 5\nmultipoles: [0, 2]\n{CLUSTER}\n")
    res = CliRunner().invoke(
        cli, ["stats", "power", "--config", str(cfg), "--nbins", "3", "--out", str(out)]
    )
    assert res.exit_code == 0 and "3 k bins" in res.output, res.output
    (spec,) = seen
    assert spec.nbins == 3 and spec.log and spec.multipoles == (0, 2) and spec.a == pair["truth"]
    table = read_table(out)
    assert table.sizes["bin"] == 3 and {"P0", "P2"} <= set(table.data_vars)
    assert "P4" not in table.data_vars
    # a positional A replaces the file's a; the file's other keys stay
    res = CliRunner().invoke(cli, ["stats", "power", "--config", str(cfg), pair["pred"]])
    assert res.exit_code == 0, res.output
    assert seen[1].a == pair["pred"] and seen[1].nbins == 5


def test_onepoint_config_with_a_flag_over_it(tmp_path, pair):
    cfg = tmp_path / "one.yaml"
    prefix = tmp_path / "one.csv"
    cfg.write_text(
        f"a: {pair['pred']}\nb: {pair['truth']}\nbins: 20\nsubvolumes: 2\ntop: [0.1, 0.5]\n"
        f"out: {prefix}\n{CLUSTER}\n"
    )
    res = CliRunner().invoke(cli, ["stats", "onepoint", "--config", str(cfg), "--bins", "8"])
    assert res.exit_code == 0, res.output
    assert read_table(tmp_path / "one_pdf_a.csv").sizes["bin"] == 8
    assert list(read_table(tmp_path / "one_dice.csv").top.values) == [0.1, 0.5]


@pytest.mark.parametrize(
    ("command", "text", "pattern"),
    [
        ("power", "nbinz: 5", r"nbinz.*nbins"),
        ("bispectrum", "k3: 0.2", r"k3"),
        ("onepoint", "bins: 0", r"bins"),
        ("power", "channel: 2", r"channel 2 of .*both\.zarr does not exist \(it has 2\)"),
    ],
)
def test_a_bad_config_is_one_line_and_writes_nothing(tmp_path, pair, command, text, pattern):
    out = tmp_path / "table.csv"
    cfg = tmp_path / "stats.yaml"
    cfg.write_text(f"a: {pair['both']}\nout: {out}\nplot: {tmp_path / 'fig.png'}\n{text}\n")
    res = CliRunner().invoke(cli, ["stats", command, "--config", str(cfg)])
    _one_line_error(res, pattern)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.yaml"]


def test_a_command_needs_a_or_a_config():
    res = CliRunner().invoke(cli, ["stats", "power"])
    _one_line_error(res, r"give A \[B\], or --config FILE")
    res = CliRunner().invoke(cli, ["stats", "power", "a.zarr", "b.zarr", "c.zarr"])
    _one_line_error(res, r"at most one B, got 3")


def test_cli_and_pipeline_build_one_spec(tmp_path, pair, seen, threads):
    """The same power and bispectrum jobs as flags and as stage params: one spec each (the
    stage sets out and plot in its folder), and a channel of a 4-D Field is picked alike."""
    ctx = _stage(tmp_path, "power")
    out, plot = ctx.dir / "power.csv", ctx.dir / "power.png"
    flags = ["--channel", "1", "--mas", "none", "--mas-b", "none", "--nbins", "4"]
    argv = ["stats", "power", pair["both"], pair["truth"], *flags, "--out", str(out)]
    res = CliRunner().invoke(cli, [*argv, "--plot", str(plot), "--cluster", threads])
    assert res.exit_code == 0, res.output
    params = {"a": pair["both"], "b": pair["truth"], "channel": 1, "mas": None, "mas_b": None,
              "nbins": 4}  # fmt: skip
    pipe = STAGE_KINDS["power"].validate(params, ctx)
    assert isinstance(pipe, PowerSpec) and _without(pipe, "summary_kmax") == _without(seen[0])
    summary = STAGE_KINDS["power"].run(pipe, ctx)
    # channel 1 of "both" is the prediction
    want = compare_spectra(pair["pred"], pair["truth"], mas=None, mas_true=None, nbins=4)
    np.testing.assert_allclose(read_table(out).T.values, want["T"].values, rtol=1e-8)
    assert summary["bins"] == 4
    ctx = _stage(tmp_path, "bispectrum")
    out, plot = ctx.dir / "bispectrum.csv", ctx.dir / "bispectrum.png"
    flags = ["--k1", str(2 * KF), "--k2", str(3 * KF), "--theta", "0.5,1.5", "--mas", "none"]
    res = CliRunner().invoke(
        cli, ["stats", "bispectrum", pair["pred"], pair["truth"], *flags, "--out", str(out),
              "--plot", str(plot), "--cluster", threads],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    params = {"a": pair["pred"], "b": pair["truth"], "k1": 2 * KF, "k2": 3 * KF,
              "theta": [0.5, 1.5], "mas": "none"}  # fmt: skip
    pipe = STAGE_KINDS["bispectrum"].validate(params, ctx)
    assert isinstance(pipe, BispectrumSpec) and _without(pipe) == _without(seen[-1])


def test_the_pipeline_refuses_what_it_sets(tmp_path, pair):
    from bigpaint.errors import ConfigError
    from bigpaint.pipeline import PipelineConfig, plan_pipeline

    assert STAGE_KINDS["power"].written == ("out", "plot")
    assert STAGE_KINDS["bispectrum"].written == ("out", "plot")
    cfg = PipelineConfig.model_validate(
        {"out": str(tmp_path / "run"),
         "stages": [{"name": "pk", "kind": "power",
                     "params": {"a": pair["pred"], "out": str(tmp_path / "x.csv")}}]}
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"params\.out is set by the pipeline"):
        plan_pipeline(cfg)


def test_a_4d_field_says_which_channels_it_uses(pair, caplog):
    """The sum of a 4-D Field's channels (the default) is announced, not silent."""
    from bigpaint.stats.spec import select_channel

    with caplog.at_level("INFO", logger="bigpaint.stats.spec"):
        summed = select_channel(pair["both"], "sum", "power")
    assert "has 2 channels; using their sum (choose with --channel)" in caplog.text
    np.testing.assert_allclose(
        summed["delta"].values, open_field(pair["both"])["delta"].values.sum(0), rtol=1e-6
    )
