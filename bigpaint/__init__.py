"""bigpaint: Dask-distributed large-volume emulation of cosmological fields.

The public entry points for Fields live here; each stage of the data flow has its own
subpackage or module (``bigpaint.chunked``, ``bigpaint.filters``, ``bigpaint.cluster``).
"""

from typing import TYPE_CHECKING

from bigpaint.version import __version__

if TYPE_CHECKING:
    from bigpaint.field import (
        Cosmology,
        FieldMeta,
        FieldWriter,
        create_field,
        field_info,
        open_field,
        write_array,
    )

#: Names re-exported from :mod:`bigpaint.field`, imported on first use: importing the
#: package (every ``bigpaint`` command does) then costs no xarray, zarr or pandas.
_FIELD_NAMES = frozenset(
    {"Cosmology", "FieldMeta", "FieldWriter", "create_field", "field_info", "open_field",
     "write_array"}
)  # fmt: skip


def __getattr__(name: str) -> object:
    if name in _FIELD_NAMES:
        from bigpaint import field

        return getattr(field, name)
    raise AttributeError(f"module 'bigpaint' has no attribute {name!r}")


__all__ = [
    "Cosmology",
    "FieldMeta",
    "FieldWriter",
    "__version__",
    "create_field",
    "field_info",
    "open_field",
    "write_array",
]
