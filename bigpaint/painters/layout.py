"""The files of a checkpoint directory: their names, the metadata reader and the hash.

Everything here takes a directory; a ``pretrained:NAME`` argument is resolved a layer up
(:mod:`bigpaint.painters.checkpoint`, through :mod:`bigpaint.painters.pretrained`). The model
card (:mod:`bigpaint.painters.card`) stands on this module to check that a card belongs to
the weights it sits next to, and the pretrained registry stands on the card, so none of
the three needs to import the checkpoint loader.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import ValidationError

from bigpaint.errors import CheckpointError
from bigpaint.painters.base import FORMAT_VERSION, PainterMetadata

__all__ = ["DAMAGED", "METADATA", "WEIGHTS", "directory_hash", "read_metadata_file"]

METADATA = "metadata.json"
WEIGHTS = "weights.pt"
#: What to do about a damaged checkpoint (the end of its error messages).
DAMAGED = "the checkpoint is damaged; copy it again or re-run bigpaint train to write it"


def directory_hash(path: Path) -> str:
    """SHA-256 (first 16 hex digits) of the metadata and weights files in ``path``."""
    h = hashlib.sha256()
    for name in (METADATA, WEIGHTS):
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{path} is not a complete painter checkpoint: {name} is missing")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def read_metadata_file(path: Path) -> PainterMetadata:
    """Read and validate ``metadata.json`` of the checkpoint directory ``path`` (no torch)."""
    if not path.is_dir():
        raise CheckpointError(
            f"no painter checkpoint at {path}: the directory does not exist; give a directory "
            "written by bigpaint train (it holds metadata.json and weights.pt)"
        )
    mfile = path / METADATA
    if not mfile.is_file():
        raise CheckpointError(f"{path} is not a painter checkpoint: {METADATA} is missing")
    try:
        raw = json.loads(mfile.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{mfile} is not JSON text; {DAMAGED}") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{mfile} is not valid JSON (line {exc.lineno}); {DAMAGED}") from None
    if not isinstance(raw, dict) or raw.get("format") != "bigpaint-painter":
        raise CheckpointError(
            f"{path} is not a bigpaint painter checkpoint (format {raw.get('format') if isinstance(raw, dict) else None!r})"
        )
    version = raw.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{mfile}: format_version is missing or not an integer; {DAMAGED}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has painter checkpoint format {version}, this bigpaint reads up to "
            f"{FORMAT_VERSION}; upgrade bigpaint to load it"
        )
    try:
        return PainterMetadata.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise CheckpointError(f"{mfile}: invalid metadata {where!r}: {err['msg']}") from None
