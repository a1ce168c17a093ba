"""The chunked core, on the floor below every stage.

- :mod:`bigpaint.chunked.client`: :func:`current_client`, the Dask client a chunked
  operation runs on, if any.

Nothing here imports a stage; the stages (:mod:`bigpaint.blockwise`, deposition, painting,
segmentation, statistics) import it.
"""

from bigpaint.chunked.client import current_client

__all__ = ["current_client"]
