"""Sorensen-Dice overlap of the top-n% voxels of two fields, with its random-pair baseline.

Following the cosmic-web GAN/autoencoder paper (Ullmo et al., Sec. 4.1.4, eqs 9-11): for a
pair of fields ``a`` (e.g. truth) and ``b`` (prediction), each thresholded at its own top
fraction ``f`` of voxels, the overlap is

    O_ab(f) = 2 N_ab / (N_a + N_b),

``N_a``, ``N_b`` the voxels above each field's threshold and ``N_ab`` those above both. The
paper's eq. 9 prints ``N_ab / (N_a + N_b)``, but its text states that two random images with
``n%`` selected overlap by ``n%`` on average and that a perfect overlap scores 1 (eq. 10): both
hold for the standard Sorensen-Dice coefficient with the factor 2, which is what is computed.

The paper averages over a *set* of image pairs and compares with *random* pairs. One huge box
plays both roles here: it is cut into ``d^3`` sub-volumes; matched pairs are the co-located
sub-volumes of ``a`` and ``b`` (their mean ``O`` and standard deviation), random pairs put a
sub-volume of ``a`` against a different sub-volume of ``b`` (``b`` rolled by whole sub-volumes;
by default the 7 half-box shifts), giving ``r(f)`` and ``sigma(r(f))``. Then

    normalized   = (O - r) / (1 - r)          (eq. 10)
    significance = (O - r) / sigma(r)          (eq. 11)

Thresholds are global and exact (:func:`bigpaint.stats.onepoint.top_fraction_thresholds`):
the top ``f`` of each whole field, not of each sub-volume (the paper thresholds per image;
for one box the global threshold is the meaningful one). Every count is a block-wise
histogram, so the result equals the whole-array computation exactly, for any chunking.

Why hand-written: no library computes thresholded overlaps of out-of-core fields.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from bigpaint.errors import ConfigError
from bigpaint.stats._reduce import blockwise_sum_lazy, check_finite_block
from bigpaint.stats.inputs import as_input, check_same_grid
from bigpaint.stats.onepoint import (
    subvolume_divisions,
    subvolume_labels,
    top_fraction_thresholds_many,
)

__all__ = ["DEFAULT_TOP", "dice", "dice_counts"]

DEFAULT_TOP = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def _levels(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Number of (ascending) thresholds each value reaches: ``value >= t_j`` iff level > j."""
    return np.searchsorted(thresholds, values, side="right")


def _dice_block(
    a: np.ndarray,
    b: np.ndarray,
    *,
    loc: Any,
    shape: tuple[int, ...],
    divisions: tuple[int, ...],
    ta: np.ndarray,
    tb: np.ndarray,
) -> np.ndarray:
    check_finite_block(a, "Dice")
    check_finite_block(b, "Dice")
    k = len(ta) + 1
    lab = subvolume_labels(loc, shape, divisions).ravel() * k
    la = _levels(a.ravel(), ta)
    lb = _levels(b.ravel(), tb)
    m = int(np.prod(divisions)) * k
    return np.stack(
        [
            np.bincount(lab + la, minlength=m),
            np.bincount(lab + lb, minlength=m),
            np.bincount(lab + np.minimum(la, lb), minlength=m),
        ]
    ).reshape(3, -1, k)


def dice_counts(
    a: da.Array, bs: Sequence[da.Array], ta: np.ndarray, tb: np.ndarray, divisions: Sequence[int]
) -> list[np.ndarray]:
    """``N_a``, ``N_b``, ``N_ab`` per sub-volume and threshold of ``a`` against each of ``bs``.

    Chunk by chunk, all pairs in one computation. ``ta`` and ``tb`` must be ascending.
    Returns, per ``b``, int64 of shape ``(3, n_subvolumes, K)`` where column ``j`` counts
    voxels ``>= t_j`` (and both, for ``N_ab``).
    """
    d = tuple(int(v) for v in divisions)
    k = len(ta) + 1
    lazy = [
        blockwise_sum_lazy(
            _dice_block,
            [a, b],
            (3, int(np.prod(d)), k),
            np.int64,
            shape=tuple(int(n) for n in a.shape),
            divisions=d,
            ta=np.asarray(ta),
            tb=np.asarray(tb),
        )
        for b in bs
    ]
    out = []
    for counts in dask.compute(*lazy):
        at_least = np.cumsum(np.asarray(counts)[..., ::-1], axis=-1)[..., ::-1]
        out.append(at_least[..., 1:])
    return out


def _overlap(n_a: np.ndarray, n_b: np.ndarray, n_ab: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_a + n_b > 0, 2.0 * n_ab / (n_a + n_b), np.nan)


def _default_shifts(d: tuple[int, int, int]) -> list[tuple[int, ...]]:
    options = [(0, v // 2) if v >= 2 else (0,) for v in d]
    return [s for s in itertools.product(*options) if any(s)]


def _nan_mean_std(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample standard deviation over axis 0, ignoring NaN (NaN where too few)."""
    n = np.sum(np.isfinite(x), axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0, ddof=1)
    return np.where(n > 0, mean, np.nan), np.where(n > 1, std, np.nan)


def dice(
    a: Any,
    b: Any,
    top: Sequence[float] = DEFAULT_TOP,
    *,
    subvolumes: int | Sequence[int] = 4,
    random_shifts: Sequence[Sequence[int]] | None = None,
    box_size: Any = None,
) -> xr.Dataset:
    """Dice overlap of the top fractions of two fields, random baseline, eqs 10-11.

    Parameters
    ----------
    a, b : Field URL, opened Field, numpy or dask array
        Same grid and box (``a`` the truth, ``b`` the prediction, by convention).
    top : sequence of float
        Top fractions in (0, 1] (0.1 = the top 10% of voxels).
    subvolumes : int or 3 ints
        Sub-volumes per axis; must divide the grid.
    random_shifts : sequence of 3-int sequences, optional
        Offsets of ``b`` in whole sub-volumes for the random pairs (not all zero modulo the
        divisions). Default: every combination of 0 and half the divisions per axis.

    Returns
    -------
    xarray.Dataset
        Dimension ``top``; ``dice`` (whole box), ``dice_mean``/``dice_std`` (matched
        sub-volumes), ``random_mean``/``random_std`` (random pairs), ``normalized`` (eq. 10),
        ``significance`` (eq. 11), ``threshold_a``/``threshold_b`` (field units), ``n_a``,
        ``n_b``, ``n_ab`` (whole box).
    """
    ia = as_input(a, box_size=box_size, where="Dice", require_box=False)
    ib = as_input(b, box_size=box_size, where="Dice", require_box=False)
    check_same_grid(ia, ib, "Dice")
    fr = np.asarray(top, dtype=np.float64).ravel()
    if fr.size == 0:
        raise ConfigError("Dice needs at least one top fraction")
    d = subvolume_divisions(subvolumes, ia.shape)
    if any(n % v for n, v in zip(ia.shape, d, strict=True)):
        raise ConfigError(
            f"sub-volumes {d} do not divide the grid {ia.shape}; random pairs need equal sub-volumes"
        )
    side = tuple(n // v for n, v in zip(ia.shape, d, strict=True))
    shifts = _shifts(random_shifts, d)
    thr_a, thr_b = top_fraction_thresholds_many([ia.data, ib.data], fr)
    order = np.argsort(-fr, kind="stable")  # largest fraction first: thresholds ascending
    ta, tb = thr_a[order], thr_b[order]
    if np.any(np.diff(ta) < 0) or np.any(np.diff(tb) < 0):
        raise ConfigError("internal: top-fraction thresholds are not monotonic")  # pragma: no cover
    rolled = [
        da.roll(ib.data, tuple(v * w for v, w in zip(s, side, strict=True)), axis=(0, 1, 2))
        for s in shifts
    ]
    matched, *others = dice_counts(ia.data, [ib.data, *rolled], ta, tb, d)
    ds = _dice_table(fr, order, matched, others, (thr_a, ia.units), (thr_b, ib.units))
    ds.attrs.update(
        {
            "statistic": "Sorensen-Dice overlap",
            "fields": f"{ia.label}, {ib.label}",
            "definition": "2 N_ab / (N_a + N_b); voxels >= the value of each field's M-th largest voxel, M = round(f N)",
            "divisions": list(d),
            "subvolume_side_voxels": list(side),
            "random_shifts": str(shifts),
            "n_matched_pairs": int(matched.shape[1]),
            "n_random_pairs": sum(int(c.shape[1]) for c in others),
        }
    )
    return ds


def _shifts(random_shifts: Sequence[Sequence[int]] | None, d: tuple[int, int, int]) -> list[Any]:
    """The sub-volume offsets of the random pairs (default: :func:`_default_shifts`), each
    non-zero modulo the divisions ``d``."""
    shifts = (
        _default_shifts(d)
        if random_shifts is None
        else [tuple(int(v) for v in s) for s in random_shifts]
    )
    if not shifts or any(
        len(s) != 3 or all(v % m == 0 for v, m in zip(s, d, strict=True)) for s in shifts
    ):
        raise ConfigError(
            f"random pairs need sub-volume shifts that are non-zero modulo the divisions {d}, got {shifts}; "
            "use at least 2 sub-volumes along one axis"
        )
    return shifts


def _dice_table(
    fr: np.ndarray,
    order: np.ndarray,
    matched: np.ndarray,
    others: Sequence[np.ndarray],
    threshold_a: tuple[np.ndarray, str],
    threshold_b: tuple[np.ndarray, str],
) -> xr.Dataset:
    """The Dice table of the counts :func:`dice_counts` gives for the matched sub-volumes and
    the random pairs (columns in ``order`` of the fractions ``fr``), back in ``fr``'s order;
    ``threshold_a`` and ``_b``: each field's thresholds (in ``fr``'s order) and units."""
    randoms = [_overlap(c[0], c[1], c[2]) for c in others]
    per_sub = _overlap(matched[0], matched[1], matched[2])  # (n_sub, K)
    rand = np.concatenate(randoms, axis=0)
    tot = matched.sum(axis=1)
    o_mean, o_std = _nan_mean_std(per_sub)
    r_mean, r_std = _nan_mean_std(rand)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalized = (o_mean - r_mean) / (1 - r_mean)
        significance = (o_mean - r_mean) / r_std
    inv = np.argsort(order)  # back to the caller's order of fractions

    def back(v: np.ndarray) -> np.ndarray:
        return np.asarray(v)[inv]

    return xr.Dataset(
        {
            "dice": (
                "top",
                back(_overlap(tot[0], tot[1], tot[2])),
                {"units": "1", "long_name": "2 N_ab/(N_a+N_b), whole box"},
            ),
            "dice_mean": (
                "top",
                back(o_mean),
                {"units": "1", "long_name": "mean Dice of matched sub-volumes"},
            ),
            "dice_std": ("top", back(o_std), {"units": "1"}),
            "random_mean": (
                "top",
                back(r_mean),
                {"units": "1", "long_name": "r(t): mean Dice of random pairs"},
            ),
            "random_std": ("top", back(r_std), {"units": "1", "long_name": "sigma(r(t))"}),
            "normalized": (
                "top",
                back(normalized),
                {"units": "1", "long_name": "(O - r)/(1 - r), eq. 10"},
            ),
            "significance": (
                "top",
                back(significance),
                {"units": "1", "long_name": "(O - r)/sigma(r), eq. 11"},
            ),
            "threshold_a": ("top", threshold_a[0], {"units": threshold_a[1]}),
            "threshold_b": ("top", threshold_b[0], {"units": threshold_b[1]}),
            "n_a": ("top", back(tot[0]), {"units": "1"}),
            "n_b": ("top", back(tot[1]), {"units": "1"}),
            "n_ab": ("top", back(tot[2]), {"units": "1"}),
        },
        coords={"top": ("top", fr, {"units": "1", "long_name": "top fraction of voxels"})},
    )
