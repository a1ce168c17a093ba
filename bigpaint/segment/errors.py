"""Errors of the segmentation stage (members of the :mod:`bigpaint.errors` family)."""

from __future__ import annotations

from bigpaint.errors import BigpaintError

__all__ = ["NotADistanceMapError"]


class NotADistanceMapError(BigpaintError, ValueError):
    """The input is not a distance map (negative values, or a Field of another kind)."""
