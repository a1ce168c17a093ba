"""The periodic box size of a particle input, from its metadata and from the user.

A deposit is only as right as its box: positions are wrapped and binned by it, and a
power spectrum's wavenumbers scale with it. So the box size is never guessed. The two
places it can come from (what the input carries: a snapshot header, a store attribute;
and what the user passed) are reconciled here: one alone is taken, both must agree to a
relative tolerance, and neither is an error naming the option to pass, unless the caller
says the box may stay unknown (a particle source whose box is settled later, when it is
opened for a deposit).

Every box is three lengths in Mpc/h; a single number means a cubic box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, overload

import numpy as np

from bigpaint.axes import float3
from bigpaint.errors import MetadataError

__all__ = ["box3", "resolve_box_size"]


def box3(box: float | Sequence[float] | None) -> tuple[float, float, float] | None:
    """``box`` as three positive finite lengths in Mpc/h (one number: a cube), or None.

    Raises
    ------
    MetadataError
        Not one or three positive finite lengths.
    """
    if box is None:
        return None
    vals: tuple[float, ...]
    if isinstance(box, (int, float, np.integer, np.floating)):
        vals = (float(box),) * 3
    else:
        vals = tuple(float(b) for b in box)
    if len(vals) != 3 or not all(math.isfinite(b) and b > 0 for b in vals):
        raise MetadataError(
            f"box size must be a positive length in Mpc/h (or 3 of them), got {box!r}"
        )
    return float3(vals)


@overload
def resolve_box_size(
    stored: tuple[float, float, float] | None,
    given: float | Sequence[float] | None,
    *,
    where: str = ...,
    required: Literal[True] = ...,
    rtol: float = ...,
) -> tuple[float, float, float]: ...


@overload
def resolve_box_size(
    stored: tuple[float, float, float] | None,
    given: float | Sequence[float] | None,
    *,
    where: str = ...,
    required: bool,
    rtol: float = ...,
) -> tuple[float, float, float] | None: ...


def resolve_box_size(
    stored: tuple[float, float, float] | None,
    given: float | Sequence[float] | None,
    *,
    where: str = "the input",
    required: bool = True,
    rtol: float = 1e-6,
) -> tuple[float, float, float] | None:
    """The box size in Mpc/h from the file and from the user, refusing a conflict.

    Parameters
    ----------
    stored : 3 floats or None
        Box size the input carries (snapshot header, store attribute), in Mpc/h.
    given : float or 3 floats or None
        Box size the user passed, in Mpc/h.
    where : str
        Names the stored value in messages.
    required : bool
        Raise when neither is known.

    Raises
    ------
    MetadataError
        Missing (when required) or disagreeing box sizes.
    """
    given3 = box3(given)
    if stored is not None and given3 is not None:
        if not np.allclose(stored, given3, rtol=rtol, atol=0):
            raise MetadataError(
                f"box size {_fmt(given3)} Mpc/h was given but {where} says {_fmt(stored)} Mpc/h; "
                "drop the box size option or fix it (check the length units)"
            )
        return stored
    box = stored if stored is not None else given3
    if box is None and required:
        raise MetadataError(
            f"box size unknown: {where} carries none; pass box_size (--box-size) in Mpc/h"
        )
    return box


def _fmt(box: Sequence[float]) -> str:
    return f"{box[0]:g}" if len(set(box)) == 1 else "(" + ", ".join(f"{b:g}" for b in box) + ")"
