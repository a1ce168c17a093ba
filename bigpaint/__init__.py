"""bigpaint: Dask-distributed large-volume emulation of cosmological fields.

The public entry points for Fields live here; each stage of the data flow has its own
subpackage or module (``bigpaint.blockwise``, ``bigpaint.filters``, ``bigpaint.cluster``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bigpaint")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from bigpaint.field import (
    Cosmology,
    FieldMeta,
    FieldWriter,
    create_field,
    field_info,
    open_field,
    write_array,
)

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
