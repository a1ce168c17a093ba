"""The report directory of a pipeline run: ``index.html``, ``summary.json``, tables and figures.

The page opens with the verdict of each ``evaluate`` stage
(:mod:`bigpaint.pipeline.report_verdict`): PASS, FAIL or INCOMPLETE, a paragraph on how to
read it, the table of every criterion and the evaluation's figures. Mid-plane slices of
chosen Fields follow (:mod:`bigpaint.pipeline.report_slices`), then every stage: its
headline numbers, and copies of the tables (CSV, units in the headers) and figures (PNG)
the statistics stages wrote with :mod:`bigpaint.stats.report` and
:mod:`bigpaint.segment.hmf`, so that the page can be opened from disk. Stage timings (the
only thing that differs between two runs of the same config) live in ``timings.csv`` and
in one marked block of the page.
"""

from __future__ import annotations

import csv
import html
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bigpaint.errors import ConfigError
from bigpaint.pipeline.report_slices import MAX_SLICES, plot_slices, slice_panel, slices_caption
from bigpaint.pipeline.report_verdict import (
    NO_VERDICT,
    field_roles,
    load_judgement,
    relative_name,
    resolved_path,
    verdict_section,
)

__all__ = ["TIMINGS_BEGIN", "TIMINGS_END", "write_report"]

TIMINGS_BEGIN = "<!-- timings -->"
TIMINGS_END = "<!-- /timings -->"
_COPY = (".csv", ".png")
_STYLE = (
    "body{font-family:sans-serif;max-width:72em;margin:2em auto;line-height:1.4}"
    "td,th{text-align:left;padding:.15em .6em;border-bottom:1px solid #ddd;vertical-align:top}"
    "img{max-width:100%}figure{margin:1em 0}figcaption{font-size:.9em;color:#444}"
    ".howto{background:#f6f6f6;padding:.6em .9em;border-left:4px solid #999}"
    ".overall.PASS,.status.PASS{color:#176f2c}.overall.FAIL,.status.FAIL{color:#b00020}"
    ".overall.INCOMPLETE,.status.NOT-JUDGED{color:#8a5a00}.status{font-weight:bold}"
)


def _table_html(path: Path, max_rows: int = 40) -> str:
    with open(path, newline="") as fh:
        rows = list(csv.reader(line for line in fh if not line.startswith("#")))
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_short(c))}</td>" for c in r) + "</tr>"
        for r in rows[1 : max_rows + 1]
    )
    more = (
        f"<p>({len(rows) - 1 - max_rows} more rows in the CSV)</p>"
        if len(rows) > max_rows + 1
        else ""
    )
    return f"<details><summary>table</summary><table><tr>{head}</tr>{body}</table>{more}</details>"


def _short(cell: str) -> str:
    try:
        return f"{float(cell):.4g}"
    except ValueError:
        return cell


def write_report(
    out: Path,
    stages: Sequence[dict[str, Any]],
    *,
    title: str,
    slices: Sequence[str] = (),
    slice_titles: Sequence[str] | None = None,
    run_dir: Path | None = None,
) -> dict[str, Any]:
    """Write the report of a run into ``out``.

    Parameters
    ----------
    out : Path
        Report folder (exists).
    stages : sequence of dict
        Records of the finished stages before the report (``name``, ``kind``, ``summary``,
        ``seconds``, ``outputs``, ``dir``).
    title : str
    slices : sequence of str
        At most :data:`~bigpaint.pipeline.report_slices.MAX_SLICES` Field paths whose
        mid-plane slices are drawn in ``slices.png``.
    slice_titles : sequence of str, optional
        One per slice (default: the label of the Field in an evaluation, ``painted``,
        ``truth``, ``baseline: NAME``, else its path relative to the run directory).
    run_dir : Path, optional
        For relative names.

    Returns
    -------
    dict
        How many stages and figures the report holds and each evaluation's verdict (the
        headline numbers of every stage are in ``summary.json``).

    Raises
    ------
    ConfigError
        Too many slices, or titles that do not match them one to one.
    DamagedStoreError
        An evaluate stage's ``verdict.json`` cannot be read.
    """
    if len(slices) > MAX_SLICES:
        raise ConfigError(
            f"report: {len(slices)} slices given, at most {MAX_SLICES} fit one figure; "
            "list fewer Fields in slices"
        )
    if slice_titles is not None and len(slice_titles) != len(slices):
        raise ConfigError(
            f"report: {len(slice_titles)} slice_titles for {len(slices)} slices; give one "
            "title per slice or none"
        )
    judged = [load_judgement(r) for r in stages if r["kind"] == "evaluate"]
    head = [verdict_section(j, out, run_dir) for j in judged] or [NO_VERDICT]
    if slices:
        roles = {k: v for j in judged for k, v in field_roles(j).items()}
        names = list(slice_titles or [_slice_title(s, roles, run_dir) for s in slices])
        panels = [slice_panel(s, t) for s, t in zip(slices, names, strict=True)]
        plot_slices(panels, out / "slices.png")
        caption = html.escape(slices_caption(panels)).replace("\n", " ")
        head.append(
            "<h2>Slices</h2><figure><img src='slices.png' alt='mid-plane slices'>"
            f"<figcaption>{caption}</figcaption></figure>"
        )
    summary: dict[str, Any] = {"title": title, "stages": {}}
    sections = [_stage_section(rec, out, summary) for rec in stages]
    timings = [(r["name"], r["kind"], float(r.get("seconds", float("nan")))) for r in stages]
    with open(out / "timings.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["stage", "kind", "seconds"])
        w.writerows([(n, k, f"{s:.2f}") for n, k, s in timings])
    trows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{html.escape(k)}</td><td>{s:.1f} s</td></tr>"
        for n, k, s in timings
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (out / "index.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>" + "".join(head) + "<h2>Every stage</h2>"
        "<p>Every table is a CSV next to this page (units in its header); every figure a PNG.</p>"
        f"{TIMINGS_BEGIN}<h3>stages and wall time</h3><table>"
        f"<tr><th>stage</th><th>kind</th><th>time</th></tr>{trows}</table>{TIMINGS_END}"
        + "".join(sections)
        + "</body></html>\n"
    )
    result: dict[str, Any] = {
        "stages_reported": len(stages),
        "figures": len(list(out.glob("*.png"))),
    }
    for j in judged:
        key = "verdict" if len(judged) == 1 else f"verdict {j.stage}"
        result[key] = j.verdict["verdict"]
    return result


def _stage_section(rec: dict[str, Any], out: Path, summary: dict[str, Any]) -> str:
    """One stage's headline numbers, figures and tables (copied into ``out``); an
    evaluation's figures are already in its verdict section and are linked, not repeated."""
    name, kind = rec["name"], rec["kind"]
    nums = rec.get("summary", {})
    summary["stages"][name] = {"kind": kind, **nums}
    parts = [f"<h3>{html.escape(name)} <small>({html.escape(kind)})</small></h3>"]
    if nums:
        parts.append(
            "<table>"
            + "".join(
                f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>"
                for k, v in nums.items()
            )
            + "</table>"
        )
    for output in rec.get("outputs", []):
        src = Path(rec["dir"]) / output
        if src.suffix not in _COPY or not src.is_file():
            continue
        copy = f"{name}-{output}"
        shutil.copyfile(src, out / copy)
        if src.suffix == ".png":
            if kind == "evaluate":  # drawn in the verdict section at the top
                parts.append(f"<p><a href='{html.escape(copy)}'>{html.escape(copy)}</a></p>")
            else:
                parts.append(f"<img src='{html.escape(copy)}' alt='{html.escape(copy)}'>")
        else:
            parts.append(f"<p><a href='{html.escape(copy)}'>{html.escape(copy)}</a></p>")
            if src.name != "metrics.csv":  # a training log (with wall times): link only
                parts.append(_table_html(src))
    return "".join(parts)


def _slice_title(url: str, roles: dict[str, str], run_dir: Path | None) -> str:
    return roles.get(resolved_path(url)) or relative_name(url, run_dir)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
