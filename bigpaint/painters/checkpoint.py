"""The painter checkpoint format: a directory with the weights and a JSON description.

::

    model.painter/
        metadata.json   PainterMetadata: format, format_version, family, architecture config,
                        ndim, channels, mode, context, alignment, normalizations,
                        parameter count and shapes, training provenance
        weights.pt      the torch state dict (tensors only; read with weights_only=True)
        card.json       optional model card (bigpaint.painters.card): training simulations,
                        held-out seeds, cosmology, redshift, cell size, input and output,
                        verdict, papers; painting refuses inputs it does not cover

The JSON is readable without torch (``bigpaint`` tools and humans inspect it); the weights
are a plain state dict so any torch reads them, and ``weights_only=True`` loading executes no
pickled code. Writing goes to a temporary directory renamed into place, so a killed writer
never leaves a half checkpoint under the final name.

Every function taking a checkpoint path also takes ``pretrained:NAME``
(:func:`bigpaint.painters.pretrained.resolve_checkpoint`).

Loading checks, each failure a one-line :class:`bigpaint.errors.CheckpointError` naming the
problem and the fix: the path exists and holds both files; the format is a bigpaint painter of
a version this bigpaint reads (a newer one asks to upgrade); the family is registered; the
architecture config validates; every tensor's name and shape match the architecture (a
mismatch names the first differing tensor); the context this bigpaint derives for the
architecture equals the one recorded; a model card, when present, validates and describes
this checkpoint.

Why hand-written: safetensors would add a dependency for what ``torch.save`` of a state dict
plus ``weights_only`` loading already does safely; the metadata contract is bigpaint's own.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

from bigpaint.errors import CheckpointError, ConfigError
from bigpaint.painters.base import FORMAT_VERSION, Painter, PainterMetadata
from bigpaint.painters.card import CARD, ModelCard, check_card, read_card
from bigpaint.painters.layout import (
    DAMAGED,
    METADATA,
    WEIGHTS,
    directory_hash,
    read_metadata_file,
)
from bigpaint.painters.pretrained import resolve_checkpoint
from bigpaint.version import __version__

__all__ = [
    "FORMAT_VERSION",
    "check_state_dict",
    "checkpoint_hash",
    "load_checkpoint",
    "load_weights",
    "read_metadata",
    "save_checkpoint",
]


def checkpoint_hash(path: str | Path) -> str:
    """SHA-256 (first 16 hex digits) of a checkpoint's metadata and weights files: what
    identifies it (the painter cache key, a paint job's token, a model card's subject)."""
    return directory_hash(resolve_checkpoint(path))


def save_checkpoint(
    painter: Painter,
    path: str | Path,
    *,
    provenance: dict[str, Any] | None = None,
    card: ModelCard | None = None,
) -> Path:
    """Write ``painter`` (weights, architecture, normalizations, provenance) to ``path``.

    An existing checkpoint at ``path`` is replaced atomically (rename), never left half
    written; with ``card``, its model card is written with it (checked against the
    painter first).

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    prov = {"bigpaint_version": __version__, **(provenance or {})}
    meta = painter.metadata(prov)
    if card is not None:
        check_card(card, meta, path / CARD)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in painter.state_dict().items()}
        torch.save(state, tmp / WEIGHTS)
        (tmp / METADATA).write_text(meta.model_dump_json(indent=2))
        if card is not None:
            card = card.model_copy(update={"checkpoint_hash": checkpoint_hash(tmp)})
            (tmp / CARD).write_text(card.model_dump_json(indent=2) + "\n")
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def read_metadata(path: str | Path) -> PainterMetadata:
    """Read and validate ``metadata.json`` of a checkpoint (no torch work)."""
    return read_metadata_file(resolve_checkpoint(path))


def check_state_dict(painter: Painter, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise :class:`CheckpointError` unless ``state`` has exactly ``painter``'s tensor names and shapes."""
    own = painter.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        what = f"lacks {missing[0]!r}" if missing else f"has an unknown tensor {extra[0]!r}"
        raise CheckpointError(
            f"{source} does not match the {painter.family} architecture: it {what} "
            f"({len(missing)} missing, {len(extra)} unexpected); build the painter with the "
            "checkpoint's config (load_checkpoint does)"
        )
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"{source} does not match the {painter.family} architecture: tensor {k!r} has "
                f"shape {tuple(state[k].shape)}, the painter expects {tuple(v.shape)}; build the "
                "painter with the checkpoint's config (load_checkpoint does)"
            )


def _read_state(path: Path, meta: PainterMetadata) -> dict[str, torch.Tensor]:
    wfile = path / WEIGHTS
    if not wfile.is_file():
        raise CheckpointError(f"{path} is not a complete painter checkpoint: {WEIGHTS} is missing")
    try:
        state = torch.load(wfile, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{wfile} cannot be read ({type(exc).__name__}); {DAMAGED}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{wfile} is not a state dict of tensors; {DAMAGED}")
    recorded = {k: tuple(v) for k, v in meta.parameter_shapes.items()}
    actual = {k: tuple(v.shape) for k, v in state.items()}
    if recorded != actual:
        raise CheckpointError(
            f"{path}: {WEIGHTS} disagrees with {METADATA} about the tensors; {DAMAGED}"
        )
    return state


def _build(meta: PainterMetadata, path: Path) -> Painter:
    from bigpaint.painters.registry import build_painter

    try:
        return build_painter(meta.family, meta.config)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def load_checkpoint(
    path: str | Path, *, map_location: str | torch.device | None = "cpu"
) -> tuple[Painter, PainterMetadata]:
    """Build the painter a checkpoint describes and load its weights.

    Parameters
    ----------
    path : str or Path
        Checkpoint directory (see the module docstring).
    map_location : str or torch.device, optional
        Device to put the painter on.

    Returns
    -------
    (Painter, PainterMetadata)
        The painter in eval mode with its normalizations set, and the metadata.

    Raises
    ------
    CheckpointError
    """
    path = resolve_checkpoint(path)
    meta = read_metadata(path)
    read_card(path, meta)
    painter = _build(meta, path)
    state = _read_state(path, meta)
    check_state_dict(painter, state, str(path))
    painter.load_state_dict(state)
    painter.set_normalization(
        [n.model_dump() for n in meta.input_norm], [n.model_dump() for n in meta.output_norm]
    )
    if painter.context != meta.context or painter.alignment != meta.alignment:
        raise CheckpointError(
            f"{path} records context {meta.context} / alignment {meta.alignment}, this bigpaint "
            f"derives {painter.context} / {painter.alignment} for the same architecture; "
            "re-save the checkpoint with this bigpaint"
        )
    if map_location is not None:
        painter.to(map_location)
    return painter.eval(), meta


def load_weights(painter: Painter, path: str | Path) -> PainterMetadata:
    """Load a checkpoint's weights and normalizations into an existing ``painter``.

    Raises :class:`CheckpointError` when the checkpoint is of another family or another
    architecture (the first differing config key or tensor is named).
    """
    path = resolve_checkpoint(path)
    meta = read_metadata(path)
    read_card(path, meta)
    if meta.family != painter.family:
        raise CheckpointError(
            f"{path} holds a {meta.family!r} painter, not {painter.family!r}; load it with "
            "load_checkpoint or into a painter of its family"
        )
    own = json.loads(painter.config.model_dump_json())
    diff = sorted(k for k in set(own) | set(meta.config) if own.get(k) != meta.config.get(k))
    if diff:
        k = diff[0]
        raise CheckpointError(
            f"{path} was trained with {k}={meta.config.get(k)!r}, the painter has "
            f"{k}={own.get(k)!r}; build the painter with the checkpoint's config "
            "(load_checkpoint does)"
        )
    state = _read_state(path, meta)
    check_state_dict(painter, state, str(path))
    painter.load_state_dict(state)
    painter.set_normalization(
        [n.model_dump() for n in meta.input_norm], [n.model_dump() for n in meta.output_norm]
    )
    return meta
