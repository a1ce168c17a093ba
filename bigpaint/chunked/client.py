"""The Dask client a chunked operation runs on.

Every executor asks the same question before it submits work: is there a distributed client
(the cluster a command opened, or one the caller connected), or should the local threaded
scheduler run the tasks? :func:`current_client` answers it in one place.
"""

from __future__ import annotations

from typing import Any

__all__ = ["current_client"]


def current_client() -> Any:
    """The current ``distributed.Client``, or None when there is none (or no distributed)."""
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None
