"""Small particle-mesh N-body runs, friends-of-friends halos, and the truth they give painters."""

from bigpaint.sim.fof import (
    fof_groups,
    halo_catalogue,
    measured_mass_function,
    model_mass_function,
    particle_mass,
    read_catalogue,
    write_catalogue,
)
from bigpaint.sim.massfunction import pm_fof_masses, pooled_mass_function
from bigpaint.sim.pm import ParticleMesh, PMState, initial_state, run_pm, time_steps
from bigpaint.sim.simulate import SimulateConfig, SimulationResult, simulate
from bigpaint.sim.truth import (
    connected_protohalos,
    halo_counts,
    normalized_distance,
    periodic_edt,
    protohalo_labels,
)

__all__ = [
    "PMState",
    "ParticleMesh",
    "SimulateConfig",
    "SimulationResult",
    "connected_protohalos",
    "fof_groups",
    "halo_catalogue",
    "halo_counts",
    "initial_state",
    "measured_mass_function",
    "model_mass_function",
    "normalized_distance",
    "particle_mass",
    "periodic_edt",
    "pm_fof_masses",
    "pooled_mass_function",
    "protohalo_labels",
    "read_catalogue",
    "run_pm",
    "simulate",
    "time_steps",
    "write_catalogue",
]
