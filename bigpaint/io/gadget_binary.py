"""Gadget-2/3 binary snapshots: SnapFormat 1 and 2, single- or multi-file, either byte order.

A binary snapshot file is a sequence of Fortran records, each framed by a 4-byte marker that
holds the record's length before and after it. The first record is the 256-byte header
(``npart[6]``, ``mass[6]``, ``time``, ``redshift``, flags, ``npartTotal[6]``, ``num_files``,
``BoxSize``, ``Omega0``, ``OmegaLambda``, ``HubbleParam``, ``npartTotalHighWord[6]``, ...,
as Gadget-2's ``io.c`` writes it); then come the blocks ``POS``, ``VEL``, ``ID`` and ``MASS``
(the last only for types with particles and a zero ``mass`` entry). SnapFormat 1 tells the
blocks by their order; SnapFormat 2 puts before each block an 8-byte record holding its
4-character label (``"HEAD"``, ``"POS "``, ...) and its length.

The byte order is read from the first marker (256 for the header, or 8 for a SnapFormat-2
label), tried little- then big-endian; a marker that is neither in either order, or a header
whose closing marker or values make no sense, is refused as "wrong-endian or not a Gadget
binary header". Every marker of the blocks read is checked against the file size before
anything is read, so a truncated file is refused in one line naming the file and the block.
Floating-point width (float32 or float64) and id width (32 or 64 bit) follow from the block
lengths. Positions are read a batch at a time; nothing loads the whole snapshot.

Units: the binary header has none. Lengths are Gadget's kpc/h unless ``length_unit`` says
otherwise (``Mpc/h`` or a factor to Mpc/h), masses are in 10^10 Msun/h, and velocities are
Gadget's ``sqrt(a) dx/dt``, multiplied by ``sqrt(a)`` here to give peculiar km/s.

A multi-file snapshot (``snap_004.0``, ``snap_004.1``, ...) is given as any of its files, as
its stem (``snap_004``) or as its directory; all ``num_files`` files must be present, agree
on the box, and add up to ``npartTotal``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bigpaint.errors import FieldNotFoundError, MetadataError, NegativeMassError
from bigpaint.io.box_size import resolve_box_size
from bigpaint.io.gadget import G_PER_MSUN, length_factor
from bigpaint.io.particles import DEFAULT_BATCH_SIZE, Batch, check_masses
from bigpaint.io.snapinfo import FileSetSource, header_cosmology

__all__ = ["GadgetBinarySnapshot", "binary_files", "is_gadget_binary", "read_binary_header"]

#: The 256-byte Gadget-2 header (native field types; the byte order is applied per file).
HEADER_DTYPE = np.dtype(
    [
        ("npart", "u4", 6),
        ("mass", "f8", 6),
        ("time", "f8"),
        ("redshift", "f8"),
        ("flag_sfr", "i4"),
        ("flag_feedback", "i4"),
        ("npartTotal", "u4", 6),
        ("flag_cooling", "i4"),
        ("num_files", "i4"),
        ("BoxSize", "f8"),
        ("Omega0", "f8"),
        ("OmegaLambda", "f8"),
        ("HubbleParam", "f8"),
        ("flag_stellarage", "i4"),
        ("flag_metals", "i4"),
        ("npartTotalHighWord", "u4", 6),
        ("flag_entropy_instead_u", "i4"),
        ("flag_doubleprecision", "i4"),
        ("fill", "V56"),
    ]
)
assert HEADER_DTYPE.itemsize == 256
_NUM_RE = re.compile(r"^(?P<stem>.+)\.(?P<num>\d+)$")
_BLOCKS = ("POS", "VEL", "ID", "MASS")


#: Byte order of a file: little- or big-endian, as numpy writes it in a dtype.
_Endian = Literal["<", ">"]


@dataclass(frozen=True)
class _Layout:
    """Where the blocks of one file are: byte order, format, ``label -> (offset, nbytes)``."""

    endian: _Endian
    fmt: int
    blocks: dict[str, tuple[int, int]]
    npart: tuple[int, ...] = ()
    table: tuple[float, ...] = ()

    def entries(self, label: str) -> int:
        """Values of ``label`` in this file (all types; MASS: those without a table mass)."""
        npart, table = np.asarray(self.npart, np.int64), np.asarray(self.table, np.float64)
        if label == "MASS":
            return int(npart[(npart > 0) & (table == 0)].sum())
        return int(npart.sum())


def is_gadget_binary(path: str | os.PathLike[str]) -> bool:
    """Whether the file starts like a Gadget binary snapshot (a 256 or labelled 8 marker)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return _sniff(head) is not None


def _sniff(head: bytes) -> tuple[_Endian, int] | None:
    if len(head) < 4:
        return None
    endians: tuple[_Endian, ...] = ("<", ">")
    for endian in endians:
        marker = int(np.frombuffer(head[:4], f"{endian}i4")[0])
        if marker == 256:
            return endian, 1
        if marker == 8 and head[4:8] == b"HEAD":
            return endian, 2
    return None


def _marker(fh: Any, pos: int, endian: str) -> int:
    fh.seek(pos)
    return int(np.frombuffer(fh.read(4), f"{endian}i4")[0])


def _truncated(path: Path, label: str, size: int) -> MetadataError:
    return MetadataError(
        f"{path} is truncated: it ends inside block {label!r} ({size} bytes); copy the "
        "snapshot file again"
    )


def _record(fh: Any, pos: int, size: int, endian: str, label: str, path: Path) -> tuple[int, int]:
    """Offset and length of the record at ``pos``, markers checked; raises on truncation."""
    if pos + 4 > size:
        raise _truncated(path, label, size)
    n = _marker(fh, pos, endian)
    if n < 0 or pos + 8 + n > size:
        raise _truncated(path, label, size)
    end = _marker(fh, pos + 4 + n, endian)
    if end != n:
        raise MetadataError(
            f"{path}: the record markers of block {label!r} disagree ({n} and {end}); the file "
            "is damaged or not a Gadget binary snapshot"
        )
    return pos + 4, n


def _not_gadget(path: Path, why: str) -> MetadataError:
    return MetadataError(
        f"{path}: {why}: wrong-endian or not a Gadget binary header; give a Gadget-2/3 "
        "binary snapshot (SnapFormat 1 or 2), or a .npy, Zarr or HDF5 file"
    )


def read_binary_header(path: str | os.PathLike[str]) -> tuple[dict[str, Any], _Layout]:
    """The header of one binary snapshot file (HDF5-style names) and where its blocks are.

    Raises
    ------
    MetadataError
        Not a Gadget binary header in either byte order, truncated, damaged markers, or
        block lengths that disagree with the header's counts.
    """
    p = Path(path)
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(16)
        sniffed = _sniff(head)
        if sniffed is None:
            if len(head) < 4:
                raise _truncated(p, "HEAD", size)
            little = int(np.frombuffer(head[:4], "<i4")[0])
            big = int(np.frombuffer(head[:4], ">i4")[0])
            raise _not_gadget(
                p, f"its first record marker reads {little} (little-endian) or {big} "
                "(big-endian), not 256, nor 8 before a 'HEAD' label"
            )  # fmt: skip
        endian, fmt = sniffed
        pos = 0
        if fmt == 2:
            pos, _ = _label_record(fh, 0, size, endian, p)
        if pos + 4 + 256 + 4 > size:
            raise _truncated(p, "HEAD", size)
        if _marker(fh, pos + 4 + 256, endian) != 256:
            raise _not_gadget(p, "the header's closing record marker is not 256")
        fh.seek(pos + 4)
        raw = np.frombuffer(fh.read(256), HEADER_DTYPE.newbyteorder(endian))[0]
        header = _header_values(raw)
        _check_header(header, p)
        blocks = {"HEAD": (pos + 4, 256)}
        pos += 264
        npart = np.asarray(header["NumPart_ThisFile"], np.int64)
        table = np.asarray(header["MassTable"], np.float64)
        need_mass = bool(np.any((npart > 0) & (table == 0)))
        wanted = [*_BLOCKS[:3], *(["MASS"] if need_mass else [])]
        order = iter(wanted)
        while len(blocks) < len(wanted) + 1:
            if pos >= size:
                missing = [b for b in wanted if b not in blocks]
                raise _truncated(p, missing[0], size)
            if fmt == 2:
                pos, label = _label_record(fh, pos, size, endian, p)
            else:
                label = next(order)
            start, n = _record(fh, pos, size, endian, label, p)
            if label in wanted and label not in blocks:
                blocks[label] = (start, n)
            pos = start + n + 4
    npart_t = tuple(int(v) for v in npart)
    return header, _Layout(endian, fmt, blocks, npart_t, tuple(float(v) for v in table))


def _label_record(fh: Any, pos: int, size: int, endian: str, path: Path) -> tuple[int, str]:
    """Read a SnapFormat-2 label record at ``pos``: the position after it and the label."""
    if pos + 16 > size:
        raise _truncated(path, "label", size)
    if _marker(fh, pos, endian) != 8 or _marker(fh, pos + 12, endian) != 8:
        raise MetadataError(
            f"{path}: expected a SnapFormat-2 block label at byte {pos}; the file is damaged "
            "or mixes SnapFormat 1 and 2"
        )
    fh.seek(pos + 4)
    label = fh.read(4).decode("ascii", errors="replace").strip()
    return pos + 16, label


def _header_values(raw: np.void) -> dict[str, Any]:
    return {
        "NumPart_ThisFile": [int(v) for v in raw["npart"]],
        "MassTable": [float(v) for v in raw["mass"]],
        "Time": float(raw["time"]),
        "Redshift": float(raw["redshift"]),
        "NumPart_Total": [int(v) for v in raw["npartTotal"]],
        "NumPart_Total_HighWord": [int(v) for v in raw["npartTotalHighWord"]],
        "NumFilesPerSnapshot": int(raw["num_files"]),
        "BoxSize": float(raw["BoxSize"]),
        "Omega0": float(raw["Omega0"]),
        "OmegaLambda": float(raw["OmegaLambda"]),
        "HubbleParam": float(raw["HubbleParam"]),
        "Flag_DoublePrecision": int(raw["flag_doubleprecision"]),
    }


def _check_header(h: dict[str, Any], path: Path) -> None:
    bad = []
    if not 1 <= h["NumFilesPerSnapshot"] <= 1_000_000:
        bad.append(f"num_files = {h['NumFilesPerSnapshot']}")
    # a byte-swapped double is often subnormal: a box must be a normal positive number
    if not (math.isfinite(h["BoxSize"]) and h["BoxSize"] >= np.finfo(np.float64).tiny):
        bad.append(f"BoxSize = {h['BoxSize']:g}")
    if not all(math.isfinite(m) and m >= 0 for m in h["MassTable"]):
        bad.append(f"mass = {h['MassTable']}")
    if not (math.isfinite(h["Redshift"]) and h["Redshift"] > -1):
        bad.append(f"redshift = {h['Redshift']:g}")
    if bad:
        raise _not_gadget(path, f"the header holds {', '.join(bad)}")


def binary_files(path: str | os.PathLike[str]) -> list[Path]:
    """All files of the binary snapshot ``path`` names, in file order.

    Parameters
    ----------
    path : str
        A single file, one file of a set (``snap_004.3``), the set's stem (``snap_004``),
        or a directory holding one set.
    """
    p = Path(path)
    if p.is_dir():
        stems = sorted({m["stem"] for f in p.iterdir() if (m := _NUM_RE.match(f.name))})
        if len(stems) != 1:
            raise MetadataError(
                f"directory {p} holds {len(stems)} numbered snapshot sets ({stems[:4]}); name one file"
            )
        p = p / f"{stems[0]}.0"
    elif not p.exists():
        if p.with_name(p.name + ".0").exists():
            p = p.with_name(p.name + ".0")
        else:
            raise FieldNotFoundError(f"no snapshot at {p}; check the path")
    header, _ = read_binary_header(p)
    nfiles = header["NumFilesPerSnapshot"]
    m = _NUM_RE.match(p.name)
    if nfiles == 1:
        return [p]
    if m is None:
        raise MetadataError(
            f"{p} says it is one of {nfiles} files, but its name has no file number "
            "(snap_004.0, snap_004.1, ...); keep the set's names"
        )
    files = [p.with_name(f"{m['stem']}.{i}") for i in range(nfiles)]
    missing = [i for i, f in enumerate(files) if not f.exists()]
    if missing:
        raise MetadataError(
            f"snapshot {m['stem']} has {nfiles} files but file numbers {missing[:8]} are missing; "
            "copy the whole set"
        )
    return files


@dataclass(frozen=True, eq=False)
class GadgetBinarySnapshot(FileSetSource):
    """A Gadget-2/3 binary snapshot (one or several files) as a batched particle source.

    Parameters
    ----------
    path : str
        Snapshot file, one file of a set, the set's stem, or its directory.
    ptype : int
        Particle type (1: dark matter).
    length_unit : {"kpc/h", "Mpc/h"} or float, optional
        Length unit of the snapshot (or factor to Mpc/h); default kpc/h (Gadget's).
    batch_size : int
        Particles per batch (batches never span two files).
    box_size : 3 floats, optional
        Box in Mpc/h; normally left to the header.

    Attributes
    ----------
    header : dict
        Header of the first file, under the Gadget HDF5 names (``BoxSize``, ``Redshift``,
        ``MassTable``, ``NumPart_Total``, ...) plus ``SnapFormat`` and ``ByteOrder``.
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
    layouts: tuple[_Layout, ...] = field(default=(), repr=False)
    firsts: tuple[tuple[int, int], ...] = field(default=(), repr=False)
    _masses: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        files = binary_files(self.path)
        if not 0 <= self.ptype < 6:
            raise MetadataError(f"particle type {self.ptype} not in a Gadget snapshot (types 0..5)")
        t = self.ptype
        header: dict[str, Any] = {}
        layouts, counts, firsts = [], [], []
        for f in files:
            h, lay = read_binary_header(f)
            if not header:
                header = h
            elif not math.isclose(h["BoxSize"], header["BoxSize"], rel_tol=1e-9):
                raise MetadataError(
                    f"{f.name} has BoxSize {h['BoxSize']} but {files[0].name} has "
                    f"{header['BoxSize']}; these files are not one snapshot"
                )
            npart = np.asarray(h["NumPart_ThisFile"], np.int64)
            table = np.asarray(h["MassTable"], np.float64)
            _check_widths(f, lay)
            variable = (npart > 0) & (table == 0)
            firsts.append((int(npart[:t].sum()), int(npart[:t][variable[:t]].sum())))
            counts.append(int(npart[t]))
            layouts.append(lay)
        total = int(header["NumPart_Total"][t]) + (int(header["NumPart_Total_HighWord"][t]) << 32)
        if sum(counts) != total:
            raise MetadataError(
                f"snapshot {self.path}: files hold {sum(counts)} particles of type {t} but "
                f"npartTotal says {total}; the set is incomplete or mixed"
            )
        table_mass = float(header["MassTable"][t])
        if table_mass < 0:  # pragma: no cover - refused by the header check
            raise NegativeMassError(f"{files[0]}: MassTable gives type {t} the mass {table_mass:g}")
        factor = length_factor(header, self.length_unit, files[0])
        lay0 = layouts[0]
        header = {
            **header,
            "SnapFormat": lay0.fmt,
            "ByteOrder": "big" if lay0.endian == ">" else "little",
        }
        stored_box = (header["BoxSize"] * factor,) * 3
        if self.box_size is not None:
            resolve_box_size(stored_box, self.box_size, where=f"the snapshot header of {self.path}")
        object.__setattr__(self, "files", tuple(str(f) for f in files))
        object.__setattr__(self, "counts", tuple(counts))
        object.__setattr__(self, "header", header)
        object.__setattr__(self, "factor", factor)
        object.__setattr__(self, "layouts", tuple(layouts))
        object.__setattr__(self, "firsts", tuple(firsts))
        object.__setattr__(self, "_masses", table_mass == 0 and sum(counts) > 0)
        object.__setattr__(self, "box_size", stored_box)

    @property
    def has_masses(self) -> bool:
        return self._masses

    @property
    def particle_mass(self) -> float | None:
        m = float(self.header["MassTable"][self.ptype])
        return None if self._masses or m <= 0 else m

    @property
    def mass_units(self) -> str:
        return "1e+10 Msun/h"

    @property
    def mass_to_msun_h(self) -> float:
        """Factor from the snapshot's mass unit to Msun/h."""
        return 1.989e43 / G_PER_MSUN

    @property
    def redshift(self) -> float | None:
        return max(0.0, float(self.header["Redshift"]))

    def _read(self, batch: Batch, label: str, width: int) -> np.ndarray:
        lay = self.layouts[batch.part]
        offset, nbytes = lay.blocks[label]
        first = self.firsts[batch.part][1 if label == "MASS" else 0] + batch.offset
        n_block = lay.entries(label)
        kind = "u" if label == "ID" else "f"
        itemsize = nbytes // (n_block * width)
        dtype = np.dtype(f"{lay.endian}{kind}{itemsize}")
        with open(self.files[batch.part], "rb") as fh:
            fh.seek(offset + first * width * itemsize)
            raw = np.fromfile(fh, dtype=dtype, count=batch.count * width)
        if raw.size != batch.count * width:  # the file shrank after it was opened
            raise _truncated(
                Path(self.files[batch.part]), label, os.path.getsize(self.files[batch.part])
            )
        arr = raw.astype(dtype.newbyteorder("="))
        return arr.reshape(batch.count, width) if width > 1 else arr

    def load(self, batch: Batch, data: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        pos = self._read(batch, "POS", 3)
        mass = self._read(batch, "MASS", 1) if self._masses else None
        check_masses(mass, f"{self.files[batch.part]}: MASS block", batch.start)
        if self.factor != 1.0:
            pos = pos.astype(np.float64) * self.factor
        return pos, mass

    def extra(self, batch: Batch, name: str) -> np.ndarray | None:
        """``"velocities"`` (peculiar, km/s) or ``"ids"`` (int64) of a batch."""
        if name == "ids":
            return self._read(batch, "ID", 1).astype(np.int64)
        if name == "velocities":
            return self._read(batch, "VEL", 3).astype(np.float64) * math.sqrt(self.header["Time"])
        return None

    def provenance(self) -> dict[str, Any]:
        """Header values worth keeping with a Field made from this snapshot."""
        keep = ("BoxSize", "Redshift", "Time", "Omega0", "OmegaLambda", "HubbleParam",
                "MassTable", "NumFilesPerSnapshot", "SnapFormat", "ByteOrder")  # fmt: skip
        h = self.header
        return {
            "snapshot": os.path.abspath(self.files[0]),
            "format": "gadget-binary",
            "n_files": len(self.files),
            "length_to_mpc_h": self.factor,
            "header": {k: h[k] for k in keep},
            **header_cosmology(
                {"Omega_m": h["Omega0"], "Omega_Lambda": h["OmegaLambda"], "h": h["HubbleParam"]}
            ),
        }


def _check_widths(path: Path, lay: _Layout) -> None:
    """Each block's length is its entry count times a float32/float64 (or 32/64-bit id) width."""
    for label, width in (("POS", 3), ("VEL", 3), ("ID", 1), ("MASS", 1)):
        if label not in lay.blocks:
            continue
        n = lay.entries(label)
        nbytes = lay.blocks[label][1]
        if n == 0 or nbytes % (n * width) or nbytes // (n * width) not in (4, 8):
            raise MetadataError(
                f"{path}: block {label!r} holds {nbytes} bytes, not {n} x {width} values of 4 or "
                "8 bytes as the header's counts say; the header and the data disagree"
            )
