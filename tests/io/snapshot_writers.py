"""Writers of the snapshot and catalogue formats users bring, for the tests' round trips.

Each writes the layout the established codes write (Gadget-2's ``io.c`` for binary
snapshots, SWIFT's HDF5 groups, Rockstar's ``out_*.list`` and AHF's ``.AHF_halos`` text), so
the readers are tested against files shaped like the real ones, not against themselves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bigpaint.catalog_units import halo_ids
from bigpaint.io.gadget_binary import HEADER_DTYPE

GAS_PER_FILE = 3


def _record(fh, payload: bytes, endian: str) -> None:
    marker = np.array([len(payload)], f"{endian}i4").tobytes()
    fh.write(marker + payload + marker)


def write_gadget_binary(
    stem: Path,
    pos: np.ndarray,
    vel: np.ndarray,
    ids: np.ndarray,
    *,
    box: float,
    redshift: float,
    particle_mass: float | None,
    masses: np.ndarray | None = None,
    nfiles: int = 1,
    fmt: int = 1,
    endian: str = "<",
    dtype: str = "f4",
    id_dtype: str = "u4",
    cosmology: tuple[float, float, float] = (0.3175, 0.6825, 0.6711),
) -> list[Path]:
    """Write type-1 particles (and a few gas particles before them) as a binary snapshot.

    ``pos`` in snapshot length units, ``vel`` peculiar km/s (stored as Gadget's
    ``v / sqrt(a)``), ``particle_mass`` in 10^10 Msun/h (None: per-particle ``masses`` in the
    MASS block). Gas has a zero table mass, so the MASS block always exists and holds the gas
    masses first: the readers' offsets are exercised. One file is ``stem``; several are
    ``stem.0``, ``stem.1``, ... with the particles split unevenly.
    """
    a = 1.0 / (1.0 + redshift)
    n = len(pos)
    splits = np.array_split(np.arange(n), nfiles)
    paths = []
    rng = np.random.default_rng(0)
    for i, idx in enumerate(splits):
        path = stem if nfiles == 1 else stem.with_name(f"{stem.name}.{i}")
        h = np.zeros((), HEADER_DTYPE.newbyteorder(endian))
        npart = np.zeros(6, np.uint32)
        npart[0], npart[1] = GAS_PER_FILE, len(idx)
        total = np.zeros(6, np.uint32)
        total[0], total[1] = GAS_PER_FILE * nfiles, n
        table = np.zeros(6)
        table[1] = 0.0 if particle_mass is None else particle_mass
        h["npart"], h["mass"], h["npartTotal"] = npart, table, total
        h["time"], h["redshift"], h["num_files"], h["BoxSize"] = a, redshift, nfiles, box
        h["Omega0"], h["OmegaLambda"], h["HubbleParam"] = cosmology
        h["flag_doubleprecision"] = int(dtype == "f8")
        gas_pos = rng.uniform(0, box, (GAS_PER_FILE, 3))
        blocks = {
            "HEAD": h.tobytes(),
            "POS ": np.concatenate([gas_pos, pos[idx]]).astype(f"{endian}{dtype}").tobytes(),
            "VEL ": np.concatenate([np.zeros((GAS_PER_FILE, 3)), vel[idx] / np.sqrt(a)])
            .astype(f"{endian}{dtype}")
            .tobytes(),
            "ID  ": np.concatenate([np.arange(GAS_PER_FILE) + 10**6, ids[idx]])
            .astype(f"{endian}{id_dtype}")
            .tobytes(),
            "MASS": np.concatenate(
                [np.full(GAS_PER_FILE, 0.01), [] if masses is None else masses[idx]]
            )
            .astype(f"{endian}{dtype}")
            .tobytes(),
        }
        with open(path, "wb") as fh:
            for label, payload in blocks.items():
                if fmt == 2:
                    size = np.array([len(payload) + 8], f"{endian}i4").tobytes()
                    _record(fh, label.encode() + size, endian)
                _record(fh, payload, endian)
        paths.append(path)
    return paths


def write_swift(
    path: Path,
    pos_mpc: np.ndarray,
    vel_kms: np.ndarray,
    ids: np.ndarray,
    *,
    box_mpc: float,
    h: float,
    redshift: float,
    mass_1e10_msun: float | None,
    ptypes: tuple[int, ...] = (1,),
) -> Path:
    """Write a SWIFT-layout HDF5 snapshot: positions in comoving Mpc (no h), masses in
    10^10 Msun, velocities in km/s (U_t chosen so U_L / U_t = 1 km/s), ``Units`` and
    ``Cosmology`` groups as SWIFT writes them. Only the types in ``ptypes`` get particles."""
    import h5py

    n = len(pos_mpc)
    counts = np.zeros(7, np.uint64)
    for t in ptypes:
        counts[t] = n
    with h5py.File(path, "w") as f:
        hd = f.create_group("Header")
        hd.attrs["BoxSize"] = np.full(3, box_mpc)
        hd.attrs["NumPart_ThisFile"] = counts
        hd.attrs["NumPart_Total"] = counts
        hd.attrs["NumPart_Total_HighWord"] = np.zeros(7, np.uint64)
        hd.attrs["NumFilesPerSnapshot"] = np.array([1], np.int32)
        hd.attrs["Redshift"] = np.array([redshift])
        hd.attrs["Scale-factor"] = np.array([1 / (1 + redshift)])
        hd.attrs["Code"] = np.bytes_("SWIFT")
        u = f.create_group("Units")
        u.attrs["Unit length in cgs (U_L)"] = np.array([3.08567758149e24])
        u.attrs["Unit mass in cgs (U_M)"] = np.array([1.98841e43])
        u.attrs["Unit time in cgs (U_t)"] = np.array([3.08567758149e19])
        u.attrs["Unit current in cgs (U_I)"] = np.array([1.0])
        u.attrs["Unit temperature in cgs (U_T)"] = np.array([1.0])
        c = f.create_group("Cosmology")
        for k, v in {"h": h, "Omega_m": 0.3175, "Omega_b": 0.049, "Omega_lambda": 0.6825,
                     "Redshift": redshift, "Cosmological run": 1}.items():  # fmt: skip
            c.attrs[k] = np.array([v])
        f.create_group("PhysicalConstants/CGS").attrs["solar_mass"] = np.array([1.98841e33])
        for t in ptypes:
            g = f.create_group(f"PartType{t}")
            co = g.create_dataset("Coordinates", data=pos_mpc)
            co.attrs["h-scale exponent"] = np.array([0.0])
            co.attrs["a-scale exponent"] = np.array([1.0])
            g.create_dataset("Velocities", data=vel_kms.astype("f4"))
            g.create_dataset("ParticleIDs", data=ids.astype(np.uint64))
            if mass_1e10_msun is not None:
                m = g.create_dataset("Masses", data=np.full(n, mass_1e10_msun))
                m.attrs["h-scale exponent"] = np.array([0.0])
    return path


def halo_id_column(table):
    """The halo id column of a bigpaint catalogue (``id``; ``halo_id`` in older files)."""
    return table.column("id" if "id" in table.column_names else "halo_id")


def write_rockstar(path: Path, table, *, box: float, scale: float, mass_name: str = "Mvir") -> Path:
    """A Rockstar ``out_*.list``: ``#``-header naming the columns, its comment lines (scale
    factor, cosmology, box), then one halo per line; positions Mpc/h, masses Msun/h."""
    cols = ["ID", "DescID", mass_name, "Vmax", "Vrms", "Rvir", "Rs", "Np", "X", "Y", "Z",
            "VX", "VY", "VZ", "JX", "JY", "JZ", "Spin", "Mvir_all", "M200b"]  # fmt: skip
    t = {c: table.column(c).to_numpy() for c in ("mass", "n_particles", "x", "y", "z",
                                                  "vx", "vy", "vz")}  # fmt: skip
    t["halo_id"] = halo_ids(table).to_numpy()
    lines = [
        "#" + " ".join(cols),
        f"#a = {scale:.6f}",
        "#Om = 0.317500; Ol = 0.682500; h = 0.671100",
        "#FOF linking length: 0.280000",
        "#Unbound Threshold: 0.500000; FOF Refinement Threshold: 0.700000",
        f"#Box size: {box:.6f} Mpc/h",
        "#Units: Masses in Msun / h",
        "#Units: Positions in Mpc / h (comoving)",
        "#Units: Velocities in km / s (physical, peculiar)",
    ]
    for i in range(len(t["mass"])):
        m = t["mass"][i]
        row = [int(t["halo_id"][i]), -1, repr(float(m)), 100.0, 80.0, 300.0, 40.0,
               int(t["n_particles"][i]), repr(float(t["x"][i])), repr(float(t["y"][i])),
               repr(float(t["z"][i])), t["vx"][i], t["vy"][i], t["vz"][i], 0, 0, 0, 0.03,
               repr(float(m)), repr(1.1 * float(m))]  # fmt: skip
        lines.append(" ".join(str(v) for v in row))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ahf(path: Path, table) -> Path:
    """An ``.AHF_halos`` file: ``#ID(1) hostHalo(2) ... Mvir(4) npart(5) Xc(6) Yc(7) Zc(8)``
    header; positions in kpc/h (AHF's unit), masses Msun/h."""
    cols = ["ID", "hostHalo", "numSubStruct", "Mvir", "npart", "Xc", "Yc", "Zc", "VXc", "VYc",
            "VZc", "Rvir"]  # fmt: skip
    lines = ["#" + "\t".join(f"{c}({i + 1})" for i, c in enumerate(cols))]
    for i in range(table.num_rows):
        row = [halo_ids(table)[i].as_py(), -1, 0, repr(table["mass"][i].as_py()),
               table["n_particles"][i].as_py()] + [
            repr(1000.0 * table[c][i].as_py()) for c in ("x", "y", "z")
        ] + [0.0, 0.0, 0.0, 300.0]  # fmt: skip
        lines.append("\t".join(str(v) for v in row))
    path.write_text("\n".join(lines) + "\n")
    return path
