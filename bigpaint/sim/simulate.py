"""One small simulation, end to end: 2LPT ICs, PM to z_final, FoF, and the training truth.

:func:`simulate` runs on one node (CPU or GPU, through torch) for up to 256^3 particles and
writes into one output directory:

================================  ===========================================================
``halos.parquet``                 FoF catalogue at ``z_final`` (:mod:`bigpaint.sim.fof`)
``halo_counts.zarr``              halo counts per cell (NGP), one channel per mass bin
                                  (``halo_count``)
``protohalo_labels.zarr``         protohalo label of every IC cell (``protohalo_label``, int32;
                                  one connected region per halo, see :mod:`bigpaint.sim.truth`)
``protohalo_distance.zarr``       its per-object normalised distance map (``distance``)
``protohalos_connected.parquet``  the connected truth: one row per object of the label image,
                                  its mass ``n_cells * cell_mass`` (the reference a segmentation
                                  of the map can reach; :mod:`bigpaint.sim.connected_truth`)
``density_ic.zarr``               CIC density contrast of the IC particles (same grid as labels)
``density.zarr``                  CIC density contrast of the particles at ``z_final``
``lpt_density.zarr``              CIC density contrast of 2LPT at ``z_final`` from the same ICs
                                  (the cheap field a painter takes as input)
``particles.zarr``                final positions (Mpc/h), velocities (km/s), ids (optional)
``summary.json``                  configuration, timings (PM steps per second), halo numbers,
                                  the connected truth's numbers
================================  ===========================================================

The ICs are :func:`bigpaint.ics.lpt.lpt_particles_array` of the same seed, noise tiles and
spectrum as ``bigpaint ics``/``bigpaint lpt``, so the 2LPT and linear fields of this box can
be remade at any chunking with the chunked commands.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import time
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bigpaint.errors import ConfigError, FieldExistsError
from bigpaint.field import write_array
from bigpaint.ics.cosmology import CosmologyConfig
from bigpaint.ics.lpt import lpt_particles_array
from bigpaint.ics.power import LinearPower, PowerConfig, linear_power
from bigpaint.mesh.assign import deposit
from bigpaint.outputs import writing
from bigpaint.sim.connected_truth import FILENAME as CONNECTED_FILENAME
from bigpaint.sim.connected_truth import (
    connected_truth,
    read_connected_truth,
    write_connected_truth,
)
from bigpaint.sim.fof import fof_groups, halo_catalogue, particle_mass, write_catalogue
from bigpaint.sim.pm import ParticleMesh, initial_state, run_pm, time_steps
from bigpaint.sim.truth import halo_counts, normalized_distance, protohalo_labels

__all__ = [
    "FoFConfig",
    "HaloCountConfig",
    "ProtohaloConfig",
    "SimulateConfig",
    "SimulationResult",
    "simulate",
    "write_protohalo_truth",
]

OUTPUTS = (
    "halos.parquet",
    "halo_counts.zarr",
    "protohalo_labels.zarr",
    "protohalo_distance.zarr",
    CONNECTED_FILENAME,
    "density_ic.zarr",
    "density.zarr",
    "lpt_density.zarr",
    "particles.zarr",
    "summary.json",
)


#: Entries of the connected truth's metadata repeated in summary.json.
_CONNECTED_SUMMARY = (
    "mass_rule",
    "cell_mass",
    "min_mass",
    "complete_above",
    "halos_without_cells",
    "centre_undefined",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FoFConfig(_Strict):
    """Friends-of-friends: linking length ``b`` (mean separations), smallest halo kept."""

    b: float = Field(0.2, gt=0, lt=1)
    min_members: int = Field(20, ge=2)


class HaloCountConfig(_Strict):
    """Halo-count fields: grid (cells per side) and mass-bin edges in Msun/h."""

    grid: int = Field(64, ge=1)
    mass_bins: list[float] = Field(default_factory=lambda: [1e12, 1e13, 1e14, 1e15, 1e16])

    @field_validator("mass_bins")
    @classmethod
    def _increasing(cls, v: list[float]) -> list[float]:
        if len(v) < 2 or any(b <= a for a, b in itertools.pairwise(v)) or v[0] <= 0:
            raise ValueError(f"mass_bins must be >= 2 positive increasing edges in Msun/h, got {v}")
        return v


class ProtohaloConfig(_Strict):
    """Protohalo labels: grid (default: the particle grid) and the mass cut (in particles)."""

    grid: int | None = Field(None, ge=1)
    min_particles: int = Field(100, ge=2)


class SimulateConfig(_Strict):
    """Everything ``bigpaint simulate`` needs (the YAML file's keys).

    Attributes
    ----------
    output : str
        Output directory.
    particles : int
        Particles per side (a multiple of ``tile``; at most 256 on one node).
    box_size : float
        Mpc/h.
    seed, tile : int
        White noise (see :mod:`bigpaint.ics.noise`).
    z_init, z_final : float
        Start (2LPT) and end of the PM run.
    steps : int
        PM steps, linear in the scale factor.
    force_mesh_factor : int
        Force-mesh cells per particle per side (FastPM's ``B``; 2 resolves ~100-particle halos).
    gradient : {"fd4", "spectral"}
    compensate : bool
        Deconvolve the CIC window of the force mesh (helps ``force_mesh_factor: 1``).
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    chunks : int
        Write blocks of the output Fields, in cells of each; a Field whose grid is smaller
        is written as one block.
    save_particles : bool
        Write the final particles.
    """

    output: str
    particles: int = Field(64, ge=8, le=512)
    box_size: float = Field(128.0, gt=0)
    seed: int = Field(42, ge=0)
    tile: int = Field(32, ge=1)
    fixed_amplitude: bool = False
    paired: bool = False
    cosmology: CosmologyConfig = Field(default_factory=CosmologyConfig)
    power: PowerConfig = Field(default_factory=PowerConfig)
    z_init: float = Field(19.0, gt=0, le=199)
    z_final: float = Field(0.0, ge=0)
    steps: int = Field(20, ge=1)
    force_mesh_factor: int = Field(2, ge=1, le=4)
    gradient: Literal["fd4", "spectral"] = "fd4"
    compensate: bool = False
    device: str = "auto"
    fof: FoFConfig = Field(default_factory=FoFConfig)
    halo_counts: HaloCountConfig = Field(default_factory=HaloCountConfig)
    protohalo: ProtohaloConfig = Field(default_factory=ProtohaloConfig)
    chunks: int = Field(64, ge=1)
    save_particles: bool = True
    overwrite: bool = False

    @model_validator(mode="after")
    def _check(self) -> SimulateConfig:
        if self.z_final >= self.z_init:
            raise ValueError(f"z_final ({self.z_final}) must be below z_init ({self.z_init})")
        if self.particles % self.tile:
            raise ValueError(
                f"particles ({self.particles}) is not divisible by the noise tile {self.tile}; "
                f"choose a multiple of {self.tile} or another tile"
            )
        return self


class SimulationResult(BaseModel):
    """Paths and numbers of a finished simulation."""

    model_config = ConfigDict(frozen=True)

    output: str
    n_halos: int
    steps_per_second: float
    pm_seconds: float
    total_seconds: float
    particle_mass: float


def _meta(
    cfg: SimulateConfig,
    kind: str,
    units: str,
    redshift: float,
    extra: dict[str, Any],
    *,
    scheme: str | None,
) -> dict[str, Any]:
    """Metadata of a truth Field; ``scheme`` is its mass assignment (None: no window)."""
    return {
        "box_size": cfg.box_size,
        "kind": kind,
        "units": units,
        "redshift": redshift,
        "cosmology": cfg.cosmology.to_field(),
        "provenance": {
            "operation": "simulate",
            "config": json.loads(cfg.model_dump_json()),
            **extra,
        },
        "mass_assignment": {"scheme": scheme, "interlaced": False},
    }


def _delta(positions: np.ndarray, grid: int, box: float) -> np.ndarray:
    g = deposit(positions, grid, box, scheme="cic", dtype="float64")
    return (g / g.mean() - 1.0).astype(np.float32)


def simulate(
    cfg: SimulateConfig | dict[str, Any],
    *,
    power: LinearPower | None = None,
    log: Any = None,
) -> SimulationResult:
    """Run the small simulation a config describes and write its truth Fields.

    Parameters
    ----------
    cfg : SimulateConfig or mapping
    power : LinearPower, optional
        Reuse a tabulated spectrum (must be for ``cfg.cosmology``).
    log : callable, optional
        ``log(str)`` for progress lines (e.g. ``click.echo``).

    Returns
    -------
    SimulationResult

    Raises
    ------
    FieldExistsError
        Outputs exist and ``overwrite`` is false (checked before any work).
    """
    from bigpaint.config import parse_config

    if not isinstance(cfg, SimulateConfig):
        cfg = parse_config(SimulateConfig, cfg, "simulate")
    with writing({"output": cfg.output}):
        return _simulate(cfg, power, log)


def _simulate(cfg: SimulateConfig, power: LinearPower | None, log: Any) -> SimulationResult:
    """The run itself, under the output directory's lock."""
    say = log or (lambda _msg: None)
    out = cfg.output
    _clear_outputs(cfg)
    t_start = time.perf_counter()
    lp = power or linear_power(cfg.cosmology, cfg.power)
    if lp.cosmology != cfg.cosmology:
        raise ConfigError("the given power spectrum belongs to another cosmology")
    n, box = cfg.particles, cfg.box_size
    mp = particle_mass(cfg.cosmology.Omega_m, box, n**3)
    pos0, vel0, ids = _initial_conditions(cfg, lp)
    say(f"ICs: {n}^3 particles at z = {cfg.z_init}, particle mass {mp:.4g} Msun/h")
    pos, vel, step_times, pm_seconds = _particle_mesh(cfg, lp, pos0, vel0, say)
    cat = _fof_catalogue(cfg, pos, vel, ids, mp)
    say(f"FoF: {cat.num_rows} halos with >= {cfg.fof.min_members} particles")
    labels, pieces = _write_truth_fields(cfg, pos0, pos, ids, cat, mp)
    conn_table, connected = read_connected_truth(os.path.join(out, CONNECTED_FILENAME))
    if cfg.save_particles:
        _save_particles(os.path.join(out, "particles.zarr"), pos, vel, ids, cfg)
    total = time.perf_counter() - t_start
    sps = len(step_times) / sum(step_times) if step_times else float("nan")
    summary = {
        "config": json.loads(cfg.model_dump_json()),
        "particle_mass": mp,
        "force_mesh": cfg.force_mesh_factor * n,
        "n_halos": cat.num_rows,
        "n_protohalo_labels": int(np.count_nonzero(np.unique(labels))),
        "protohalo_pieces": pieces,
        "connected_truth": {
            "catalogue": CONNECTED_FILENAME,
            "n_protohalos": conn_table.num_rows,
            **{k: connected[k] for k in _CONNECTED_SUMMARY},
        },
        "pm_seconds": pm_seconds,
        "pm_steps_per_second": sps,
        "step_seconds": step_times,
        "total_seconds": total,
    }
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    return SimulationResult(
        output=out,
        n_halos=cat.num_rows,
        steps_per_second=sps,
        pm_seconds=pm_seconds,
        total_seconds=total,
        particle_mass=mp,
    )


def _clear_outputs(cfg: SimulateConfig) -> None:
    """Refuse outputs that exist unless ``overwrite`` (then remove them); make the folder."""
    out = cfg.output
    existing = [p for p in OUTPUTS if os.path.exists(os.path.join(out, p))]
    if existing and not cfg.overwrite:
        raise FieldExistsError(
            f"{out} already holds {', '.join(existing)}; choose another output or set "
            "overwrite: true"
        )
    for p in existing:
        path = os.path.join(out, p)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    os.makedirs(out, exist_ok=True)


def _initial_conditions(
    cfg: SimulateConfig, lp: LinearPower
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2LPT particles at ``z_init`` (positions, velocities, ids), and the 2LPT density at
    ``z_final`` from the same ICs written as ``lpt_density.zarr``."""
    n, box = cfg.particles, cfg.box_size
    ics = functools.partial(
        lpt_particles_array,
        n,
        box,
        seed=cfg.seed,
        power=lp,
        tile=cfg.tile,
        fixed_amplitude=cfg.fixed_amplitude,
        paired=cfg.paired,
    )
    pos0, vel0, ids = ics(redshift=cfg.z_init)
    pos_lpt, _, _ = ics(redshift=cfg.z_final)
    write_array(
        os.path.join(cfg.output, "lpt_density.zarr"),
        _delta(pos_lpt, n, box),
        chunks=min(cfg.chunks, n),
        meta=_meta(cfg, "delta", "1", cfg.z_final, {"field": "2LPT"}, scheme="CIC"),
    )
    return pos0, vel0, ids


def _particle_mesh(
    cfg: SimulateConfig, lp: LinearPower, pos0: np.ndarray, vel0: np.ndarray, say: Any
) -> tuple[np.ndarray, np.ndarray, list[float], float]:
    """The PM run from ``z_init`` to ``z_final``: positions and velocities at the end, the
    seconds of each step and of the whole run."""
    a0, a1 = 1.0 / (1.0 + cfg.z_init), 1.0 / (1.0 + cfg.z_final)
    pm = ParticleMesh(
        cfg.force_mesh_factor * cfg.particles,
        cfg.box_size,
        cfg.cosmology.Omega_m,
        device=cfg.device,
        gradient=cfg.gradient,
        compensate=cfg.compensate,
    )
    state = initial_state(pos0, vel0, a0, device=str(pm.device))
    step_times: list[float] = []

    def progress(st: Any, seconds: float) -> None:
        step_times.append(seconds)
        say(f"PM step {len(step_times)}/{cfg.steps}: a = {st.a:.4f} ({seconds:.2f} s)")

    t_pm = time.perf_counter()
    state = run_pm(state, time_steps(a0, a1, cfg.steps), pm, lp.background, callback=progress)
    pm_seconds = time.perf_counter() - t_pm
    return state.x.cpu().numpy(), state.velocities().cpu().numpy(), step_times, pm_seconds


def _fof_catalogue(
    cfg: SimulateConfig, pos: np.ndarray, vel: np.ndarray, ids: np.ndarray, mp: float
) -> Any:
    """FoF haloes of the final particles, written as ``halos.parquet``."""
    n, box = cfg.particles, cfg.box_size
    groups = fof_groups(pos, box, cfg.fof.b * box / n)
    cat = halo_catalogue(
        pos, vel, ids, box_size=box, particle_mass=mp, min_members=cfg.fof.min_members,
        groups=groups,
    )  # fmt: skip
    write_catalogue(
        cat,
        os.path.join(cfg.output, "halos.parquet"),
        {
            "box_size": box,
            "particle_mass": mp,
            "redshift": cfg.z_final,
            "linking_length_b": cfg.fof.b,
            "min_members": cfg.fof.min_members,
            "n_particles": n**3,
            "cosmology": cfg.cosmology.model_dump(),
            "config": json.loads(cfg.model_dump_json()),
        },
    )
    return cat


def _write_truth_fields(
    cfg: SimulateConfig,
    pos0: np.ndarray,
    pos: np.ndarray,
    ids: np.ndarray,
    cat: Any,
    mp: float,
) -> tuple[np.ndarray, dict[str, int]]:
    """The halo counts, the protohalo truth, and the initial and final densities; returns
    the protohalo labels and pieces of :func:`write_protohalo_truth`."""
    out, n, box = cfg.output, cfg.particles, cfg.box_size
    hc = cfg.halo_counts
    write_array(
        os.path.join(out, "halo_counts.zarr"),
        halo_counts(cat, hc.grid, box, hc.mass_bins),
        chunks=min(cfg.chunks, hc.grid),
        meta=_meta(
            cfg, "halo_count", "halos", cfg.z_final,
            {"mass_bins": hc.mass_bins, "mass_units": "Msun/h"}, scheme="NGP",
        ),
    )  # fmt: skip
    pg = cfg.protohalo.grid or n
    labels, pieces = write_protohalo_truth(cfg, pos0, ids, cat, mp)
    write_array(
        os.path.join(out, "density_ic.zarr"),
        _delta(pos0, pg, box),
        chunks=min(cfg.chunks, pg),
        meta=_meta(cfg, "delta", "1", cfg.z_init, {}, scheme="CIC"),
    )
    write_array(
        os.path.join(out, "density.zarr"),
        _delta(pos, n, box),
        chunks=min(cfg.chunks, n),
        meta=_meta(cfg, "delta", "1", cfg.z_final, {"field": "PM"}, scheme="CIC"),
    )
    return labels, pieces


def write_protohalo_truth(
    cfg: SimulateConfig,
    positions: np.ndarray,
    ids: np.ndarray,
    catalogue: Any,
    particle_mass: float,
    *,
    overwrite: bool = False,
) -> tuple[np.ndarray, dict[str, int]]:
    """Write ``protohalo_labels.zarr``, ``protohalo_distance.zarr`` and the connected truth.

    The connected-truth catalogue (``protohalos_connected.parquet``,
    :func:`bigpaint.sim.connected_truth.connected_truth`) lists the objects of the label
    image with their masses in Msun/h, so catalogue, labels and map always agree.

    Parameters
    ----------
    cfg : SimulateConfig
        The run's config (output directory, protohalo grid and mass cut, chunks).
    positions, ids : arrays
        The IC particles (Mpc/h) and their ids.
    catalogue : pyarrow.Table
        The FoF catalogue (sorted by mass, largest first).
    particle_mass : float
        Msun/h.
    overwrite : bool
        Replace existing truth Fields (e.g. remade from the ICs and ``halos.parquet``).

    Returns
    -------
    labels : numpy.ndarray
        The connected protohalo labels (:func:`bigpaint.sim.truth.connected_protohalos`).
    pieces : dict
        Its fragment statistics.
    """
    pg = cfg.protohalo.grid or cfg.particles
    min_mass = cfg.protohalo.min_particles * particle_mass
    raw = protohalo_labels(positions, ids, catalogue, pg, cfg.box_size, min_mass=min_mass,
                           connected=False)  # fmt: skip
    provenance = {"operation": "simulate", "config": json.loads(cfg.model_dump_json())}
    table, labels, pieces = connected_truth(
        raw, catalogue, box_size=cfg.box_size, particle_mass=particle_mass,
        particles=cfg.particles, min_mass=min_mass,
        meta={"redshift": cfg.z_final, "lagrangian_redshift": cfg.z_init,
              "cosmology": cfg.cosmology.model_dump(), "fof_catalogue": "halos.parquet",
              "labels": "protohalo_labels.zarr", "provenance": provenance},
    )  # fmt: skip
    del raw
    extra = {"min_mass": min_mass, "min_particles": cfg.protohalo.min_particles, **pieces}
    chunks = min(cfg.chunks, pg)
    write_array(
        os.path.join(cfg.output, "protohalo_labels.zarr"),
        labels,
        chunks=chunks,
        meta=_meta(cfg, "protohalo_label", "halo_id + 1", cfg.z_init, extra, scheme=None),
        overwrite=overwrite,
    )
    write_array(
        os.path.join(cfg.output, "protohalo_distance.zarr"),
        normalized_distance(labels),
        chunks=chunks,
        meta=_meta(cfg, "distance", "1", cfg.z_init, extra, scheme=None),
        overwrite=overwrite,
    )
    write_connected_truth(table, os.path.join(cfg.output, CONNECTED_FILENAME), overwrite=overwrite)
    return labels, pieces


def _save_particles(
    url: str, pos: np.ndarray, vel: np.ndarray, ids: np.ndarray, cfg: SimulateConfig
) -> None:
    import zarr

    g = zarr.open_group(store=url, mode="w", zarr_format=3)
    g.attrs.update(
        {
            "box_size": [cfg.box_size] * 3,
            "redshift": cfg.z_final,
            "kind": "pm_particles",
            "units": {"positions": "Mpc/h", "velocities": "km/s", "ids": "Lagrangian index"},
            "cosmology": cfg.cosmology.model_dump(),
        }
    )
    chunk = min(len(ids), 1 << 21)
    g.create_array("positions", data=pos.astype(np.float32), chunks=(chunk, 3))
    g.create_array("velocities", data=vel.astype(np.float32), chunks=(chunk, 3))
    g.create_array("ids", data=ids.astype(np.int64), chunks=(chunk,))
