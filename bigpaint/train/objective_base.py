"""The machinery every training objective shares, whatever its family optimises.

:class:`Objective` moves normalized batches to the device (channels-last for 3-D painters
when ``run.channels_last``), runs them under autocast, builds the Adam optimizers and the
step or plateau schedulers of the config's ``optim`` section, clips gradients, and saves and
restores all of it (modules, optimizers, schedulers, step) for resume. A family's objective
(:mod:`bigpaint.train.objectives`) subclasses it with a strict ``Settings`` model and either
a pixel ``loss(x, y)`` or its own ``train_step()``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel

from bigpaint.config import parse_config
from bigpaint.painters.base import Painter, apply_norms

__all__ = ["Objective"]


class Objective:
    """Base: batches to device, autocast, optimizers, schedulers and resumable state."""

    Settings: ClassVar[type[BaseModel]]
    metric_names: ClassVar[tuple[str, ...]] = ("loss",)

    def __init__(
        self, painter: Painter, cfg: Any, data: Any, device: torch.device, amp: torch.dtype | None
    ) -> None:
        self.painter = painter
        self.cfg = cfg
        self.data = data
        self.device = device
        self.amp = amp
        self.settings = parse_config(self.Settings, cfg.objective, f"{cfg.family} objective")
        self.modules: dict[str, torch.nn.Module] = {"painter": painter}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        self.step = 0

    # -- helpers -----------------------------------------------------------------------
    @property
    def memory_format(self) -> torch.memory_format:
        """channels-last for 3-D painters when ``run.channels_last`` (faster oneDNN/cuDNN convolutions)."""
        if self.cfg.run.channels_last and self.painter.ndim == 3:
            return torch.channels_last_3d
        return torch.contiguous_format

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp)

    def adam(self, params: Iterator[torch.nn.Parameter], critic: bool = False) -> torch.optim.Adam:
        lr = self.cfg.optim_value("critic_lr" if critic and self.cfg.optim.critic_lr else "lr")
        betas = self.cfg.optim_value(
            "critic_betas" if critic and self.cfg.optim.critic_betas else "betas"
        )
        return torch.optim.Adam(
            params, lr=lr, betas=tuple(betas), weight_decay=self.cfg.optim.weight_decay
        )

    def add_optimizer(self, name: str, opt: torch.optim.Optimizer, total_steps: int) -> None:
        self.optimizers[name] = opt
        kind = self.cfg.optim_value("schedule")
        if kind == "plateau":
            self.schedulers[name] = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, factor=self.cfg.optim.plateau_factor, patience=self.cfg.optim.plateau_patience
            )
        elif kind == "polynomial":
            power = self.cfg.optim.polynomial_power
            horizon = self.cfg.optim.polynomial_steps or total_steps
            self.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: max(0.0, 1 - s / max(1, horizon)) ** power
            )

    def batch(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """A normalized batch on the device: inputs ``(B, C_in, ...)``, targets ``(B, C_out, ...)``."""
        sampler = self.data.train if split == "train" else self.data.val
        x, y = sampler.sample(self.cfg.data.batch_size)
        x = torch.as_tensor(apply_norms(self.painter.input_norm, x, 1), device=self.device)
        y = torch.as_tensor(apply_norms(self.painter.output_norm, y, 1), device=self.device)
        if x.ndim == 5:
            x = x.contiguous(memory_format=self.memory_format)
            y = y.contiguous(memory_format=self.memory_format)
        return x, y

    def update(self, name: str, loss: torch.Tensor) -> None:
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.optim.grad_clip:
            params = [p for g in opt.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)
        opt.step()

    def after_step(self) -> None:
        """Advance step-based schedulers."""
        self.step += 1
        for s in self.schedulers.values():
            if isinstance(s, torch.optim.lr_scheduler.LambdaLR):
                s.step()

    def after_validation(self, score: float) -> None:
        for s in self.schedulers.values():
            if isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau):
                s.step(score)

    @property
    def lr(self) -> float:
        return float(next(iter(self.optimizers.values())).param_groups[0]["lr"])

    @property
    def phase(self) -> str:
        return "train"

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])

    # -- to implement ------------------------------------------------------------------
    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Pixel (regression) loss of the painter on one normalized batch."""
        raise NotImplementedError

    def train_step(self) -> dict[str, float]:
        """One painter update (and the partners' updates that go with it)."""
        self.painter.train()
        x, y = self.batch()
        with self.autocast():
            loss = self.loss(x, y)
        self.update("painter", loss)
        self.after_step()
        return {"loss": float(loss.detach())}

    @torch.no_grad()
    def val_loss(self, batches: int) -> float:
        """Mean pixel loss over ``batches`` validation batches (eval mode)."""
        self.painter.eval()
        vals = []
        for _ in range(batches):
            x, y = self.batch("validation")
            with self.autocast():
                vals.append(float(self.loss(x, y)))
        return float(np.mean(vals))

    def validate(self) -> dict[str, Any]:
        from bigpaint.train.validate import validate

        return validate(self.painter, self.data)
