"""What a checkpoint says a painter needs, read without torch: :class:`CheckpointInfo`.

The painter's metadata, a hash of its files (the key of the per-worker model cache), its
model card, and the training provenance ``bigpaint train`` records: the training
resolution in Mpc/h per voxel, the kinds of the training inputs, what it paints and with
which assignment window, and the slab depth of 2-D painters. The paint plan
(:mod:`bigpaint.paint.plan`) checks an input Field against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bigpaint.field import MassAssignment
from bigpaint.painters.base import PainterMetadata
from bigpaint.painters.card import ModelCard, read_card
from bigpaint.painters.checkpoint import checkpoint_hash, read_metadata
from bigpaint.painters.pretrained import PREFIX, is_pretrained, resolve_checkpoint

__all__ = ["CheckpointInfo", "read_checkpoint_info"]


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says the painter needs (read without torch).

    Attributes
    ----------
    path : str
    hash : str
        :func:`checkpoint_hash`, the key of the per-worker model cache.
    meta : PainterMetadata
    cell_size : float or None
        Training resolution in Mpc/h per voxel (None: not recorded).
    input_kinds : tuple of str
        ``kind`` of each training input Field (empty: not recorded).
    target_kind, target_units : str or None
        What the painter paints (the training target's kind and units).
    target_mass_assignment : MassAssignment or None
        The training targets' assignment window (None: not recorded, or the targets differ).
    projection_depth : int or None
        2-D painters: training slab thickness in voxels.
    card : ModelCard or None
        The checkpoint's model card (None: it has none).
    pretrained : str or None
        The name when the checkpoint was given as ``pretrained:NAME``.
    """

    path: str
    hash: str
    meta: PainterMetadata
    cell_size: float | None = None
    input_kinds: tuple[str, ...] = ()
    target_kind: str | None = None
    target_units: str | None = None
    projection_depth: int | None = None
    target_mass_assignment: MassAssignment | None = None
    card: ModelCard | None = None
    pretrained: str | None = None


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    """Read a checkpoint's metadata and training provenance (see :class:`CheckpointInfo`).

    The training resolution comes from the provenance ``bigpaint train`` records: the box of
    the first input Field [Mpc/h] over the training grid [voxels] (or an explicit
    ``cell_size``). ``path`` may be ``pretrained:NAME``.
    """
    name = str(path)[len(PREFIX) :].strip() if is_pretrained(path) else None
    path = resolve_checkpoint(path)
    meta = read_metadata(path)
    card = read_card(path, meta)
    prov = meta.provenance
    cell = prov.get("cell_size")
    inputs = prov.get("inputs") or []
    if cell is None and inputs and prov.get("grid"):
        cell = float(inputs[0]["box_size"][0]) / float(prov["grid"][0])
    targets = prov.get("targets") or []
    depth = ((prov.get("config") or {}).get("data") or {}).get("projection_depth")
    return CheckpointInfo(
        path=str(path),
        hash=checkpoint_hash(path),
        meta=meta,
        cell_size=None if cell is None else float(cell),
        input_kinds=tuple(str(i.get("kind")) for i in inputs if i.get("kind")),
        target_kind=targets[0].get("kind") if targets else None,
        target_units=targets[0].get("units") if targets else None,
        projection_depth=None if depth is None else int(depth),
        target_mass_assignment=_target_window(targets),
        card=card,
        pretrained=name,
    )


def _target_window(targets: Sequence[Mapping[str, Any]]) -> MassAssignment | None:
    """The one assignment window all training targets share (None: unknown or mixed)."""
    from bigpaint.errors import MetadataError
    from bigpaint.mass_assignment import mass_assignment_of

    try:
        records = {mass_assignment_of(t, "training target") for t in targets}
    except MetadataError:  # a damaged record: the window is unknown, not an error to paint
        return None
    return records.pop() if len(records) == 1 else None
