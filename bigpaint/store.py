"""Store plumbing: where a Field's URL lives, whether it exists, opening and removing it.

A Field is a Zarr v3 group at a local path or any fsspec URL. These few functions are all
that touches the filesystem layer by URL, so the Field reader and writer
(:mod:`bigpaint.field`), the chunk reader (:mod:`bigpaint.chunked.read`) and the output guard
(:mod:`bigpaint.outputs`) share them without importing one another.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import fsspec
import zarr

__all__ = [
    "open_group",
    "remove_field",
    "remove_stale_partials",
    "store_exists",
    "store_fs",
]

_PARTIAL = re.compile(r"\.[0-9a-f]{32}\.partial$")


def store_fs(url: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the store's root path on it."""
    fs, root = fsspec.core.url_to_fs(str(url), **(storage_options or {}))
    return fs, root


def store_exists(url: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """True when anything (a store or any other file or directory) is at ``url``."""
    fs, root = store_fs(url, storage_options)
    return bool(fs.exists(root))


def remove_field(url: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Delete the store at ``url`` (recursively). Used for ``--overwrite``."""
    fs, root = store_fs(url, storage_options)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def remove_stale_partials(url: str, storage_options: Mapping[str, Any] | None = None) -> int:
    """Delete the ``*.<uuid>.partial`` files a killed zarr writer left under ``url``.

    Call only when no writer is active on the store. Returns the number removed.
    """
    fs, root = store_fs(url, storage_options)
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    if not {"file", "local"} & set(protocols) or not fs.exists(root):
        return 0  # only zarr's local store writes temp files; object stores write whole keys
    stale = [p for p in fs.find(root) if _PARTIAL.search(p)]
    for path in stale:
        fs.rm_file(path)
    return len(stale)


def open_group(url: str, storage_options: Mapping[str, Any] | None, mode: str) -> zarr.Group:
    """Open the Zarr v3 group at ``url`` (``mode`` as :func:`zarr.open_group`'s), unchecked.

    The group's own metadata is read, never the consolidated copy: that copy is for other
    tools (``xarray.open_zarr``) and goes stale when anything edits the store by hand.
    Readers that need a valid Field go through :func:`bigpaint.field.open_field` instead.
    """
    kwargs: dict[str, Any] = {"use_consolidated": False}
    if storage_options and "://" in str(url):
        kwargs["storage_options"] = dict(storage_options)
    return zarr.open_group(store=str(url), mode=mode, zarr_format=3, **kwargs)
