"""Store plumbing: where a Field's URL lives, whether it exists, opening and removing it.

A Field is a Zarr v3 group at a local path or any fsspec URL. These few functions are all
that touches the filesystem layer by URL, so the Field reader and writer
(:mod:`bigpaint.field`), the chunk reader (:mod:`bigpaint.chunked.read`) and the output guard
(:mod:`bigpaint.outputs`) share them without importing one another. :func:`stored_array` is
the one way to take an array out of a group: Zarr hands back an array or a group for a name,
and a group where an array belongs is a damaged store, named as such.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import fsspec
import zarr

from bigpaint.errors import DamagedStoreError

__all__ = [
    "DAMAGED_FIX",
    "AccessMode",
    "open_group",
    "remove_field",
    "remove_stale_partials",
    "store_exists",
    "store_fs",
    "stored_array",
]

#: The modes :func:`zarr.open_group` takes: read, read-write, append, create, create-new.
AccessMode = Literal["r", "r+", "a", "w", "w-"]

#: What to do about a damaged store (the end of every DamagedStoreError of a Field).
DAMAGED_FIX = (
    "it must be rewritten: delete it and re-run the command that wrote it (or re-run that "
    "command with --overwrite)"
)

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


def open_group(url: str, storage_options: Mapping[str, Any] | None, mode: AccessMode) -> zarr.Group:
    """Open the Zarr v3 group at ``url`` (``mode`` as :func:`zarr.open_group`'s), unchecked.

    The group's own metadata is read, never the consolidated copy: that copy is for other
    tools (``xarray.open_zarr``) and goes stale when anything edits the store by hand.
    Readers that need a valid Field go through :func:`bigpaint.field.open_field` instead.
    """
    kwargs: dict[str, Any] = {"use_consolidated": False}
    if storage_options and "://" in str(url):
        kwargs["storage_options"] = dict(storage_options)
    return zarr.open_group(store=str(url), mode=mode, zarr_format=3, **kwargs)


def stored_array(group: zarr.Group, path: str, url: str) -> zarr.Array:
    """The array ``path`` of the group of the store at ``url``, or a one-line DamagedStoreError.

    Missing, unreadable metadata and a group where the array belongs are each named.
    """
    try:
        node = group[path]
    except KeyError:
        raise DamagedStoreError(
            f"{url} is damaged: its array {path!r} is missing; {DAMAGED_FIX}"
        ) from None
    except Exception as exc:  # unreadable metadata: JSONDecodeError, zarr's own errors
        raise DamagedStoreError(
            f"{url} is damaged: the metadata of its array {path!r} ({url}/{path}/zarr.json) "
            f"cannot be read ({type(exc).__name__}); {DAMAGED_FIX}"
        ) from None
    if not isinstance(node, zarr.Array):
        raise DamagedStoreError(f"{url} is damaged: {path!r} is not an array; {DAMAGED_FIX}")
    return node
