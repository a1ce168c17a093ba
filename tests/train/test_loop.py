"""The training loop on synthetic Fields: every family trains, resumes exactly, logs and checkpoints."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.config import load_config
from bigpaint.errors import CheckpointError, ConfigError
from bigpaint.painters import load_checkpoint
from bigpaint.train import TrainConfig, select_device, train


def _cfg(boxes, tmp_path, family, **over):
    base = {
        "halo-painter": {
            "objective": {
                "kind": "wgan-gp",
                "n_critic": 1,
                "supervised_weight": 1.0,
                "pretrain_steps": 1,
            },
            "data": {
                "inputs": [boxes["big"]],
                "targets": [boxes["big"]],
                "patch": 20,
                "validation": {"size": 8},
                "input_norm": [{"kind": "affine", "scale": "auto"}],
            },
        },
        "protohalo-unet": {
            "model": {"levels": 2, "filters": 2},
            "objective": {"buffer": 2},
            "data": {
                "inputs": [boxes["delta"]],
                "targets": [boxes["density"]],
                "patch": 16,
                "validation": {"size": 16},
            },
        },
        "dm2gal": {
            # a 29^3 patch (kernels 3/3/3) keeps the test box small; the paper's is 65^3
            "model": {
                "channels": 1,
                "hidden": 4,
                "in_channels": 1,
                "patch": 29,
                "kernels": [3, 3, 3],
            },
            "data": {
                "inputs": [boxes["big"]],
                "targets": [boxes["big"]],
                "batch_size": 2,
                "validation": {"size": 8},
                "weighted_sampling": {"bins": 4, "vmin": 0.5},
                "output_norm": [{"kind": "ember", "k": 1.0, "x0": 1.0, "q": 1.0}],
            },
        },
        "ember": {
            "model": {"levels": 2, "filters": 2},
            "objective": {
                "adversarial": True,
                "alpha": 10.0,
                "beta": 0.4,
                "gamma": 1.0,
                "critic_filters": 2,
            },
            "data": {
                "inputs": [boxes["density"]],
                "targets": [boxes["counts"]],
                "patch": 16,
                "projection_depth": 4,
                "validation": {"size": 16},
                "batch_size": 2,
                "input_norm": [{"kind": "ember", "k": 1.0, "x0": 1.0}],
                "output_norm": [{"kind": "ember", "k": 1.0, "x0": 1.0}],
            },
        },
        "cosmic-web-gan": {
            "model": {
                "image": 32,
                "generator_filters": [4, 4, 4, 4],
                "discriminator_filters": [4, 4, 4, 4, 4],
            },
            "objective": {"gan_steps": 2},
            "data": {
                "inputs": [boxes["big"]],
                "targets": [boxes["big"]],
                "projection_depth": 4,
                "validation": {"size": 32},
                "batch_size": 4,
                "input_norm": [{"kind": "loglike", "c": 0.001, "b": 3.0}],
                "output_norm": [{"kind": "loglike", "c": 0.001, "b": 3.0}],
            },
        },
    }[family]
    cfg = {"family": family, **base}
    if family == "ember":  # a fixed decay horizon, so that stopping early changes nothing
        cfg["optim"] = {"polynomial_steps": 4}
    cfg["run"] = {
        "out": str(tmp_path / family),
        "max_steps": 4,
        "val_every": 2,
        "checkpoint_every": 2,
        "log_every": 1,
        "val_batches": 1,
        "progress": False,
        **over,
    }
    return cfg


@pytest.fixture(scope="module")
def big(boxes, tmp_path_factory):
    from bigpaint.field import write_array

    url = str(tmp_path_factory.mktemp("big") / "big.zarr")
    rng = np.random.default_rng(3)
    write_array(
        url,
        rng.gamma(0.5, 2.0, (64, 64, 64)).astype("f4"),
        chunks=32,
        meta={"box_size": 128.0, "kind": "density", "units": "1"},
    )
    return {**boxes, "big": url}


@pytest.mark.parametrize(
    "family", ["halo-painter", "protohalo-unet", "dm2gal", "ember", "cosmic-web-gan"]
)
def test_every_family_trains_on_fields(big, tmp_path, family):
    torch.manual_seed(0)
    result = train(_cfg(big, tmp_path, family))
    assert result.steps == 4 and result.device == "cpu"
    rows = list(csv.DictReader(result.metrics.open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    val_rows = [r for r in rows if r["score"]]
    assert [int(r["step"]) for r in val_rows] == [2, 4]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    painter, meta = load_checkpoint(result.last)
    assert meta.family == family and meta.provenance["step"] == 4
    assert meta.provenance["inputs"][0]["url"] == _cfg(big, tmp_path, family)["data"]["inputs"][0]
    assert meta.provenance["config"]["family"] == family
    best, _ = load_checkpoint(result.best)
    assert type(best) is type(painter)
    if family == "cosmic-web-gan":
        assert [r["phase"] for r in rows] == ["gan", "gan", "encoder", "encoder"]
    if family == "halo-painter":
        assert [r["phase"] for r in rows] == ["pretrain", "wgan-gp", "wgan-gp", "wgan-gp"]
        assert rows[-1]["gp"] and rows[-1]["wasserstein"]


def _weights(path):
    painter, _ = load_checkpoint(path)
    return painter.state_dict()


@pytest.mark.parametrize("family", ["halo-painter", "ember", "dm2gal"])
def test_resumed_run_equals_uninterrupted_run(big, tmp_path, family):
    straight = train(_cfg(big, tmp_path / "a", family, max_steps=4))
    train(_cfg(big, tmp_path / "b", family, max_steps=2))
    resumed = train(_cfg(big, tmp_path / "b", family, max_steps=4))
    assert resumed.steps == 4
    a, b = _weights(straight.last), _weights(resumed.last)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows_a = list(csv.DictReader(straight.metrics.open()))
    rows_b = list(csv.DictReader(resumed.metrics.open()))
    assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]


def test_init_from_starts_with_the_checkpoint_weights(big, tmp_path):
    first = train(_cfg(big, tmp_path / "a", "protohalo-unet", max_steps=2))
    cfg = _cfg(big, tmp_path / "b", "protohalo-unet", max_steps=1, init_from=str(first.last))
    cfg["optim"] = {"lr": 1e-12}  # (almost) no update: the weights stay the checkpoint's
    second = train(cfg)
    a, b = _weights(first.last), _weights(second.last)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-9)
    cfg["model"] = {"levels": 2, "filters": 3}
    cfg["run"]["out"] = str(tmp_path / "c")
    with pytest.raises(CheckpointError, match="filters=2, the painter has filters=3"):
        train(cfg)


def test_run_directory_of_another_training_is_refused(big, tmp_path):
    train(_cfg(big, tmp_path, "protohalo-unet", max_steps=1))
    other = _cfg(big, tmp_path, "protohalo-unet", max_steps=2)
    other["model"] = {"levels": 2, "filters": 3}
    with pytest.raises(ConfigError, match="different training run"):
        train(other)
    other["run"]["resume"] = False
    assert train(other).steps == 2


def test_max_time_stops_early(big, tmp_path):
    cfg = _cfg(big, tmp_path, "protohalo-unet", max_steps=10_000, max_time=0.5, val_every=10_000)
    result = train(cfg)
    assert 1 <= result.steps < 10_000
    rows = list(csv.DictReader(result.metrics.open()))
    assert rows[-1]["score"]  # the last step is validated


def test_config_errors_are_one_line(big, tmp_path):
    cfg = _cfg(big, tmp_path, "halo-painter")
    cfg["data"]["patchh"] = 3
    with pytest.raises(ConfigError, match=r"unknown key 'data\.patchh'.*did you mean 'patch'"):
        train(cfg)
    cfg = _cfg(big, tmp_path, "halo-painter")
    cfg["objective"]["n_critc"] = 3
    with pytest.raises(ConfigError, match=r"unknown key 'n_critc'.*did you mean 'n_critic'"):
        train(cfg)
    cfg = _cfg(big, tmp_path, "halo-painter")
    cfg["data"]["patch"] = 12
    with pytest.raises(ConfigError, match=">= 19 voxels"):
        train(cfg)
    cfg = _cfg(big, tmp_path, "halo-painter")
    cfg["family"] = "halo-paintr"
    with pytest.raises(ConfigError, match="unknown painter family"):
        train(cfg)


def test_device_selection():
    assert select_device("cpu") == (torch.device("cpu"), None)
    dev, amp = select_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        assert amp is None
        with pytest.raises(ConfigError, match="no CUDA device"):
            select_device("cuda")


def test_cli_train(big, tmp_path):
    cfg = _cfg(big, tmp_path, "protohalo-unet", max_steps=2)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert load_config(TrainConfig, path).family == "protohalo-unet"
    res = CliRunner().invoke(
        cli, ["train", str(path), "--max-steps", "3", "--quiet", "--out", str(tmp_path / "cli")]
    )
    assert res.exit_code == 0, res.output
    assert "trained protohalo-unet for 3 steps" in res.output
    cfg["run"]["bogus"] = 1
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(cli, ["train", str(path)])
    assert res.exit_code == 2 and "unknown key 'run.bogus'" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_more_boxes_train_and_are_recorded(boxes, tmp_path):
    """A second simulation box joins the training data; its Fields are in the provenance,
    and a box of another grid is refused with one line."""
    from bigpaint.errors import ShapeError
    from bigpaint.field import write_array

    data = {
        "inputs": [boxes["delta"]],
        "targets": [boxes["counts"]],
        "more_boxes": [{"inputs": [boxes["delta"]], "targets": [boxes["counts"]]}],
        "patch": 8,
        "validation": {"size": 8},
    }
    cfg = {
        "family": "halo-painter",
        "model": {"filters": 2, "blocks": 1, "pointwise_layers": 1},
        "objective": {"kind": "regression", "supervised_loss": "poisson"},
        "data": data,
        "run": {"out": str(tmp_path / "run"), "max_steps": 4, "val_every": 4, "progress": False},
    }
    train(cfg)
    _, meta = load_checkpoint(tmp_path / "run" / "last.painter")
    (more,) = meta.provenance["more_boxes"]
    assert [f["url"] for f in more["targets"]] == [boxes["counts"]]
    small = write_array(
        str(tmp_path / "small.zarr"), np.zeros((16, 16, 16), "f4"), chunks=8,
        meta={"box_size": 64.0, "kind": "delta", "units": "1", "redshift": 0.0},
    ).url  # fmt: skip
    data["more_boxes"] = [{"inputs": [small], "targets": [boxes["counts"]]}]
    cfg["run"]["out"] = str(tmp_path / "run2")
    with pytest.raises(ShapeError, match="share one grid"):
        train(cfg)
