"""Pretrained painters by name: ``pretrained:<name>`` wherever a checkpoint path goes.

A pretrained painter is an ordinary checkpoint directory (:mod:`bigpaint.painters.checkpoint`)
named ``<name>.painter`` that carries a model card (:mod:`bigpaint.painters.card`) whose
``name`` is ``<name>``. They are looked up, first found wins, in

1. each directory of the environment variable ``BIGPAINT_PRETRAINED_PATH``
   (separated by ``:``, in order): a user's own collection, or a site's;
2. the painters shipped inside the package, ``bigpaint/painters/pretrained/``.

:func:`resolve_checkpoint` is the one place a checkpoint argument becomes a directory: every
reader (``load_checkpoint``, ``load_weights``, ``read_metadata``, ``read_checkpoint_info``)
calls it, so ``bigpaint paint --checkpoint pretrained:NAME``, the paint config, the pipeline's
paint stage, ``paint_field`` and a train config's ``run.init_from`` all accept the name. An
unknown name is one line listing the known ones, closest first.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from bigpaint.errors import CheckpointError, ConfigError

__all__ = [
    "ENV_PATH",
    "PACKAGE_DIR",
    "PREFIX",
    "Pretrained",
    "find_pretrained",
    "is_pretrained",
    "pretrained_dirs",
    "pretrained_names",
    "resolve_checkpoint",
]

#: The spelling of a pretrained painter where a checkpoint path is accepted.
PREFIX = "pretrained:"
#: Extra directories of pretrained painters, searched before the package's.
ENV_PATH = "BIGPAINT_PRETRAINED_PATH"
#: The painters shipped with bigpaint.
PACKAGE_DIR = Path(__file__).with_name("pretrained")
SUFFIX = ".painter"


@dataclass(frozen=True)
class Pretrained:
    """A pretrained painter found on the search path: its ``name`` and directory."""

    name: str
    path: Path


def is_pretrained(spec: object) -> bool:
    """Whether ``spec`` names a pretrained painter (``"pretrained:NAME"``)."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def pretrained_dirs() -> list[Path]:
    """The directories searched, in order (``BIGPAINT_PRETRAINED_PATH``, then the package's).

    Raises
    ------
    ConfigError
        ``BIGPAINT_PRETRAINED_PATH`` names something that is not a directory.
    """
    dirs = []
    for entry in os.environ.get(ENV_PATH, "").split(os.pathsep):
        if not entry.strip():
            continue
        d = Path(entry).expanduser()
        if not d.is_dir():
            raise ConfigError(
                f"{ENV_PATH} names {entry!r}, which is not a directory; give existing "
                f"directories of <name>{SUFFIX} checkpoints, separated by '{os.pathsep}'"
            )
        dirs.append(d)
    dirs.append(PACKAGE_DIR)
    return dirs


def find_pretrained() -> dict[str, Pretrained]:
    """Every pretrained painter on the search path by name (the first found of each name)."""
    found: dict[str, Pretrained] = {}
    for d in pretrained_dirs():
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.name.endswith(SUFFIX) and p.is_dir() and not p.name.startswith("."):
                name = p.name[: -len(SUFFIX)]
                found.setdefault(name, Pretrained(name, p))
    return found


def pretrained_names() -> list[str]:
    """Names of the pretrained painters on the search path, sorted."""
    return sorted(find_pretrained())


def _unknown(name: str, known: list[str]) -> CheckpointError:
    if not known:
        return CheckpointError(
            f"no pretrained painter {name!r}: none is installed; give a checkpoint directory, "
            f"or add a directory of <name>{SUFFIX} checkpoints to {ENV_PATH}"
        )
    ranked = difflib.get_close_matches(name, known, n=len(known), cutoff=0.0)
    ranked += [k for k in known if k not in ranked]
    return CheckpointError(
        f"unknown pretrained painter {name!r}; known: {', '.join(ranked)} "
        "(bigpaint painters list describes them)"
    )


def resolve_checkpoint(spec: str | os.PathLike[str]) -> Path:
    """The checkpoint directory ``spec`` stands for: ``pretrained:NAME`` looked up on the
    search path, anything else taken as a path.

    A pretrained painter must carry a model card named like its directory (checked when the
    card is read: :func:`bigpaint.painters.card.read_card`).

    Raises
    ------
    CheckpointError
        An unknown name (one line listing the known ones, closest first).
    """
    if not is_pretrained(spec):
        return Path(spec)
    name = str(spec)[len(PREFIX) :].strip()
    if not name:
        raise CheckpointError(
            f"{spec!r} names no painter; give pretrained:NAME (bigpaint painters list shows them)"
        )
    found = find_pretrained()
    hit = found.get(name)
    if hit is None:
        raise _unknown(name, sorted(found))
    _check_card(hit)
    return hit.path


def _check_card(p: Pretrained) -> None:
    """A pretrained painter carries a model card, and the card says the directory's name."""
    from bigpaint.painters.card import CARD, read_card

    card = read_card(p.path)
    if card is None:
        raise CheckpointError(
            f"pretrained painter {p.name!r} ({p.path}) has no {CARD}; a pretrained painter "
            "carries a model card: add one (bigpaint.painters.write_card)"
        )
    if card.name != p.name:
        raise CheckpointError(
            f"pretrained painter {p.path} has a model card named {card.name!r}; rename the "
            f"directory to {card.name}{SUFFIX} or the card's name to {p.name!r}"
        )
