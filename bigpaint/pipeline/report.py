"""The report directory of a pipeline run: ``index.html``, ``summary.json``, tables and figures.

The statistics stages already wrote their tables (CSV, units in the headers) and figures
(PNG) with :mod:`bigpaint.stats.report` and :mod:`bigpaint.segment.hmf`; the report copies
them next to one HTML page that a person can open from disk, with each stage's headline
numbers and, optionally, mid-plane slices of chosen Fields side by side. Stage timings (the
only thing that differs between two runs of the same config) live in ``timings.csv`` and in
one marked block of the page.
"""

from __future__ import annotations

import csv
import html
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TIMINGS_BEGIN", "TIMINGS_END", "write_report"]

TIMINGS_BEGIN = "<!-- timings -->"
TIMINGS_END = "<!-- /timings -->"
_COPY = (".csv", ".png")


def _mid_slice(url: str) -> np.ndarray:
    """The mid-plane ``x = N/2`` of a Field (a 4-D Field summed over channels)."""
    from bigpaint.field import data_var, open_field

    var = data_var(open_field(url))
    if var.ndim == 4:
        return np.asarray(var[:, var.shape[1] // 2].values, dtype=np.float64).sum(axis=0)
    return np.asarray(var[var.shape[0] // 2].values, dtype=np.float64)


def _plot_slices(urls: Sequence[str], titles: Sequence[str], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(urls), 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    for i, (url, title) in enumerate(zip(urls, titles, strict=True)):
        ax = fig.add_subplot(1, len(urls), i + 1)
        im = ax.imshow(_mid_slice(url).T, origin="lower", cmap="magma")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("y [cells]")
        ax.set_ylabel("z [cells]")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    return path


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
        Field paths whose mid-plane slices are drawn side by side in ``slices.png``.
    slice_titles : sequence of str, optional
        One per slice (default: the paths relative to the run directory).
    run_dir : Path, optional
        For relative names.

    Returns
    -------
    dict
        How many stages and figures the report holds (the headline numbers of every stage
        are in ``summary.json``).
    """
    summary: dict[str, Any] = {"title": title, "stages": {}}
    sections: list[str] = []
    for rec in stages:
        name, kind = rec["name"], rec["kind"]
        summary["stages"][name] = {"kind": kind, **rec.get("summary", {})}
        parts = [f"<h2>{html.escape(name)} <small>({html.escape(kind)})</small></h2>"]
        nums = rec.get("summary", {})
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
                parts.append(f"<img src='{html.escape(copy)}' alt='{html.escape(copy)}'>")
            else:
                parts.append(f"<p><a href='{html.escape(copy)}'>{html.escape(copy)}</a></p>")
                if src.name != "metrics.csv":  # a training log (with wall times): link only
                    parts.append(_table_html(src))
        sections.append("".join(parts))
    if slices:
        names = list(slice_titles or [_rel(s, run_dir) for s in slices])
        _plot_slices(slices, names, out / "slices.png")
        sections.insert(0, "<h2>slices</h2><img src='slices.png' alt='mid-plane slices'>")
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
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:72em;margin:2em auto}"
        "td,th{text-align:left;padding:.15em .6em;border-bottom:1px solid #ddd}"
        "img{max-width:100%}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        "<p>Every table is a CSV next to this page (units in its header); every figure a PNG.</p>"
        f"{TIMINGS_BEGIN}<h2>stages and wall time</h2><table>"
        f"<tr><th>stage</th><th>kind</th><th>time</th></tr>{trows}</table>{TIMINGS_END}"
        + "".join(sections)
        + "</body></html>\n"
    )
    return {"stages_reported": len(stages), "figures": len(list(out.glob("*.png")))}


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _rel(path: str, run_dir: Path | None) -> str:
    try:
        return str(Path(path).relative_to(run_dir)) if run_dir else path
    except ValueError:
        return path
