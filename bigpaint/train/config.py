"""Typed training configuration (``configs/train-<family>.yaml``).

Top level: ``family`` (a registered painter family), ``model`` (its architecture, validated
by the family's config model), ``objective`` (its loss and adversarial settings, validated by
the family's objective model), ``data``, ``optim`` and ``run``. Unknown keys at any level are
one-line :class:`bigpaint.errors.ConfigError` s naming the key and the closest valid one.
Optimizer settings left out take the family's paper values (:data:`PAPER_OPTIM`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "PAPER_OPTIM",
    "DataBox",
    "DataConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "ValidationRegion",
    "WeightedSampling",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValidationRegion(_Strict):
    """The cube held out for validation, in voxels of the training grid.

    No training input window (context and projection slab included) touches it; the painted
    validation cube is judged by a statistic (:mod:`bigpaint.train.validate`).
    """

    origin: tuple[int, int, int] = (0, 0, 0)
    size: int = Field(32, ge=4)


class WeightedSampling(_Strict):
    """dm2gal's inverse-frequency sampling of centre voxels over log bins of the target.

    Voxels whose target (first channel, physical units) lies in ``[vmin, vmax]`` are drawn
    with probability inversely proportional to the count of their bin (``bins`` log bins);
    others are never centres (the paper trains on voxels with M* > 1e8 Msun/h only).
    ``vmax`` defaults to the maximum of the training region.
    """

    bins: int = Field(100, ge=1)
    vmin: float = Field(gt=0)
    vmax: float | None = Field(None, gt=0)


class DataBox(_Strict):
    """The Fields of one more training simulation (same grid, box and channels as the first).

    Attributes
    ----------
    inputs, targets : list of str
        Field URLs, as :attr:`DataConfig.inputs` and :attr:`DataConfig.targets`.
    """

    inputs: list[str] = Field(min_length=1)
    targets: list[str] = Field(min_length=1)


class DataConfig(_Strict):
    """Where patches come from and how they are shaped.

    Attributes
    ----------
    inputs, targets : list of str
        Field URLs; a 4-D Field contributes one channel per entry of its first axis. All
        must share grid and box.
    validation : ValidationRegion
    patch : int, optional
        Output patch side in voxels (input side = patch + 2 context for valid painters).
        Defaults per family: the paper's (halo 50, protohalo 128, dm2gal 1, EMBER 512,
        cosmic-web 128).
    batch_size : int
    symmetries : bool
        Draw one of the 48 cube (8 square) symmetries per sample, applied to input and target.
    projection_depth : int, optional
        2-D families: slabs of this many voxels are projected (summed) along a random axis.
    input_norm, output_norm : list of dict, optional
        One normalization per channel (or one for all); ``affine`` accepts ``"auto"`` for
        ``shift`` (mean) and ``scale`` (rms about the shift) measured on the training region.
    weighted_sampling : WeightedSampling, optional
    more_boxes : list of DataBox
        Further training simulations. Each training patch comes from a box drawn uniformly;
        these boxes are training data whole (the validation cube is cut from the first box
        only), and the normalizations are fitted on the first box's training region.
    """

    inputs: list[str] = Field(min_length=1)
    targets: list[str] = Field(min_length=1)
    validation: ValidationRegion = Field(default_factory=ValidationRegion)
    patch: int | None = Field(None, ge=1)
    batch_size: int = Field(1, ge=1)
    symmetries: bool = True
    projection_depth: int | None = Field(None, ge=1)
    input_norm: list[dict[str, Any]] | None = None
    output_norm: list[dict[str, Any]] | None = None
    weighted_sampling: WeightedSampling | None = None
    more_boxes: list[DataBox] = Field(default_factory=list)


class OptimConfig(_Strict):
    """Adam settings; ``None`` takes the family's paper value (:data:`PAPER_OPTIM`)."""

    lr: float | None = Field(None, gt=0)
    betas: tuple[float, float] | None = None
    weight_decay: float = Field(0.0, ge=0)
    critic_lr: float | None = Field(None, gt=0)
    critic_betas: tuple[float, float] | None = None
    schedule: Literal["constant", "plateau", "polynomial"] | None = None
    plateau_patience: int = Field(5, ge=1, description="validations without improvement")
    plateau_factor: float = Field(0.1, gt=0, lt=1)
    polynomial_power: float = Field(1.0, gt=0)
    polynomial_steps: int | None = Field(
        None, ge=1, description="horizon of the polynomial decay (default run.max_steps)"
    )
    grad_clip: float | None = Field(None, gt=0)


#: The papers' optimizer settings (lr, betas, schedule).
PAPER_OPTIM: dict[str, dict[str, Any]] = {
    # Kodi Ramanah et al.: Adam 1e-4, (0.5, 0.999), both networks
    "halo-painter": {"lr": 1e-4, "betas": (0.5, 0.999), "schedule": "constant"},
    # protohalo U-Net: keras Adam defaults
    "protohalo-unet": {"lr": 1e-3, "betas": (0.9, 0.999), "schedule": "constant"},
    # dm2gal: searched lr in [1e-5, 1e-1]; /10 after 5 validations without improvement
    "dm2gal": {"lr": 1e-3, "betas": (0.9, 0.999), "schedule": "plateau"},
    # EMBER: Adam (0, 0.99), polynomially decaying learning rate (lr not given)
    "ember": {"lr": 1e-4, "betas": (0.0, 0.99), "schedule": "polynomial"},
    # cosmic-web GAN: Adam 2e-4, beta1 0.5, both stages
    "cosmic-web-gan": {"lr": 2e-4, "betas": (0.5, 0.999), "schedule": "constant"},
}


class RunConfig(_Strict):
    """Where and how long to train.

    Attributes
    ----------
    out : str
        Run directory: ``metrics.csv``, ``state.pt`` (resume), ``last.painter`` and
        ``best.painter`` checkpoints, ``config.yaml``.
    seed : int
        Seeds torch and the sampler; with ``max_time`` unset a run is reproducible, and a
        resumed run continues exactly as an uninterrupted one.
    max_steps : int
        Generator (painter) updates.
    max_time : float, optional
        Wall-clock budget in seconds (stops early; breaks exact reproducibility).
    log_every, val_every, checkpoint_every : int
        Steps between metrics rows, validations (by statistic) and resumable states.
    val_batches : int
        Batches for the validation loss.
    device : {"auto", "cpu", "cuda"}
        ``auto``: CUDA when available.
    amp : bool
        bfloat16 autocast on CUDA devices that support it (ignored on CPU).
    channels_last : bool
        Train 3-D painters in the channels-last memory format (about 1.6x faster
        convolutions on CPU with oneDNN; also the fast path of cuDNN).
    threads : int, optional
        torch intra-op threads on CPU.
    resume : bool
        Continue from ``out/state.pt`` when it exists.
    progress : bool
        Report progress: the metrics every ``log_every`` steps and each validation, logged
        on stderr by the ``bigpaint`` command (a bar on a terminal).
    init_from : str, optional
        A painter checkpoint of the same architecture whose weights start the run (e.g. a
        regression pre-training before the WGAN); the normalizations are the config's.
    """

    out: str
    seed: int = 0
    max_steps: int = Field(1000, ge=1)
    max_time: float | None = Field(None, gt=0)
    log_every: int = Field(10, ge=1)
    val_every: int = Field(200, ge=1)
    checkpoint_every: int = Field(200, ge=1)
    val_batches: int = Field(4, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    channels_last: bool = True
    threads: int | None = Field(None, ge=1)
    resume: bool = True
    progress: bool = True
    init_from: str | None = None


class TrainConfig(_Strict):
    """A whole training run (see the module docstring)."""

    family: str
    model: dict[str, Any] = Field(default_factory=dict)
    objective: dict[str, Any] = Field(default_factory=dict)
    data: DataConfig
    optim: OptimConfig = Field(default_factory=OptimConfig)
    run: RunConfig

    @model_validator(mode="after")
    def _family_known(self) -> TrainConfig:
        from bigpaint.painters import families

        if self.family not in families():
            raise ValueError(
                f"unknown painter family {self.family!r}; known: {', '.join(families())}"
            )
        return self

    def optim_value(self, key: str) -> Any:
        """An optimizer setting, the family's paper value when not given."""
        value = getattr(self.optim, key)
        return PAPER_OPTIM[self.family].get(key) if value is None else value
