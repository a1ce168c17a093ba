"""Errors of the segmentation stage, kept importable here; they live in :mod:`bigpaint.errors`."""

from __future__ import annotations

from bigpaint.errors import FloodTooLargeError, NotADistanceMapError

__all__ = ["FloodTooLargeError", "NotADistanceMapError"]
