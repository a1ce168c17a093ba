"""What a deposited Field records, and the job token that tells a resume from a new job.

The Field's metadata holds the box, the stored quantity and its units, the redshift and
cosmology (given, or the snapshot's), the provenance (inputs, the configuration, the
snapshot header) and the ``mass_assignment`` record (scheme, interlacing) that the spectra
read to compensate the window.

The job token (:func:`bigpaint.field.job_token`) hashes the inputs (by path identity), the
particle count and the configuration, and the redshift and cosmology when they are given
here: re-running the same command on an unfinished output resumes it, while a rerun that
would record other values is a different job, refused unless ``overwrite`` is given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigpaint.errors import MetadataError
from bigpaint.field import job_token
from bigpaint.io.particles import ParticleSource
from bigpaint.mesh.deposit.plan import DepositPlan
from bigpaint.outputs import job_path

__all__ = ["FieldRecord", "cosmology_record", "field_record", "particle_paths"]


@dataclass(frozen=True)
class FieldRecord:
    """The metadata of a deposited Field and its job token."""

    meta: dict[str, Any]
    job: str


def cosmology_record(value: Any) -> dict[str, float] | None:
    """The cosmology record of a Field: all five parameters required and checked (one-line
    :class:`MetadataError`); None stays None."""
    from pydantic import ValidationError

    from bigpaint.field import Cosmology

    if value is None:
        return None
    if isinstance(value, Cosmology):
        return value.model_dump()
    raw = dict(value)
    missing = [k for k in Cosmology.model_fields if k not in raw]
    if missing:
        raise MetadataError(
            f"cosmology lacks {', '.join(missing)}; give all of {', '.join(Cosmology.model_fields)}"
        )
    try:
        return Cosmology.model_validate(raw).model_dump()
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise MetadataError(f"cosmology {where}: {err['msg']} (got {err.get('input')!r})") from None


def particle_paths(particles: Any) -> dict[str, str]:
    """The files a particle input reads, labelled for :func:`bigpaint.outputs.check_apart`."""
    if isinstance(particles, (str, os.PathLike)):
        return {"particles": str(particles)}
    files = getattr(particles, "files", None) or ()
    one = getattr(particles, "path", None) or getattr(particles, "url", None)
    paths = [str(f) for f in files] or ([str(one)] if one else [])
    return {
        "particles" if len(paths) == 1 else f"particle file {i}": p for i, p in enumerate(paths)
    }


def field_record(
    src: ParticleSource,
    plan: DepositPlan,
    inputs: dict[str, str],
    *,
    quantity: str,
    interlace: bool,
    wrap: bool,
    dtype: str,
    redshift: float | None,
    cosmology: Any,
) -> FieldRecord:
    """The Field metadata and job token of depositing ``src`` with ``plan``.

    ``inputs`` are the input's files (:func:`particle_paths`); a source without files is
    named by its description in the token.

    Raises
    ------
    MetadataError
        A cosmology lacking one of its five parameters, or with an invalid one.
    """
    params = {
        "scheme": plan.scheme,
        "nmesh": list(plan.shape),
        "chunks": [c[0] for c in plan.chunks],
        "quantity": quantity,
        "interlace": bool(interlace),
        "wrap": bool(wrap),
        "box_size": list(plan.box_size),
        "dtype": str(np.dtype(dtype)),
    }
    provenance: dict[str, Any] = {
        "operation": "deposit",
        "inputs": [src.describe()],
        "config": params,
        "n_particles": src.n_particles,
    }
    snapshot = getattr(src, "provenance", None)  # snapshot readers record their header
    if snapshot is not None:
        provenance["snapshot"] = snapshot()
    meta = {
        "box_size": src.box_size,
        "kind": quantity,
        "units": _units(src, quantity),
        "redshift": redshift if redshift is not None else src.redshift,
        "cosmology": cosmology_record(cosmology),
        "provenance": provenance,
        "mass_assignment": {"scheme": plan.scheme.upper(), "interlaced": bool(interlace)},
    }
    # physics given here joins the token, so a rerun recording other values is not a resume
    given = {"redshift": redshift, "cosmology": meta["cosmology"]}
    job = job_token(
        op="deposit",
        input=[job_path(p) for p in inputs.values()] or src.describe(),
        n=src.n_particles,
        **params,
        **{k: v for k, v in given.items() if v is not None},
    )
    return FieldRecord(meta, job)


def _units(src: ParticleSource, quantity: str) -> str:
    """Units of the stored quantity: particles when the source has neither masses with units
    nor a particle mass."""
    if quantity == "delta":
        return "1"
    if src.mass_units == "1" and src.particle_mass is None:
        return "particles" if quantity == "mass" else "particles / (Mpc/h)^3"
    return src.mass_units if quantity == "mass" else f"({src.mass_units}) / (Mpc/h)^3"
