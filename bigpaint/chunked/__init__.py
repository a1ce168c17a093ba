"""The chunked core, on the floor below every stage.

- :mod:`bigpaint.chunked.grid`: :class:`BlockGrid`, the blocks of a grid, with the one
  normaliser of a chunk layout and the one policy for a chunk larger than the grid (it is
  refused, never clamped).
- :mod:`bigpaint.chunked.client`: :func:`current_client`, the Dask client a chunked
  operation runs on, if any.

Nothing here imports a stage; the stages (:mod:`bigpaint.blockwise`, deposition, painting,
segmentation, statistics) import it.
"""

from bigpaint.chunked.client import current_client
from bigpaint.chunked.grid import BlockGrid

__all__ = ["BlockGrid", "current_client"]
