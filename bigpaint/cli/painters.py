"""``bigpaint painters``: the pretrained painters and their model cards.

``list`` shows every painter on the search path (``BIGPAINT_PRETRAINED_PATH``, then the
package's; :mod:`bigpaint.painters.pretrained`) in a few lines each; ``show`` prints one
card whole, readable or as JSON. Both only read JSON files: no torch work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

__all__ = ["register"]


@click.group()
def painters() -> None:
    """Pretrained painters: list them, show a model card.

    \b
    bigpaint painters list
    bigpaint painters show NAME
    bigpaint paint --checkpoint pretrained:NAME box.zarr halos.zarr

    Directories in BIGPAINT_PRETRAINED_PATH (separated by ':') are searched before the
    painters shipped with bigpaint; each holds NAME.painter checkpoints with a model card.
    """


def _num(x: float) -> str:
    return f"{x:.4g}"


def _bins(bins: list[float] | None) -> str:
    if not bins:
        return "no mass bins"
    return f"{len(bins) - 1} mass bins {_num(bins[0])}..{_num(bins[-1])} Msun/h"


def _headline(card: Any) -> str:
    v = card.verdict
    if v is None:
        return "verdict: not recorded"
    keys = (
        v.headline
        or [
            k
            for k, x in v.figures.items()
            if isinstance(x, (int, float)) and not isinstance(x, bool)
        ][:4]
    )
    vals = ", ".join(f"{k} {'n/a' if v.figures[k] is None else _num(v.figures[k])}" for k in keys)
    return f"verdict: {vals or 'no single-number figures'}"


@painters.command(name="list")
def list_painters() -> None:
    """Every pretrained painter: name, family, cell size, redshift, mass bins, summary and
    the headline verdict numbers on its held-out simulation."""
    from bigpaint.painters.card import read_card
    from bigpaint.painters.checkpoint import read_metadata
    from bigpaint.painters.pretrained import ENV_PATH, find_pretrained, resolve_checkpoint

    found = find_pretrained()
    if not found:
        click.echo(
            f"no pretrained painters installed ({ENV_PATH} adds directories of "
            "NAME.painter checkpoints)"
        )
        return
    cards = {}
    for name in sorted(found):  # every card read before any is shown: a damaged one is one line
        path = resolve_checkpoint(f"pretrained:{name}")  # the card exists and names it
        card = read_card(path, read_metadata(path))
        assert card is not None
        cards[name] = card
    for name, card in cards.items():
        click.echo(
            f"{name}  {card.family}  {_num(card.cell_size)} Mpc/h  z = {card.redshift:g}  "
            f"{_bins(card.output.mass_bins)}"
        )
        click.echo(f"    {card.summary}")
        click.echo(f"    {_headline(card)}")


def _load(name: str) -> tuple[Any, Path]:
    """The card of a pretrained painter (``NAME`` or ``pretrained:NAME``) or of a
    checkpoint directory."""
    from bigpaint.errors import CheckpointError
    from bigpaint.painters.card import read_card
    from bigpaint.painters.checkpoint import METADATA, read_metadata
    from bigpaint.painters.pretrained import PREFIX, is_pretrained, resolve_checkpoint

    local = Path(name)
    if not is_pretrained(name) and (local / METADATA).is_file():
        path = local
    else:
        path = resolve_checkpoint(name if is_pretrained(name) else PREFIX + name)
    card = read_card(path, read_metadata(path))
    if card is None:
        raise CheckpointError(
            f"{path} has no model card; bigpaint train writes one when its input Fields "
            "record kind, redshift, cosmology and mass assignment"
        )
    return card, path


def _render(card: Any, path: Path) -> list[str]:
    c = card
    cosmo = ", ".join(f"{k} {v:g}" for k, v in c.cosmology.model_dump().items())
    ma = c.input.mass_assignment
    window = (ma.scheme or "no window") + (" interlaced" if ma.interlaced else "")
    lines = [
        f"{c.name} ({c.family}): {c.summary}",
        f"  checkpoint    {path}",
        "",
        *(f"  {ln}" for ln in c.description.splitlines()),
        "",
        "covers (painting refuses other inputs; --allow-mismatch overrides):",
        f"  cell size     {c.cell_size:.6g} Mpc/h",
        f"  redshift      {c.redshift:g}",
        f"  cosmology     {cosmo}",
        f"  input kind    {c.input.kind}: {c.input.description}",
        f"  input window  {window}",
        "paints:",
        f"  kind          {c.output.kind} [{c.output.units}], {_bins(c.output.mass_bins)}",
    ]
    if c.output.mass_bins:
        lines.append(f"  bin edges     {', '.join(_num(b) for b in c.output.mass_bins)} Msun/h")
    norm = json.dumps([n.model_dump() for n in c.input.normalization])
    lines += [
        f"  normalization input {norm}",
        f"                output {json.dumps([n.model_dump() for n in c.output.normalization])}",
        "trained on:",
    ]
    for s in c.training or []:
        parts = [f"seed {s.seed}" if s.seed is not None else "seed not recorded"]
        parts.append(f"box {s.box_size:g} Mpc/h")
        if s.particles:
            parts.append(f"{s.particles}^3 particles")
        if s.pm_steps:
            parts.append(f"{s.pm_steps} PM steps")
        if s.force_mesh:
            parts.append(f"force mesh {s.force_mesh}^3")
        if s.fof_linking_length is not None:
            parts.append(f"FoF b = {s.fof_linking_length:g}")
        if s.fof_min_members is not None:
            parts.append(f">= {s.fof_min_members} members")
        lines.append(f"  {s.code}: {', '.join(parts)}")
    if not c.training:
        lines.append("  not recorded")
    ho = c.held_out
    lines += [
        "held out:",
        f"  selection seeds {', '.join(map(str, ho.selection_seeds)) or 'none recorded'}",
        f"  verdict seeds   {', '.join(map(str, ho.verdict_seeds)) or 'none recorded'}",
        "verdict on the held-out simulation:",
    ]
    if c.verdict is None:
        lines.append("  not recorded")
    else:
        lines.append(f"  command: {c.verdict.command}")
        for k, v in c.verdict.figures.items():
            lines.append(f"  {k}: {json.dumps(v)}")
    lines.append("cite:")
    lines += [f"  {p.title}, arXiv:{p.arxiv}" for p in c.papers] or ["  no paper recorded"]
    lines += [f"license: {c.license or 'not stated'}", f"bigpaint {c.bigpaint_version}"]
    return lines


@painters.command(name="show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON.")
def show_painter(name: str, as_json: bool) -> None:
    """The whole model card of the pretrained painter NAME (or of a checkpoint directory)."""
    card, path = _load(name)
    if as_json:
        click.echo(card.model_dump_json(indent=2))
        return
    click.echo("\n".join(_render(card, path)))


def register(group: click.Group) -> None:
    """Add ``painters`` to the ``bigpaint`` command group."""
    group.add_command(painters)
