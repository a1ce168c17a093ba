"""What each family optimises: one small class per objective, used by :mod:`bigpaint.train.loop`.

Each objective (a :class:`bigpaint.train.objective_base.Objective`) owns the painter's
partners (critics, discriminators), the optimizers and schedulers, draws its own batches (a
WGAN critic needs ``n_critic`` fresh batches per generator update) and returns the step's
losses. Objective settings come from the config's
``objective`` mapping, validated by the family's model here:

``halo-painter`` (:class:`HaloObjective`)
    ``kind: wgan-gp`` (the paper: n_critic 5, lambda 10, Adam 1e-4 (0.5, 0.999) for both
    networks; critic of Fig. 6) or ``regression``. ``supervised_weight`` adds a pixel loss
    (``mse`` or ``poisson``) to the generator's adversarial loss and ``pretrain_steps`` runs
    that pixel loss alone first: both are bigpaint additions (default off) for short CPU
    budgets; the paper trains the pure WGAN for 5 10^5 updates.
``protohalo-unet`` (:class:`ProtohaloObjective`)
    Selective normalized L1 with a ``buffer`` (16 voxels in the paper).
``dm2gal`` (:class:`DM2GalObjective`)
    Mean squared error of the central voxel; weighted sampling is in ``data``.
``ember`` (:class:`EmberObjective`)
    ``adversarial: false``: the U-Net, ``L = alpha sum DSSIM + beta sum MSLE`` over the
    scales (Table 3 gas: 1, 2). ``adversarial: true``: the WGAN, ``L_G = L_p + gamma L_adv``
    (gas: 10, 0.4, 10) against the multi-scale critic with gradient penalty.
``cosmic-web-gan`` (:class:`CosmicWebObjective`)
    ``gan_steps`` DCGAN updates (binary cross-entropy, flipped labels), then
    ``encoder_steps`` encoder updates through the frozen generator with the discriminator
    feature loss (eq. 7).

Why hand-written: the loops are the papers' procedures, a few dozen lines each.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from bigpaint.errors import ConfigError
from bigpaint.painters.base import Painter, crop_center
from bigpaint.train import losses
from bigpaint.train.objective_base import Objective

if TYPE_CHECKING:
    from bigpaint.painters.cosmic_web_gan import CosmicWebAutoencoder
    from bigpaint.painters.ember import EmberUNet

__all__ = [
    "OBJECTIVES",
    "CosmicWebObjective",
    "DM2GalObjective",
    "EmberObjective",
    "HaloObjective",
    "ProtohaloObjective",
    "make_objective",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- halo painter


class HaloSettings(_Strict):
    kind: Literal["wgan-gp", "regression"] = "wgan-gp"
    n_critic: int = Field(5, ge=1)
    gp_weight: float = Field(10.0, ge=0)
    supervised_loss: Literal["mse", "poisson"] = "mse"
    supervised_weight: float = Field(0.0, ge=0)
    pretrain_steps: int = Field(0, ge=0)
    critic_conditional: bool = False


class HaloObjective(Objective):
    """WGAN-GP of the halo painter (optionally with a pixel term), or plain regression."""

    Settings: ClassVar[type[BaseModel]] = HaloSettings
    settings: HaloSettings
    metric_names: ClassVar[tuple[str, ...]] = ("loss", "pixel", "critic", "wasserstein", "gp")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        from bigpaint.painters.halo_painter import HaloCritic, HaloCriticConfig

        s = self.settings
        total = self.cfg.run.max_steps
        self.add_optimizer("painter", self.adam(self.painter.parameters()), total)
        if s.kind == "wgan-gp":
            if self.data.out_size < 19:
                raise ConfigError(
                    f"the halo critic (Fig. 6) judges patches of >= 19 voxels, data.patch is "
                    f"{self.data.out_size}; raise it (the paper: 50)"
                )
            cin = self.painter.out_channels + (
                self.painter.in_channels if s.critic_conditional else 0
            )
            self.critic = HaloCritic(
                HaloCriticConfig(in_channels=cin, patch=self.data.out_size)
            ).to(self.device, memory_format=self.memory_format)  # type: ignore[call-overload]  # torch's Module.to overloads omit memory_format
            self.modules["critic"] = self.critic
            self.add_optimizer("critic", self.adam(self.critic.parameters(), critic=True), total)

    @property
    def phase(self) -> str:
        s = self.settings
        if s.kind == "regression" or self.step < s.pretrain_steps:
            return "pretrain" if s.kind == "wgan-gp" else "train"
        return "wgan-gp"

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pred = self.painter(x)
        if self.settings.supervised_loss == "poisson":
            return F.poisson_nll_loss(pred, y, log_input=False, full=False)
        return F.mse_loss(pred, y)

    def _critic_in(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        if not self.settings.critic_conditional:
            return h
        return torch.cat([crop_center(x, h.shape[2:]), h], 1)

    def train_step(self) -> dict[str, float]:
        if self.phase != "wgan-gp":
            return super().train_step()
        s = self.settings
        self.painter.train()
        for _ in range(s.n_critic):
            x, y = self.batch()
            with torch.no_grad(), self.autocast():
                fake = self.painter(x)
            with self.autocast():
                c_real = self.critic(self._critic_in(x, y))
                c_fake = self.critic(self._critic_in(x, fake))
                w = losses.critic_loss(c_real, c_fake)
                gp = losses.gradient_penalty(
                    lambda dm, h: self.critic(self._critic_in(dm, h)),
                    y,
                    fake,
                    weight=s.gp_weight,
                    condition=(x,),
                )
            self.update("critic", w + gp)
        x, y = self.batch()
        with self.autocast():
            fake = self.painter(x)
            adv = losses.generator_adversarial_loss(self.critic(self._critic_in(x, fake)))
            pixel = (
                F.poisson_nll_loss(fake, y, log_input=False)
                if s.supervised_loss == "poisson"
                else F.mse_loss(fake, y)
            )
            total = adv + s.supervised_weight * pixel if s.supervised_weight else adv
        self.update("painter", total)
        self.after_step()
        return {
            "loss": float(total.detach()),
            "pixel": float(pixel.detach()),
            "critic": float((w + gp).detach()),
            "wasserstein": float(-w.detach()),
            "gp": float(gp.detach()),
        }


# ---------------------------------------------------------------- protohalo U-Net


class ProtohaloSettings(_Strict):
    buffer: int = Field(16, ge=0, description="voxels ignored on each side (paper: 16)")


class ProtohaloObjective(Objective):
    Settings: ClassVar[type[BaseModel]] = ProtohaloSettings
    settings: ProtohaloSettings

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        if 2 * self.settings.buffer >= self.data.out_size:
            raise ConfigError(
                f"objective.buffer {self.settings.buffer} leaves nothing of {self.data.out_size}-voxel "
                "patches; lower it or enlarge data.patch"
            )
        if 2 * self.settings.buffer >= self.data.val.out_size:
            raise ConfigError(
                f"objective.buffer {self.settings.buffer} leaves nothing of the "
                f"{self.data.val.out_size}-voxel validation patches; enlarge data.validation.size"
            )
        self.add_optimizer("painter", self.adam(self.painter.parameters()), self.cfg.run.max_steps)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return losses.selective_normalized_l1(
            self.painter(x), y, self.settings.buffer, self.painter.ndim
        )


# ---------------------------------------------------------------- dm2gal


class DM2GalSettings(_Strict):
    loss: Literal["mse"] = "mse"


class DM2GalObjective(Objective):
    Settings: ClassVar[type[BaseModel]] = DM2GalSettings

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.add_optimizer("painter", self.adam(self.painter.parameters()), self.cfg.run.max_steps)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.painter(x), y)


# ---------------------------------------------------------------- EMBER


class EmberSettings(_Strict):
    adversarial: bool = False
    alpha: float = Field(1.0, ge=0, description="DSSIM weight (Table 3)")
    beta: float = Field(2.0, ge=0, description="MSLE weight (Table 3)")
    gamma: float = Field(10.0, ge=0, description="adversarial weight (Table 3)")
    gp_weight: float = Field(10.0, ge=0)
    n_critic: int = Field(1, ge=1)
    data_range: float = Field(1.0, gt=0, description="SSIM dynamic range (normalized units)")
    critic_filters: int = Field(8, ge=1)
    critic_max_filters: int | None = Field(256, ge=1)


class EmberObjective(Objective):
    Settings: ClassVar[type[BaseModel]] = EmberSettings
    settings: EmberSettings
    painter: EmberUNet
    metric_names: ClassVar[tuple[str, ...]] = ("loss", "pixel", "critic", "wasserstein", "gp")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        from bigpaint.painters.ember import EmberCritic, EmberCriticConfig

        total = self.cfg.run.max_steps
        self.add_optimizer("painter", self.adam(self.painter.parameters()), total)
        self.levels = int(self.painter.config.levels)
        if self.settings.adversarial:
            cc = EmberCriticConfig(
                dm_channels=self.painter.in_channels,
                target_channels=self.painter.out_channels,
                levels=self.levels,
                image=self.data.out_size,
                filters=self.settings.critic_filters,
                max_filters=self.settings.critic_max_filters,
            )
            self.critic = EmberCritic(cc).to(self.device)
            self.modules["critic"] = self.critic
            self.add_optimizer("critic", self.adam(self.critic.parameters(), critic=True), total)

    def _targets(self, y: torch.Tensor) -> list[torch.Tensor]:
        from bigpaint.painters.ember import downsample_targets

        return downsample_targets(y, self.levels)

    def _pixel(self, outs: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        s = self.settings
        return losses.ember_perceptual_loss(
            outs, self._targets(y), alpha=s.alpha, beta=s.beta, data_range=s.data_range
        )

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._pixel(self.painter.forward_multiscale(x), y)

    def train_step(self) -> dict[str, float]:
        s = self.settings
        if not s.adversarial:
            return super().train_step()
        self.painter.train()
        for _ in range(s.n_critic):
            x, y = self.batch()
            with torch.no_grad(), self.autocast():
                fakes = self.painter.forward_multiscale(x)
            reals = self._targets(y)
            with self.autocast():
                w = losses.critic_loss(self.critic(x, reals), self.critic(x, fakes))
                gp = losses.gradient_penalty(
                    lambda dm, *t: self.critic(dm, list(t)),
                    reals,
                    fakes,
                    weight=s.gp_weight,
                    condition=(x,),
                )
            self.update("critic", w + gp)
        x, y = self.batch()
        with self.autocast():
            outs = self.painter.forward_multiscale(x)
            pixel = self._pixel(outs, y)
            total = pixel + s.gamma * losses.generator_adversarial_loss(self.critic(x, outs))
        self.update("painter", total)
        self.after_step()
        return {
            "loss": float(total.detach()),
            "pixel": float(pixel.detach()),
            "critic": float((w + gp).detach()),
            "wasserstein": float(-w.detach()),
            "gp": float(gp.detach()),
        }


# ---------------------------------------------------------------- cosmic-web GAN


class CosmicWebSettings(_Strict):
    gan_steps: int = Field(1000, ge=0)
    label_flip: float = Field(0.05, ge=0, lt=0.5)


class CosmicWebObjective(Objective):
    """DCGAN stage, then the encoder through the frozen generator (eq. 7)."""

    Settings: ClassVar[type[BaseModel]] = CosmicWebSettings
    settings: CosmicWebSettings
    painter: CosmicWebAutoencoder
    metric_names: ClassVar[tuple[str, ...]] = ("loss", "d_loss", "g_loss", "feature")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        from bigpaint.painters.cosmic_web_gan import DCGANDiscriminator

        if self.settings.gan_steps >= self.cfg.run.max_steps:
            raise ConfigError(
                f"run.max_steps ({self.cfg.run.max_steps}) must exceed objective.gan_steps "
                f"({self.settings.gan_steps}): the encoder trains after the GAN"
            )
        self.disc = DCGANDiscriminator(self.painter.config).to(self.device)
        self.modules["discriminator"] = self.disc
        total = self.cfg.run.max_steps
        g = self.painter.generator
        e = self.painter.encoder
        self.add_optimizer("generator", self.adam(g.parameters()), total)
        self.add_optimizer("discriminator", self.adam(self.disc.parameters(), critic=True), total)
        self.add_optimizer("encoder", self.adam(e.parameters()), total)

    @property
    def phase(self) -> str:
        return "gan" if self.step < self.settings.gan_steps else "encoder"

    @property
    def lr(self) -> float:
        name = "generator" if self.phase == "gan" else "encoder"
        return float(self.optimizers[name].param_groups[0]["lr"])

    def _latent(self, b: int) -> torch.Tensor:
        return torch.randn(b, self.painter.config.latent, device=self.device)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Eq. 7 on a batch (generator and discriminator in eval mode: frozen)."""
        g, e = self.painter.generator, self.painter.encoder
        return losses.feature_loss(self.disc.features(y), self.disc.features(g(e(x))))

    def train_step(self) -> dict[str, float]:
        g, e = self.painter.generator, self.painter.encoder
        if self.phase == "gan":
            g.train()
            self.disc.train()
            _, real = self.batch()
            b = real.shape[0]
            flip = self.settings.label_flip
            with self.autocast():
                fake = g(self._latent(b))
                d_loss = losses.bce_with_label_noise(
                    self.disc(real), True, flip=flip
                ) + losses.bce_with_label_noise(self.disc(fake.detach()), False, flip=flip)
            self.update("discriminator", d_loss)
            with self.autocast():
                g_loss = losses.bce_with_label_noise(self.disc(fake), True, flip=0.0)
            self.update("generator", g_loss)
            self.after_step()
            return {
                "loss": float((d_loss + g_loss).detach()),
                "d_loss": float(d_loss.detach()),
                "g_loss": float(g_loss.detach()),
            }
        g.eval()
        self.disc.eval()
        e.train()
        for p in list(g.parameters()) + list(self.disc.parameters()):
            p.requires_grad_(False)
        try:
            x, y = self.batch()
            with self.autocast():
                feat = self.loss(x, y)
            self.update("encoder", feat)
        finally:
            for p in list(g.parameters()) + list(self.disc.parameters()):
                p.requires_grad_(True)
        self.after_step()
        return {"loss": float(feat.detach()), "feature": float(feat.detach())}

    @torch.no_grad()
    def val_loss(self, batches: int) -> float:
        if self.phase == "encoder":
            return super().val_loss(batches)
        # GAN stage: discriminator loss on validation images against fresh samples
        self.painter.eval()
        self.disc.eval()
        vals = []
        for _ in range(batches):
            _, real = self.batch("validation")
            fake = self.painter.generator(self._latent(real.shape[0]))
            vals.append(
                float(
                    losses.bce_with_label_noise(self.disc(real), True, flip=0.0)
                    + losses.bce_with_label_noise(self.disc(fake), False, flip=0.0)
                )
            )
        return float(np.mean(vals))

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        if self.phase == "encoder":
            return super().validate()
        # GAN stage: mean spectrum of generated images against validation images
        from bigpaint.painters.base import invert_norms
        from bigpaint.train.validate import paint_validation, spectra_2d, spectrum_metrics

        self.painter.eval()
        _, true = paint_validation(self.painter, self.data)
        z = self._latent(max(8, true.shape[0]))
        fake = (
            invert_norms(self.painter.output_norm, self.painter.generator(z).float(), 1)
            .cpu()
            .numpy()
        )
        box = true.shape[-1] * self.data.cell_size
        k, pf, _, _ = spectra_2d(fake[:, 0], fake[:, 0], box)
        _, pt, _, _ = spectra_2d(true[:, 0], true[:, 0], box)
        m: dict[str, Any] = spectrum_metrics(pf, pt, np.sqrt(pf * pt))
        m["r_c"], m["score"] = math.nan, m["pk_logratio"]
        m["spectra"] = [(k, pf, pt, np.full_like(pf, np.nan))]
        return m


OBJECTIVES: dict[str, type[Objective]] = {
    "halo-painter": HaloObjective,
    "protohalo-unet": ProtohaloObjective,
    "dm2gal": DM2GalObjective,
    "ember": EmberObjective,
    "cosmic-web-gan": CosmicWebObjective,
}


def make_objective(
    painter: Painter, cfg: Any, data: Any, device: torch.device, amp: torch.dtype | None
) -> Objective:
    """The objective of ``cfg.family`` (plugins add theirs to :data:`OBJECTIVES`)."""
    try:
        cls = OBJECTIVES[cfg.family]
    except KeyError:
        raise ConfigError(f"no training objective for painter family {cfg.family!r}") from None
    return cls(painter, cfg, data, device, amp)
