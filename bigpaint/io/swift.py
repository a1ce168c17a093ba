"""SWIFT HDF5 snapshots: Gadget-like layout, SWIFT's own units, converted to Mpc/h.

A SWIFT snapshot keeps the Gadget names for the particles (``PartType1/Coordinates``,
``Velocities``, ``Masses``, ``ParticleIDs``) and the counts (``Header``:
``NumPart_ThisFile``, ``NumPart_Total``, ``NumPart_Total_HighWord``, ``NumFilesPerSnapshot``),
but not Gadget's units: every array is in the system of the ``Units`` group (attributes
``Unit length in cgs (U_L)``, ``Unit mass in cgs (U_M)``, ``Unit time in cgs (U_t)``), with
no factors of h, and ``BoxSize`` is three lengths in the same unit. A typical run writes
positions in comoving Mpc and masses in 10^10 Msun.

bigpaint works in Mpc/h and Msun/h, so lengths are multiplied by ``U_L / (1 Mpc in cm) * h``
and masses by ``U_M / (1 Msun in g) * h``, with ``h`` from the ``Cosmology`` group; a dataset
whose ``h-scale exponent`` attribute is not 0 (already in h units) has that power of h taken
back out first. Velocities are peculiar (SWIFT writes ``a dx/dt``) in ``U_L / U_t``, converted
to km/s. The redshift comes from the header; the cosmology group's ``Omega_m``, ``Omega_b``,
``Omega_lambda`` and ``h`` are recorded with the parameters SWIFT does not store
(:func:`bigpaint.io.snapinfo.header_cosmology`).

A file is SWIFT's when it has a ``Units`` group with ``Unit length in cgs (U_L)``
(:func:`is_swift`). Multi-file snapshots (``snap_0012.0.hdf5``, ...) are found as for Gadget
HDF5 (:func:`bigpaint.io.gadget.gadget_files`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bigpaint.axes import float3
from bigpaint.errors import MetadataError, ShapeError
from bigpaint.io.box_size import resolve_box_size
from bigpaint.io.gadget import gadget_files
from bigpaint.io.particles import DEFAULT_BATCH_SIZE, Batch, check_masses, float_positions
from bigpaint.io.snapinfo import FileSetSource, header_cosmology

__all__ = ["SwiftSnapshot", "is_swift"]

#: Grams per solar mass and centimetres per parsec, SWIFT's values (when the file's
#: ``PhysicalConstants/CGS`` group does not give them).
G_PER_MSUN_SWIFT = 1.98841e33
CM_PER_PC_SWIFT = 3.08567758149e18
_UL = "Unit length in cgs (U_L)"
_UM = "Unit mass in cgs (U_M)"
_UT = "Unit time in cgs (U_t)"


def is_swift(path: str | os.PathLike[str]) -> bool:
    """Whether the HDF5 file ``path`` is a SWIFT snapshot (its ``Units`` group names U_L)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "Units" in f and _UL in f["Units"].attrs
    except OSError:
        return False


def _attrs(f: Any, group: str) -> dict[str, Any]:
    if group not in f:
        return {}
    out = {}
    for k, v in f[group].attrs.items():
        v = np.asarray(v)
        out[k] = v.item() if v.size == 1 else v.tolist()
    return out


def _h_exponent(dataset: Any) -> float:
    return float(np.asarray(dataset.attrs.get("h-scale exponent", 0.0)).ravel()[0])


@dataclass(frozen=True, eq=False)
class SwiftSnapshot(FileSetSource):
    """A SWIFT HDF5 snapshot as a batched particle source (positions in Mpc/h).

    Parameters
    ----------
    path : str
        Snapshot file, one file of a set, the set's stem, or its directory.
    ptype : int
        Particle type (1: dark matter).
    batch_size : int
        Particles per batch.
    box_size : 3 floats, optional
        Box in Mpc/h; checked against the header.

    Attributes
    ----------
    header, cosmology, units : dict
        The ``Header``, ``Cosmology`` and ``Units`` attributes of the first file.
    length_factor, mass_factor : float
        From the snapshot's lengths to Mpc/h and masses to Msun/h.
    """

    path: str
    ptype: int = 1
    batch_size: int = DEFAULT_BATCH_SIZE
    box_size: tuple[float, float, float] | None = None
    files: tuple[str, ...] = field(default=(), repr=False)
    counts: tuple[int, ...] = field(default=(), repr=False)
    header: dict[str, Any] = field(default_factory=dict, repr=False)
    cosmology: dict[str, Any] = field(default_factory=dict, repr=False)
    units: dict[str, Any] = field(default_factory=dict, repr=False)
    length_factor: float = field(default=1.0, repr=False)
    mass_factor: float = field(default=1.0, repr=False)
    velocity_factor: float = field(default=1.0, repr=False)
    _masses: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        import h5py

        files = gadget_files(self.path)
        with h5py.File(files[0], "r") as f:
            header, cosmo, units = (_attrs(f, g) for g in ("Header", "Cosmology", "Units"))
            consts = _attrs(f, "PhysicalConstants/CGS")
        msun = float(consts.get("solar_mass", G_PER_MSUN_SWIFT))
        cm_per_mpc = 1e6 * float(consts.get("parsec", CM_PER_PC_SWIFT))
        where = files[0]
        lacking = [k for k in (_UL, _UM, _UT) if k not in units]
        if lacking:
            raise MetadataError(
                f"{where} is not a SWIFT snapshot: its Units group lacks {', '.join(lacking)}"
            )
        for key in ("BoxSize", "NumPart_ThisFile", "NumPart_Total"):
            if key not in header:
                raise MetadataError(f"{where} is not a SWIFT snapshot: its Header has no {key!r}")
        h = cosmo.get("h")
        if h is None or not (math.isfinite(float(h)) and float(h) > 0):
            raise MetadataError(
                f"{where}: the Cosmology group gives no positive 'h', so lengths in "
                f"{units[_UL]:g} cm cannot be converted to Mpc/h; it is not a cosmological run"
            )
        h = float(h)
        t = self.ptype
        totals = np.atleast_1d(header["NumPart_Total"]).astype(np.int64)
        high = np.atleast_1d(header.get("NumPart_Total_HighWord", np.zeros_like(totals)))
        totals = totals + (high.astype(np.int64) << 32)
        if not 0 <= t < len(totals) or totals[t] == 0:
            held = [str(i) for i, n in enumerate(totals) if n > 0]
            raise MetadataError(
                f"{where} holds no particles of type {t} (PartType{t}); it holds types "
                f"{', '.join(held) or 'none'}: choose --ptype from those"
            )
        nfiles = int(header.get("NumFilesPerSnapshot", 1))
        if nfiles != len(files):
            raise MetadataError(
                f"snapshot {self.path} has NumFilesPerSnapshot = {nfiles} but {len(files)} files "
                "were found; copy the whole set"
            )
        group = f"PartType{t}"
        counts, has_masses, hexp = [], True, (0.0, 0.0)
        for fpath in files:
            with h5py.File(fpath, "r") as f:
                n = int(np.atleast_1d(f["Header"].attrs["NumPart_ThisFile"])[t])
                counts.append(n)
                if n == 0:
                    continue
                if group not in f or "Coordinates" not in f[group]:
                    raise MetadataError(
                        f"{fpath} has {n} particles of type {t} but no {group}/Coordinates"
                    )
                coords = f[group]["Coordinates"]
                if coords.shape != (n, 3):
                    raise ShapeError(
                        f"{fpath}: {group}/Coordinates has shape {coords.shape}, header says ({n}, 3)"
                    )
                has_masses = has_masses and "Masses" in f[group]
                mexp = _h_exponent(f[group]["Masses"]) if "Masses" in f[group] else 0.0
                hexp = (_h_exponent(coords), mexp)
        if sum(counts) != totals[t]:
            raise MetadataError(
                f"snapshot {self.path}: files hold {sum(counts)} particles of type {t} but "
                f"NumPart_Total says {totals[t]}; the set is incomplete or mixed"
            )
        # value * U * h^exponent is in h-free cgs; times h per Mpc (per Msun) gives Mpc/h (Msun/h)
        lf = float(units[_UL]) * h ** hexp[0] / cm_per_mpc * h
        mf = float(units[_UM]) * h ** hexp[1] / msun * h
        vf = float(units[_UL]) / float(units[_UT]) / 1e5  # cm/s to km/s
        box = np.broadcast_to(np.asarray(header["BoxSize"], np.float64), (3,)) * lf
        stored = float3(box, "the SWIFT header's BoxSize")
        if self.box_size is not None:
            resolve_box_size(stored, self.box_size, where=f"the SWIFT header of {self.path}")
        for name, value in (
            ("files", tuple(str(f) for f in files)), ("counts", tuple(counts)),
            ("header", header), ("cosmology", cosmo), ("units", units),
            ("length_factor", lf), ("mass_factor", mf), ("velocity_factor", vf),
            ("_masses", has_masses), ("box_size", stored),
        ):  # fmt: skip
            object.__setattr__(self, name, value)

    @property
    def has_masses(self) -> bool:
        return self._masses

    @property
    def mass_units(self) -> str:
        return "Msun/h" if self._masses else "1"

    @property
    def mass_to_msun_h(self) -> float:
        """Masses are converted to Msun/h as they are read."""
        return 1.0

    @property
    def redshift(self) -> float | None:
        z = self.header.get("Redshift", self.cosmology.get("Redshift"))
        return None if z is None else max(0.0, float(z))

    def _read(self, batch: Batch, name: str) -> np.ndarray | None:
        import h5py

        group = f"PartType{self.ptype}"
        with h5py.File(self.files[batch.part], "r") as f:
            if name not in f[group]:
                return None
            return np.asarray(f[group][name][batch.offset : batch.offset + batch.count])

    def _read_checked(self, batch: Batch, name: str) -> np.ndarray:
        """:meth:`_read` of a dataset found in every file when the snapshot was opened."""
        values = self._read(batch, name)
        if values is None:
            raise MetadataError(
                f"{self.files[batch.part]}: PartType{self.ptype}/{name} is gone since the "
                "snapshot was opened; the file changed while it was read: re-run on a stable copy"
            )
        return values

    def load(self, batch: Batch, data: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        pos = float_positions(self._read_checked(batch, "Coordinates"))
        # in float64, exactly as the box size is converted, so x <= BoxSize stays <= L
        pos = pos.astype(np.float64) * self.length_factor
        mass = None
        if self._masses:
            mass = self._read_checked(batch, "Masses").astype(np.float64) * self.mass_factor
            check_masses(
                mass, f"{self.files[batch.part]}: PartType{self.ptype}/Masses", batch.start
            )
        return pos, mass

    def extra(self, batch: Batch, name: str) -> np.ndarray | None:
        """``"velocities"`` (peculiar km/s) or ``"ids"`` (int64) of a batch, if stored."""
        if name == "ids":
            ids = self._read(batch, "ParticleIDs")
            return None if ids is None else ids.astype(np.int64)
        if name == "velocities":
            vel = self._read(batch, "Velocities")
            return None if vel is None else vel.astype(np.float64) * self.velocity_factor
        return None

    def provenance(self) -> dict[str, Any]:
        """Header values worth keeping with a Field made from this snapshot, the unit
        conversion applied, and the header's cosmology with the parameters it lacks."""
        c = self.cosmology
        return {
            "snapshot": os.path.abspath(self.files[0]),
            "format": "swift",
            "n_files": len(self.files),
            "length_to_mpc_h": self.length_factor,
            "mass_to_msun_h": self.mass_factor,
            "units": {k: self.units[k] for k in (_UL, _UM, _UT) if k in self.units},
            "header": {k: self.header[k] for k in ("BoxSize", "Redshift", "Scale-factor",
                                                    "NumFilesPerSnapshot") if k in self.header},
            **header_cosmology(
                {"Omega_m": c.get("Omega_m"), "Omega_b": c.get("Omega_b"), "h": c.get("h"),
                 "Omega_Lambda": c.get("Omega_lambda")}
            ),
        }  # fmt: skip
