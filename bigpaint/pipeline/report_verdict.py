"""The verdict section of the report: what an ``evaluate`` stage decided, readable cold.

The report page opens with it. For every ``evaluate`` stage of the run it shows, from the
files the stage wrote (:mod:`bigpaint.stats.evaluate_output`):

1. the overall verdict (PASS, FAIL or INCOMPLETE) and how many criteria passed, failed or
   could not be judged;
2. one paragraph on how to read the page, generated from the run: what was compared (told
   from the compared Fields' provenance: the painter and what it painted from, the N-body
   run and halo finder of the truth, the bias models of the baselines), what T, r_c and the
   stochasticity mean and which direction is better, the shot-noise treatment quoted from
   the evaluation's tables, the k range judged, and where the thresholds come from;
3. every failed criterion in words, and, when a pretrained painter made the painting, the
   same criterion on the simulations held out from its training, from its card (so a
   miss on this box can be told from a miss on every box);
4. the table of every criterion from ``verdict.json``: name, level and mass range,
   measured value with its 1-sigma error, threshold, status and why;
5. the evaluation's figures (total counts first, each mass bin folded away).

Nothing here recomputes a statistic: the numbers are the evaluation's own, so the page and
``verdict.json`` cannot disagree. A ``verdict.json`` that cannot be read is refused in one
line naming it, rather than leaving the verdict off the page.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xarray as xr

from bigpaint.errors import DamagedStoreError
from bigpaint.stats.inputs import COUNT_KINDS
from bigpaint.stats.plots import model_label

__all__ = [
    "NO_VERDICT",
    "Judgement",
    "field_roles",
    "load_judgement",
    "relative_name",
    "resolved_path",
    "verdict_section",
]

OVERALL = ("PASS", "FAIL", "INCOMPLETE")
STATUSES = ("PASS", "FAIL", "NOT JUDGED")
_CRITERION_KEYS = ("name", "level", "status", "value", "error", "threshold")
_MEANING = {
    "PASS": "every criterion holds",
    "FAIL": "at least one criterion fails",
    "INCOMPLETE": "none fails, but some could not be judged, so the painting is not shown to pass",
}
#: The evaluation's figures of the total, in page order, with captions.
_FIGURES = (
    ("spectra_total.png", "All mass bins summed: power spectra P(k), transfer function T(k), "
     "cross-correlation r_c(k) and stochasticity s(k) of the painting, the truth and the "
     "baselines."),
    ("abundance.png", "Halo abundance per mass bin and in total, relative to the truth."),
    ("bispectrum_total.png", "All mass bins summed: the bispectrum on triangles (k1, k2, "
     "theta) with the truth's noise terms removed, and its ratio to the truth."),
    ("pdf.png", "Counts in cells: how many cells hold n halos, per mass bin and in total."),
)  # fmt: skip
NO_VERDICT = (
    "<p class='howto'><b>No verdict.</b> This run has no <code>evaluate</code> stage, so "
    "nothing here judges a painting against the truth and the bias baselines; add one "
    "(see docs/evaluate.md) to get a PASS/FAIL verdict at the top of this page.</p>"
)


@dataclass(frozen=True)
class Judgement:
    """What one ``evaluate`` stage wrote, read back.

    Attributes
    ----------
    stage : str
        The stage name.
    dir : Path
        Its folder.
    verdict : dict
        ``verdict.json``.
    levels : xarray.Dataset or None
        ``levels.csv`` (mass ranges in Msun/h, box, grid, shot-noise treatment), when there.
    """

    stage: str
    dir: Path
    verdict: dict[str, Any]
    levels: xr.Dataset | None


def load_judgement(rec: dict[str, Any]) -> Judgement:
    """Read the verdict of the ``evaluate`` stage record ``rec`` (``name``, ``dir``).

    Raises
    ------
    DamagedStoreError
        ``verdict.json`` is missing, not JSON, or not a verdict (one line naming it).
    """
    from bigpaint.stats.tables import read_table

    folder = Path(rec["dir"])
    path = folder / "verdict.json"
    fix = f"delete {folder} and run the pipeline again to redo stage {rec['name']!r}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        why = "is missing" if isinstance(exc, FileNotFoundError) else "cannot be read as JSON"
        raise DamagedStoreError(f"report: {path} {why}; {fix}") from None
    criteria = data.get("criteria") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("verdict") not in OVERALL
        or not isinstance(criteria, list)
        or not all(isinstance(c, dict) and set(_CRITERION_KEYS) <= set(c) for c in criteria)
        or not all(c["status"] in STATUSES for c in criteria)
    ):
        raise DamagedStoreError(
            f"report: {path} is not a verdict written by bigpaint evaluate (it needs "
            f"'verdict' and 'criteria' with {', '.join(_CRITERION_KEYS)}); {fix}"
        )
    levels_csv = folder / "levels.csv"
    levels = read_table(levels_csv) if levels_csv.is_file() else None
    return Judgement(str(rec["name"]), folder, data, levels)


def field_roles(j: Judgement) -> dict[str, str]:
    """Resolved path of each compared Field to its label in the figures (``painted``,
    ``truth``, ``baseline: linear``, ...)."""
    inputs = j.verdict.get("inputs") or {}
    return {resolved_path(str(url)): model_label(str(role)) for role, url in inputs.items()}


def resolved_path(url: str) -> str:
    """``url`` as an absolute path with links resolved (as given when it cannot be)."""
    try:
        return str(Path(url).resolve())
    except OSError:
        return url


# ---------------------------------------------------------------- what was compared


def _meta(url: str) -> Any:
    """The Field's metadata, or None when it cannot be opened (moved, deleted)."""
    from bigpaint.errors import BigpaintError
    from bigpaint.field import field_meta, open_field

    try:
        return field_meta(open_field(url))
    except (BigpaintError, OSError, ValueError, KeyError):
        return None


def _lpt(meta: Any) -> dict[str, Any]:
    prov = getattr(meta, "provenance", None) or {}
    lpt = prov.get("lpt")
    return lpt if isinstance(lpt, dict) else {}


def _density_phrase(url: str, run_dir: Path | None) -> tuple[str, str, dict[str, Any]]:
    """The density a painting or baseline was made from (short and explained), and its
    LPT record."""
    lpt = _lpt(_meta(url))
    if lpt.get("order") == 2:
        return ("the 2LPT density", "the 2LPT density (second-order Lagrangian perturbation "
                "theory: a cheap approximation of the N-body density)", lpt)  # fmt: skip
    if lpt.get("order") == 1:
        name = "the Zel'dovich density"
        return name, f"{name} (first-order Lagrangian perturbation theory)", lpt
    name = f"the density <code>{html.escape(relative_name(url, run_dir))}</code>"
    return name, name, lpt


def _describe(url: str, run_dir: Path | None) -> tuple[str, dict[str, Any]]:
    """A phrase (HTML) saying what the Field at ``url`` holds, told from its provenance, and
    the LPT record of the density it was made from (or the seed and tile of a simulation)."""
    meta = _meta(url)
    prov = (getattr(meta, "provenance", None) or {}) if meta is not None else {}
    op, config = prov.get("operation"), prov.get("config") or {}
    source = (prov.get("inputs") or [None])[0]
    where = f" (<code>{html.escape(relative_name(url, run_dir))}</code>)"
    if op == "simulate":
        fof = config.get("fof") or {}
        run = (
            f"a particle-mesh N-body run ({_e(config.get('particles'))}³ particles, "
            f"{_e(config.get('steps'))} steps, seed {_e(config.get('seed'))})"
        )
        if getattr(meta, "kind", None) in COUNT_KINDS:
            text = (
                f"the friends-of-friends halos (linking length b = {_e(fof.get('b'))}, at "
                f"least {_e(fof.get('min_members'))} particles) of {run}"
            )
        else:
            text = f"the matter density of {run}"
        return text + where, {"seed": config.get("seed"), "tile": config.get("tile")}
    if op == "paint" and source:
        _, density, lpt = _density_phrase(str(source), run_dir)
        family = _e(config.get("family") or "trained")
        text = f"the expected halo counts per cell that the {family} model paints from {density}"
        return text + where, lpt
    if op == "paint_bias" and source:
        density, _, lpt = _density_phrase(str(source), run_dir)
        model = _e(config.get("model") or f"order-{config.get('order', '?')} bias")
        n = len(prov.get("training") or [])
        boxes = f"{n} training boxes" if n > 1 else "a training box"
        return f"a {model} model of {density}, fitted to the halos of {boxes}" + where, lpt
    return f"the Field <code>{html.escape(relative_name(url, run_dir))}</code>", {}


def _e(value: Any) -> str:
    return "?" if value is None else html.escape(str(value))


def _same_ics(truth: dict[str, Any], lpt: dict[str, Any]) -> str:
    keys = ("seed", "tile")
    if not lpt or any(truth.get(k) is None or lpt.get(k) is None for k in keys):
        return ""
    if all(truth[k] == lpt[k] for k in keys):
        return (" The painting and the truth start from the same initial conditions (seed "
                f"{_e(lpt['seed'])}).")  # fmt: skip
    return (f" Note: the painting's density (seed {_e(lpt['seed'])}, tile {_e(lpt['tile'])}) and "
            f"the truth (seed {_e(truth['seed'])}, tile {_e(truth['tile'])}) do not share initial "
            "conditions.")  # fmt: skip


def _reading_paragraph(j: Judgement, run_dir: Path | None) -> str:
    v = j.verdict
    inputs = {str(k): str(u) for k, u in (v.get("inputs") or {}).items()}
    attrs = j.levels.attrs if j.levels is not None else {}
    parts = []
    box, grid = attrs.get("box_size"), attrs.get("grid")
    on = (f" on the {grid}³ grid of the {box:g} Mpc/h box ({box / grid:g} Mpc/h cells)"
          if isinstance(box, (int, float)) and isinstance(grid, int) else "")  # fmt: skip
    painted, lpt = _describe(inputs.get("painted", "?"), run_dir)
    truth, truth_ics = _describe(inputs.get("truth", "?"), run_dir)
    parts.append(
        f"<b>How to read this page.</b> Stage <code>{html.escape(j.stage)}</code> compares "
        f"halo counts per cell{on}. <i>painted</i>: {painted}. <i>truth</i>: {truth}."
        + _same_ics(truth_ics, lpt)
    )
    if "matter" in inputs:
        matter = _describe(inputs["matter"], run_dir)[0]
        parts.append(f"<i>matter</i>: {matter}, used only to measure the truth's shot noise.")
    bases = [k for k in inputs if k not in ("painted", "truth", "matter")]
    if bases:
        said = "; ".join(
            f"<i>{html.escape(model_label(b))}</i>, {_describe(inputs[b], run_dir)[0]}"
            for b in bases
        )
        parts.append(f"A painting must beat the baselines: {said}.")
    else:
        parts.append("No baseline was given, so the criteria that need one are NOT JUDGED.")
    parts.append("Each mass bin is compared, and all bins summed (total).")
    parts.append(
        "<b>T(k)</b> = √(P / P_true), with each field's own shot noise removed, asks whether "
        "the painted halos cluster as strongly as the true ones: 1 is right, above 1 too "
        "clustered. <b>r_c(k)</b>, the cross-correlation coefficient with the truth, asks "
        "whether they sit where the true halos sit: higher is better, but even a perfect "
        "prediction stays below 1, because nothing can predict the random scatter of the "
        "true halos. The <b>stochasticity</b> s(k) = P_true (1 - r_c²) is the part of the "
        "true power the painting leaves unexplained: lower is better. N, the truth's noise "
        "(drawn in the figures), is the Poisson V / N_halos unless the evaluation was given "
        "the simulation's matter. Then it is measured as P_tt - P_tm²/P_mm, since halos are "
        "not Poisson tracers (massive ones exclude each other, and their noise is below V / "
        "N_halos). Measured so, N is what the best linear function of the matter leaves "
        "unexplained: a painting that captures how the halos depend on the matter beyond "
        "that can go below it, so it is a reference, not a floor."
    )
    noise = attrs.get("shot_noise_treatment") or v.get("shot_noise")
    if noise:
        parts.append(
            "Shot noise, as the evaluation records it in its tables "
            f"(<code>shot_noise_treatment</code>): <q>{html.escape(str(noise))}</q>."
        )
    kmax = (v.get("settings") or {}).get("kmax")
    if isinstance(kmax, (int, float)):
        top = (f" to k_Nyq = {math.pi * grid / box:.3g} h/Mpc"
               if isinstance(box, (int, float)) and isinstance(grid, int) else "")  # fmt: skip
        parts.append(
            f"Spectra are judged for k ≤ kmax = {kmax:g} h/Mpc (the dotted line in the "
            f"figures); beyond it the figures continue{top} in coarser bins that are not judged."
        )
    parts.append(
        "Error bars are 1σ: Gaussian for spectra and bispectra, the Poisson error of the true "
        "halo count for abundances. The thresholds are in the table; docs/evaluate.md says "
        "where their defaults come from (\u201cPainting halos from cosmic density fields of "
        "dark matter with physically motivated neural networks\u201d, arXiv:1903.10524) and "
        "how to set them. NOT JUDGED means the box is too small to tell or a baseline is "
        "missing; it never counts as a pass."
    )
    return "<p class='howto'>" + " ".join(parts) + "</p>"


# ---------------------------------------------------------------- the table and figures


def _failure(c: dict[str, Any]) -> str:
    """One failed criterion in words: what was measured and what it means."""
    name, v, lev = str(c["name"]), c["value"], str(c["level"])
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        return f"{name} ({lev}) is undefined."
    if name == "abundance":
        side = "too few" if v < 1 else "too many"
        return (f"In {lev} the painting holds {v:.3f} times the true halo count: {side} "
                "halos of those masses.")  # fmt: skip
    if name == "transfer":
        return (f"The painted clustering amplitude is off by {100 * v:.1f} % on average "
                "(mean |T - 1|): in the T(k) panel, below 1 means the painted halos cluster "
                "too weakly at that k, above 1 too strongly.")  # fmt: skip
    if name.startswith("stochasticity"):
        return (f"The painting leaves {v:.3f} times the {name.split()[-1]} baseline's "
                "unexplained power, more than the threshold allows.")  # fmt: skip
    if name == "r_c every bin":
        return (f"In one k bin the painting's r_c is {v:+.4f} from the better baseline's, "
                f"beyond the errors allowed ({c.get('detail') or ''}): there it places halos "
                "no better than the bias model.")  # fmt: skip
    if name == "r_c mean":
        return (f"On average its r_c is only {v:+.4f} above the better baseline's, less than "
                "the gain asked.")  # fmt: skip
    if name == "bispectrum":
        side = "weaker" if v < 1 else "stronger"
        return (f"Its three-point clustering is {v:.3f} times the truth's ({side}), beyond the "
                "tolerance.")  # fmt: skip
    return f"{name} ({lev}) fails."


def _held_out(j: Judgement) -> tuple[str, list[tuple[Any, dict[str, Any]]]] | None:
    """The pretrained painter that made the painting (named, with the checkpoint hash, in
    the painting's provenance) and its card's criteria on each held-out simulation (seed,
    criteria); None for any other painting, or a card without them."""
    from bigpaint.errors import BigpaintError
    from bigpaint.painters.card import read_card
    from bigpaint.painters.pretrained import find_pretrained

    meta = _meta(str((j.verdict.get("inputs") or {}).get("painted", "")))
    prov = (getattr(meta, "provenance", None) or {}) if meta is not None else {}
    name = (prov.get("model_card") or {}).get("name")
    digest = (prov.get("config") or {}).get("checkpoint_hash")
    try:
        found = find_pretrained().get(name) if isinstance(name, str) else None
        card = read_card(found.path) if found else None
    except BigpaintError:
        return None
    if card is None or card.verdict is None or not digest or card.checkpoint_hash != digest:
        return None
    figures = card.verdict.figures
    boxes = [
        (box.get("seed"), box["criteria"])
        for key, box in figures.items()
        if key.startswith("verdict box") and isinstance((box or {}).get("criteria"), dict)
    ]
    return (str(name), boxes) if boxes else None


def _on_held_out(c: dict[str, Any], held: tuple[str, list[tuple[Any, dict[str, Any]]]]) -> str:
    """The same criterion on the painter's held-out simulations, for comparison."""
    name, boxes = held
    key = f"{c['name']} [{c['level']}]"
    seen = [(seed, crit[key]) for seed, crit in boxes if isinstance(crit.get(key), dict)]
    values = [(seed, d["value"], d.get("error")) for seed, d in seen
              if isinstance(d.get("value"), (int, float)) and math.isfinite(d["value"])]  # fmt: skip
    v = c["value"]
    if not values or not isinstance(v, (int, float)):
        return ""
    listed = ", ".join(f"{_pm(x, e)} (seed {seed})" for seed, x, e in values)
    lo, hi = min(x for _, x, _ in values), max(x for _, x, _ in values)
    where = "above" if v > hi else "below" if v < lo else "within"
    return (f" For comparison, the painter's card ({name}) gives {listed} for this criterion "
            f"on the simulations held out from its training; this box lies {where} them.")  # fmt: skip


def _failures(j: Judgement) -> str:
    failed = [c for c in j.verdict["criteria"] if c["status"] == "FAIL"]
    if not failed:
        return ""
    held = _held_out(j)
    items = "".join(
        f"<li>{html.escape(_failure(c) + (_on_held_out(c, held) if held else ''))}</li>"
        for c in failed
    )
    return f"<div class='failures'><p><b>What failed, in words:</b></p><ul>{items}</ul></div>"


def _pm(value: Any, error: Any) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    if isinstance(error, (int, float)) and math.isfinite(error):
        return f"{value:.4g} ± {error:.2g}"
    return f"{value:.4g}"


def _level_masses(j: Judgement) -> dict[str, str]:
    lv = j.levels
    if lv is None or not {"m_lo", "m_hi"} <= set(lv.variables) or "level" not in lv.variables:
        return {}
    return {
        str(lev): f"[{float(lo):.3g}, {float(hi):.3g})"
        for lev, lo, hi in zip(lv.level.values, lv.m_lo.values, lv.m_hi.values, strict=True)
    }


def _criteria_table(j: Judgement) -> str:
    masses = _level_masses(j)
    rows = []
    for c in j.verdict["criteria"]:
        level = str(c["level"])
        mass = f" {masses[level]}" if level in masses else ""
        status = str(c["status"])
        rows.append(
            f"<tr class='criterion'><td>{html.escape(str(c['name']))}</td>"
            f"<td>{html.escape(level + mass)}</td>"
            f"<td>{html.escape(_pm(c['value'], c['error']))}</td>"
            f"<td><code>{html.escape(str(c['threshold']))}</code></td>"
            f"<td class='status {status.replace(' ', '-')}'>{html.escape(status)}</td>"
            f"<td>{html.escape(str(c.get('detail') or ''))}</td></tr>"
        )
    head = ("<tr><th>criterion</th><th>level (halo mass, Msun/h)</th><th>measured ± 1σ</th>"
            "<th>threshold</th><th>status</th><th>why</th></tr>")  # fmt: skip
    return f"<table class='verdict'>{head}{''.join(rows)}</table>"


def _figures(j: Judgement, out: Path) -> str:
    import shutil

    def copy(name: str) -> str:
        dest = f"{j.stage}-{name}"
        shutil.copyfile(j.dir / name, out / dest)
        return html.escape(dest)

    parts = []
    for name, caption in _FIGURES:
        if (j.dir / name).is_file():
            parts.append(
                f"<figure><img src='{copy(name)}' alt='{html.escape(name)}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    per_bin = sorted(
        p.name
        for pattern in ("spectra_bin*.png", "bispectrum_bin*.png")
        for p in j.dir.glob(pattern)
    )
    if per_bin:
        imgs = "".join(f"<img src='{copy(n)}' alt='{html.escape(n)}'>" for n in per_bin)
        parts.append(f"<details><summary>each mass bin: spectra and bispectra</summary>{imgs}"
                     "</details>")  # fmt: skip
    return "".join(parts)


def verdict_section(j: Judgement, out: Path, run_dir: Path | None) -> str:
    """The HTML of one evaluation's verdict: headline, reading paragraph, criteria, figures.

    Copies the figures into ``out`` as ``<stage>-<file>.png``.
    """
    v = j.verdict
    overall = str(v["verdict"])
    counts = {s: sum(c["status"] == s for c in v["criteria"]) for s in STATUSES}
    return (
        f"<section class='verdict' id='verdict-{html.escape(j.stage)}'>"
        f"<h2 class='overall {overall}'>Verdict: {overall}</h2>"
        f"<p>Stage <code>{html.escape(j.stage)}</code>: {_MEANING[overall]} "
        f"({counts['PASS']} passed, {counts['FAIL']} failed, {counts['NOT JUDGED']} not "
        "judged). Details in <code>verdict.json</code> of that stage.</p>"
        + _reading_paragraph(j, run_dir)
        + _failures(j)
        + _criteria_table(j)
        + _figures(j, out)
        + "</section>"
    )


def relative_name(path: str, run_dir: Path | None) -> str:
    """``path`` relative to the run directory when it lies inside it."""
    try:
        return str(Path(path).relative_to(run_dir)) if run_dir else path
    except ValueError:
        return path
