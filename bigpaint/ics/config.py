"""Typed configs of ``bigpaint ics`` and ``bigpaint lpt``, and the one call each makes.

A config is a YAML file whose keys are the fields below (unknown keys are refused with the
closest valid one); :func:`run_ics` and :func:`run_lpt` turn a validated config into a
:func:`bigpaint.ics.grf.gaussian_field` or :func:`bigpaint.ics.lpt.lpt_density` call. With an
``initial_conditions`` section the user's own ICs replace the seed
(:mod:`bigpaint.ics.external`); :meth:`IcsConfig.external` resolves and checks them, so the
commands refuse bad ICs before a cluster starts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bigpaint.errors import ConfigError
from bigpaint.field import FieldWriter
from bigpaint.ics.cosmology import CosmologyConfig
from bigpaint.ics.external import (
    ExternalICs,
    InitialConditions,
    external_linear_field,
    resolve_initial_conditions,
)
from bigpaint.ics.grf import gaussian_field
from bigpaint.ics.lpt import lpt_density
from bigpaint.ics.lpt_plan import LPTResult
from bigpaint.ics.power import LinearPower, PowerConfig, linear_power

__all__ = ["IcsConfig", "LptConfig", "run_ics", "run_lpt"]


class IcsConfig(BaseModel):
    """A linear density field: grid, box, seed, cosmology, spectrum, output.

    Attributes
    ----------
    output : str
        Field path or URL.
    grid : int
        Cells per side (a multiple of ``tile``).
    box_size : float
        Mpc/h.
    seed : int, optional
        Random seed; required unless ``initial_conditions`` is given.
    initial_conditions : InitialConditions, optional
        The user's own ICs instead of the seed (:mod:`bigpaint.ics.external`).
    redshift : float
        Of the written field.
    chunks : int or 3 ints, optional
        Write blocks; default 128 voxels, or the grid where it is smaller.
    tile : int
        Noise tile (cells); the field depends on the seed and tile only.
    fixed_amplitude, paired : bool
    precision : {"single", "double"}
    fft_backend : {"slab", "pencil"}
    cosmology : CosmologyConfig
    power : PowerConfig
    overwrite : bool
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    output: str
    grid: int = Field(ge=2)
    box_size: float = Field(gt=0)
    seed: int | None = Field(None, ge=0)
    initial_conditions: InitialConditions | None = None
    redshift: float = Field(0.0, ge=0)
    chunks: int | tuple[int, int, int] | None = None
    tile: int = Field(32, ge=1)
    fixed_amplitude: bool = False
    paired: bool = False
    precision: Literal["single", "double"] = "single"
    fft_backend: Literal["slab", "pencil"] = "slab"
    cosmology: CosmologyConfig = Field(default_factory=CosmologyConfig)
    power: PowerConfig = Field(default_factory=PowerConfig)
    overwrite: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> IcsConfig:
        ics = self.initial_conditions
        if ics is None:
            self.noise_seed()
        if ics is not None and self.seed is not None:
            raise ValueError("give seed or initial_conditions, not both")
        if ics is not None and ics.kind != "white_noise" and (self.fixed_amplitude or self.paired):
            raise ValueError(
                "fixed_amplitude and paired reshape a white noise; they do not apply to "
                f"initial_conditions of kind {ics.kind}"
            )
        return self

    def noise_seed(self) -> int:
        """The seed of the white noise (no ``initial_conditions``), or a one-line ConfigError."""
        if self.seed is None:
            raise ConfigError("seed is required (or give initial_conditions)")
        return self.seed

    def fft_grids(self) -> tuple[int, ...]:
        """Grid sizes (cells per side) of the distributed FFTs this job runs."""
        return (self.grid,)

    def external(self, power: LinearPower | None = None) -> ExternalICs | None:
        """The resolved, checked ``initial_conditions`` (None without them); refuses ICs
        whose box or grid disagree with this config, a Field of the wrong kind, or a growth
        normalisation not stated where needed (one line, nothing written)."""
        if self.initial_conditions is None:
            return None
        return resolve_initial_conditions(
            self.initial_conditions,
            grid=self.grid,
            box_size=self.box_size,
            power=power or linear_power(self.cosmology, self.power),
        )

    def check_size(self, cluster: Any = None) -> None:
        """Refuse, before a cluster starts, a grid whose FFTs cannot fit (one-line error).

        Two bounds, for the largest FFT grid ``n``: one task of the FFT holds at least a whole
        plane (``slab``) or a whole line (``pencil``) of complex modes, three times (input,
        output, transform), and that must fit in a worker's memory; and the ``n^2 (n/2+1)``
        complex modes must fit in the memory and free disk of this machine when the cluster
        runs here (``local``, ``local-cuda``: Dask spills to disk). Clusters elsewhere
        (``slurm``, ``scheduler``) are checked per worker only.

        Parameters
        ----------
        cluster : cluster config, optional
            Where the job will run (default: a local cluster).

        Raises
        ------
        TooLargeError
        """
        import shutil
        import tempfile

        import psutil

        from bigpaint.cluster import worker_memory
        from bigpaint.config import LocalClusterConfig, LocalCudaClusterConfig, format_bytes
        from bigpaint.errors import TooLargeError

        n = max(self.fft_grids())
        item = 8 if self.precision == "single" else 16
        half = n // 2 + 1
        unit = 3 * (n * half if self.fft_backend == "slab" else n) * item
        per_worker = worker_memory(cluster)
        if per_worker is not None and unit > per_worker:
            what = "plane" if self.fft_backend == "slab" else "line"
            alt = "fft_backend: pencil, " if self.fft_backend == "slab" else ""
            raise TooLargeError(
                f"grid {n}^3 needs {format_bytes(unit)} per FFT task (a whole {what} of "
                f"{self.precision}-precision modes, three times), more than the "
                f"{format_bytes(per_worker)} a worker may use; use {alt}workers with more "
                "memory, or a smaller grid"
            )
        if cluster is None or isinstance(cluster, (LocalClusterConfig, LocalCudaClusterConfig)):
            scratch = getattr(cluster, "local_directory", None) or tempfile.gettempdir()
            have = int(psutil.virtual_memory().total) + shutil.disk_usage(scratch).free
            need = n * n * half * item
            if need > have:
                raise TooLargeError(
                    f"grid {n}^3 has {format_bytes(need)} of {self.precision}-precision Fourier "
                    f"modes, more than this machine's memory and the free disk of {scratch} "
                    f"together ({format_bytes(have)}); choose a smaller grid, or run on a "
                    "cluster with the memory (a slurm cluster file)"
                )

    def check_tile(self) -> None:
        """Refuse a grid that is not a multiple of the noise tile (one-line error); external
        ICs draw no noise and have no tile."""
        from bigpaint.ics.noise import white_noise_array

        if self.seed is None:
            return

        white_noise_array((self.grid,) * 3, (slice(0, 0),) * 3, seed=self.seed, tile=self.tile)


class LptConfig(IcsConfig):
    """A 2LPT (or Zel'dovich) density field from the same ICs as :class:`IcsConfig`.

    Attributes
    ----------
    order : {1, 2}
    nmesh : int, optional
        Density cells per side (default ``grid``).
    scheme : {"ngp", "cic", "tsc", "pcs"}
    block : int
        Lagrangian cube side (particle-store chunk).
    particles : str, optional
        Keep the particles (Zarr group) at this path.
    velocities : bool
        Store peculiar velocities (km/s) with the particles.
    linear_output : str, optional
        Also write the linear field of the same seed at the same redshift.
    scratch_dir : str, optional
        Where the scratch stores go (visible to every worker).
    """

    order: Literal[1, 2] = 2
    nmesh: int | None = Field(None, ge=2)
    scheme: Literal["ngp", "cic", "tsc", "pcs"] = "cic"
    block: int = Field(128, ge=1)
    particles: str | None = None
    velocities: bool = False
    linear_output: str | None = None
    scratch_dir: str | None = None

    def fft_grids(self) -> tuple[int, ...]:
        """The particle grid (displacements) and the density mesh."""
        return (self.grid, self.nmesh or self.grid)


def _resolved(
    cfg: IcsConfig, initial: ExternalICs | None
) -> tuple[LinearPower, ExternalICs | None]:
    power = linear_power(cfg.cosmology, cfg.power)
    if initial is None:
        initial = cfg.external(power)
    elif cfg.initial_conditions is None:
        raise ConfigError("resolved initial conditions were given for a config without them")
    return power, initial


def run_ics(cfg: IcsConfig, *, initial: ExternalICs | None = None) -> FieldWriter:
    """Write the linear density Field an :class:`IcsConfig` describes (``initial``: its
    ``initial_conditions`` already resolved by :meth:`IcsConfig.external`)."""
    cfg.check_tile()
    power, initial = _resolved(cfg, initial)
    if initial is not None:
        return external_linear_field(
            cfg.output,
            initial,
            power=power,
            redshift=cfg.redshift,
            chunks=cfg.chunks,
            fixed_amplitude=cfg.fixed_amplitude,
            paired=cfg.paired,
            precision=cfg.precision,
            backend=cfg.fft_backend,
            overwrite=cfg.overwrite,
        )
    return gaussian_field(
        cfg.output,
        grid=cfg.grid,
        box_size=cfg.box_size,
        seed=cfg.noise_seed(),
        power=power,
        redshift=cfg.redshift,
        chunks=cfg.chunks,
        tile=cfg.tile,
        fixed_amplitude=cfg.fixed_amplitude,
        paired=cfg.paired,
        precision=cfg.precision,
        backend=cfg.fft_backend,
        overwrite=cfg.overwrite,
    )


def run_lpt(
    cfg: LptConfig, *, progress: bool = False, initial: ExternalICs | None = None
) -> LPTResult:
    """Write the LPT density Field (and particles) an :class:`LptConfig` describes
    (``initial``: its ``initial_conditions`` already resolved)."""
    cfg.check_tile()
    power, initial = _resolved(cfg, initial)
    return lpt_density(
        cfg.output,
        grid=cfg.grid,
        box_size=cfg.box_size,
        seed=cfg.seed,
        power=power,
        redshift=cfg.redshift,
        order=cfg.order,
        nmesh=cfg.nmesh,
        chunks=cfg.chunks,
        scheme=cfg.scheme,
        tile=cfg.tile,
        fixed_amplitude=cfg.fixed_amplitude,
        paired=cfg.paired,
        precision=cfg.precision,
        backend=cfg.fft_backend,
        block=cfg.block,
        particles=cfg.particles,
        velocities=cfg.velocities,
        linear_output=cfg.linear_output,
        scratch_dir=cfg.scratch_dir,
        overwrite=cfg.overwrite,
        progress=progress,
        initial=initial,
    )
