"""Benchmark: per-object completeness and purity of segmenting a simulation's true distance map.

Reads a ``bigpaint simulate`` output directory (``protohalo_labels.zarr``,
``protohalo_distance.zarr``, ``summary.json``), segments the distance map in memory with
:func:`bigpaint.segment.segment` (whole box, numpy labels; equal to the chunked run) once
with the default parameters, with ``min_distance=1``, with merging (``h=0.5``) and with
plateau markers (``min_distance=1``, ``marker_threshold=0.999``: on a per-object normalized
map every object peaks at exactly 1, so these are its deepest cells), and scores each
segmentation against the connected truth (:func:`bigpaint.sim.truth.connected_protohalos` of the labels)
with :mod:`bigpaint.segment.matching`: completeness by truth mass, purity by segment mass,
in half-decade bins from ``--min-cells`` cells up.

Caveat printed with the table: only halos above the protohalo mass cut are labelled, so
below ``complete_above`` a segment can be a real object missing from the truth and counts
as impure there.

    python benchmarks/bench_segment_completeness.py runs/protohalo/sims/seed6001
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _table(name: str, scores, seconds: float, n_regions: int) -> str:
    lines = [
        f"{name}: {n_regions} regions, segmented in {seconds:.1f} s",
        f"{'mass bin [Msun/h]':>21} {'cells':>13} | {'truth':>5} {'recov':>5} "
        f"{'completeness':>13} | {'segs':>5} {'pure':>5} {'purity':>13}",
    ]
    e = scores.edges
    for i in range(len(e) - 1):
        cells = f"{e[i] / scores.cell_mass:.0f}-{e[i + 1] / scores.cell_mass:.0f}"
        lines.append(
            f"{e[i]:9.2e} - {e[i + 1]:9.2e} {cells:>13} | {scores.n_truth[i]:5d} "
            f"{scores.n_recovered[i]:5d} {scores.completeness[i]:6.3f}+-{scores.completeness_err[i]:5.3f} | "
            f"{scores.n_segments[i]:5d} {scores.n_pure[i]:5d} "
            f"{scores.purity[i]:6.3f}+-{scores.purity_err[i]:5.3f}"
        )
    n_t, n_s = scores.n_truth.sum(), scores.n_segments.sum()
    lines.append(
        f"{'all bins':>21} {'':>13} | {n_t:5d} {scores.n_recovered.sum():5d} "
        f"{scores.n_recovered.sum() / max(n_t, 1):6.3f}{'':7} | {n_s:5d} "
        f"{scores.n_pure.sum():5d} {scores.n_pure.sum() / max(n_s, 1):6.3f}"
    )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sim", help="simulation directory written by bigpaint simulate")
    p.add_argument("--min-cells", type=int, default=30, help="smallest object scored, cells")
    args = p.parse_args()

    from bigpaint.field import open_field
    from bigpaint.segment import SegmentParams, segment
    from bigpaint.segment.matching import match_objects, overlap_table, score_by_mass
    from bigpaint.sim.truth import connected_protohalos

    sim = Path(args.sim)
    summary = json.loads((sim / "summary.json").read_text())
    dist_ds = open_field(str(sim / "protohalo_distance.zarr"))
    distance = np.asarray(dist_ds[next(iter(dist_ds.data_vars))].values)
    raw = np.asarray(open_field(str(sim / "protohalo_labels.zarr"))["protohalo_label"].values)
    truth, pieces = connected_protohalos(raw)
    grid = raw.shape[0]
    particles = int(summary["config"]["particles"])
    cell_mass = float(summary["particle_mass"]) * (particles / grid) ** 3
    min_mass = float(dist_ds.attrs["provenance"]["min_mass"])
    complete_above = min_mass * max(1.0, (particles / grid) ** 3)

    print(
        f"{sim}: grid {grid}^3, cell mass {cell_mass:.4e} Msun/h, truth complete above "
        f"{complete_above:.3e} Msun/h ({complete_above / cell_mass:.0f} cells); "
        f"{pieces['labels']} labels, {pieces['fragment_cells']} fragment cells dropped"
    )
    runs = []
    for name, params in (
        ("default (min_distance=2)", SegmentParams()),
        ("min_distance=1", SegmentParams(min_distance=1)),
        ("h=0.5", SegmentParams(h=0.5)),
        (
            "plateau (min_distance=1, marker_threshold=0.999)",
            SegmentParams(min_distance=1, marker_threshold=0.999),
        ),
    ):
        labels = np.zeros(distance.shape, np.int64)
        t0 = time.perf_counter()
        seg = segment(distance, params, labels=labels)
        runs.append((name, labels, time.perf_counter() - t0, len(seg)))

    # half-decade bins from min_cells up, the last holding the largest object of any image
    images = [truth] + [r[1] for r in runs]
    top = max(int(np.unique(a[a > 0], return_counts=True)[1].max(initial=1)) for a in images)
    k = max(1, int(np.ceil(2 * np.log10((top + 1) / args.min_cells))))
    edges = args.min_cells * 10 ** (0.5 * np.arange(k + 1)) * cell_mass
    for name, labels, seconds, n_regions in runs:
        scores = score_by_mass(
            match_objects(overlap_table(labels, truth)), cell_mass=cell_mass, edges=edges
        )
        print()
        print(_table(name, scores, seconds, n_regions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
