"""Pretrained painters and model cards: an unknown name, each input the card does not cover, a
damaged card, a bad override and a bad recorded cosmology: one line, exit 2, nothing touched."""

from __future__ import annotations

import pytest

from ..painters._cards import COSMO, collection, covered_field
from .conftest import refused

PAINT = ["paint", "--checkpoint", "pretrained:tiny-halo"]
DEPOSIT = ["deposit", "particles.npy", "d.zarr", "--grid", "8", "--box-size", "64"]


@pytest.fixture
def col(ws, monkeypatch):
    """A pretrained collection inside the workspace (so refusals must leave it untouched)."""
    root = collection(ws / "painters", "tiny-halo", "wide-halo")
    monkeypatch.setenv("BIGPAINT_PRETRAINED_PATH", str(root))
    covered_field(ws / "covered.zarr")
    return root


def test_unknown_pretrained_name(ws, col):
    refused(
        ws,
        ["paint", "--checkpoint", "pretrained:tiny-hall", "covered.zarr", "o.zarr"],
        r"unknown pretrained painter 'tiny-hall'; known: tiny-halo, wide-halo(, [a-z0-9.-]+)* "
        r"\(bigpaint painters list describes them\)$",  # closest first, then those shipped
    )
    refused(
        ws, ["painters", "show", "wide"], r"unknown pretrained painter 'wide'; known: wide-halo"
    )


def test_search_path_that_is_not_a_directory(ws, col, monkeypatch):
    monkeypatch.setenv("BIGPAINT_PRETRAINED_PATH", str(ws / "nowhere"))
    refused(ws, [*PAINT, "covered.zarr", "o.zarr"], r"BIGPAINT_PRETRAINED_PATH names .*nowhere")
    refused(ws, ["painters", "list"], r"BIGPAINT_PRETRAINED_PATH names .*nowhere")


@pytest.mark.parametrize(
    ("meta", "pattern"),
    [
        (
            {"box_size": 32.0},
            r"cell size 2 Mpc/h, the card's is 4 \(deposit on 8 cells per side\).*"
            r"--allow-mismatch cell_size \(allow_mismatch\) to paint it anyway$",
        ),
        ({"redshift": 1.0}, r"redshift 1, the card's is 0 \(within 0.01\).*mismatch redshift "),
        (
            {"redshift": None},
            r"no redshift recorded, the card's is 0 \(bigpaint deposit --redshift",
        ),
        (
            {"cosmology": {**COSMO.model_dump(), "sigma_8": 0.9}},
            r"sigma_8 0.9, the card's is 0.8 \(within 0.5%\).*mismatch cosmology ",
        ),
        ({"cosmology": None}, r"no cosmology recorded \(bigpaint deposit --cosmology records it\)"),
        ({"kind": "density"}, r"kind 'density', the card's is 'delta'.*mismatch kind "),
        (
            {"mass_assignment": {"scheme": "CIC", "interlaced": True}},
            r"mass assignment CIC interlaced, the card's is CIC.*mismatch mass_assignment ",
        ),
        (
            {"mass_assignment": None},
            r"no mass assignment recorded, the card's is CIC.*mismatch mass_assignment ",
        ),
        (
            {"redshift": 2.0, "kind": "density"},
            r"redshift 2, .*; kind 'density', .*--allow-mismatch redshift,kind \(allow_mismatch\)",
        ),
    ],
)
def test_input_the_card_does_not_cover(ws, col, meta, pattern):
    covered_field(ws / "bad.zarr", **meta)
    line = refused(ws, [*PAINT, "bad.zarr", "o.zarr"], pattern)
    assert "is not covered by the model card of pretrained:tiny-halo" in line


def test_an_override_of_another_check_does_not_help(ws, col):
    covered_field(ws / "bad.zarr", redshift=1.0)
    refused(
        ws,
        [*PAINT, "bad.zarr", "o.zarr", "--allow-mismatch", "cosmology"],
        r"redshift 1, the card's is 0.*--allow-mismatch redshift ",
    )


def test_misspelt_override(ws, col):
    refused(
        ws,
        [*PAINT, "covered.zarr", "o.zarr", "--allow-mismatch", "redshfit"],
        r"--allow-mismatch: unknown check 'redshfit' \(did you mean 'redshift'\?\); give any of "
        r"cell_size, redshift, cosmology, kind, mass_assignment$",
    )


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("{", r"card.json is not valid JSON \(line 1\); the model card is damaged"),
        ("", r"card.json is not valid JSON"),
        ('{"format": "bigpaint-model-card", "card_version": 7}', r"version 7.*upgrade bigpaint"),
        ('{"format": "bigpaint-model-card", "card_version": 1}', r"invalid model card 'name'"),
    ],
)
def test_damaged_card(ws, col, text, pattern):
    (col / "tiny-halo.painter" / "card.json").write_text(text)
    refused(ws, [*PAINT, "covered.zarr", "o.zarr"], pattern)
    refused(ws, ["painters", "show", "tiny-halo"], pattern)
    refused(ws, ["painters", "list"], pattern)


def test_card_of_another_checkpoint(ws, col):
    import shutil

    from ..paint.conftest import make_checkpoint

    make_checkpoint(ws / "other.painter", "halo-painter", seed=3)  # same architecture
    shutil.copy(col / "tiny-halo.painter" / "card.json", ws / "other.painter" / "card.json")
    refused(
        ws,
        ["paint", "--checkpoint", "other.painter", "covered.zarr", "o.zarr"],
        r"other.painter/card.json describes the checkpoint \w+, these weights are \w+; the card "
        r"belongs to another checkpoint",
    )


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        ("Omega_m=0.3", r"cosmology lacks Omega_b, h, n_s, sigma_8; give all of"),
        ("Omega_m=0.3,Omega_b=0.05,h=0.7,n_s=0.96,sigma8=0.8", r"'sigma8=0.8' is not NAME=VALUE"),
        ("Omega_m=0.3,Omega_m=0.3", r"gives Omega_m twice"),
        ("Omega_m=high", r"Omega_m='high' is not a number"),
        ("Omega_m=2,Omega_b=0.05,h=0.7,n_s=0.96,sigma_8=0.8", r"cosmology Omega_m: .*less than or"),
    ],
)
def test_deposit_cosmology(ws, value, pattern):
    refused(ws, [*DEPOSIT, "--cosmology", value], pattern)


def test_deposit_negative_redshift(ws):
    refused(ws, [*DEPOSIT, "--redshift", "-1"], r"--redshift.*-1")
