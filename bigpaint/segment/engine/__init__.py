"""The chunked watershed: markers, seam-merged components, per-component flooding, region sums.

The result equals :func:`bigpaint.segment.watershed.watershed_periodic` on the whole box,
for any chunk layout, because flooding never crosses the foreground mask: every basin lies
inside one connected component of ``distance > threshold``, and each component is flooded
on its own, in bigpaint's total order (higher distance first, ties by global voxel index).

:func:`segment` (:mod:`~bigpaint.segment.engine.run`) is a short list of phases, one module
each; the passes are Dask tasks (:mod:`bigpaint.chunked.graph`), and the client only merges
small tables:

1. :mod:`~bigpaint.segment.engine.blocks`, one task per block: markers, foreground pieces
   and their seam faces; pieces that touch no face are flooded and summed right there.
2. :mod:`~bigpaint.segment.engine.seams`, one task per seam plane (the wrap included): the
   pairs of piece names that touch across it.
3. :mod:`~bigpaint.segment.engine.merge`, on the client: the union-find of pieces into
   components, the periodic boxes of the spanning ones, and the plan of the flood pass.
4. :mod:`~bigpaint.segment.engine.flood`: one task per group of spanning components, one
   per block finishing its local components and pasting the spanning floods.
5. :mod:`~bigpaint.segment.engine.reduce`: per-block region sums added on the client;
   with ``h > 0``, basins merged by dynamics (:mod:`bigpaint.segment.dynamics`) and
   renamed in the written labels.

:mod:`~bigpaint.segment.engine.params` holds the parameters, the result and what the
phases share; :mod:`~bigpaint.segment.engine.inputs` the map's reads and checks;
:mod:`~bigpaint.segment.engine.primitives` the labelling and flooding steps used by more
than one phase.

**Resume.** With ``scratch`` (a persistent directory, e.g. made by
:func:`bigpaint.segment.segment_field` next to its output) each block's pass-1 result and
each block's flood-pass sums are saved there as the block finishes, together with the seam
faces, as typed records (:mod:`bigpaint.segment.records`, kept by
:mod:`bigpaint.segment.scratch`: JSON and ``.npy``, never pickle, so nothing in the scratch
runs code; written to a temporary name, then renamed, so a record exists only complete). A
second call with the same scratch skips every saved block, recomputes the cheap seam and
merge passes from the saved results, floods only the blocks not done (and only the
spanning groups they need), and gives the same result as an uninterrupted run; a record
that is damaged or of another version is deleted and its block recomputed. The scratch
records the shape, blocks and parameters and refuses a call with others.
"""

from bigpaint.segment.engine.params import (
    DEFAULT_MAX_FLOOD_GIB,
    FLOOD_BYTES_PER_VOXEL,
    Segmentation,
    SegmentParams,
)
from bigpaint.segment.engine.run import segment

__all__ = [
    "DEFAULT_MAX_FLOOD_GIB",
    "FLOOD_BYTES_PER_VOXEL",
    "SegmentParams",
    "Segmentation",
    "segment",
]
