"""Test helpers for bigpaint and its plugins: chunk-layout strategies and comparisons.

Use these to test your own chunked operations (or painters) the way bigpaint tests its own:
draw chunk layouts with hypothesis and compare against the whole-array reference.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from hypothesis import strategies as st

from bigpaint.paint.seams import ROUNDING_RTOL, rounding_error

__all__ = [
    "assert_equivalent_labels",
    "assert_painted_close",
    "axis_chunks",
    "chunk_layouts",
    "regular_chunks",
]


@st.composite
def axis_chunks(draw: st.DrawFn, n: int, max_parts: int = 6) -> tuple[int, ...]:
    """Uneven positive sizes summing to ``n`` (one chunk up to ``max_parts`` chunks)."""
    k = draw(st.integers(1, min(n, max_parts)))
    cuts = (
        sorted(draw(st.sets(st.integers(1, n - 1), min_size=k - 1, max_size=k - 1)))
        if k > 1
        else []
    )
    edges = [0, *cuts, n]
    return tuple(b - a for a, b in itertools.pairwise(edges))


@st.composite
def chunk_layouts(
    draw: st.DrawFn, shape: Sequence[int], max_parts: int = 6
) -> tuple[tuple[int, ...], ...]:
    """Dask-style chunks for ``shape``: arbitrary uneven layouts, including a single chunk."""
    return tuple(draw(axis_chunks(n, max_parts)) for n in shape)


@st.composite
def regular_chunks(draw: st.DrawFn, shape: Sequence[int], min_size: int = 1) -> tuple[int, ...]:
    """Zarr-style regular chunk sizes (last chunk per axis may be smaller)."""
    return tuple(draw(st.integers(min(min_size, n), n)) for n in shape)


def assert_equivalent_labels(a: np.ndarray, b: np.ndarray) -> None:
    """Assert two label arrays are equal up to renaming of labels (0 stays background)."""
    a = np.asarray(a).ravel()
    b = np.asarray(b).ravel()
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    assert np.array_equal(a == 0, b == 0), "background differs"
    pairs = np.unique(np.stack([a, b]), axis=1)
    assert len(np.unique(pairs[0])) == pairs.shape[1], "a label of the first maps to several"
    assert len(np.unique(pairs[1])) == pairs.shape[1], "a label of the second maps to several"


def assert_painted_close(
    actual: np.ndarray,
    reference: np.ndarray,
    *,
    channel_axis: int | None = None,
    rtol: float = ROUNDING_RTOL,
) -> None:
    """Assert chunked painting equals a reference up to float32 rounding.

    Passes when :func:`bigpaint.paint.seams.rounding_error` is at most ``rtol`` (default
    :data:`bigpaint.paint.seams.ROUNDING_RTOL`, the tolerance docs/paint.md states): every
    voxel within ``rtol`` of its channel's largest magnitude. A seam, a misplaced window or a
    missing periodic wrap is orders of magnitude larger.
    """
    err = rounding_error(actual, reference, channel_axis=channel_axis)
    assert err <= rtol, (
        f"painted arrays differ by {err:.3g} of the output's largest magnitude "
        f"(rounding tolerance {rtol:g})"
    )
