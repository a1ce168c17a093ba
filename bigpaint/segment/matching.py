"""Per-object completeness and purity of a segmentation against a truth label image.

A mass function compares counts and can agree while individual objects are split, merged or
misplaced. This module compares objects: it overlaps a segmented label image with a truth
label image of the same box, cell by cell, and asks of every object whether it found its
counterpart. The truth to use is the connected truth of a simulation (each halo's largest
periodic face-connected Lagrangian region, :func:`bigpaint.sim.truth.connected_protohalos`,
the labels behind ``protohalos_connected.parquet``): a segmentation yields connected
regions, so that is the reference it can reach.

**Overlap table.** The cells labelled in both images give pairs (truth id, segment id);
``numpy.unique`` of the pair codes counts the shared cells of every overlapping pair. Ids
need not be dense or ordered (a segmentation names its regions ``1 +`` a marker's linear
index); 0 is background in both images.

**Mutual majority.** A truth object is *recovered* when one segment holds more than half of
its cells and more than half of that segment's cells are the object's. Each side holds at
most one strict majority, so such pairs are one to one; a segment in such a pair is a
*pure* match. A truth object split into two equal halves is not recovered; two truth
objects merged into one segment leave the smaller unrecovered, and the segment is impure
when neither holds more than half of it.

**Mass bins.** ``mass = cells * cell_mass`` in Msun/h, the rule of both catalogues
(:mod:`bigpaint.sim.connected_truth`, :mod:`bigpaint.segment.catalog`). Completeness is
binned by truth mass, purity by segment mass; objects outside the bin edges are not
counted. Errors are binomial, ``sqrt(p (1 - p) / n)``: zero when ``p`` is 0 or 1 (a
small-sample caveat the counts let a reader judge), NaN for an empty bin.

Why hand-written: the pairing is three ``numpy.unique`` calls and a lexsort; the matching
rules are the ones above, not a library's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bigpaint.errors import ConfigError, ShapeError

__all__ = ["MassScores", "Matches", "Overlap", "match_objects", "overlap_table", "score_by_mass"]


@dataclass(frozen=True)
class Overlap:
    """Shared cells of every overlapping (truth, segment) pair, and each object's size.

    Attributes
    ----------
    truth_id, segment_id : numpy.ndarray of int64
        One row per overlapping pair, sorted by truth id then segment id.
    shared : numpy.ndarray of int64
        Cells labelled with both ids.
    truth_ids, truth_cells : numpy.ndarray of int64
        Every nonzero truth id, ascending, and its cells.
    segment_ids, segment_cells : numpy.ndarray of int64
        Every nonzero segment id, ascending, and its cells.
    """

    truth_id: np.ndarray
    segment_id: np.ndarray
    shared: np.ndarray
    truth_ids: np.ndarray
    truth_cells: np.ndarray
    segment_ids: np.ndarray
    segment_cells: np.ndarray


@dataclass(frozen=True)
class Matches:
    """Each object's best counterpart and whether it is a mutual-majority match.

    Attributes
    ----------
    truth_ids, truth_cells : numpy.ndarray of int64
        As in :class:`Overlap`.
    best_segment : numpy.ndarray of int64
        Per truth object, the segment sharing most of its cells (ties: the lowest id);
        0 when no segment touches it.
    shared : numpy.ndarray of int64
        Cells it shares with ``best_segment``.
    fraction_of_truth, fraction_of_segment : numpy.ndarray of float64
        ``shared / truth cells`` and ``shared / best segment cells`` (0 with no segment).
    recovered : numpy.ndarray of bool
        Both fractions exceed one half.
    segment_ids, segment_cells : numpy.ndarray of int64
        As in :class:`Overlap`.
    pure : numpy.ndarray of bool
        Per segment, whether it is the mutual-majority match of a truth object.
    """

    truth_ids: np.ndarray
    truth_cells: np.ndarray
    best_segment: np.ndarray
    shared: np.ndarray
    fraction_of_truth: np.ndarray
    fraction_of_segment: np.ndarray
    recovered: np.ndarray
    segment_ids: np.ndarray
    segment_cells: np.ndarray
    pure: np.ndarray


@dataclass(frozen=True)
class MassScores:
    """Completeness (by truth mass) and purity (by segment mass) per mass bin.

    Attributes
    ----------
    edges : numpy.ndarray of float64, (B + 1,)
        Bin edges in Msun/h; bin ``i`` is ``[edges[i], edges[i + 1])``.
    cell_mass : float
        Msun/h per cell.
    n_truth, n_recovered : numpy.ndarray of int64, (B,)
        Truth objects in the bin and those recovered.
    completeness, completeness_err : numpy.ndarray of float64, (B,)
        ``n_recovered / n_truth`` and its binomial error (NaN for an empty bin).
    n_segments, n_pure : numpy.ndarray of int64, (B,)
        Segments in the bin and those that are a mutual-majority match.
    purity, purity_err : numpy.ndarray of float64, (B,)
        ``n_pure / n_segments`` and its binomial error (NaN for an empty bin).
    """

    edges: np.ndarray
    cell_mass: float
    n_truth: np.ndarray
    n_recovered: np.ndarray
    completeness: np.ndarray
    completeness_err: np.ndarray
    n_segments: np.ndarray
    n_pure: np.ndarray
    purity: np.ndarray
    purity_err: np.ndarray


def _check_labels(segments: np.ndarray, truth: np.ndarray) -> None:
    if segments.shape != truth.shape:
        raise ShapeError(
            f"segment labels {segments.shape} and truth labels {truth.shape} differ in shape; "
            "give label images of the same box and grid"
        )
    for name, a in (("segment", segments), ("truth", truth)):
        if not np.issubdtype(a.dtype, np.integer):
            raise ConfigError(f"{name} labels must be integers, got dtype {a.dtype}")
        if a.size and a.min() < 0:
            raise ConfigError(f"{name} labels must be >= 0 (0 is background), got {a.min()}")


def _ids(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Nonzero ids with their cells, the inverse index of every cell, and 0's offset."""
    ids, inverse, cells = np.unique(flat, return_inverse=True, return_counts=True)
    skip = int(ids.size > 0 and ids[0] == 0)
    return ids[skip:].astype(np.int64), inverse.ravel(), cells[skip:].astype(np.int64), skip


def overlap_table(segments: np.ndarray, truth: np.ndarray) -> Overlap:
    """Count the shared cells of every (truth, segment) pair of two label images.

    Parameters
    ----------
    segments, truth : numpy.ndarray of int, same shape
        Label images (0 is background), e.g. a segmentation's labels and the connected
        truth of :func:`bigpaint.sim.truth.connected_protohalos`.

    Returns
    -------
    Overlap

    Raises
    ------
    ShapeError
        The images differ in shape.
    ConfigError
        An image is not integer or holds negative labels.
    """
    s = np.asarray(segments)
    t = np.asarray(truth)
    _check_labels(s, t)
    s, t = s.ravel(), t.ravel()
    seg_ids, seg_inv, seg_cells, seg_skip = _ids(s)
    tru_ids, tru_inv, tru_cells, tru_skip = _ids(t)
    both = (s != 0) & (t != 0)
    n_seg = np.int64(seg_ids.size)
    code = (tru_inv[both].astype(np.int64) - tru_skip) * n_seg + (seg_inv[both] - seg_skip)
    pairs, shared = np.unique(code, return_counts=True)
    ti, si = np.divmod(pairs, n_seg) if n_seg else (pairs, pairs)
    return Overlap(
        truth_id=tru_ids[ti],
        segment_id=seg_ids[si],
        shared=shared.astype(np.int64),
        truth_ids=tru_ids,
        truth_cells=tru_cells,
        segment_ids=seg_ids,
        segment_cells=seg_cells,
    )


def match_objects(overlap: Overlap) -> Matches:
    """Best segment of every truth object and the mutual-majority matches.

    Parameters
    ----------
    overlap : Overlap
        From :func:`overlap_table`.

    Returns
    -------
    Matches
    """
    o = overlap
    ti = np.searchsorted(o.truth_ids, o.truth_id)
    si = np.searchsorted(o.segment_ids, o.segment_id)
    n_t = o.truth_ids.size
    best = np.zeros(n_t, np.int64)
    shared = np.zeros(n_t, np.int64)
    seg_cells = np.ones(n_t, np.int64)  # no segment: fraction 0 over a placeholder size
    order = np.lexsort((o.segment_id, -o.shared, ti))  # per truth: most shared, lowest id
    first = order[np.unique(ti[order], return_index=True)[1]]
    best[ti[first]] = o.segment_id[first]
    shared[ti[first]] = o.shared[first]
    seg_cells[ti[first]] = o.segment_cells[si[first]]

    mutual = (2 * o.shared > o.truth_cells[ti]) & (2 * o.shared > o.segment_cells[si])
    recovered = np.zeros(n_t, bool)
    recovered[ti[mutual]] = True
    pure = np.zeros(o.segment_ids.size, bool)
    pure[si[mutual]] = True
    return Matches(
        truth_ids=o.truth_ids,
        truth_cells=o.truth_cells,
        best_segment=best,
        shared=shared,
        fraction_of_truth=shared / np.maximum(o.truth_cells, 1),
        fraction_of_segment=shared / seg_cells,
        recovered=recovered,
        segment_ids=o.segment_ids,
        segment_cells=o.segment_cells,
        pure=pure,
    )


def _binomial(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, k / np.maximum(n, 1), np.nan)
        err = np.where(n > 0, np.sqrt(p * (1 - p) / np.maximum(n, 1)), np.nan)
    return p, err


def score_by_mass(matches: Matches, *, cell_mass: float, edges: np.ndarray) -> MassScores:
    """Completeness and purity in bins of mass.

    Parameters
    ----------
    matches : Matches
        From :func:`match_objects`.
    cell_mass : float
        Mass of one cell in Msun/h (``rho_bar * cell volume``; one particle's mass when the
        label grid is the particle grid).
    edges : array of float
        Increasing bin edges in Msun/h (at least two); e.g. ``30 * cell_mass`` as the lowest
        edge keeps objects of at least 30 cells.

    Returns
    -------
    MassScores

    Raises
    ------
    ConfigError
        ``cell_mass`` is not positive and finite, or the edges are not finite and strictly
        increasing.
    """
    if not (math.isfinite(cell_mass) and cell_mass > 0):
        raise ConfigError(f"cell_mass must be a positive number of Msun/h, got {cell_mass!r}")
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
        raise ConfigError(
            "mass bin edges must be at least two finite, strictly increasing values in "
            "Msun/h, e.g. numpy.geomspace(1e13, 1e15, 9)"
        )
    bins = len(e) - 1

    def count(cells: np.ndarray, good: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mass = cells * float(cell_mass)
        i = np.searchsorted(e, mass, side="right") - 1
        inside = (i >= 0) & (i < bins)
        n = np.bincount(i[inside], minlength=bins).astype(np.int64)
        k = np.bincount(i[inside & good], minlength=bins).astype(np.int64)
        return n, k

    n_truth, n_recovered = count(matches.truth_cells, matches.recovered)
    n_segments, n_pure = count(matches.segment_cells, matches.pure)
    completeness, completeness_err = _binomial(n_recovered, n_truth)
    purity, purity_err = _binomial(n_pure, n_segments)
    return MassScores(
        edges=e,
        cell_mass=float(cell_mass),
        n_truth=n_truth,
        n_recovered=n_recovered,
        completeness=completeness,
        completeness_err=completeness_err,
        n_segments=n_segments,
        n_pure=n_pure,
        purity=purity,
        purity_err=purity_err,
    )
