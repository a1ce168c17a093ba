"""Pass 3 of the segmentation, on the client: the union-find merge of the pieces into
components, and the plan of the flood pass.

A Numba union-find (:func:`bigpaint.segment.components.union_find`) over the seam pairs
names every component by its smallest piece name. A component with one piece and no pair
is *local*; the others are *spanning*; a spanning component gets its periodic bounding box
(a :class:`Span`), which is the full axis where its pieces leave no free plane. Spans are
grouped by the block holding their box's first corner (their *anchor*); every block learns
which groups it must paste and which of its local pieces it floods itself
(:class:`BlockFlood`). Only the small per-block tables pass through here, never a block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bigpaint.blockwise import BlockPlan
from bigpaint.segment.components import periodic_extent, union_find
from bigpaint.segment.records import BlockResult

__all__ = ["BlockFlood", "MergePlan", "Span", "merge"]


@dataclass(frozen=True)
class Span:
    """A spanning component: its name, periodic bounding box and markers."""

    name: int
    start: tuple[int, int, int]
    extent: tuple[int, int, int]
    full: tuple[bool, bool, bool]
    markers: np.ndarray


@dataclass(frozen=True)
class BlockFlood:
    """What the flood pass does in one block.

    Attributes
    ----------
    pieces : numpy.ndarray of int64
        Names of the block's foreground pieces, sorted.
    piece_comp : numpy.ndarray of int64
        The component of each piece (for the components output).
    flood_pieces : numpy.ndarray of int64
        The local pieces that touch a face, which this block floods itself (sorted).
    local_markers : numpy.ndarray of int64
        Their markers, sorted global linear voxel indices.
    groups : tuple of int
        The span groups whose floods cross the block (indices into
        :attr:`MergePlan.groups`).
    """

    pieces: np.ndarray
    piece_comp: np.ndarray
    flood_pieces: np.ndarray
    local_markers: np.ndarray
    groups: tuple[int, ...]


@dataclass(frozen=True)
class MergePlan:
    """The components of a run and the plan of its flood pass.

    Attributes
    ----------
    groups : list of (anchor block, list of Span)
        Spanning components with markers, grouped by anchor block, in block order.
    work : list of BlockFlood
        Per block, in the order of the plan's blocks.
    marker_ids : numpy.ndarray of int64
        Region labels of every marker (``1 +`` its linear index).
    marker_component : numpy.ndarray of int64
        The component of each marker.
    stats : dict
        Markers, components, spanning components, components without a marker,
        foreground and unassigned voxels, the largest component and flood box (voxels),
        span groups.
    """

    groups: list[tuple[tuple[int, ...], list[Span]]]
    work: list[BlockFlood]
    marker_ids: np.ndarray
    marker_component: np.ndarray
    stats: dict[str, int]


@dataclass(frozen=True)
class _Pieces:
    """Every piece of the box, sorted by name, with its component (index into ``comps``)."""

    names: np.ndarray
    counts: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    touch: np.ndarray
    owner: np.ndarray
    comp_of_piece: np.ndarray
    comps: np.ndarray
    comp_inv: np.ndarray
    n_pieces: np.ndarray
    spanning: np.ndarray


def _components(p1: list[BlockResult], pairs_list: list[np.ndarray]) -> _Pieces:
    """Union-find over the seam pairs; a component is spanning when it has more than one
    piece or a piece paired across a seam (itself, across the wrap)."""
    pieces = np.concatenate([r.pieces for r in p1])
    counts = np.concatenate([r.counts for r in p1])
    lo = np.concatenate([r.lo for r in p1]).reshape(-1, 3)
    hi = np.concatenate([r.hi for r in p1]).reshape(-1, 3)
    touch = np.concatenate([r.touch for r in p1]).astype(bool)
    owner = np.concatenate([np.full(r.pieces.size, i, dtype=np.int64) for i, r in enumerate(p1)])
    order = np.argsort(pieces, kind="stable")
    pieces, counts, lo, hi = pieces[order], counts[order], lo[order], hi[order]
    touch, owner = touch[order], owner[order]
    pairs = np.concatenate(pairs_list) if pairs_list else np.zeros((0, 2), np.int64)
    pairs = pairs.reshape(-1, 2)
    pa = np.searchsorted(pieces, pairs[:, 0])
    pb = np.searchsorted(pieces, pairs[:, 1])
    roots = union_find(pieces.size, pa, pb)
    comp_of_piece = pieces[roots] if pieces.size else pieces
    paired = np.zeros(pieces.size, dtype=bool)
    paired[pa] = True
    paired[pb] = True
    comps, comp_inv = np.unique(comp_of_piece, return_inverse=True)
    n_pieces = np.bincount(comp_inv, minlength=comps.size)
    spanning = (n_pieces > 1) | (np.bincount(comp_inv, weights=paired, minlength=comps.size) > 0)
    return _Pieces(pieces, counts, lo, hi, touch, owner, comp_of_piece, comps, comp_inv,
                   n_pieces, spanning)  # fmt: skip


def _blocks_crossed(plan: BlockPlan, e: np.ndarray, axis: int, st: int, ex: int) -> list[int]:
    """Blocks along ``axis`` (block edges ``e``) that the arc ``[st, st + ex)`` (mod n)
    crosses."""
    n = plan.shape[axis]
    first = int(np.searchsorted(e, st, side="right")) - 1
    last_pos = st + ex - 1
    if last_pos < n:
        last = int(np.searchsorted(e, last_pos, side="right")) - 1
        return list(range(first, last + 1))
    last = int(np.searchsorted(e, last_pos - n, side="right")) - 1
    return [*range(first, len(plan.chunks[axis])), *range(0, min(last + 1, first))]


def _spans(
    plan: BlockPlan,
    blocks: list[tuple[int, ...]],
    t: _Pieces,
    markers: np.ndarray,
    marker_comp_idx: np.ndarray,
    has_marker: np.ndarray,
) -> tuple[list[tuple[tuple[int, ...], list[Span]]], dict[tuple[int, ...], list[int]], int]:
    """Periodic boxes of the spanning components with markers, grouped by anchor block:
    (groups, the groups each block needs, the largest box in voxels)."""
    shape = plan.shape
    edges = [np.concatenate([[0], np.cumsum(c)]) for c in plan.chunks]
    span_idx = np.flatnonzero(t.spanning & has_marker)
    by_comp_pieces = np.argsort(t.comp_inv, kind="stable")
    starts = np.concatenate([[0], np.cumsum(t.n_pieces)])
    m_order = np.argsort(marker_comp_idx, kind="stable")
    m_bounds = np.searchsorted(marker_comp_idx[m_order], np.arange(t.comps.size + 1))
    groups_by_block: dict[tuple[int, ...], list[Span]] = {}
    deps: dict[tuple[int, ...], set[tuple[int, ...]]] = {b: set() for b in blocks}
    largest_box = 0
    for c in span_idx:
        sel = by_comp_pieces[starts[c] : starts[c + 1]]
        arcs = [
            periodic_extent(np.stack([t.lo[sel, a], t.hi[sel, a]], axis=1), shape[a])
            for a in range(3)
        ]
        (sx, ex, fx), (sy, ey, fy), (sz, ez, fz) = arcs
        start, extent, full = (sx, sy, sz), (ex, ey, ez), (fx, fy, fz)
        on_axis = [
            _blocks_crossed(plan, edges[a], a, st, ext) for a, (st, ext, _) in enumerate(arcs)
        ]
        span = Span(
            int(t.comps[c]),
            start,
            extent,
            full,
            np.sort(markers[m_order[m_bounds[c] : m_bounds[c + 1]]]),
        )
        largest_box = max(largest_box, int(np.prod(extent)))
        anchor = tuple(int(o[0]) for o in on_axis)
        groups_by_block.setdefault(anchor, []).append(span)
        for bx in on_axis[0]:
            for by in on_axis[1]:
                for bz in on_axis[2]:
                    deps[(bx, by, bz)].add(anchor)
    anchors = sorted(groups_by_block)
    group_id = {b: i for i, b in enumerate(anchors)}
    needs = {b: sorted(group_id[a] for a in deps[b]) for b in blocks}
    return [(b, groups_by_block[b]) for b in anchors], needs, largest_box


def _work(
    blocks: list[tuple[int, ...]],
    t: _Pieces,
    markers: np.ndarray,
    marker_owner: np.ndarray,
    marker_pidx: np.ndarray,
    needs: dict[tuple[int, ...], list[int]],
) -> list[BlockFlood]:
    """Per block: its pieces (for component labels), the face-touching local pieces it
    floods itself and their markers (interior pieces were flooded in pass 1)."""
    by_owner = np.argsort(t.owner, kind="stable")
    owner_starts = np.searchsorted(t.owner[by_owner], np.arange(len(blocks) + 1))
    local_face = t.touch & ~t.spanning[t.comp_inv]
    m_local = local_face[marker_pidx] if markers.size else np.zeros(0, bool)
    m_by_owner = np.argsort(marker_owner, kind="stable")
    m_owner_starts = np.searchsorted(marker_owner[m_by_owner], np.arange(len(blocks) + 1))
    work = []
    for i, b in enumerate(blocks):
        mine = np.sort(by_owner[owner_starts[i] : owner_starts[i + 1]])  # sorted by name
        mk = m_by_owner[m_owner_starts[i] : m_owner_starts[i + 1]]
        work.append(
            BlockFlood(
                t.names[mine],
                t.comp_of_piece[mine],
                t.names[mine][local_face[mine]],
                np.sort(markers[mk[m_local[mk]]]),
                tuple(needs[b]),
            )
        )
    return work


def merge(
    plan: BlockPlan,
    blocks: list[tuple[int, ...]],
    p1: list[BlockResult],
    pairs_list: list[np.ndarray],
) -> MergePlan:
    """Union-find over the seam pairs; classify components; plan the flooding tasks."""
    t = _components(p1, pairs_list)
    markers = np.concatenate([r.markers for r in p1])
    marker_owner = np.concatenate(
        [np.full(r.markers.size, i, dtype=np.int64) for i, r in enumerate(p1)]
    )
    marker_pidx = np.searchsorted(t.names, np.concatenate([r.marker_piece for r in p1]))
    marker_comp_idx = t.comp_inv[marker_pidx] if markers.size else np.zeros(0, np.int64)
    has_marker = np.zeros(t.comps.size, dtype=bool)
    has_marker[marker_comp_idx] = True
    groups, needs, largest_box = _spans(plan, blocks, t, markers, marker_comp_idx, has_marker)
    comp_volume = np.bincount(t.comp_inv, weights=t.counts, minlength=t.comps.size).astype(np.int64)
    stats: dict[str, Any] = {
        "markers": int(markers.size),
        "components": int(t.comps.size),
        "spanning_components": int(np.count_nonzero(t.spanning)),
        "components_without_marker": int(np.count_nonzero(~has_marker)),
        "foreground_voxels": int(t.counts.sum()),
        "unassigned_voxels": int(comp_volume[~has_marker].sum()),
        "largest_component_voxels": int(comp_volume.max(initial=0)),
        "largest_flood_box_voxels": largest_box,
        "span_groups": len(groups),
    }
    return MergePlan(
        groups=groups,
        work=_work(blocks, t, markers, marker_owner, marker_pidx, needs),
        marker_ids=markers + 1,
        marker_component=t.comps[marker_comp_idx] if markers.size else markers,
        stats=stats,
    )
