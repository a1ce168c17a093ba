"""Gadget-format HDF5 snapshots (Gadget-2/3/4, AREPO, Quijote), single- or multi-file.

Reads ``PartType{ptype}/Coordinates`` in batches (never the whole snapshot), the header's
``BoxSize``, ``Redshift``, ``MassTable`` and particle counts, and per-particle ``Masses`` when
the type has them. Lengths are converted to Mpc/h: the unit comes from ``UnitLength_in_cm``
in the ``Header``, ``Parameters`` or ``Units`` group when the file has it, otherwise the
Gadget convention kpc/h is assumed (Quijote, Gadget-2) unless ``length_unit`` says otherwise.
Masses are in the snapshot's mass unit (10^10 Msun/h by Gadget convention).

A multi-file snapshot is given as any one of its files (``snap_004.3.hdf5``), as its stem
(``snap_004``) or as its directory (``snapdir_004``); all ``NumFilesPerSnapshot`` files must
be present and agree on the box size, and their counts must add up to ``NumPart_Total``.

Why hand-written: ``h5py`` does the reading; the Gadget conventions (file sets, 64-bit counts
split in ``NumPart_Total_HighWord``, MassTable vs Masses, kpc/h units) are a few lines that
Pylians' ``readgadget`` also hand-writes, and we need them batched and checked.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bigpaint.errors import FieldNotFoundError, MetadataError, NegativeMassError, ShapeError
from bigpaint.io.box_size import resolve_box_size
from bigpaint.io.particles import DEFAULT_BATCH_SIZE, Batch, check_masses, float_positions
from bigpaint.io.snapinfo import FileSetSource, header_cosmology

__all__ = ["GadgetSnapshot", "gadget_files", "length_factor", "read_header"]

#: Centimetres per Mpc (Gadget's default UnitLength_in_cm is 3.085678e21, i.e. kpc/h).
CM_PER_MPC = 3.085678e24
#: Grams per solar mass used by Gadget (UnitMass_in_g 1.989e43 is 10^10 Msun/h).
G_PER_MSUN = 1.989e33
_UNITS = {"kpc/h": 1e-3, "mpc/h": 1.0}
_MULTI_RE = re.compile(r"^(?P<stem>.+)\.(?P<num>\d+)\.(?P<ext>hdf5|h5)$")


def gadget_files(path: str | os.PathLike[str]) -> list[Path]:
    """All files of the snapshot ``path`` names, in file order.

    Parameters
    ----------
    path : str
        A single-file snapshot, one file of a multi-file set (``snap_004.0.hdf5``), the set's
        stem (``snap_004``), or a directory holding exactly one set.

    Raises
    ------
    FieldNotFoundError
        Nothing at ``path``.
    MetadataError
        Files of the set are missing, or a directory holds several sets.
    """
    p = Path(path)
    if p.is_dir():
        sets: dict[str, list[Path]] = {}
        for f in sorted(p.iterdir()):
            m = _MULTI_RE.match(f.name)
            if m:
                sets.setdefault(m["stem"] + "." + m["ext"], []).append(f)
            elif f.suffix in (".hdf5", ".h5"):
                sets.setdefault(f.name, []).append(f)
        if len(sets) != 1:
            raise MetadataError(
                f"directory {p} holds {len(sets)} snapshots ({sorted(sets)[:4]}); name one file"
            )
        files = next(iter(sets.values()))
    elif p.exists():
        m = _MULTI_RE.match(p.name)
        if m:
            pattern = re.compile(re.escape(m["stem"]) + r"\.(\d+)\." + m["ext"] + "$")
            files = [f for f in p.parent.iterdir() if pattern.match(f.name)]
        else:
            files = [p]
    elif p.with_name(p.name + ".hdf5").exists():
        files = [p.with_name(p.name + ".hdf5")]
    elif p.with_name(p.name + ".0.hdf5").exists():
        return gadget_files(p.with_name(p.name + ".0.hdf5"))
    else:
        raise FieldNotFoundError(f"no snapshot at {p}; check the path")
    files = sorted(files, key=_file_number)
    nums = [_file_number(f) for f in files]
    if len(files) > 1 and nums != list(range(len(files))):
        missing = sorted(set(range(max(nums) + 1)) - set(nums))
        raise MetadataError(
            f"snapshot {p} is missing file numbers {missing[:8]}; copy the whole set"
        )
    return files


def _file_number(f: Path) -> int:
    m = _MULTI_RE.match(f.name)
    return int(m["num"]) if m else 0


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``Header`` attributes of one snapshot file as plain Python values."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "Header" not in f:
                raise MetadataError(f"{path} is not a Gadget snapshot: it has no 'Header' group")
            out = {k: _plain(v) for k, v in f["Header"].attrs.items()}
            for grp in ("Header", "Parameters", "Units"):
                if grp in f and "UnitLength_in_cm" in f[grp].attrs:
                    out["UnitLength_in_cm"] = float(f[grp].attrs["UnitLength_in_cm"])
                if grp in f and "UnitMass_in_g" in f[grp].attrs:
                    out["UnitMass_in_g"] = float(f[grp].attrs["UnitMass_in_g"])
            return out
    except OSError as exc:
        raise MetadataError(f"{path} is not a readable HDF5 file ({exc})") from None


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    return v


def length_factor(header: dict[str, Any], length_unit: str | float | None, path: Path) -> float:
    """Factor from snapshot length units to Mpc/h (``UnitLength_in_cm`` if the header has
    it, else ``length_unit``, else kpc/h; a ``length_unit`` that disagrees is refused)."""
    from_file = None
    if "UnitLength_in_cm" in header:
        from_file = float(header["UnitLength_in_cm"]) / CM_PER_MPC
    if length_unit is None:
        return from_file if from_file is not None else _UNITS["kpc/h"]
    if isinstance(length_unit, str):
        key = length_unit.strip().lower()
        if key not in _UNITS:
            raise MetadataError(f"length unit {length_unit!r} unknown; use 'kpc/h' or 'Mpc/h'")
        factor = _UNITS[key]
    else:
        factor = float(length_unit)
        if not (math.isfinite(factor) and factor > 0):
            raise MetadataError(f"length unit factor must be positive, got {length_unit!r}")
    if from_file is not None and not math.isclose(factor, from_file, rel_tol=1e-4):
        raise MetadataError(
            f"length unit {length_unit!r} disagrees with {path} (UnitLength_in_cm = "
            f"{header['UnitLength_in_cm']:g}, i.e. {from_file:g} Mpc/h); drop the length unit option"
        )
    return factor


def _total(header: dict[str, Any], ptype: int) -> int:
    total = int(header["NumPart_Total"][ptype])
    high = header.get("NumPart_Total_HighWord")
    if high is not None:
        total += int(high[ptype]) << 32
    return total


@dataclass(frozen=True, eq=False)
class GadgetSnapshot(FileSetSource):
    """A Gadget HDF5 snapshot (one or several files) as a batched particle source.

    Parameters
    ----------
    path : str
        Snapshot file, one file of a set, the set's stem, or its directory.
    ptype : int
        Particle type (1: dark matter).
    length_unit : {"kpc/h", "Mpc/h"} or float, optional
        Length unit of the snapshot (or factor to Mpc/h); default from ``UnitLength_in_cm``,
        else kpc/h. Refused when it disagrees with the file.
    batch_size : int
        Particles per batch (batches never span two files).
    box_size : 3 floats, optional
        Box in Mpc/h; normally left to the header (``open_particles`` checks a user value).

    Attributes
    ----------
    header : dict
        Header of the first file.
    files : tuple of str
    counts : tuple of int
        Particles of type ``ptype`` in each file.
    """

    path: str
    ptype: int = 1
    length_unit: str | float | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    box_size: tuple[float, float, float] | None = None
    files: tuple[str, ...] = field(default=(), repr=False)
    counts: tuple[int, ...] = field(default=(), repr=False)
    header: dict[str, Any] = field(default_factory=dict, repr=False)
    factor: float = field(default=1.0, repr=False)
    _masses: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        import h5py

        files = gadget_files(self.path)
        header = read_header(files[0])
        for key in ("BoxSize", "NumPart_ThisFile", "NumPart_Total", "MassTable"):
            if key not in header:
                raise MetadataError(
                    f"{files[0]} is not a Gadget snapshot: its Header has no {key!r}"
                )
        ntypes = len(header["NumPart_Total"])
        if not 0 <= self.ptype < ntypes:
            raise MetadataError(
                f"particle type {self.ptype} not in {files[0]} (it has types 0..{ntypes - 1})"
            )
        nfiles = int(header.get("NumFilesPerSnapshot", 1))
        if nfiles != len(files):
            raise MetadataError(
                f"snapshot {self.path} has NumFilesPerSnapshot = {nfiles} but {len(files)} files "
                f"were found ({files[0].name} ...); copy the whole set"
            )
        factor = length_factor(header, self.length_unit, files[0])
        box = float(header["BoxSize"])
        counts = []
        group = f"PartType{self.ptype}"
        has_masses = None
        for f in files:
            h = header if f == files[0] else read_header(f)
            if not math.isclose(float(h["BoxSize"]), box, rel_tol=1e-9):
                raise MetadataError(
                    f"{f.name} has BoxSize {h['BoxSize']} but {files[0].name} has {box}; "
                    "these files are not one snapshot"
                )
            n = int(h["NumPart_ThisFile"][self.ptype])
            counts.append(n)
            if n == 0:
                continue
            with h5py.File(f, "r") as hf:
                if group not in hf or "Coordinates" not in hf[group]:
                    raise MetadataError(
                        f"{f} has {n} particles of type {self.ptype} but no {group}/Coordinates"
                    )
                shape = hf[group]["Coordinates"].shape
                if tuple(shape) != (n, 3):
                    raise ShapeError(
                        f"{f}: {group}/Coordinates has shape {shape}, header says ({n}, 3)"
                    )
                here = "Masses" in hf[group]
                if has_masses is not None and here != has_masses:
                    raise MetadataError(f"{f}: {group}/Masses present in some files only")
                has_masses = here
                if here and hf[group]["Masses"].shape != (n,):
                    raise ShapeError(
                        f"{f}: {group}/Masses has shape {hf[group]['Masses'].shape}, expected ({n},)"
                    )
        total = _total(header, self.ptype)
        if sum(counts) != total:
            raise MetadataError(
                f"snapshot {self.path}: files hold {sum(counts)} particles of type {self.ptype} but "
                f"NumPart_Total says {total}; the set is incomplete or mixed"
            )
        table_mass = float(header["MassTable"][self.ptype])
        if not has_masses and not table_mass >= 0:
            raise NegativeMassError(
                f"{files[0]}: MassTable gives particle type {self.ptype} the mass {table_mass:g}; "
                "masses must be >= 0: fix the header, or deposit a type with valid masses"
            )
        stored_box = (box * factor,) * 3
        if self.box_size is not None:
            resolve_box_size(stored_box, self.box_size, where=f"the snapshot header of {self.path}")
        object.__setattr__(self, "files", tuple(str(f) for f in files))
        object.__setattr__(self, "counts", tuple(counts))
        object.__setattr__(self, "header", header)
        object.__setattr__(self, "factor", factor)
        object.__setattr__(self, "_masses", bool(has_masses))
        object.__setattr__(self, "box_size", stored_box)

    @property
    def has_masses(self) -> bool:
        return self._masses

    @property
    def particle_mass(self) -> float | None:
        if self._masses:
            return None
        m = float(self.header["MassTable"][self.ptype])
        return m if m > 0 else None

    @property
    def mass_units(self) -> str:
        if not self._masses and self.particle_mass is None:
            return "1"
        unit_g = float(self.header.get("UnitMass_in_g", 1.989e43))
        return f"{unit_g / G_PER_MSUN:g} Msun/h"

    @property
    def mass_to_msun_h(self) -> float:
        """Factor from the snapshot's mass unit to Msun/h."""
        return float(self.header.get("UnitMass_in_g", 1.989e43)) / G_PER_MSUN

    @property
    def redshift(self) -> float | None:
        z = self.header.get("Redshift")
        return None if z is None else max(0.0, float(z))

    def load(self, batch: Batch, data: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        import h5py

        group = f"PartType{self.ptype}"
        with h5py.File(self.files[batch.part], "r") as f:
            sl = slice(batch.offset, batch.offset + batch.count)
            pos = float_positions(f[group]["Coordinates"][sl])
            mass = np.asarray(f[group]["Masses"][sl]) if self._masses else None
        check_masses(mass, f"{self.files[batch.part]}: {group}/Masses", batch.start)
        if self.factor != 1.0:
            # in float64, exactly as the box size is converted, so x <= BoxSize stays <= L
            pos = pos.astype(np.float64) * self.factor
        return pos, mass

    def extra(self, batch: Batch, name: str) -> np.ndarray | None:
        """``"velocities"`` (peculiar km/s: Gadget stores ``sqrt(a) dx/dt``) or ``"ids"``
        (int64) of a batch; None when the snapshot does not store them."""
        import h5py

        group = f"PartType{self.ptype}"
        dataset = {"velocities": "Velocities", "ids": "ParticleIDs"}.get(name)
        with h5py.File(self.files[batch.part], "r") as f:
            if dataset is None or dataset not in f[group]:
                return None
            values = np.asarray(f[group][dataset][batch.offset : batch.offset + batch.count])
        if name == "ids":
            return values.astype(np.int64)
        return values.astype(np.float64) * math.sqrt(float(self.header.get("Time", 1.0)))

    def provenance(self) -> dict[str, Any]:
        """Header values worth keeping with a Field made from this snapshot, and the header's
        cosmology with the parameters it lacks (:func:`bigpaint.io.snapinfo.header_cosmology`)."""
        keep = (
            "BoxSize",
            "Redshift",
            "Time",
            "Omega0",
            "OmegaLambda",
            "HubbleParam",
            "MassTable",
            "NumFilesPerSnapshot",
        )
        h = self.header
        return {
            "snapshot": os.path.abspath(self.files[0]),
            "format": "gadget-hdf5",
            "n_files": len(self.files),
            "length_to_mpc_h": self.factor,
            "header": {k: h[k] for k in keep if k in h},
            **header_cosmology(
                {
                    "Omega_m": h.get("Omega0"),
                    "Omega_Lambda": h.get("OmegaLambda"),
                    "h": h.get("HubbleParam"),
                }
            ),
        }
