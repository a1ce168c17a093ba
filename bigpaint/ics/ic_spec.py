"""What external initial conditions are: the config section, the resolved record, the checks.

:class:`InitialConditions` is the ``initial_conditions`` section of an ``ics`` or ``lpt``
config; :class:`ExternalICs` is what :func:`bigpaint.ics.external.resolve_initial_conditions`
makes of it once the input is opened and checked (picklable, so workers get it). The checks
shared by the cube inputs (:mod:`bigpaint.ics.external`) and the particle input
(:mod:`bigpaint.ics.lattice`) live here, so that neither imports the other's internals.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bigpaint.errors import ConfigError, MetadataError
from bigpaint.ics.power import LinearPower

__all__ = [
    "LATTICES",
    "ExternalICs",
    "InitialConditions",
    "file_identity",
    "growth_normalisation",
    "ic_redshift",
    "same_box",
    "same_grid",
]

Kind = Literal["linear_density", "white_noise", "particles"]
LATTICES = {"centres": 0.5, "corners": 0.0}


class InitialConditions(BaseModel):
    """The ``initial_conditions`` section of an ``ics`` or ``lpt`` config.

    Attributes
    ----------
    kind : {"linear_density", "white_noise", "particles"}
    path : str
        A Field (Zarr), a ``.npy`` cube (``linear_density``, ``white_noise``), or particles
        (Gadget HDF5 or binary snapshot, ``.npy`` (N, 3) positions in Mpc/h, Zarr).
    redshift : float, optional
        Redshift of a linear density or of the particles; default from the file when it
        records one (refused when both are given and disagree).
    growth : "engine" or float, optional
        Growth normalisation ``D(z) / D(0)`` the ICs were scaled with at ``redshift``:
        ``engine`` for bigpaint's own growth factor of the configured cosmology, or the
        number. Required when ``redshift > 0``.
    lattice : {"centres", "corners"}, optional
        Where sample ``i`` sits: ``(i + 1/2) L / N`` or ``i L / N``. Default: centres for a
        Field, measured for particles; required for a ``.npy`` cube.
    order : {1, 2}
        LPT order the particle ICs were made with (Zel'dovich: 1; 2LPT: 2).
    ptype : int
        Gadget particle type (1: dark matter).
    length_unit : {"kpc/h", "Mpc/h"}, optional
        Gadget length unit; default from the snapshot.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    path: str
    redshift: float | None = Field(None, ge=0)
    growth: Literal["engine"] | float | None = None
    lattice: Literal["centres", "corners"] | None = None
    order: Literal[1, 2] = 2
    ptype: int = Field(1, ge=0)
    length_unit: str | None = None


@dataclass(frozen=True)
class ExternalICs:
    """Initial conditions resolved and checked against the config (picklable).

    Attributes
    ----------
    kind : str
    path : str
        Absolute path of the input.
    grid : int
        Lattice points per side.
    box_size : float
        Mpc/h.
    redshift : float
        Of the input (0 for white noise).
    growth : float
        ``D1(redshift) / D1(0)`` the input is scaled with (1 at z = 0 and for white noise).
    d2_ratio : float
        ``D2 / D1^2`` at ``redshift`` (bigpaint's, about ``-3/7``), for particles.
    lattice_offset : float
        Lattice offset in cells (0.5 centres, 0 corners).
    is_field : bool
        A Zarr Field (else a ``.npy`` file, or a particle source for particles).
    identity : str
        Size and modification time of the input, so that a changed input is a new job.
    options : dict
        Reader options (particles: ptype, length unit).
    """

    kind: str
    path: str
    grid: int
    box_size: float
    redshift: float
    growth: float
    d2_ratio: float
    lattice_offset: float
    is_field: bool
    identity: str
    options: tuple[tuple[str, Any], ...] = ()

    def check(self, *, grid: int, box_size: float) -> dict[str, Any]:
        """Refuse a grid or box other than the config's; the record kept in provenance."""
        same_grid(self.grid, grid, self.path)
        same_box(self.box_size, box_size, self.path)
        return {
            "kind": self.kind,
            "path": self.path,
            "redshift": self.redshift,
            "growth": self.growth,
            "lattice_offset": self.lattice_offset,
            "identity": self.identity,
        }


def same_grid(have: int, want: int, path: str) -> None:
    """Refuse ICs whose grid (points per side) is not the config's."""
    if int(have) != int(want):
        raise MetadataError(
            f"initial conditions {path} are on a {have}^3 grid but the config's grid is "
            f"{want}; set grid: {have}, or give ICs of {want}^3"
        )


def same_box(have: float, want: float, path: str) -> None:
    """Refuse ICs whose box (Mpc/h) is not the config's."""
    if not math.isclose(float(have), float(want), rel_tol=1e-6):
        raise MetadataError(
            f"initial conditions {path} have box {have:g} Mpc/h but the config's box_size is "
            f"{want:g}; set box_size: {have:g}, or give ICs of that box"
        )


def file_identity(path: str) -> str:
    """Size and modification time of an input, so that a changed input is a new job."""
    target = os.path.join(path, "zarr.json") if os.path.isdir(path) else path
    st = os.stat(target)
    return f"{st.st_size}-{st.st_mtime_ns}"


def growth_normalisation(
    spec: InitialConditions, redshift: float, power: LinearPower, path: str
) -> tuple[float, float]:
    """``(D1(z)/D1(0), D2/D1^2 at z)`` of the ICs; refuses a missing normalisation."""
    a = 1.0 / (1.0 + redshift)
    bg = power.background
    ratio = float(bg.D2(a)) / float(bg.D1(a)) ** 2
    if spec.growth not in (None, "engine"):
        g = float(spec.growth)
        if not (math.isfinite(g) and 0 < g <= 1.5):
            raise ConfigError(f"initial_conditions.growth must be in (0, 1.5] (D(z)/D(0)), got {g}")
    if redshift == 0:
        return 1.0, ratio
    if spec.growth is None:
        raise ConfigError(
            f"initial conditions {path} are at z = {redshift:g}: state the growth "
            "normalisation they were scaled with (initial_conditions.growth: engine for "
            "bigpaint's D1(z) of this cosmology, or the number D(z)/D(0) your code used)"
        )
    if spec.growth == "engine":
        return float(bg.D1(a)), ratio
    return float(spec.growth), ratio


def ic_redshift(spec: InitialConditions, recorded: float | None, path: str) -> float:
    """The ICs' redshift: stated, or recorded by the file; refuses a disagreement or none."""
    if spec.redshift is not None and recorded is not None:
        if not math.isclose(spec.redshift, recorded, rel_tol=1e-6, abs_tol=1e-6):
            raise MetadataError(
                f"initial conditions {path} are at z = {recorded:g} but the config says "
                f"initial_conditions.redshift: {spec.redshift:g}; drop it or fix it"
            )
    z = spec.redshift if spec.redshift is not None else recorded
    if z is None:
        raise ConfigError(
            f"initial conditions {path} record no redshift: state initial_conditions.redshift "
            "(0 for a field at z = 0)"
        )
    return float(z)
