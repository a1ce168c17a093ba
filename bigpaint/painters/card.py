"""Model cards: what a painter was trained on, how it was judged, and which inputs it covers.

A card is ``card.json``, an optional third file of a checkpoint directory
(:mod:`bigpaint.painters.checkpoint`), read into the strict, frozen :class:`ModelCard`:

- who it is: ``name``, ``family``, a one-line ``summary`` and a ``description``;
- what it learnt from: the ``training`` simulations (code, seed, box, particles, PM steps,
  force mesh, FoF linking length and minimum members) and the ``held_out`` seeds used for
  model selection and for the verdict, which never touched training;
- what it covers: ``cosmology``, ``redshift`` and ``cell_size`` of the input, the input's
  ``kind``, a description, its mass assignment and normalization, and what it paints
  (output kind, units, mass bins, normalization);
- how good it is: the ``verdict`` figures on the held-out box and the command that
  produced them; the ``papers`` to cite (title and arXiv id), the ``license`` and the
  bigpaint version that wrote the card;
- whose card it is: ``checkpoint_hash``, the hash of the metadata and weights it describes
  (:func:`bigpaint.painters.checkpoint.checkpoint_hash`), set when the card is written.

Painting refuses an input the card does not cover (:func:`input_mismatches`, called by
:func:`bigpaint.paint.plan_paint`): a cell size off by more than 1e-6 (relative), a redshift
off by more than 0.01 or not recorded, a cosmology parameter off by more than 0.5 % or no
cosmology recorded, another input kind, or another mass assignment. Each can be overridden
by name (``allow_mismatch``); the override is logged and recorded in the output.

Reading a card checks it twice: against its own schema (a damaged or newer card is one
line), and against the checkpoint it sits in (family, normalizations, output channels and the
training provenance must agree, and the recorded hash must be the checkpoint's), so a card
copied next to other weights is refused.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bigpaint.errors import CheckpointError, ConfigError
from bigpaint.field import Cosmology, FieldMeta, MassAssignment
from bigpaint.painters.base import Normalization, PainterMetadata
from bigpaint.painters.layout import directory_hash, read_metadata_file

__all__ = [
    "CARD",
    "CARD_VERSION",
    "CELL_SIZE_RTOL",
    "COSMOLOGY_RTOL",
    "MISMATCH_NAMES",
    "REDSHIFT_TOLERANCE",
    "HeldOut",
    "InputSpec",
    "Mismatch",
    "MismatchName",
    "ModelCard",
    "OutputSpec",
    "Paper",
    "Simulation",
    "Verdict",
    "check_card",
    "input_mismatches",
    "parse_allow_mismatch",
    "read_card",
    "write_card",
]

#: File name of the card inside a checkpoint directory.
CARD = "card.json"
#: Version of the card schema this bigpaint writes and the newest it reads.
CARD_VERSION = 1
#: What an input may differ from its card by before painting refuses it.
CELL_SIZE_RTOL = 1e-6
REDSHIFT_TOLERANCE = 0.01
COSMOLOGY_RTOL = 0.005

#: The checks a user may override (``--allow-mismatch``), in the order they are reported.
MismatchName = Literal["cell_size", "redshift", "cosmology", "kind", "mass_assignment"]
MISMATCH_NAMES: tuple[str, ...] = get_args(MismatchName)

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_ARXIV_RE = re.compile(r"^(\d{4}\.\d{4,5}|[a-z-]+(\.[A-Z]{2})?/\d{7})(v\d+)?$")
_DAMAGED = "the model card is damaged; copy the checkpoint again or rewrite card.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Paper(_Strict):
    """A paper to cite: its title and arXiv id (``1903.10524``)."""

    title: str = Field(min_length=1)
    arxiv: str
    authors: str | None = None

    @field_validator("arxiv")
    @classmethod
    def _arxiv_id(cls, v: str) -> str:
        v = v.removeprefix("arXiv:")
        if not _ARXIV_RE.match(v):
            raise ValueError(f"arxiv must be an arXiv id like '1903.10524', got {v!r}")
        return v


class Simulation(_Strict):
    """One simulation the painter was trained on.

    Attributes
    ----------
    code : str
        What ran it (``"bigpaint simulate (2LPT, PM, FoF)"``, ``"Gadget-4"``, ...).
    seed : int or None
        Seed of its initial conditions.
    box_size : float
        Box side in Mpc/h.
    particles : int or None
        Particles per side.
    pm_steps : int or None
        Particle-mesh time steps (None: not a PM run, or not recorded).
    force_mesh : int or None
        Force-mesh cells per side.
    fof_linking_length : float or None
        Friends-of-friends linking length in mean inter-particle separations.
    fof_min_members : int or None
        Fewest particles of a FoF halo kept.
    """

    code: str = Field(min_length=1)
    seed: int | None = None
    box_size: float = Field(gt=0)
    particles: int | None = Field(None, ge=1)
    pm_steps: int | None = Field(None, ge=1)
    force_mesh: int | None = Field(None, ge=1)
    fof_linking_length: float | None = Field(None, gt=0)
    fof_min_members: int | None = Field(None, ge=1)


class HeldOut(_Strict):
    """Seeds of the simulations held out of training: for model selection, for the verdict."""

    selection_seeds: list[int] = Field(default_factory=list)
    verdict_seeds: list[int] = Field(default_factory=list)


class InputSpec(_Strict):
    """The input a painter covers.

    Attributes
    ----------
    kind : str
        Field kind (``delta``, ...).
    description : str
        What the field is (``"2LPT density contrast, CIC, one particle per cell"``).
    mass_assignment : MassAssignment
        The input's assignment window (``scheme`` None: no window, e.g. a Gaussian field).
    normalization : list of Normalization
        The checkpoint's input normalization, one per channel.
    """

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    mass_assignment: MassAssignment
    normalization: list[Normalization]


class OutputSpec(_Strict):
    """What a painter paints: kind, units, mass-bin edges in Msun/h (one channel per bin),
    and the checkpoint's output normalization."""

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    units: str
    mass_bins: list[float] | None = None
    normalization: list[Normalization]

    @field_validator("mass_bins")
    @classmethod
    def _increasing(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (
            len(v) < 2 or v[0] <= 0 or any(b <= a for a, b in itertools.pairwise(v))
        ):
            raise ValueError(f"mass_bins must be >= 2 positive increasing edges in Msun/h, got {v}")
        return v


def _numbers(value: Any, where: str) -> None:
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"verdict figure {where} is {value}; give a finite number or null")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            _numbers(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _numbers(v, f"{where}[{i}]")
    else:
        raise ValueError(f"verdict figure {where} is {value!r}; figures are numbers")


class Verdict(_Strict):
    """The verdict on the held-out box.

    Attributes
    ----------
    command : str
        The command that produced the figures.
    figures : dict
        Numbers (or lists and dicts of numbers; null where undefined), free-form.
    headline : list of str
        Keys of ``figures`` holding single numbers, shown by ``bigpaint painters list``.
    """

    command: str = Field(min_length=1)
    figures: dict[str, Any]
    headline: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _figures(self) -> Verdict:
        _numbers(self.figures, "figures")
        for key in self.headline:
            value = self.figures.get(key, "missing")
            if isinstance(value, (Mapping, list, str)):
                raise ValueError(f"headline {key!r} is not a single number of figures")
        return self


class ModelCard(_Strict):
    """A painter's model card (``card.json``; see the module docstring for each field)."""

    format: Literal["bigpaint-model-card"] = "bigpaint-model-card"
    card_version: int = CARD_VERSION
    name: str
    family: str
    summary: str = Field(min_length=1, max_length=160)
    description: str
    training: list[Simulation] = Field(default_factory=list)
    held_out: HeldOut = Field(default_factory=HeldOut)
    cosmology: Cosmology
    redshift: float = Field(ge=0)
    cell_size: float = Field(gt=0, description="Mpc/h")
    input: InputSpec
    output: OutputSpec
    verdict: Verdict | None = None
    papers: list[Paper] = Field(default_factory=list)
    license: str | None = None
    bigpaint_version: str
    checkpoint_hash: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"name must be lower-case letters, digits, '.', '_' or '-', got {v!r}")
        return v

    @field_validator("summary")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if "\n" in v:
            raise ValueError("summary must be one line")
        return v

    @model_validator(mode="after")
    def _held_out_apart(self) -> ModelCard:
        trained = {s.seed for s in self.training if s.seed is not None}
        for seed in (*self.held_out.selection_seeds, *self.held_out.verdict_seeds):
            if seed in trained:
                raise ValueError(
                    f"held-out seed {seed} is also the seed of a training simulation; a held-out "
                    "simulation must never touch training"
                )
        return self


# ---------------------------------------------------------------- reading and writing


def read_card(path: str | Path, meta: PainterMetadata | None = None) -> ModelCard | None:
    """The model card of the checkpoint directory ``path``, or None when it has none.

    With ``meta`` (the checkpoint's metadata), the card is also checked against it: family,
    input and output normalizations, output channels against mass bins, and the training
    input kind and cell size the provenance records.

    Raises
    ------
    CheckpointError
        One line: the card is not JSON, not a model card, of a newer version, invalid, or
        belongs to another checkpoint.
    """
    cfile = Path(path) / CARD
    if not cfile.is_file():
        return None
    try:
        raw = json.loads(cfile.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{cfile} is not JSON text; {_DAMAGED}") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"{cfile} is not valid JSON (line {exc.lineno}); {_DAMAGED}"
        ) from None
    if not isinstance(raw, dict) or raw.get("format") != "bigpaint-model-card":
        raise CheckpointError(f"{cfile} is not a bigpaint model card; {_DAMAGED}")
    version = raw.get("card_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{cfile}: card_version is missing or not an integer; {_DAMAGED}")
    if version > CARD_VERSION:
        raise CheckpointError(
            f"{cfile} is a model card of version {version}, this bigpaint reads up to "
            f"{CARD_VERSION}; upgrade bigpaint to use it"
        )
    try:
        card = ModelCard.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise CheckpointError(f"{cfile}: invalid model card {where!r}: {msg}; {_DAMAGED}") from None
    if meta is not None:
        check_card(card, meta, cfile)
        _check_hash(card, path, cfile)
    return card


def _check_hash(card: ModelCard, path: str | Path, cfile: Path) -> None:
    if card.checkpoint_hash is None:
        return
    own = directory_hash(Path(path))
    if card.checkpoint_hash != own:
        raise CheckpointError(
            f"{cfile} describes the checkpoint {card.checkpoint_hash}, these weights are {own}; "
            "the card belongs to another checkpoint: rewrite it for this one "
            "(bigpaint.painters.write_card)"
        )


def check_card(card: ModelCard, meta: PainterMetadata, cfile: str | Path) -> None:
    """Refuse (one-line :class:`CheckpointError`) a card that describes another checkpoint
    than the one ``meta`` describes; ``cfile`` names the card in the message."""
    other = (
        "; the card belongs to another checkpoint: rewrite it for this one "
        "(bigpaint.painters.write_card)"
    )

    def norms(values: Iterable[Any]) -> list[dict[str, Any]]:
        return [v.model_dump() for v in values]

    prov = meta.provenance
    inputs = prov.get("inputs") or []
    kinds = {k for i in inputs if isinstance(i, Mapping) and (k := i.get("kind"))}
    targets = [t for t in prov.get("targets") or [] if isinstance(t, Mapping)]
    target = targets[0] if targets else {}
    cell = prov.get("cell_size")
    if cell is None and inputs and prov.get("grid") and isinstance(inputs[0], Mapping):
        try:
            cell = float(inputs[0]["box_size"][0]) / float(prov["grid"][0])
        except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError):
            cell = None
    bins = card.output.mass_bins
    problems = [
        (card.family != meta.family, f"family {card.family!r}, the weights {meta.family!r}"),
        (
            norms(card.input.normalization) != norms(meta.input_norm),
            "another input normalization than metadata.json",
        ),
        (
            norms(card.output.normalization) != norms(meta.output_norm),
            "another output normalization than metadata.json",
        ),
        (
            bins is not None and len(bins) - 1 != meta.out_channels,
            f"{0 if bins is None else len(bins) - 1} mass bins, the painter has "
            f"{meta.out_channels} output channel(s)",
        ),
        (
            len(kinds) == 1 and card.input.kind not in kinds,
            f"input kind {card.input.kind!r}, training provenance {sorted(kinds)}",
        ),
        (
            target.get("kind") not in (None, card.output.kind),
            f"output kind {card.output.kind!r}, training provenance {target.get('kind')!r}",
        ),
        (
            target.get("units") not in (None, card.output.units),
            f"output units {card.output.units!r}, training provenance {target.get('units')!r}",
        ),
        (
            cell is not None
            and not math.isclose(card.cell_size, float(cell), rel_tol=CELL_SIZE_RTOL),
            f"cell size {card.cell_size:.6g} Mpc/h, training provenance {cell}",
        ),
    ]
    for bad, what in problems:
        if bad:
            raise CheckpointError(f"{cfile} says {what}{other}")


def write_card(path: str | Path, card: ModelCard) -> Path:
    """Write ``card`` as the model card of the checkpoint directory ``path``.

    The card is checked against the checkpoint's metadata first, gets the checkpoint's hash
    (``checkpoint_hash``), and is written to a temporary file renamed into place, so a
    killed writer never leaves half a card.

    Returns
    -------
    pathlib.Path
        The card file.
    """
    path = Path(path)
    meta = read_metadata_file(path)
    cfile = path / CARD
    check_card(card, meta, cfile)
    card = card.model_copy(update={"checkpoint_hash": directory_hash(path)})
    tmp = path / f".{CARD}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(card.model_dump_json(indent=2) + "\n")
        os.replace(tmp, cfile)
    finally:
        tmp.unlink(missing_ok=True)
    return cfile


# ---------------------------------------------------------------- the input check


@dataclass(frozen=True)
class Mismatch:
    """How an input differs from a card: the check's ``name`` and a phrase saying how."""

    name: str
    text: str


def parse_allow_mismatch(
    value: str | Iterable[str] | None, where: str = "allow_mismatch"
) -> frozenset[str]:
    """The overrides a user gave (``"redshift,cosmology"`` or a list); unknown names refused."""
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(v).strip() for v in items if str(v).strip()]
    for n in names:
        if n not in MISMATCH_NAMES:
            hint = difflib.get_close_matches(n, MISMATCH_NAMES, n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(
                f"{where}: unknown check {n!r}{did}; give any of {', '.join(MISMATCH_NAMES)}"
            )
    return frozenset(names)


def _window(ma: MassAssignment) -> str:
    base = ma.scheme or "no window"
    return f"{base} interlaced" if ma.interlaced else base


def input_mismatches(card: ModelCard, meta: FieldMeta, cell_size: float) -> list[Mismatch]:
    """Every way an input Field differs from what ``card`` covers (empty: it is covered).

    Parameters
    ----------
    card : ModelCard
    meta : FieldMeta
        The input Field's metadata.
    cell_size : float
        The input's voxel size in Mpc/h.

    Returns
    -------
    list of Mismatch
        In the order of :data:`MISMATCH_NAMES`.
    """
    from bigpaint.errors import MetadataError
    from bigpaint.mass_assignment import mass_assignment_of

    out: list[Mismatch] = []
    if not math.isclose(cell_size, card.cell_size, rel_tol=CELL_SIZE_RTOL):
        out.append(
            Mismatch(
                "cell_size",
                f"cell size {cell_size:.6g} Mpc/h, the card's is {card.cell_size:.6g} (deposit "
                f"on {meta.box_size[0] / card.cell_size:.6g} cells per side)",
            )
        )
    if meta.redshift is None:
        out.append(
            Mismatch(
                "redshift",
                f"no redshift recorded, the card's is {card.redshift:g} (bigpaint deposit "
                "--redshift records it)",
            )
        )
    elif abs(meta.redshift - card.redshift) > REDSHIFT_TOLERANCE:
        out.append(
            Mismatch(
                "redshift",
                f"redshift {meta.redshift:g}, the card's is {card.redshift:g} "
                f"(within {REDSHIFT_TOLERANCE:g})",
            )
        )
    if meta.cosmology is None:
        out.append(
            Mismatch(
                "cosmology",
                "no cosmology recorded (bigpaint deposit --cosmology records it)",
            )
        )
    else:
        mine, theirs = meta.cosmology.model_dump(), card.cosmology.model_dump()
        off = [
            f"{k} {mine[k]:.6g}, the card's is {theirs[k]:.6g}"
            for k in theirs
            if abs(mine[k] - theirs[k]) > COSMOLOGY_RTOL * max(abs(mine[k]), abs(theirs[k]))
        ]
        if off:
            out.append(Mismatch("cosmology", f"{', '.join(off)} (within {COSMOLOGY_RTOL:.1%})"))
    if meta.kind != card.input.kind:
        out.append(Mismatch("kind", f"kind {meta.kind!r}, the card's is {card.input.kind!r}"))
    try:
        ma = mass_assignment_of(meta, "input")
    except MetadataError:
        ma = None
    want = card.input.mass_assignment
    if ma is None:
        out.append(
            Mismatch(
                "mass_assignment",
                f"no mass assignment recorded, the card's is {_window(want)}",
            )
        )
    elif ma != want:
        out.append(
            Mismatch(
                "mass_assignment",
                f"mass assignment {_window(ma)}, the card's is {_window(want)}",
            )
        )
    return out
