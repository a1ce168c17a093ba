"""The model card ``bigpaint train`` writes into each checkpoint it saves.

Everything on it comes from the checkpoint's own metadata: the training provenance the loop
records (each input and target Field's kind, units, box, redshift, cosmology, mass
assignment and provenance, and the training grid) and the painter's normalizations. So a
user's own painter is checked like a shipped one when it paints.

A card needs facts the data may not record: the inputs must share one kind, one redshift,
one cosmology and one mass assignment, each recorded. When one is missing,
:func:`training_card` returns no card and says why; the checkpoint then behaves as one
without a card (the resolution and kind checks of its provenance only).

What training cannot know stays empty: the held-out seeds and the verdict (a card is
completed with :func:`bigpaint.painters.write_card` once the verdict on a held-out box is
measured), and the license.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from bigpaint.field import Cosmology
from bigpaint.painters.base import PainterMetadata
from bigpaint.painters.card import InputSpec, ModelCard, OutputSpec, Paper, Simulation
from bigpaint.version import __version__

__all__ = ["FAMILY_PAPERS", "card_name", "training_card"]

#: The paper each family implements (the family modules' docstrings give the details).
FAMILY_PAPERS: dict[str, Paper] = {
    "halo-painter": Paper(
        title="Painting halos from cosmic density fields of dark matter with physically "
        "motivated neural networks",
        arxiv="1903.10524",
        authors="D. Kodi Ramanah, T. Charnock, G. Lavaux",
    ),
    "protohalo-unet": Paper(
        title="Predicting dark matter halo formation in N-body simulations with deep "
        "regression networks",
        arxiv="1912.04299",
        authors="M. Bernardini, L. Mayer, D. Reed, R. Feldmann",
    ),
    "dm2gal": Paper(
        title="dm2gal: Mapping Dark Matter to Galaxies with Neural Networks",
        arxiv="2012.00186",
        authors="N. Kasmanoff, F. Villaescusa-Navarro, J. Tinker, S. Ho",
    ),
    "ember": Paper(
        title="From EMBER to FIRE: predicting high resolution baryon fields from dark matter "
        "simulations with Deep Learning",
        arxiv="2110.11970",
        authors="M. Bernardini, R. Feldmann, D. Anglés-Alcázar et al.",
    ),
    "cosmic-web-gan": Paper(
        title="Encoding large scale cosmological structure with Generative Adversarial Networks",
        arxiv="2011.05244",
        authors="M. Ullmo, A. Decelle, N. Aghanim",
    ),
}


def card_name(run_dir: str) -> str:
    """A card name from a run directory's name (lower case; other characters become ``-``)."""
    base = re.sub(r"[^a-z0-9._-]+", "-", str(run_dir).rstrip("/").rsplit("/", 1)[-1].lower())
    base = base.strip("-._")
    return base or "painter"


def _one(values: Sequence[Any], what: str) -> tuple[Any, str | None]:
    """The one value all inputs share, or a reason why there is none."""
    if any(v is None for v in values):
        return None, f"an input Field records no {what}"
    distinct = {repr(v) for v in values}
    if len(distinct) != 1:
        return None, f"the input Fields record different {what}s"
    return values[0], None


def _simulations(fields: Sequence[Mapping[str, Any]]) -> list[Simulation]:
    """The simulations the training Fields came from, as far as their provenance says."""
    sims: dict[str, Simulation] = {}
    for f in fields:
        prov = f.get("provenance") or {}
        cfg = prov.get("config") or {}
        op = prov.get("operation")
        if op == "simulate" and isinstance(cfg, Mapping):
            fof = cfg.get("fof") or {}
            n = cfg.get("particles")
            sim = Simulation(
                code="bigpaint simulate (2LPT initial conditions, particle mesh, FoF)",
                seed=cfg.get("seed"),
                box_size=float(cfg.get("box_size", f["box_size"][0])),
                particles=n,
                pm_steps=cfg.get("steps"),
                force_mesh=None if n is None else int(cfg.get("force_mesh_factor", 1)) * int(n),
                fof_linking_length=fof.get("b"),
                fof_min_members=fof.get("min_members"),
            )
        elif op:
            seed = cfg.get("seed") if isinstance(cfg, Mapping) else None
            sim = Simulation(
                code=f"bigpaint {op}",
                seed=seed if isinstance(seed, int) else None,
                box_size=float(f["box_size"][0]),
            )
        else:
            continue
        sims.setdefault(sim.model_dump_json(), sim)
    return list(sims.values())


def _input_description(f: Mapping[str, Any], ma: Any, cell: float) -> str:
    prov = f.get("provenance") or {}
    cfg = prov.get("config") or {}
    what = {"2LPT": "2LPT", "PM": "N-body (PM)"}.get(str(prov.get("field")), "")
    text = " ".join(p for p in (what, f"{f['kind']} Field") if p)
    window = "no assignment window" if ma.scheme is None else f"{ma.scheme} deposit"
    if ma.interlaced:
        window += ", interlaced"
    parts = [text, window, f"{cell:.6g} Mpc/h cells"]
    n = cfg.get("particles") if isinstance(cfg, Mapping) else None
    if prov.get("operation") == "simulate" and n:
        ppc = (float(n) * cell / float(f["box_size"][0])) ** 3
        parts.append(f"{ppc:.3g} particles per cell")
    return ", ".join(parts)


def training_card(meta: PainterMetadata, name: str) -> tuple[ModelCard | None, str]:
    """The model card of a checkpoint ``bigpaint train`` writes, from its metadata.

    Parameters
    ----------
    meta : PainterMetadata
        The checkpoint's metadata, with the training provenance of
        :func:`bigpaint.train.loop.train`.
    name : str
        The card's name (:func:`card_name` of the run directory).

    Returns
    -------
    (ModelCard or None, str)
        The card, or None and the reason no card can be written.
    """
    from bigpaint.errors import MetadataError
    from bigpaint.mass_assignment import mass_assignment_of

    prov = meta.provenance
    inputs = list(prov.get("inputs") or [])
    targets = list(prov.get("targets") or [])
    grid = prov.get("grid")
    if not inputs or not targets or not grid:
        return None, "the checkpoint records no training inputs, targets or grid"
    kind, why = _one([i.get("kind") for i in inputs], "kind")
    if why:
        return None, why
    redshift, why = _one([i.get("redshift") for i in inputs], "redshift")
    if why:
        return None, why
    cosmology, why = _one([i.get("cosmology") for i in inputs], "cosmology")
    if why:
        return None, why
    try:
        windows = [mass_assignment_of(i, "training input") for i in inputs]
    except MetadataError as exc:
        return None, str(exc)
    ma, why = _one(windows, "mass assignment")
    if why:
        return None, why
    cell = float(inputs[0]["box_size"][0]) / float(grid[0])
    target = targets[0]
    tprov = target.get("provenance") or {}
    bins = tprov.get("mass_bins") if len(targets) == 1 else None
    if bins is not None and (
        tprov.get("mass_units") != "Msun/h" or len(bins) - 1 != meta.out_channels
    ):
        bins = None
    z = float(redshift)
    out_kind = str(target.get("kind") or "painted")
    try:
        card = _card(meta, name, inputs, targets, kind, z, cosmology, ma, cell, bins, out_kind)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return None, f"the training provenance gives an invalid {where!r} ({err['msg']})"
    return card, ""


def _card(
    meta: PainterMetadata,
    name: str,
    inputs: list[Mapping[str, Any]],
    targets: list[Mapping[str, Any]],
    kind: str,
    z: float,
    cosmology: Any,
    ma: Any,
    cell: float,
    bins: list[float] | None,
    out_kind: str,
) -> ModelCard:
    prov = meta.provenance
    target = targets[0]
    step = prov.get("step")
    summary = f"{meta.family} painting {out_kind} from {kind} at z = {z:g}, {cell:.4g} Mpc/h cells"
    description = (
        f"Trained with bigpaint train{'' if step is None else f' for {step} steps'} on "
        f"{', '.join(str(i.get('url')) for i in inputs)} -> "
        f"{', '.join(str(t.get('url')) for t in targets)}; validation cube "
        f"{prov.get('validation_region')}. The verdict on a held-out simulation is not "
        "yet recorded."
    )
    return ModelCard(
        name=name,
        family=meta.family,
        summary=summary,
        description=description,
        training=_simulations(
            [*inputs, *targets]
            + [f for b in prov.get("more_boxes") or [] for f in (*b["inputs"], *b["targets"])]
        ),
        cosmology=Cosmology.model_validate(cosmology),
        redshift=z,
        cell_size=cell,
        input=InputSpec(
            kind=kind,
            description=_input_description(inputs[0], ma, cell),
            mass_assignment=ma,
            normalization=list(meta.input_norm),
        ),
        output=OutputSpec(
            kind=out_kind,
            units=str(target.get("units") or "1"),
            mass_bins=bins,
            normalization=list(meta.output_norm),
        ),
        papers=[FAMILY_PAPERS[meta.family]] if meta.family in FAMILY_PAPERS else [],
        bigpaint_version=__version__,
    )
