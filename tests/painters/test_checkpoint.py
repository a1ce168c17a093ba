"""Checkpoint round trips per family, and the one-line errors for every way a checkpoint can be wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bigpaint.errors import CheckpointError, ConfigError
from bigpaint.painters import (
    FORMAT_VERSION,
    build_painter,
    load_checkpoint,
    load_weights,
    read_metadata,
    save_checkpoint,
)
from bigpaint.painters.base import (
    AffineNorm,
    EmberNorm,
    LogLikeNorm,
    PowerNorm,
    apply_norms,
    invert_norms,
    parse_norms,
)

from .conftest import SMALL, small


def _example(p) -> np.ndarray:
    n = {"valid": 2 * p.context + 3, "same": 2 * p.alignment, "tile": p.tile or 0}[p.mode]
    return np.random.default_rng(1).random((p.in_channels, *(n,) * p.ndim)).astype("f4")


@pytest.mark.parametrize("family", sorted(SMALL))
def test_round_trip(tmp_path, family):
    p = small(family, seed=7)
    p.set_normalization(
        {"kind": "affine", "shift": 0.5, "scale": 3.0}, {"kind": "ember", "x0": 2.0}
    )
    with torch.no_grad():  # make batch-norm running statistics non-trivial
        for m in p.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.9, 1.1)
    path = save_checkpoint(p, tmp_path / "m.painter", provenance={"steps": 3, "fields": ["a.zarr"]})
    q, meta = load_checkpoint(path)
    assert type(q) is type(p) and not q.training
    assert meta.family == family and meta.format_version == FORMAT_VERSION
    assert (meta.context, meta.alignment, meta.mode, meta.ndim) == (
        p.context,
        p.alignment,
        p.mode,
        p.ndim,
    )
    assert meta.provenance["steps"] == 3 and "bigpaint_version" in meta.provenance
    assert meta.parameter_count == p.parameter_count()
    assert q.input_norm == p.input_norm and q.output_norm == p.output_norm
    for (k, a), b in zip(p.state_dict().items(), q.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    x = _example(p)
    p.eval()
    if family == "ember":  # noise injection: compare with the same draws
        torch.manual_seed(0)
        a = p.paint(x)
        torch.manual_seed(0)
        b = q.paint(x)
    else:
        a, b = p.paint(x), q.paint(x)
    np.testing.assert_array_equal(a, b)
    # the metadata is plain JSON (readable without torch)
    raw = json.loads((path / "metadata.json").read_text())
    assert raw["format"] == "bigpaint-painter" and raw["config"] == json.loads(
        p.config.model_dump_json()
    )


def test_save_replaces_existing_checkpoint_atomically(tmp_path):
    p1, p2 = small("halo-painter", seed=1), small("halo-painter", seed=2)
    path = tmp_path / "m.painter"
    save_checkpoint(p1, path)
    save_checkpoint(p2, path)
    q, _ = load_checkpoint(path)
    assert torch.equal(q.head[0].weight, p2.head[0].weight)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.painter"]


def test_mismatched_architecture_is_a_clear_error(tmp_path):
    path = save_checkpoint(small("halo-painter"), tmp_path / "m.painter")
    other = build_painter("halo-painter", {"filters": 12})
    with pytest.raises(
        CheckpointError, match=r"trained with filters=10, the painter has filters=12"
    ):
        load_weights(other, path)
    with pytest.raises(CheckpointError, match=r"holds a 'halo-painter' painter, not 'dm2gal'"):
        load_weights(small("dm2gal"), path)
    # same config but tensors of another shape (e.g. edited metadata): named tensor
    meta = json.loads((path / "metadata.json").read_text())
    meta["config"]["out_channels"] = 3
    (path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(
        CheckpointError, match=r"tensor 'head.3.weight' has shape \(1, 10, 1, 1, 1\)"
    ):
        load_checkpoint(path)


def test_load_weights_into_matching_painter(tmp_path):
    p = small("protohalo-unet", seed=3)
    p.set_normalization({"kind": "affine", "scale": 2.0})
    path = save_checkpoint(p, tmp_path / "m.painter")
    q = small("protohalo-unet", seed=4)
    load_weights(q, path)
    assert torch.equal(q.out.weight, p.out.weight) and q.input_norm == p.input_norm


def test_newer_format_asks_to_upgrade(tmp_path):
    path = save_checkpoint(small("halo-painter"), tmp_path / "m.painter")
    meta = json.loads((path / "metadata.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="upgrade bigpaint"):
        read_metadata(path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing_dir", "does not exist"),
        ("no_metadata", "metadata.json is missing"),
        ("bad_json", "not valid JSON"),
        ("not_painter", "not a bigpaint painter checkpoint"),
        ("no_weights", "weights.pt is missing"),
        ("garbage_weights", "cannot be read"),
        ("unknown_family", "unknown painter family 'halo-paint'"),
        ("bad_config", "unknown key 'filterz'"),
        ("context", "records context 5"),
    ],
)
def test_damaged_checkpoints(tmp_path, damage, message):
    path = save_checkpoint(small("halo-painter"), tmp_path / "m.painter")
    meta = json.loads((path / "metadata.json").read_text())
    if damage == "missing_dir":
        path = tmp_path / "nothing.painter"
    elif damage == "no_metadata":
        (path / "metadata.json").unlink()
    elif damage == "bad_json":
        (path / "metadata.json").write_text("{not json")
    elif damage == "not_painter":
        meta["format"] = "something-else"
    elif damage == "no_weights":
        (path / "weights.pt").unlink()
    elif damage == "garbage_weights":
        (path / "weights.pt").write_bytes(b"\x00garbage")
    elif damage == "unknown_family":
        meta["family"] = "halo-paint"
    elif damage == "bad_config":
        meta["config"]["filterz"] = 3
    elif damage == "context":
        meta["context"] = 5
    if damage in ("not_painter", "unknown_family", "bad_config", "context"):
        (path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_build_painter_config_errors():
    with pytest.raises(ConfigError, match="unknown key 'filterz'"):
        build_painter("halo-painter", {"filterz": 3})
    with pytest.raises(ConfigError, match="did you mean 'dm2gal'"):
        build_painter("dm2gall")


@pytest.mark.parametrize(
    "norm",
    [
        AffineNorm(shift=1.5, scale=0.3),
        EmberNorm(k=3.0, x0=1e7, q=1.0),
        EmberNorm(k=0.9, x0=1e4, q=0.2),
        LogLikeNorm(),
        EmberNorm(k=1.0, x0=4.0, offset=8.0),
        LogLikeNorm(offset=8.0),
        PowerNorm(exponent=0.4, scale=0.06, shift=-2.0),
        PowerNorm(exponent=1.7, scale=3.0),
    ],
)
def test_normalizations_invert_on_numpy_and_torch(norm):
    x = np.random.default_rng(0).lognormal(8.0, 3.0, size=(2, 5, 5)).astype("f8")
    for arr in (x, torch.as_tensor(x)):
        y = apply_norms([norm, norm], arr)
        back = invert_norms([norm, norm], y)
        np.testing.assert_allclose(np.asarray(back), x, rtol=1e-9)


def test_power_normalization_maps_a_painter_output_to_counts():
    """The calibration's output map ``a N^g + b``: non-negative network outputs give counts
    of at least ``b``, a negative output counts as 0, and the map round-trips a checkpoint."""
    norm = PowerNorm(exponent=0.5, scale=2.0, shift=0.25)
    n = np.array([0.0, 1.0, 4.0, -3.0])
    np.testing.assert_allclose(norm.inverse(n), [0.25, 2.25, 4.25, 0.25])
    np.testing.assert_allclose(norm.forward(np.array([0.25, 2.25, 4.25, 0.0])), [0, 1, 4, 0])
    assert parse_norms({"kind": "power", "exponent": 0.5, "scale": 2.0, "shift": 0.25}, 2, "x") == (
        norm,
        norm,
    )
    with pytest.raises(ConfigError, match="exponent"):
        parse_norms({"kind": "power", "exponent": 0}, 1, "output_norm")


def test_normalization_formulas():
    """EMBER eq. 7 and the cosmic-web eq. 2 against their printed forms."""
    x = np.array([0.0, 1.0, 2631.999])
    y = LogLikeNorm(c=1e-3, b=np.log(2632.0)).forward(x)
    expected = (2 * np.log(x + 1e-3) - (np.log(2632.0) + np.log(1e-3))) / (
        np.log(2632.0) - np.log(1e-3)
    )
    np.testing.assert_allclose(y, expected)
    assert y[0] == pytest.approx(-1.0) and y[-1] == pytest.approx(1.0, abs=1e-6)
    v = np.array([0.0, 1e4, 1e8])
    np.testing.assert_allclose(
        EmberNorm(k=0.9, x0=1e4, q=0.2).forward(v), np.log((v / 1e4) ** 0.2 + 1) / 0.9
    )
