"""bigpaint: Dask-distributed large-volume emulation of cosmological fields.

The public entry points for Fields live here; each stage of the data flow has its own
subpackage or module (``bigpaint.blockwise``, ``bigpaint.filters``, ``bigpaint.cluster``).
"""

from bigpaint.field import (
    Cosmology,
    FieldMeta,
    FieldWriter,
    create_field,
    field_info,
    open_field,
    write_array,
)
from bigpaint.version import __version__

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
