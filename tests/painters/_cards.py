"""Small checkpoints with model cards, a pretrained collection of them, and input Fields the
card covers (or misses on purpose), for the card and pretrained tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bigpaint.field import Cosmology, write_array
from bigpaint.painters import read_metadata, write_card
from bigpaint.painters.card import InputSpec, ModelCard, OutputSpec, Paper, Simulation, Verdict

from ..paint.conftest import make_checkpoint

#: Cell size in Mpc/h of make_checkpoint's default training (64 Mpc/h over 16 cells).
CELL = 4.0
COSMO = Cosmology(Omega_m=0.3, Omega_b=0.05, h=0.7, n_s=0.96, sigma_8=0.8)
#: Metadata of an input Field the default card covers (box set per grid).
COVERED = {
    "kind": "delta",
    "units": "1",
    "redshift": 0.0,
    "cosmology": COSMO.model_dump(),
    "mass_assignment": {"scheme": "CIC", "interlaced": False},
}


def card_for(path: str | Path, name: str = "tiny-halo", **update: Any) -> ModelCard:
    """A full card describing the checkpoint at ``path`` (``update``: top-level fields)."""
    meta = read_metadata(path)
    fields: dict[str, Any] = {
        "name": name,
        "family": meta.family,
        "summary": "halo counts from 2LPT density at z = 0 (test painter)",
        "description": "A tiny untrained painter for the tests.\nSecond line.",
        "training": [
            Simulation(
                code="bigpaint simulate (2LPT initial conditions, particle mesh, FoF)",
                seed=1,
                box_size=64.0,
                particles=16,
                pm_steps=10,
                force_mesh=32,
                fof_linking_length=0.2,
                fof_min_members=20,
            )
        ],
        "held_out": {"selection_seeds": [2], "verdict_seeds": [3]},
        "cosmology": COSMO,
        "redshift": 0.0,
        "cell_size": CELL,
        "input": InputSpec(
            kind="delta",
            description="2LPT density contrast, CIC, one particle per cell",
            mass_assignment={"scheme": "CIC"},
            normalization=list(meta.input_norm),
        ),
        "output": OutputSpec(
            kind="painted_test",  # as make_checkpoint's training provenance says
            units="1",
            mass_bins=None,
            normalization=list(meta.output_norm),
        ),
        "verdict": Verdict(
            command="bigpaint stats verdict painted.zarr truth.zarr",
            figures={"r_c_k0.2": 0.91, "T_k0.2": 1.03, "abundance": [1.0, 0.98], "nan_bin": None},
            headline=["r_c_k0.2", "T_k0.2"],
        ),
        "papers": [
            Paper(
                title="Painting halos from cosmic density fields of dark matter with "
                "physically motivated neural networks",
                arxiv="1903.10524",
            )
        ],
        "license": "MIT",
        "bigpaint_version": "1.0",
    }
    fields.update(update)
    return ModelCard(**fields)


def carded_checkpoint(path: Path, name: str = "tiny-halo", **update: Any) -> str:
    """A small halo-painter checkpoint at 4 Mpc/h with the card :func:`card_for` makes."""
    ckpt = make_checkpoint(path, "halo-painter")
    write_card(ckpt, card_for(ckpt, name, **update))
    return ckpt


def collection(root: Path, *names: str) -> Path:
    """A directory of ``<name>.painter`` checkpoints with cards (for BIGPAINT_PRETRAINED_PATH)."""
    root.mkdir(parents=True, exist_ok=True)
    for n in names:
        carded_checkpoint(root / f"{n}.painter", n)
    return root


def covered_field(path: Path, n: int = 16, seed: int = 3, **meta: Any) -> str:
    """A finished ``n``^3 input Field the default card covers (``meta`` changes that)."""
    a = (0.3 * np.random.default_rng(seed).standard_normal((n,) * 3)).astype("f4")
    m = {**COVERED, "box_size": CELL * n, **meta}
    return write_array(str(path), a, chunks=n // 2, meta=m).url
