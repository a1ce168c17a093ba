"""Mid-plane slices of Fields for the report, in Mpc/h, with labelled colour bars.

Each Field given to the report's ``slices`` becomes one panel: its plane ``x = N/2`` (one
cell thick), drawn with axes in Mpc/h from the Field's box size. Count Fields (halo,
galaxy or plain counts; several mass bins are summed) share one colour scale, so the same
colour means the same number of halos per cell in the painting, the truth and every
baseline; a square-root scale keeps a painting's fractional expectations visible next to
the truth's integers. A bias model can predict negative expectations: those cells are
drawn in a colour of their own and the colour bar says so, rather than being folded into
zero. Any other Field (a density contrast, say) gets its own scale, clipped at its 99.5th
percentile and marked as such.

The colour-bar label names the quantity and its units from the Field's metadata: ``δ
(2LPT)`` for the 2LPT density contrast bigpaint's ``lpt`` writes, ``halos per cell`` for
halo counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bigpaint.stats.inputs import COUNT_KINDS

__all__ = [
    "MAX_SLICES",
    "SlicePanel",
    "count_scale",
    "origin_of",
    "plot_slices",
    "slice_panel",
    "slices_caption",
    "slices_figure",
]

#: The most Fields one slice figure shows (two rows of three).
MAX_SLICES = 6
_PER_ROW = 3
#: Colour of negative expectations in count panels.
NEGATIVE_COLOR = "tab:cyan"
_COUNT_NOUNS = {"halo_count": "halos", "galaxy_count": "galaxies", "count": "counts"}


@dataclass(frozen=True)
class SlicePanel:
    """One Field's mid-plane, ready to draw.

    Attributes
    ----------
    title : str
    image : numpy.ndarray
        Values on the plane, shape ``(n_y, n_z)``.
    extent : tuple of float
        ``(0, L_y, 0, L_z)`` in Mpc/h.
    x_range : tuple of float
        The slab the plane covers along x, Mpc/h.
    label : str
        Colour-bar label with units.
    counts : bool
        A count Field (shares the count colour scale).
    summed : int
        Channels (mass bins) summed into the image.
    """

    title: str
    image: np.ndarray
    extent: tuple[float, float, float, float]
    x_range: tuple[float, float]
    label: str
    counts: bool
    summed: int = 1


def origin_of(meta: Any) -> str:
    """How a Field was made, in a few words from its provenance (``""`` when unknown):
    ``"2LPT"`` for bigpaint's lpt, ``"N-body"`` for simulate, the painter family for a
    painting, the bias model for a baseline."""
    prov = getattr(meta, "provenance", None) or {}
    op = prov.get("operation")
    config = prov.get("config") or {}
    if op in ("lpt", "deposit") and isinstance(prov.get("lpt"), dict):
        order = prov["lpt"].get("order")
        return {1: "Zel'dovich", 2: "2LPT"}.get(order, "LPT")
    if op == "simulate":
        return "N-body"
    if op == "paint":
        return str(config.get("family") or "painted")
    if op == "paint_bias":
        return str(config.get("model") or "bias model")
    if op in ("ics", "grf"):
        return "linear"
    return ""


def _label(meta: Any) -> str:
    kind, units = str(meta.kind), str(meta.units or "")
    origin = origin_of(meta)
    if kind in COUNT_KINDS:
        return f"{_COUNT_NOUNS[kind]} per cell"
    if kind == "delta":
        return "δ" + (f" ({origin})" if origin else "")
    unit = "dimensionless" if units in ("", "1") else units
    return f"{kind.replace('_', ' ')} [{unit}]" + (f" ({origin})" if origin else "")


def slice_panel(url: str, title: str) -> SlicePanel:
    """Read the mid-plane ``x = N/2`` of the Field at ``url`` (count channels summed; the
    first channel of another multi-channel Field, said in the label)."""
    from bigpaint.field import data_var, field_meta, open_field

    ds = open_field(url)
    meta = field_meta(ds)
    var = data_var(ds)
    channels = int(var.shape[0]) if var.ndim == 4 else 1
    spatial = var.shape[-3:]
    i = spatial[0] // 2
    counts = str(meta.kind) in COUNT_KINDS
    label = _label(meta)
    if var.ndim == 4:
        plane = np.asarray(var[:, i].values, dtype=np.float64)
        if counts:
            plane = plane.sum(axis=0)
        else:
            plane = plane[0]
            label += f", channel 0 of {channels}" if channels > 1 else ""
    else:
        plane = np.asarray(var[i].values, dtype=np.float64)
    box = [float(b) for b in meta.box_size]
    cell = box[0] / spatial[0]
    return SlicePanel(title, plane, (0.0, box[1], 0.0, box[2]), (i * cell, (i + 1) * cell),
                      label, counts, channels if counts else 1)  # fmt: skip


def count_scale(panels: Sequence[SlicePanel]) -> tuple[float, float]:
    """The colour range all count panels share: 0 to the largest count on any of them."""
    tops = [float(np.nanmax(p.image)) for p in panels if p.counts and np.isfinite(p.image).any()]
    return 0.0, max([*tops, 1e-12])


def _draw(fig: Any, ax: Any, panel: SlicePanel, count_range: tuple[float, float]) -> None:
    import matplotlib as mpl
    from matplotlib.colors import Normalize, PowerNorm

    cmap = mpl.colormaps["magma"]
    image = panel.image
    label = panel.label
    extend = "neither"
    if panel.counts:
        norm: Normalize = PowerNorm(0.5, vmin=count_range[0], vmax=count_range[1])
        negative = image < 0
        label += " (√ scale)"
        if negative.any():
            image = np.ma.masked_where(negative, image)
            cmap = cmap.with_extremes(bad=NEGATIVE_COLOR)
            label += f"; < 0 in {negative.mean():.0%} of cells"
    else:
        finite = image[np.isfinite(image)]
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(np.percentile(finite, 99.5)) if finite.size else 1.0
        hi = hi if hi > lo else lo + 1.0
        norm = Normalize(vmin=lo, vmax=hi)
        if finite.size and float(finite.max()) > hi:
            extend = "max"  # the arrow: clipped at the 99.5th percentile
    im = ax.imshow(image.T, origin="lower", cmap=cmap, norm=norm, extent=panel.extent,
                   interpolation="nearest")  # fmt: skip
    ax.set_title(panel.title, fontsize=9)
    ax.set_xlabel("y [Mpc/h]")
    ax.set_ylabel("z [Mpc/h]")
    bar = fig.colorbar(im, ax=ax, shrink=0.85, extend=extend)
    bar.set_label(label, fontsize=8)


def slices_caption(panels: Sequence[SlicePanel]) -> str:
    """What the slice figure shows, in words (its title, and the report's caption)."""
    lo, hi = panels[0].x_range
    same = all(p.x_range == panels[0].x_range for p in panels)
    where = f"x from {lo:g} to {hi:g} Mpc/h" if same else "x = L/2"
    lines = [f"Mid-plane slices ({where}, one cell thick); axes in Mpc/h."]
    counts = [p for p in panels if p.counts]
    if counts:
        summed = " (summed over mass bins)" if any(p.summed > 1 for p in counts) else ""
        lines.append(
            f"Counts{summed} share one square-root colour scale"
            + ("; cyan: negative expectations of a bias model." if _any_negative(counts) else ".")
        )
    if any(not p.counts for p in panels):
        lines.append("Other fields: own scale, the colour bar's arrow marks the top 0.5 % clipped.")
    return "\n".join(lines)


def _any_negative(panels: Sequence[SlicePanel]) -> bool:
    return any(bool((p.image < 0).any()) for p in panels)


def slices_figure(panels: Sequence[SlicePanel]) -> Any:
    """The panels in rows of three, as a matplotlib ``Figure`` on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(_PER_ROW, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.6 * cols, 4.3 * rows + 0.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    count_range = count_scale(panels)
    for ax, panel in zip(axes, panels, strict=False):
        _draw(fig, ax, panel, count_range)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(slices_caption(panels), fontsize=10)
    return fig


def plot_slices(panels: Sequence[SlicePanel], path: Path) -> Path:
    """Draw the panels in rows of three into one PNG; returns ``path``."""
    slices_figure(panels).savefig(path, dpi=100, metadata={"Software": None})
    return path
