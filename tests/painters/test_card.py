"""Model cards: round trip, validation (one line for each way a card can be wrong), the card
against its checkpoint, the input check with its tolerances, and the card bigpaint train
writes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from pydantic import ValidationError

from bigpaint.errors import CheckpointError, ConfigError
from bigpaint.field import FieldMeta, write_array
from bigpaint.painters import (
    ModelCard,
    load_checkpoint,
    load_weights,
    read_card,
    read_metadata,
    save_checkpoint,
    write_card,
)
from bigpaint.painters.card import (
    CARD,
    CARD_VERSION,
    InputSpec,
    OutputSpec,
    Verdict,
    input_mismatches,
    parse_allow_mismatch,
)
from bigpaint.painters.checkpoint import checkpoint_hash
from bigpaint.train.card import card_name, training_card

from ..paint.conftest import make_checkpoint
from ._cards import CELL, COSMO, COVERED, card_for, carded_checkpoint
from .conftest import small


def test_round_trip(tmp_path):
    ckpt = carded_checkpoint(tmp_path / "m.painter")
    card = read_card(ckpt, read_metadata(ckpt))
    assert card == card_for(ckpt).model_copy(update={"checkpoint_hash": checkpoint_hash(ckpt)})
    assert (
        card.verdict.figures["abundance"] == [1.0, 0.98] and card.verdict.figures["nan_bin"] is None
    )
    assert json.loads((tmp_path / "m.painter" / CARD).read_text())["card_version"] == CARD_VERSION
    assert ModelCard.model_validate_json(card.model_dump_json()) == card
    with pytest.raises(ValidationError):
        card.redshift = 1.0  # frozen
    # the card travels with the checkpoint: loading validates it, a copy keeps it
    shutil.copytree(ckpt, tmp_path / "copy.painter")
    load_checkpoint(tmp_path / "copy.painter")
    assert read_card(tmp_path / "copy.painter") == card
    # no files left behind by the atomic writes
    assert sorted(p.name for p in (tmp_path / "m.painter").iterdir()) == [
        "card.json",
        "metadata.json",
        "weights.pt",
    ]


def test_save_checkpoint_writes_the_card_with_the_weights(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.painter", "halo-painter")
    card = card_for(ckpt)
    p = small("halo-painter")
    save_checkpoint(p, tmp_path / "n.painter", provenance=read_metadata(ckpt).provenance, card=card)
    got = read_card(tmp_path / "n.painter", read_metadata(tmp_path / "n.painter"))
    assert got == card.model_copy(
        update={"checkpoint_hash": checkpoint_hash(tmp_path / "n.painter")}
    )
    # replaced without a card: the old card (describing other weights) goes with them
    save_checkpoint(p, tmp_path / "n.painter", provenance=read_metadata(ckpt).provenance)
    assert read_card(tmp_path / "n.painter") is None
    # a card that does not describe the painter is refused before anything is written
    bad = card.model_copy(update={"family": "dm2gal"})
    with pytest.raises(CheckpointError, match=r"says family 'dm2gal', the weights 'halo-painter'"):
        save_checkpoint(p, tmp_path / "o.painter", card=bad)
    assert not (tmp_path / "o.painter").exists()


def test_a_card_next_to_other_weights_is_refused(tmp_path):
    ckpt = carded_checkpoint(tmp_path / "m.painter")
    other = make_checkpoint(tmp_path / "o.painter", "halo-painter", seed=3)  # same architecture
    shutil.copy(tmp_path / "m.painter" / CARD, tmp_path / "o.painter" / CARD)
    with pytest.raises(CheckpointError, match=r"describes the checkpoint \w+, these weights are"):
        load_checkpoint(other)
    # a card written by hand without the hash is checked on everything else only
    raw = json.loads((tmp_path / "m.painter" / CARD).read_text())
    (tmp_path / "o.painter" / CARD).write_text(json.dumps({**raw, "checkpoint_hash": None}))
    load_checkpoint(other)
    assert read_card(ckpt).checkpoint_hash == checkpoint_hash(ckpt)


def test_a_checkpoint_without_card_has_none(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.painter", "halo-painter")
    assert read_card(ckpt) is None
    load_checkpoint(ckpt)


def _write_raw(ckpt, text: str):
    (ckpt / CARD).write_text(text)


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (
            lambda d: "{not json",
            r"card.json is not valid JSON \(line 1\); the model card is damaged",
        ),
        (lambda d: json.dumps({**d, "format": "other"}), r"is not a bigpaint model card"),
        (lambda d: json.dumps([1, 2]), r"is not a bigpaint model card"),
        (
            lambda d: json.dumps({**d, "card_version": CARD_VERSION + 1}),
            rf"model card of version {CARD_VERSION + 1}, this bigpaint reads up to "
            rf"{CARD_VERSION}; upgrade bigpaint",
        ),
        (lambda d: json.dumps({**d, "card_version": "1"}), r"card_version is missing or not an"),
        (lambda d: json.dumps({**d, "redshift": -1}), r"invalid model card 'redshift'"),
        (lambda d: json.dumps({**d, "colour": "red"}), r"invalid model card 'colour'"),
        (
            lambda d: json.dumps({k: v for k, v in d.items() if k != "cosmology"}),
            r"invalid model card 'cosmology': Field required",
        ),
        (lambda d: json.dumps({**d, "summary": "a\nb"}), r"'summary': summary must be one line"),
        (lambda d: json.dumps({**d, "name": "Big Halo"}), r"'name': name must be lower-case"),
        (
            lambda d: json.dumps({**d, "held_out": {"verdict_seeds": [1]}}),
            r"held-out seed 1 is also the seed of a training simulation",
        ),
        (
            lambda d: json.dumps({**d, "papers": [{"title": "x", "arxiv": "19.03"}]}),
            r"arxiv must be an arXiv id",
        ),
        (
            lambda d: json.dumps(
                {**d, "verdict": {"command": "c", "figures": {"r": "good"}, "headline": []}}
            ),
            r"verdict figure figures.r is 'good'; figures are numbers",
        ),
        (
            lambda d: json.dumps(
                {**d, "verdict": {"command": "c", "figures": {"r": [1]}, "headline": ["r"]}}
            ),
            r"headline 'r' is not a single number",
        ),
        (
            lambda d: json.dumps({**d, "output": {**d["output"], "mass_bins": [1e13, 1e12]}}),
            r"mass_bins must be >= 2 positive increasing edges",
        ),
    ],
)
def test_a_bad_card_is_one_line(tmp_path, edit, pattern):
    ckpt = carded_checkpoint(tmp_path / "m.painter")
    good = json.loads((tmp_path / "m.painter" / CARD).read_text())
    _write_raw(tmp_path / "m.painter", edit(good))
    for call in (lambda: read_card(ckpt), lambda: load_checkpoint(ckpt)):
        with pytest.raises(CheckpointError, match=pattern) as info:
            call()
        assert "\n" not in str(info.value)


def test_binary_card_is_refused(tmp_path):
    ckpt = carded_checkpoint(tmp_path / "m.painter")
    (tmp_path / "m.painter" / CARD).write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CheckpointError, match="is not JSON text"):
        read_card(ckpt)


@pytest.mark.parametrize(
    ("update", "pattern"),
    [
        ({"family": "dm2gal"}, r"family 'dm2gal', the weights 'halo-painter'"),
        ({"cell_size": 2.0}, r"cell size 2 Mpc/h, training provenance 4.0"),
        ("input_kind", r"input kind 'density', training provenance \['delta'\]"),
        ("input_norm", r"another input normalization than metadata.json"),
        ("output_kind", r"output kind 'halo_count', training provenance 'painted_test'"),
        ("bins", r"3 mass bins, the painter has 1 output channel"),
    ],
)
def test_a_card_of_another_checkpoint_is_refused(tmp_path, update, pattern):
    ckpt = make_checkpoint(tmp_path / "m.painter", "halo-painter")
    card = card_for(ckpt)
    if update == "input_kind":
        card = card.model_copy(update={"input": card.input.model_copy(update={"kind": "density"})})
    elif update == "input_norm":
        norm = [{"kind": "affine", "scale": 2.0}]
        card = card.model_copy(
            update={"input": InputSpec(**{**card.input.model_dump(), "normalization": norm})}
        )
    elif update == "output_kind":
        card = card.model_copy(
            update={"output": card.output.model_copy(update={"kind": "halo_count"})}
        )
    elif update == "bins":
        out = OutputSpec(**{**card.output.model_dump(), "mass_bins": [1e12, 1e13, 1e14, 1e15]})
        card = card.model_copy(update={"output": out})
    else:
        card = card.model_copy(update=update)
    with pytest.raises(CheckpointError, match=pattern + r".*belongs to another checkpoint"):
        write_card(ckpt, card)
    assert read_card(ckpt) is None  # nothing written
    # the same card copied in by hand is refused when the checkpoint is loaded
    (tmp_path / "m.painter" / CARD).write_text(card.model_dump_json())
    with pytest.raises(CheckpointError, match=pattern):
        load_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match=pattern):
        load_weights(small("halo-painter"), ckpt)


# ---------------------------------------------------------------- the input check


def _meta(**update) -> FieldMeta:
    return FieldMeta(**{**COVERED, "box_size": 64.0, **update})


def _names(card, meta, cell=CELL):
    return [m.name for m in input_mismatches(card, meta, cell)]


def test_input_mismatches_at_their_tolerances(tmp_path):
    card = card_for(make_checkpoint(tmp_path / "m.painter", "halo-painter"))
    assert _names(card, _meta()) == []
    # cell size: 1e-6 relative
    assert _names(card, _meta(), CELL * (1 + 5e-7)) == []
    assert _names(card, _meta(), CELL * (1 + 5e-6)) == ["cell_size"]
    # redshift: 0.01 absolute, and a Field must record one
    assert _names(card, _meta(redshift=0.009)) == []
    assert _names(card, _meta(redshift=0.011)) == ["redshift"]
    assert _names(card, _meta(redshift=None)) == ["redshift"]
    # cosmology: each parameter within 0.5 %, and a Field must record one
    c = COSMO.model_dump()
    assert _names(card, _meta(cosmology={**c, "sigma_8": 0.8 * 1.004})) == []
    assert _names(card, _meta(cosmology={**c, "sigma_8": 0.8 * 1.006})) == ["cosmology"]
    assert _names(card, _meta(cosmology={**c, "h": 0.7 * 0.994})) == ["cosmology"]
    assert _names(card, _meta(cosmology=None)) == ["cosmology"]
    # input kind
    assert _names(card, _meta(kind="density")) == ["kind"]
    # mass assignment: scheme, interlacing, and a Field must record one
    assert _names(card, _meta(mass_assignment={"scheme": "TSC"})) == ["mass_assignment"]
    ma = {"scheme": "CIC", "interlaced": True}
    assert _names(card, _meta(mass_assignment=ma)) == ["mass_assignment"]
    assert _names(card, _meta(mass_assignment=None)) == ["mass_assignment"]
    assert _names(card, _meta(mass_assignment={"scheme": None})) == ["mass_assignment"]
    # an older Field whose provenance says its deposit scheme is read as that
    legacy = {"operation": "deposit", "config": {"scheme": "cic"}}
    assert _names(card, _meta(mass_assignment=None, provenance=legacy)) == []
    # all at once, in the order of MISMATCH_NAMES, each saying what differs
    every = input_mismatches(
        card,
        _meta(redshift=2.0, cosmology=None, kind="density", mass_assignment={"scheme": "NGP"}),
        2.0,
    )
    assert [m.name for m in every] == [
        "cell_size",
        "redshift",
        "cosmology",
        "kind",
        "mass_assignment",
    ]
    texts = [m.text for m in every]
    assert "cell size 2 Mpc/h, the card's is 4 (deposit on 16 cells per side)" == texts[0]
    assert "redshift 2, the card's is 0" in texts[1]
    assert "no cosmology recorded" in texts[2]
    assert texts[3] == "kind 'density', the card's is 'delta'"
    assert texts[4] == "mass assignment NGP, the card's is CIC"


def test_parse_allow_mismatch():
    assert parse_allow_mismatch(None) == frozenset()
    assert parse_allow_mismatch("redshift, cosmology") == {"redshift", "cosmology"}
    assert parse_allow_mismatch(["kind"]) == {"kind"}
    with pytest.raises(
        ConfigError, match=r"unknown check 'redhsift' \(did you mean 'redshift'\?\)"
    ):
        parse_allow_mismatch("redhsift")


def test_verdict_refuses_non_finite_numbers():
    with pytest.raises(ValidationError, match="give a finite number or null"):
        Verdict(command="c", figures={"r": float("nan")})


# ---------------------------------------------------------------- the card bigpaint train writes


def _sim_field(path, *, n=32, redshift=0.0, cosmology="covered", kind="delta", **extra):
    cfg = {
        "seed": 11,
        "box_size": 64.0,
        "particles": 32,
        "steps": 12,
        "force_mesh_factor": 2,
        "fof": {"b": 0.2, "min_members": 20},
    }
    rng = np.random.default_rng(0)
    data = (0.5 * rng.standard_normal((n,) * 3)).astype("f4")
    meta = {
        "box_size": 64.0,
        "kind": kind,
        "units": "1",
        "redshift": redshift,
        "cosmology": COSMO.model_dump() if cosmology == "covered" else cosmology,
        "provenance": {"operation": "simulate", "config": cfg, "field": "2LPT", **extra},
        "mass_assignment": {"scheme": "CIC"},
    }
    return write_array(str(path), data, chunks=16, meta=meta).url


def _train_cfg(tmp_path, inputs, targets, out):
    return {
        "family": "protohalo-unet",
        "model": {"levels": 2, "filters": 2},
        "objective": {"buffer": 2},
        "data": {"inputs": inputs, "targets": targets, "patch": 16, "validation": {"size": 16}},
        "run": {
            "out": str(out),
            "max_steps": 1,
            "val_every": 1,
            "checkpoint_every": 1,
            "val_batches": 1,
            "progress": False,
        },
    }


def test_train_writes_a_card_that_paint_checks(tmp_path):
    from bigpaint.field import open_field
    from bigpaint.paint import plan_paint
    from bigpaint.train import train

    x = _sim_field(tmp_path / "lpt.zarr")
    y = _sim_field(tmp_path / "target.zarr", kind="density")
    result = train(_train_cfg(tmp_path, [x], [y], tmp_path / "My Run"))
    for ckpt in (result.best, result.last):
        card = read_card(ckpt, read_metadata(ckpt))
        assert card is not None and card.name == "my-run" and card.family == "protohalo-unet"
        assert card.cell_size == pytest.approx(2.0) and card.redshift == 0.0
        assert card.cosmology == COSMO and card.input.kind == "delta"
        assert card.input.mass_assignment.scheme == "CIC"
        assert card.input.description.startswith("2LPT delta Field, CIC deposit, 2 Mpc/h cells")
        assert card.output.kind == "density" and card.verdict is None
        assert card.papers[0].arxiv == "1912.04299"
        (sim,) = card.training  # input and target come from one simulation
        assert (sim.seed, sim.particles, sim.pm_steps, sim.force_mesh) == (11, 32, 12, 64)
        assert (sim.fof_linking_length, sim.fof_min_members) == (0.2, 20)
    # paint checks the user's painter as a shipped one
    plan_paint(result.last, open_field(x))
    z1 = _sim_field(tmp_path / "z1.zarr", redshift=1.0)
    with pytest.raises(CheckpointError, match=r"redshift 1, the card's is 0"):
        plan_paint(result.last, open_field(z1))
    assert plan_paint(result.last, open_field(z1), allow_mismatch="redshift").overridden


def test_train_without_the_facts_writes_no_card(tmp_path):
    from bigpaint.train import train

    x = _sim_field(tmp_path / "x.zarr", cosmology=None)
    result = train(_train_cfg(tmp_path, [x], [x], tmp_path / "run"))
    assert read_card(result.last) is None and read_card(result.best) is None
    load_checkpoint(result.last)  # today's behaviour


def test_training_card_reasons_and_mass_bins(tmp_path):
    p = small("halo-painter")
    base = {
        "url": "in.zarr",
        "kind": "delta",
        "units": "1",
        "box_size": [64.0] * 3,
        "redshift": 0.0,
        "cosmology": COSMO.model_dump(),
        "mass_assignment": {"scheme": "CIC", "interlaced": False},
        "provenance": {},
    }
    target = {
        **base,
        "kind": "halo_count",
        "units": "halos",
        "mass_assignment": {"scheme": "NGP"},
        "provenance": {"mass_bins": [1e13, 1e14], "mass_units": "Msun/h"},
    }

    def card(inputs, targets=(target,)):
        prov = {"inputs": list(inputs), "targets": list(targets), "grid": [16] * 3}
        return training_card(p.metadata(prov), "run")

    got, why = card([base])
    assert why == "" and got.output.mass_bins == [1e13, 1e14] and got.training == []
    assert got.cell_size == 4.0 and got.input.description.startswith("delta Field, CIC deposit")
    assert card([{**base, "redshift": None}]) == (None, "an input Field records no redshift")
    assert card([base, {**base, "redshift": 1.0}]) == (
        None,
        "the input Fields record different redshifts",
    )
    assert card([{**base, "cosmology": None}])[1] == "an input Field records no cosmology"
    no_window = {**base, "mass_assignment": None}
    assert card([no_window])[1] == "an input Field records no mass assignment"
    assert card([base, {**base, "kind": "density"}])[1] == "the input Fields record different kinds"
    # bins that do not match the output channels are left out, not guessed
    more = {**target, "provenance": {"mass_bins": [1e12, 1e13, 1e14], "mass_units": "Msun/h"}}
    assert card([base], [more])[0].output.mass_bins is None


def test_card_name_from_run_directory():
    assert card_name("runs/Halo Painter z0/") == "halo-painter-z0"
    assert card_name("///") == "painter"
