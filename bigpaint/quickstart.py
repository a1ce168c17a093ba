"""The embedded quickstart: a small box through every stage that exists, with a report.

Stages (each resumable; a second run skips what is finished):

1. seeded white noise, written block by block on the cluster;
2. Gaussian smoothing through the periodic blockwise primitive;
3. a check of invariant 1: the chunked result against ``scipy.ndimage`` on the whole array;
4. a report directory: ``summary.json``, ``slices.png`` and ``index.html``.

Later stages (deposit, statistics, painting, segmentation) join as they land.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bigpaint.field import field_info, open_field
from bigpaint.filters import smooth
from bigpaint.ics.noise import white_noise

__all__ = ["run_quickstart"]


def _log(msg: str) -> None:
    import click

    click.echo(f"[quickstart] {msg}", err=True)


def run_quickstart(
    out_dir: str | Path = "bigpaint-quickstart",
    *,
    grid: int = 128,
    box_size: float = 256.0,
    chunks: int = 32,
    sigma_mpc: float = 4.0,
    seed: int = 42,
) -> dict[str, Any]:
    """Run the quickstart pipeline on the current Dask client and write the report.

    Parameters
    ----------
    out_dir : path
        Where the Fields and ``report/`` go.
    grid : int
        Voxels per side.
    box_size : float
        Box side in Mpc/h.
    chunks : int
        Block size in voxels.
    sigma_mpc : float
        Smoothing scale in Mpc/h.
    seed : int
        White-noise seed.

    Returns
    -------
    dict
        The summary written to ``report/summary.json``.
    """
    import scipy.ndimage as ndi

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    _log(f"1/4 white noise {grid}^3 in {chunks}^3 blocks (seed {seed})")
    noise = white_noise(
        str(out / "noise.zarr"),
        grid=grid,
        box_size=box_size,
        seed=seed,
        chunks=chunks,
        progress=True,
    )
    timings["white_noise_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _log(f"2/4 smoothing with sigma = {sigma_mpc} Mpc/h through the blockwise primitive")
    smoothed = smooth(noise.url, str(out / "smoothed.zarr"), sigma_mpc, progress=True)
    timings["smooth_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _log("3/4 checking the chunked result against scipy.ndimage on the whole array")
    a = open_field(noise.url)["white_noise"].values
    b = open_field(smoothed.url)["white_noise"].values
    sigma_vox = sigma_mpc / (box_size / grid)
    ref = ndi.gaussian_filter(a, sigma_vox, mode="wrap")
    max_err = float(np.abs(b - ref).max())
    timings["check_s"] = time.perf_counter() - t0

    _log("4/4 writing the report")
    report = out / "report"
    report.mkdir(exist_ok=True)
    summary = {
        "grid": grid,
        "box_size_mpc_h": box_size,
        "chunks": chunks,
        "seed": seed,
        "sigma_mpc_h": sigma_mpc,
        "noise": {"mean": float(a.mean()), "std": float(a.std())},
        "smoothed": {
            "std": float(b.std()),
            "std_expected": float(1 / np.sqrt((2 * np.sqrt(np.pi) * sigma_vox) ** 3)),
        },
        "chunked_vs_whole_max_abs_diff": max_err,
        "fields": {
            k: field_info(v.url)["url"] for k, v in (("noise", noise), ("smoothed", smoothed))
        },
        "timings_s": timings,
    }
    (report / "summary.json").write_text(json.dumps(summary, indent=2))
    _plot(a, b, sigma_mpc, report / "slices.png")
    _html(summary, report / "index.html")
    _log(f"report: {report / 'index.html'}")
    return summary


def _plot(a: np.ndarray, b: np.ndarray, sigma_mpc: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), constrained_layout=True)
    for ax, img, title in (
        (axes[0], a, "white noise"),
        (axes[1], b, f"smoothed, sigma={sigma_mpc} Mpc/h"),
    ):
        im = ax.imshow(img[img.shape[0] // 2].T, origin="lower", cmap="viridis")
        ax.set_title(title)
        ax.set_xlabel("y [cells]")
        ax.set_ylabel("z [cells]")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _html(summary: dict[str, Any], path: Path) -> None:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v))}</td></tr>"
        for k, v in summary.items()
    )
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>bigpaint quickstart</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "td,th{text-align:left;padding:.2em .6em;border-bottom:1px solid #ddd}</style></head><body>"
        "<h1>bigpaint quickstart report</h1>"
        "<p>Chunked operations checked against their whole-array references.</p>"
        f"<table>{rows}</table><h2>Slices</h2><img src='slices.png' alt='field slices'>"
        "</body></html>"
    )
