"""The mass-assignment record of a Field: read it, including how older Fields said it.

A deposit multiplies every Fourier mode by the window of its scheme, and a spectrum is only
right once that window is divided out, so the window travels with the Field as one typed
attribute, ``mass_assignment`` (:class:`bigpaint.field.MassAssignment`: ``scheme`` NGP, CIC,
TSC, PCS or None, and ``interlaced``). Every bigpaint command that writes a Field writes it:

=====================  ==============================================================
``deposit``, ``lpt``   the deposit's scheme and interlacing
``simulate``           CIC for the density Fields, NGP for the halo counts, None for
                       protohalo labels and distance maps
``paint``              the record of the painter's training target, which the network
                       learnt to imitate window and all (see :mod:`bigpaint.paint.plan`)
``smooth``             the input's record (a Gaussian does not undo the window)
``ics``, ``noise``     None (no window)
=====================  ==============================================================

Fields written before the record existed said the same in their provenance, under the
spellings read by :func:`mass_assignment_of` so that they keep working:
``provenance.mas`` / ``provenance.interlaced`` (``simulate``, and Fields written by hand),
``provenance.config.scheme`` / ``config.interlace`` of a ``deposit`` (or of an ``lpt`` run,
whose ``deposit_operation`` is ``deposit``), and the ``gaussian_field`` and ``white_noise``
operations, which have no window. Anything else has no record: None, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from bigpaint.errors import MetadataError
from bigpaint.field import FieldMeta, MassAssignment

__all__ = ["NO_WINDOW", "mass_assignment_of"]

#: The record of a Field whose values carry no assignment window.
NO_WINDOW = MassAssignment(scheme=None)

_WINDOWLESS_OPERATIONS = frozenset({"gaussian_field", "white_noise"})


def _legacy(provenance: Mapping[str, Any]) -> dict[str, Any] | None:
    if provenance.get("mas") is not None:
        return {"scheme": provenance["mas"], "interlaced": provenance.get("interlaced", False)}
    op = provenance.get("deposit_operation") or provenance.get("operation")
    config = provenance.get("config") or {}
    if op == "deposit" and isinstance(config, Mapping) and config.get("scheme"):
        return {"scheme": config["scheme"], "interlaced": config.get("interlace", False)}
    if op in _WINDOWLESS_OPERATIONS:
        return {"scheme": None}
    return None


def mass_assignment_of(
    meta: FieldMeta | Mapping[str, Any], where: str = "Field"
) -> MassAssignment | None:
    """The recorded assignment window of a Field, or None when nothing records it.

    Parameters
    ----------
    meta : FieldMeta or mapping
        A Field's metadata, or a mapping with its ``mass_assignment`` and ``provenance``
        (e.g. a training target recorded in a painter checkpoint).
    where : str
        Names the Field in the error message.

    Returns
    -------
    MassAssignment or None

    Raises
    ------
    MetadataError
        An older provenance spelling holds something that is not a scheme.
    """
    if isinstance(meta, FieldMeta):
        record: Any = meta.mass_assignment
        provenance: Mapping[str, Any] = meta.provenance
    else:
        record = meta.get("mass_assignment")
        provenance = meta.get("provenance") or {}
    if record is None:
        record = _legacy(provenance)
        if record is None:
            return None
    if isinstance(record, MassAssignment):
        return record
    try:
        return MassAssignment.model_validate(record)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise MetadataError(
            f"{where}: mass-assignment record {dict(record)} is invalid ({err['msg']}); "
            "rewrite the Field's record or give the scheme explicitly"
        ) from None
