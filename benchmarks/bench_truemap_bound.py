"""How close can any flood of a true protohalo map come to the connected truth?

The protohalo criterion asks the segmentation of a *true* map (the per-object normalized
distance map of the connected truth) for every mass bin within max(10 %, 2 sigma) and
N(>M) within 5 %. This script measures what a marker-based flood reaches when it is given
more than any segmentation has: one marker per truth object, placed on the object's
deepest cell (an oracle), so every miss is the flood's and none is the markers'.

Two floods, both priority floods from the oracle markers over the truth's foreground with
the periodic face neighbourhood:

``oracle markers, normalized map``
    Cells flood in decreasing value of the normalized map, as ``bigpaint segment`` floods.
``oracle markers, exact depth``
    Cells flood in decreasing *unnormalized* distance (cells), which the map does not carry:
    every object's own depth, known exactly. A flood that estimates depth from the map can
    at best reach this row.

In both, a cell takes the label of the labelled neighbour of greatest flood height, ties
to the neighbour whose normalized value is closest to its own (equal values mark the same
object on a true map). The flood is the few lines below because none of the libraries
offers a periodic flood with that tie rule; scikit-image's watershed assigns a cell to
whichever neighbour reached it first.

The figures judge each flood's object sizes with the same rule as the protohalo recipe
(:func:`train_pretrained_protohalo.judge`). Usage, on the recipe's simulations::

    python benchmarks/bench_truemap_bound.py --work runs/protohalo \
        --seeds 5001 5002 5003 5004 6001 6003 \
        --out benchmarks/results/pretrained-protohalo/truemap-bound.json
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from train_pretrained_protohalo import box_dir, judge


@numba.njit(cache=True)
def _neighbour(i: int, d: int, n0: int, n1: int, n2: int) -> int:
    x, y, z = i // (n1 * n2), (i // n2) % n1, i % n2
    if d == 0:
        x = (x + 1) % n0
    elif d == 1:
        x = (x - 1) % n0
    elif d == 2:
        y = (y + 1) % n1
    elif d == 3:
        y = (y - 1) % n1
    elif d == 4:
        z = (z + 1) % n2
    else:
        z = (z - 1) % n2
    return (x * n1 + y) * n2 + z


@numba.njit(cache=True)
def oracle_flood(height, value, foreground, markers):
    """Priority flood from ``markers`` over ``foreground`` (periodic, 6 neighbours).

    Cells are taken in decreasing ``height`` (first come first served among equals); each
    takes the label of its labelled neighbour of greatest ``height``, ties to the one whose
    ``value`` is closest to its own.
    """
    n0, n1, n2 = height.shape
    h = height.ravel()
    v = value.ravel()
    fg = foreground.ravel()
    out = markers.ravel().copy()
    queued = out > 0
    heap = [(0.0, 0, 0)]
    heap.pop()
    count = 0
    for i in range(out.size):
        if out[i] > 0:
            heapq.heappush(heap, (-h[i], count, i))
            count += 1
    while len(heap):
        _, _, i = heapq.heappop(heap)
        if out[i] == 0:
            best, best_h, best_dv = 0, -1e300, 1e300
            for d in range(6):
                j = _neighbour(i, d, n0, n1, n2)
                if out[j] > 0:
                    dv = abs(v[j] - v[i])
                    if h[j] > best_h + 1e-6 or (abs(h[j] - best_h) <= 1e-6 and dv < best_dv):
                        best, best_h, best_dv = out[j], h[j], dv
            out[i] = best
        for d in range(6):
            j = _neighbour(i, d, n0, n1, n2)
            if fg[j] and not queued[j]:
                queued[j] = True
                heapq.heappush(heap, (-h[j], count, j))
                count += 1
    return out.reshape(height.shape)


def oracle_markers(labels: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """One marker per object: its deepest cell (ties to the lowest index), labelled as it."""
    flat = labels.ravel()
    order = np.lexsort((-depth.ravel(), flat))
    first = np.r_[True, flat[order][1:] != flat[order][:-1]] & (flat[order] > 0)
    markers = np.zeros(flat.size, np.int64)
    markers[order[first]] = flat[order[first]]
    return markers.reshape(labels.shape)


def bound(work: Path, seed: int) -> dict:
    """Judge both oracle floods of one box against its connected truth."""
    from bigpaint.field import data_var, open_field
    from bigpaint.sim.truth import periodic_edt

    box = box_dir(work, seed)
    labels = np.asarray(data_var(open_field(str(box / "protohalo_labels.zarr"))).values)
    labels = labels.squeeze().astype(np.int64)
    normalized = np.asarray(data_var(open_field(str(box / "protohalo_distance.zarr"))).values)
    normalized = normalized.squeeze().astype(np.float64)
    depth = periodic_edt(labels).astype(np.float64)
    foreground = labels > 0
    truth = np.unique(labels[foreground], return_counts=True)[1]
    markers = oracle_markers(labels, depth)
    out = {"objects": int(truth.size)}
    for name, height in (
        ("oracle markers, normalized map", normalized),
        ("oracle markers, exact depth", depth),
    ):
        seg = oracle_flood(height, normalized, foreground, markers)
        cells = np.unique(seg[seg > 0], return_counts=True)[1]
        out[name] = judge(cells, truth, 0.10, 0.05)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="the protohalo recipe's --work")
    ap.add_argument("--seeds", type=int, nargs="+", default=[5001, 5002, 5003, 5004, 6001, 6003])
    ap.add_argument("--out", type=Path, required=True, help="JSON file for the figures")
    args = ap.parse_args()
    results = {}
    for seed in args.seeds:
        t0 = time.perf_counter()
        results[str(seed)] = r = bound(args.work, seed)
        for name in ("oracle markers, normalized map", "oracle markers, exact depth"):
            v = r[name]
            bins = " ".join(f"{b['deviation']:+.0%}" for b in v["bins"])
            c = v["cumulative_worst"]
            print(
                f"seed {seed} {name:32s} bins {bins}  N(>M) {c['deviation']:+.0%} at "
                f"{c['cells']:.0f} cells ({c['truth']} objects)  "
                f"pass {v['bins_pass'] and v['cumulative_pass']}  {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
