"""What the snapshot readers share: the batches of a file set, and what a header says about
the physics and what it leaves out.

:class:`FileSetSource` is the base of the snapshot readers (Gadget HDF5, Gadget binary,
SWIFT): particles of one type spread over a set of files, read in batches that never span
two files.

Snapshot headers carry part of a cosmology: Gadget headers have ``Omega0``, ``OmegaLambda``
and ``HubbleParam``; SWIFT's ``Cosmology`` group adds ``Omega_b``. None of them carries
``n_s`` or ``sigma_8``, which a Field's cosmology record needs (all five of ``Omega_m``,
``Omega_b``, ``h``, ``n_s``, ``sigma_8``). Rather than fill the gap with defaults (a wrong
cosmology recorded silently), :func:`header_cosmology` keeps what the header has under the
record's names and lists what is missing; the readers put both in the provenance of every
Field made from the snapshot, and ``deposit --cosmology`` supplies the full record.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from bigpaint.io.particles import Batch, ParticleSource, batch_spans

__all__ = ["COSMOLOGY_PARAMETERS", "FileSetSource", "header_cosmology"]

#: The parameters of a Field's cosmology record (:class:`bigpaint.field.Cosmology`).
COSMOLOGY_PARAMETERS = ("Omega_m", "Omega_b", "h", "n_s", "sigma_8")


def header_cosmology(values: Mapping[str, Any]) -> dict[str, Any]:
    """The header's cosmology under the record's names, and the parameters it lacks.

    Parameters
    ----------
    values : mapping
        Header values under the record's names (``Omega_m``, ``Omega_b``, ``h``, ``n_s``,
        ``sigma_8``, and ``Omega_Lambda`` when the header has it); None or non-finite
        values count as absent.

    Returns
    -------
    dict
        ``{"cosmology": {...}, "cosmology_missing": [...]}``: the parameters found (floats)
        and the record's parameters the header does not give.
    """
    found = {}
    for key, value in values.items():
        if value is None:
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            found[key] = v
    missing = [k for k in COSMOLOGY_PARAMETERS if k not in found]
    return {"cosmology": found, "cosmology_missing": missing}


class FileSetSource(ParticleSource):
    """Particles of one type in a set of files (base of the snapshot readers).

    Subclasses set ``files`` (paths in file order), ``counts`` (particles of the type in each
    file) and ``batch_size``.
    """

    files: tuple[str, ...]
    counts: tuple[int, ...]
    batch_size: int

    @property
    def n_particles(self) -> int:
        return int(sum(self.counts))

    def batches(self) -> list[Batch]:
        """Batches of at most ``batch_size`` particles, each inside one file."""
        out: list[Batch] = []
        start = 0
        for part, n in enumerate(self.counts):
            if n == 0:
                continue
            for a, b in batch_spans(n, self.batch_size):
                out.append(Batch(len(out), start + a, b - a, part=part, offset=a))
            start += n
        return out

    def describe(self) -> str:
        return os.path.abspath(self.files[0]) + (
            f" (+{len(self.files) - 1} files)" if len(self.files) > 1 else ""
        )
