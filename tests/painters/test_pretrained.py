"""Pretrained painters: ``pretrained:NAME`` through every entry point that takes a checkpoint,
the search path, ``bigpaint painters list/show``, the card's refusals and their override,
and every painter shipped in the package (it loads, its card validates, it paints)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.config import parse_config
from bigpaint.errors import CheckpointError, ConfigError
from bigpaint.field import field_meta, open_field, write_array
from bigpaint.paint import checkpoint_hash, paint_field, plan_paint, read_checkpoint_info
from bigpaint.painters import (
    load_checkpoint,
    load_weights,
    pretrained_names,
    read_card,
    read_metadata,
    resolve_checkpoint,
)
from bigpaint.painters import pretrained as registry
from bigpaint.painters.card import MISMATCH_NAMES
from bigpaint.stats.bias_model import BiasModel, resolve_bias_model

from ..paint.conftest import make_checkpoint
from ._cards import COSMO, card_for, carded_checkpoint, collection, covered_field
from .conftest import small

ENV = registry.ENV_PATH


@pytest.fixture(scope="module")
def col(tmp_path_factory) -> Path:
    """A collection: two halo painters and a protohalo U-Net (for init_from), with cards."""
    root = collection(tmp_path_factory.mktemp("pretrained"), "tiny-halo", "other-halo")
    proto = make_checkpoint(root / "tiny-proto.painter", "protohalo-unet")
    from bigpaint.painters import write_card

    write_card(proto, card_for(proto, "tiny-proto"))
    return root


@pytest.fixture
def env(col, monkeypatch) -> Path:
    monkeypatch.setenv(ENV, str(col))
    return col


@pytest.fixture(scope="module")
def fields(tmp_path_factory) -> dict[str, str]:
    """Input Fields: one the card covers, and one missing on each check."""
    root = tmp_path_factory.mktemp("fields")
    c = COSMO.model_dump()
    return {
        "covered": covered_field(root / "covered.zarr"),
        "cell_size": covered_field(root / "cell.zarr", box_size=2.0 * 16),
        "redshift": covered_field(root / "z.zarr", redshift=0.5),
        "cosmology": covered_field(root / "cosmo.zarr", cosmology={**c, "Omega_m": 0.32}),
        "kind": covered_field(root / "kind.zarr", kind="density"),
        "mass_assignment": covered_field(root / "ma.zarr", mass_assignment={"scheme": "TSC"}),
    }


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


# ---------------------------------------------------------------- the search path


def test_resolution_and_search_order(env, tmp_path, monkeypatch):
    assert resolve_checkpoint("pretrained:tiny-halo") == env / "tiny-halo.painter"
    assert resolve_checkpoint(str(tmp_path / "x.painter")) == tmp_path / "x.painter"
    assert {"tiny-halo", "other-halo", "tiny-proto"} <= set(pretrained_names())
    # a directory earlier on the path wins over a later one with the same name
    first = collection(tmp_path / "first", "tiny-halo")
    monkeypatch.setenv(ENV, f"{first}:{env}")
    assert resolve_checkpoint("pretrained:tiny-halo") == first / "tiny-halo.painter"
    assert resolve_checkpoint("pretrained:other-halo") == env / "other-halo.painter"
    # the package's directory is searched last
    assert registry.pretrained_dirs() == [first, env, registry.PACKAGE_DIR]


def test_unknown_name_lists_the_known_ones_closest_first(env):
    with pytest.raises(
        CheckpointError,
        match=r"^unknown pretrained painter 'tiny-hallo'; known: tiny-halo, .*other-halo.*"
        r"\(bigpaint painters list describes them\)$",
    ):
        resolve_checkpoint("pretrained:tiny-hallo")
    with pytest.raises(CheckpointError, match=r"names no painter; give pretrained:NAME"):
        resolve_checkpoint("pretrained:")


def test_nothing_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "PACKAGE_DIR", tmp_path / "none")
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(CheckpointError, match=r"no pretrained painter 'x': none is installed"):
        resolve_checkpoint("pretrained:x")
    res = _cli("painters", "list")
    assert res.exit_code == 0 and res.output.startswith("no pretrained painters installed")


def test_search_path_that_is_not_a_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"BIGPAINT_PRETRAINED_PATH names .*missing'?, which is"):
        resolve_checkpoint("pretrained:tiny-halo")


def test_a_pretrained_painter_carries_its_own_card(tmp_path, monkeypatch):
    make_checkpoint(tmp_path / "bare.painter", "halo-painter")
    carded_checkpoint(tmp_path / "renamed.painter", "tiny-halo")
    monkeypatch.setenv(ENV, str(tmp_path))
    with pytest.raises(CheckpointError, match=r"'bare' .* has no card.json; a pretrained painter"):
        resolve_checkpoint("pretrained:bare")
    with pytest.raises(
        CheckpointError, match=r"model card named 'tiny-halo'; rename the directory"
    ):
        resolve_checkpoint("pretrained:renamed")


# ---------------------------------------------------------------- every entry point


def test_library_readers_take_the_name(env):
    path = env / "tiny-halo.painter"
    assert read_metadata("pretrained:tiny-halo") == read_metadata(path)
    painter, meta = load_checkpoint("pretrained:tiny-halo")
    assert meta.family == "halo-painter"
    other = small("halo-painter", seed=5)
    load_weights(other, "pretrained:tiny-halo")
    for a, b in zip(painter.state_dict().values(), other.state_dict().values(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy())
    info = read_checkpoint_info("pretrained:tiny-halo")
    assert info.path == str(path) and info.pretrained == "tiny-halo"
    assert info.card == read_card(path)
    assert checkpoint_hash("pretrained:tiny-halo") == checkpoint_hash(path) == info.hash


def test_paint_field_and_plan_take_the_name(env, fields, tmp_path):
    plan = plan_paint("pretrained:tiny-halo", open_field(fields["covered"]))
    assert plan.checkpoint.pretrained == "tiny-halo" and plan.overridden == ()
    out = str(tmp_path / "out.zarr")
    paint_field("pretrained:tiny-halo", fields["covered"], out)
    direct = str(tmp_path / "direct.zarr")
    paint_field(env / "tiny-halo.painter", fields["covered"], direct)
    a, b = open_field(out), open_field(direct)
    assert np.array_equal(a["painted_test"].values, b["painted_test"].values)
    prov = field_meta(a).provenance
    assert prov["config"]["pretrained"] == "tiny-halo"
    assert prov["config"]["checkpoint"] == str(env / "tiny-halo.painter")
    assert prov["model_card"] == {"name": "tiny-halo", "overridden": []}
    assert "pretrained" not in field_meta(b).provenance["config"]


def test_cli_paint_with_a_name_and_an_override(env, fields, tmp_path):
    out = tmp_path / "out.zarr"
    res = _cli(
        "paint", "--checkpoint", "pretrained:tiny-halo", fields["redshift"], out, "--workers", "1",
        "--allow-mismatch", "redshift",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "outside the model card of tiny-halo (allowed by allow_mismatch redshift)" in res.output
    prov = field_meta(open_field(str(out))).provenance
    assert prov["config"]["allow_mismatch"] == ["redshift"]
    assert prov["model_card"]["overridden"] == [
        {"check": "redshift", "difference": "redshift 0.5, the card's is 0 (within 0.01)"}
    ]


def test_paint_config_takes_the_name_and_the_override(env, fields, tmp_path):
    cfg = tmp_path / "paint.yaml"
    out = tmp_path / "out.zarr"
    cfg.write_text(
        yaml.safe_dump(
            {
                "checkpoint": "pretrained:tiny-halo",
                "input": fields["kind"],
                "output": str(out),
                "allow_mismatch": ["kind"],
                "cluster": {"kind": "local", "n_workers": 1},
            }
        )
    )
    res = _cli("paint", "--config", cfg)
    assert res.exit_code == 0, res.output
    prov = field_meta(open_field(str(out))).provenance
    assert [o["check"] for o in prov["model_card"]["overridden"]] == ["kind"]
    # a misspelt override in the config is one line
    cfg.write_text(cfg.read_text().replace("- kind", "- knd"))
    res = _cli("paint", "--config", cfg)
    assert res.exit_code == 2 and "allow_mismatch" in res.output and "'kind'" in res.output


def test_pipeline_stages_take_the_name(env, fields, tmp_path):
    from bigpaint.pipeline import PipelineConfig, plan_pipeline
    from bigpaint.pipeline.runner import run_pipeline

    data = {
        "out": str(tmp_path / "run"),
        "stages": [
            {
                "name": "painted",
                "kind": "paint",
                "params": {
                    "checkpoint": "pretrained:tiny-halo",
                    "source": fields["redshift"],
                    "allow_mismatch": ["redshift"],
                },
            }
        ],
    }
    cfg = parse_config(PipelineConfig, data, "test")
    run_pipeline(cfg, source="test", use_current_client=True)
    prov = field_meta(open_field(str(tmp_path / "run" / "painted" / "painted.zarr"))).provenance
    assert prov["config"]["pretrained"] == "tiny-halo"
    assert [o["check"] for o in prov["model_card"]["overridden"]] == ["redshift"]
    # the stage's hash follows the pretrained painter's files
    before = plan_pipeline(cfg, source="test")[0].hash
    shutil.copy(env / "tiny-halo.painter" / "card.json", tmp_path / "card.bak")
    card = read_card(env / "tiny-halo.painter")
    from bigpaint.painters import write_card

    write_card(env / "tiny-halo.painter", card.model_copy(update={"summary": "changed card"}))
    try:
        assert plan_pipeline(cfg, source="test", overwrite=True)[0].hash != before
    finally:
        shutil.copy(tmp_path / "card.bak", env / "tiny-halo.painter" / "card.json")
    # an unknown name or check is refused at planning, naming the stage
    bad = json.loads(json.dumps(data))
    bad["stages"][0]["params"]["checkpoint"] = "pretrained:tiny-hal"
    with pytest.raises(
        CheckpointError, match=r"stage 'painted' \(paint\): params.checkpoint: unknown"
    ):
        plan_pipeline(parse_config(PipelineConfig, bad, "test"), source="test")
    bad["stages"][0]["params"]["checkpoint"] = "pretrained:tiny-halo"
    bad["stages"][0]["params"]["allow_mismatch"] = ["redshfit"]
    with pytest.raises(ConfigError, match=r"params.allow_mismatch: unknown check 'redshfit'"):
        plan_pipeline(parse_config(PipelineConfig, bad, "test"), source="test", overwrite=True)
    # a train stage's init_from may name a pretrained painter
    train = {
        "out": str(tmp_path / "run2"),
        "stages": [
            {
                "name": "painter",
                "kind": "train",
                "params": {
                    "family": "protohalo-unet",
                    "model": {"levels": 2, "filters": 2},
                    "data": {"inputs": [fields["covered"]], "targets": [fields["covered"]]},
                    "run": {"init_from": "pretrained:tiny-proto"},
                },
            }
        ],
    }
    (stage,) = plan_pipeline(parse_config(PipelineConfig, train, "test"), source="test")
    assert stage.config.run.init_from == "pretrained:tiny-proto"


def test_train_init_from_a_pretrained_painter(env, tmp_path):
    import torch

    from bigpaint.train import train

    x = covered_field(tmp_path / "x.zarr", n=32)
    result = train(
        {
            "family": "protohalo-unet",
            "model": {"levels": 2, "filters": 2},
            "objective": {"buffer": 2},
            "data": {"inputs": [x], "targets": [x], "patch": 16, "validation": {"size": 16}},
            "optim": {"lr": 1e-12},
            "run": {
                "out": str(tmp_path / "run"),
                "max_steps": 1,
                "val_every": 1,
                "val_batches": 1,
                "progress": False,
                "init_from": "pretrained:tiny-proto",
            },
        }
    )
    a, _ = load_checkpoint("pretrained:tiny-proto")
    b, _ = load_checkpoint(result.last)
    for k, v in a.state_dict().items():
        torch.testing.assert_close(v, b.state_dict()[k], rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------- bigpaint painters


def test_painters_list(env):
    res = _cli("painters", "list")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    i = lines.index(next(ln for ln in lines if ln.startswith("tiny-halo ")))
    assert lines[i].split() == ["tiny-halo", "halo-painter", "4", "Mpc/h", "z", "=", "0", "no",
                                "mass", "bins"]  # fmt: skip
    assert lines[i + 1].strip() == "halo counts from 2LPT density at z = 0 (test painter)"
    assert lines[i + 2].strip() == "verdict: r_c_k0.2 0.91, T_k0.2 1.03"
    names = [ln.split()[0] for ln in lines if not ln.startswith(" ")]
    assert names == sorted(names) and {"tiny-halo", "other-halo", "tiny-proto"} <= set(names)


def test_painters_show(env, tmp_path):
    res = _cli("painters", "show", "tiny-halo")
    assert res.exit_code == 0, res.output
    text = res.output
    for expected in (
        "tiny-halo (halo-painter): halo counts from 2LPT density at z = 0 (test painter)",
        "  cell size     4 Mpc/h",
        "  redshift      0",
        "  cosmology     Omega_m 0.3, Omega_b 0.05, h 0.7, n_s 0.96, sigma_8 0.8",
        "  input kind    delta: 2LPT density contrast, CIC, one particle per cell",
        "  input window  CIC",
        "16^3 particles, 10 PM steps, force mesh 32^3, FoF b = 0.2, >= 20 members",
        "  selection seeds 2",
        "  verdict seeds   3",
        "  command: bigpaint stats verdict painted.zarr truth.zarr",
        "  abundance: [1.0, 0.98]",
        "arXiv:1903.10524",
        "license: MIT",
    ):
        assert expected in text, expected
    assert _cli("painters", "show", "pretrained:tiny-halo").output == text
    res = _cli("painters", "show", "tiny-halo", "--json")
    assert res.exit_code == 0
    assert json.loads(res.output) == json.loads(
        read_card(env / "tiny-halo.painter").model_dump_json()
    )
    # a checkpoint directory by path, with and without a card
    res = _cli("painters", "show", env / "tiny-proto.painter")
    assert res.exit_code == 0 and res.output.startswith("tiny-proto (protohalo-unet)")
    bare = make_checkpoint(tmp_path / "bare.painter", "halo-painter")
    res = _cli("painters", "show", bare)
    assert res.exit_code == 2 and "has no model card" in res.output
    res = _cli("painters", "show", "tiny-hallo")
    assert (
        res.exit_code == 2
        and "unknown pretrained painter 'tiny-hallo'; known: tiny-halo" in res.output
    )


# ---------------------------------------------------------------- the card's refusals


@pytest.mark.parametrize("check", MISMATCH_NAMES)
def test_each_mismatch_is_refused_and_can_be_overridden(env, fields, tmp_path, check, caplog):
    src = fields[check]
    with pytest.raises(CheckpointError) as info:
        plan_paint("pretrained:tiny-halo", open_field(src))
    msg = str(info.value)
    assert "\n" not in msg and "is not covered by the model card of pretrained:tiny-halo" in msg
    assert msg.endswith(f"or pass --allow-mismatch {check} (allow_mismatch) to paint it anyway")
    # the CLI: one line, exit 2, no output
    out = tmp_path / "out.zarr"
    res = _cli("paint", "--checkpoint", "pretrained:tiny-halo", src, out)
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert not out.exists()
    # another override does not let it through
    other = next(n for n in MISMATCH_NAMES if n != check)
    with pytest.raises(CheckpointError, match=f"--allow-mismatch {check} "):
        plan_paint("pretrained:tiny-halo", open_field(src), allow_mismatch=[other])
    # overridden: painted, warned, recorded
    with caplog.at_level(logging.WARNING, logger="bigpaint.paint.engine"):
        paint_field("pretrained:tiny-halo", src, str(out), allow_mismatch=[check])
    assert any(f"allowed by allow_mismatch {check}" in r.getMessage() for r in caplog.records), (
        caplog.text
    )
    prov = field_meta(open_field(str(out))).provenance
    assert [o["check"] for o in prov["model_card"]["overridden"]] == [check]
    assert prov["config"]["allow_mismatch"] == [check]


def test_a_checkpoint_without_card_keeps_todays_checks(fields, tmp_path, caplog):
    bare = make_checkpoint(tmp_path / "bare.painter", "halo-painter")
    for check in ("redshift", "cosmology", "mass_assignment"):  # nothing to check them against
        plan_paint(bare, open_field(fields[check]))
    with pytest.raises(CheckpointError, match=r"trained on 'delta' fields, .* is 'density'"):
        plan_paint(bare, open_field(fields["kind"]))
    with pytest.raises(CheckpointError, match=r"was trained at 4 Mpc/h per voxel"):
        plan_paint(bare, open_field(fields["cell_size"]))
    with caplog.at_level(logging.WARNING, logger="bigpaint.paint.engine"):
        paint_field(bare, fields["covered"], str(tmp_path / "o.zarr"), allow_mismatch="redshift")
    assert "has no model card: allow_mismatch has nothing to override" in caplog.text


def test_deposit_records_what_the_card_checks(env, tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "p.npy", rng.random((4096, 3)) * 64.0)
    cosmo = "Omega_m=0.3,Omega_b=0.05,h=0.7,n_s=0.96,sigma_8=0.8"
    res = _cli(
        "deposit", tmp_path / "p.npy", tmp_path / "d.zarr", "--grid", "16", "--box-size", "64",
        "--redshift", "0", "--cosmology", cosmo, "--workers", "1",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = field_meta(open_field(str(tmp_path / "d.zarr")))
    assert meta.redshift == 0.0 and meta.cosmology == COSMO
    plan_paint("pretrained:tiny-halo", open_field(str(tmp_path / "d.zarr")))  # covered
    # without them, the card refuses the deposit and says how to record them
    res = _cli(
        "deposit", tmp_path / "p.npy", tmp_path / "e.zarr", "--grid", "16", "--box-size", "64",
        "--workers", "1",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    with pytest.raises(CheckpointError, match=r"--redshift records it.*--cosmology records it"):
        plan_paint("pretrained:tiny-halo", open_field(str(tmp_path / "e.zarr")))


# ---------------------------------------------------------------- what the package ships


def _shipped() -> list[str]:
    d = registry.PACKAGE_DIR
    return sorted(p.name[: -len(".painter")] for p in d.glob("*.painter") if p.is_dir())


def test_the_package_ships_the_halo_painter_with_its_baselines(monkeypatch):
    """A user paints without training: the halo painter ships, with the baselines fitted on
    its own training simulations, and its card keeps held-out seeds apart from training."""
    monkeypatch.delenv(ENV, raising=False)
    assert "halo-painter-2mpc" in _shipped()
    path = resolve_checkpoint("pretrained:halo-painter-2mpc")
    card = read_card(path, load_checkpoint(path)[1])
    assert card.output.mass_bins is not None and len(card.training) >= 2
    trained = {s.seed for s in card.training}
    assert not trained & {*card.held_out.selection_seeds, *card.held_out.verdict_seeds}
    for name in ("linear", "quadratic"):
        model = BiasModel.load(resolve_bias_model(f"pretrained:halo-painter-2mpc/{name}"))
        assert list(model.mass_bins) == card.output.mass_bins


def _card_input(card, x: np.ndarray, path) -> str:
    """A Field of ``x`` that matches what ``card`` says its painter takes."""
    n = x.shape[-1]
    return write_array(
        str(path),
        x,
        chunks=n // 2,
        meta={
            "box_size": card.cell_size * n,
            "kind": card.input.kind,
            "units": "1",
            "redshift": card.redshift,
            "cosmology": card.cosmology.model_dump(),
            "mass_assignment": card.input.mass_assignment.model_dump(),
        },
    ).url


@pytest.mark.parametrize("name", _shipped())
def test_shipped_painter_loads_and_paints(name, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    path = resolve_checkpoint(f"pretrained:{name}")
    assert path.parent == registry.PACKAGE_DIR
    _, meta = load_checkpoint(path)
    card = read_card(path, meta)
    assert card is not None and card.name == name and card.family == meta.family
    assert card.verdict is not None and card.held_out.verdict_seeds, "a shipped card has a verdict"
    assert card.papers, "a shipped card cites its paper"
    n = int(meta.tile) if meta.mode == "tile" else 32
    rng = np.random.default_rng(0)
    x = rng.standard_normal((meta.in_channels, n, n, n)).astype("f4") * 0.3
    x = np.abs(x) if meta.ndim == 2 else x  # projected slabs of log-normalized painters
    x = x[0] if meta.in_channels == 1 else x
    src = _card_input(card, x, tmp_path / "in.zarr")
    out = str(tmp_path / "out.zarr")
    paint_field(f"pretrained:{name}", src, out, device="cpu")
    f = open_field(out)
    m = field_meta(f)
    assert (m.kind, m.units) == (card.output.kind, card.output.units)
    values = next(iter(f.data_vars.values())).values
    assert np.isfinite(values).all()


def test_the_protohalo_painter_ships_its_calibration(monkeypatch, tmp_path):
    """The shipped protohalo U-Net carries the adaptive-threshold calibration fitted on maps
    it painted, at its cell size, with held-out seeds apart from training; segment applies
    it by the painter's name with the settings it was made with."""
    from bigpaint.painters.checkpoint import checkpoint_hash
    from bigpaint.segment import read_catalog, segment_field
    from bigpaint.segment.calibration import resolve_calibration
    from bigpaint.segment.catalog import catalog_meta

    monkeypatch.delenv(ENV, raising=False)
    name = "protohalo-unet-2mpc"
    assert name in _shipped()
    path = resolve_checkpoint(f"pretrained:{name}")
    card = read_card(path, load_checkpoint(path)[1])
    cal = resolve_calibration(f"pretrained:{name}")
    assert cal.info["map"]["checkpoint_hash"] == checkpoint_hash(path)
    assert cal.cell_size == (card.cell_size,) * 3 and cal.segment_params is not None
    trained = {s.seed for s in card.training}
    assert not trained & {*card.held_out.selection_seeds, *card.held_out.verdict_seeds}
    # a painted map of a peaked density: segmented with the shipped calibration
    n = 32
    x = np.indices((n,) * 3) - n / 2
    delta = 3.0 * np.exp(-(x**2).sum(0) / (2 * 3.0**2)) + 0.3 * np.random.default_rng(
        0
    ).standard_normal((n,) * 3)
    src = _card_input(card, delta.astype("f4"), tmp_path / "ic.zarr")
    out = str(tmp_path / "map.zarr")
    paint_field(f"pretrained:{name}", src, out, device="cpu")
    cat = segment_field(out, str(tmp_path / "cat.parquet"), calibration=f"pretrained:{name}")
    assert cat.num_rows >= 1
    meta = catalog_meta(read_catalog(tmp_path / "cat.parquet"))
    assert meta["params"]["h"] == cal.segment_params["h"]
    assert meta["calibration"]["info"]["map"]["checkpoint_hash"] == checkpoint_hash(path)
