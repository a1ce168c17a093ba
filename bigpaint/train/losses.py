"""Training losses of the five painter families.

* WGAN-GP (Gulrajani et al. 2017; halo painter eq. 3.1, EMBER eqs. 2-5):
  :func:`critic_loss` ``E[C(fake)] - E[C(real)]``, :func:`generator_adversarial_loss`
  ``-E[C(fake)]``, and :func:`gradient_penalty` ``lambda E[(||grad C(x_hat)||_2 - 1)^2]``
  with ``x_hat = eps x + (1 - eps) x_tilde``, ``eps ~ U[0, 1]`` per sample. A critic may take
  several inputs (EMBER's scales, a conditioning field): all interpolated inputs share one
  ``eps`` per sample and the norm is over all of them; inputs passed as ``condition`` are not
  interpolated and not differentiated.
* Protohalo U-Net: :func:`selective_normalized_l1`, the L1 loss over the inner region (a
  buffer of ``buffer`` voxels on each side is ignored) divided by the mean true distance
  (paper eq. 3; the equation as printed squares the difference, the text defines a
  normalized L1 / mean-absolute error, which we follow).
* EMBER: :func:`dssim` (``(1 - SSIM) / 2``, Wang et al. 2004, Gaussian window 11, sigma 1.5)
  and :func:`msle` (mean squared log error), summed over scales by :func:`ember_perceptual_loss`
  (eq. 8).
* dm2gal: mean squared error (``torch.nn.functional.mse_loss``); its weighting is in the
  sampling (:func:`bigpaint.train.sampler.inverse_frequency_weights`).
* Cosmic-web GAN: :func:`bce_with_label_noise` (eq. 4 with a fraction of flipped labels) and
  :func:`feature_loss` (eq. 7, the squared distance of discriminator features).

Why hand-written: each is a few tensor lines; SSIM is written out (30 lines) rather than
adding a dependency (pytorch-msssim) for one function.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from types import EllipsisType
from typing import TypedDict, Unpack

import torch
import torch.nn.functional as F

__all__ = [
    "bce_with_label_noise",
    "critic_loss",
    "dssim",
    "ember_perceptual_loss",
    "feature_loss",
    "generator_adversarial_loss",
    "gradient_penalty",
    "msle",
    "selective_normalized_l1",
    "ssim",
]


def critic_loss(c_real: torch.Tensor, c_fake: torch.Tensor) -> torch.Tensor:
    """Wasserstein critic loss ``E[C(fake)] - E[C(real)]`` (minimised by the critic)."""
    return c_fake.mean() - c_real.mean()


def generator_adversarial_loss(c_fake: torch.Tensor) -> torch.Tensor:
    """Generator's Wasserstein loss ``-E[C(fake)]``."""
    return -c_fake.mean()


def gradient_penalty(
    critic: Callable[..., torch.Tensor],
    real: torch.Tensor | Sequence[torch.Tensor],
    fake: torch.Tensor | Sequence[torch.Tensor],
    *,
    weight: float = 10.0,
    eps: torch.Tensor | None = None,
    condition: Sequence[torch.Tensor] = (),
    pack: Callable[..., tuple] | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty ``weight * E[(||grad_x_hat C(x_hat)||_2 - 1)^2]``.

    Parameters
    ----------
    critic : callable
        Called as ``critic(*condition, *x_hat)`` (or ``critic(*pack(condition, x_hat))``).
    real, fake : tensor or sequence of tensors
        Batches (first axis) of true and generated samples; several tensors for multi-input
        critics, interpolated with the same ``eps`` per sample.
    weight : float
        lambda (10 in both papers).
    eps : tensor, optional
        ``(B,)`` interpolation weights; drawn from U[0, 1] (torch's generator) when omitted.
    condition : sequence of tensors
        Inputs shared by real and fake (not interpolated, no gradient).
    pack : callable, optional
        ``pack(condition, x_hat) -> args`` to arrange the critic's arguments.

    Returns
    -------
    torch.Tensor
        Scalar penalty (differentiable w.r.t. the critic's parameters: ``create_graph=True``).
    """
    reals = [real] if isinstance(real, torch.Tensor) else list(real)
    fakes = [fake] if isinstance(fake, torch.Tensor) else list(fake)
    b = reals[0].shape[0]
    if eps is None:
        eps = torch.rand(b, device=reals[0].device, dtype=reals[0].dtype)
    hats = []
    for r, f in zip(reals, fakes, strict=True):
        e = eps.reshape(b, *(1,) * (r.ndim - 1)).to(r.dtype)
        hats.append((e * r.detach() + (1 - e) * f.detach()).requires_grad_(True))
    args = pack(tuple(condition), tuple(hats)) if pack else (*condition, *hats)
    out = critic(*args)
    grads = torch.autograd.grad(out.sum(), hats, create_graph=True)
    sq = sum(g.reshape(b, -1).pow(2).sum(1) for g in grads)
    assert isinstance(sq, torch.Tensor)  # one gradient per (non-empty) hats
    norm = torch.sqrt(sq + 1e-12)
    return weight * ((norm - 1) ** 2).mean()


def selective_normalized_l1(
    pred: torch.Tensor, target: torch.Tensor, buffer: int = 16, ndim: int = 3
) -> torch.Tensor:
    """Protohalo loss (eq. 3): ``sum |g - p| / (n mean(g))`` over the inner region.

    ``buffer`` voxels on each side of every spatial axis are ignored (16 in the paper: the
    inner 96^3 of 128^3 samples). The mean of the truth is taken over the same inner region
    and the batch; a region without any true distance falls back to 1 (plain L1).
    """
    if buffer:
        sl: tuple[EllipsisType | slice, ...] = (Ellipsis, *(slice(buffer, -buffer),) * ndim)
        pred, target = pred[sl], target[sl]
        if pred.numel() == 0:
            raise ValueError(f"buffer {buffer} leaves nothing of a {tuple(pred.shape)} patch")
    gbar = target.mean()
    gbar = torch.where(gbar > 0, gbar, torch.ones_like(gbar))
    return (target - pred).abs().mean() / gbar


@functools.lru_cache(maxsize=8)
def _gauss(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).float()


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    window: int = 11,
    sigma: float = 1.5,
) -> torch.Tensor:
    """Mean structural similarity of 2-D images ``(B, C, H, W)`` (Wang et al. 2004).

    Gaussian-weighted local means, variances and covariance ("valid" windows), constants
    ``(0.01 L)^2`` and ``(0.03 L)^2`` with ``L = data_range``. Images smaller than the window
    use a window of their size.
    """
    c = pred.shape[1]
    size = min(window, pred.shape[-1], pred.shape[-2])
    g = _gauss(size, sigma).to(pred.device, pred.dtype)
    k = (g[:, None] * g[None, :]).expand(c, 1, size, size).contiguous()

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, k, groups=c)

    mu_p, mu_t = blur(pred), blur(target)
    s_pp = blur(pred * pred) - mu_p**2
    s_tt = blur(target * target) - mu_t**2
    s_pt = blur(pred * target) - mu_p * mu_t
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    num = (2 * mu_p * mu_t + c1) * (2 * s_pt + c2)
    den = (mu_p**2 + mu_t**2 + c1) * (s_pp + s_tt + c2)
    return (num / den).mean()


class _SSIMOptions(TypedDict, total=False):
    data_range: float
    window: int
    sigma: float


def dssim(pred: torch.Tensor, target: torch.Tensor, **kwargs: Unpack[_SSIMOptions]) -> torch.Tensor:
    """Structural dissimilarity ``(1 - SSIM) / 2`` (0 for identical images)."""
    return (1 - ssim(pred, target, **kwargs)) / 2


def msle(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared log error ``mean((log(1 + t) - log(1 + p))^2)`` for non-negative maps."""
    return (torch.log1p(target.clamp_min(0)) - torch.log1p(pred.clamp_min(0))).pow(2).mean()


def ember_perceptual_loss(
    preds: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    *,
    alpha: float = 1.0,
    beta: float = 2.0,
    data_range: float = 1.0,
) -> torch.Tensor:
    """EMBER eq. 8: ``alpha sum_scales DSSIM + beta sum_scales MSLE`` (Table 3: U-Net gas 1, 2)."""
    total = preds[0].new_zeros(())
    for p, t in zip(preds, targets, strict=True):
        total = total + alpha * dssim(p, t, data_range=data_range) + beta * msle(p, t)
    return total


def bce_with_label_noise(
    logits: torch.Tensor,
    real: bool,
    *,
    flip: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Binary cross-entropy of discriminator logits against ``real`` labels, a fraction
    ``flip`` of them flipped (the cosmic-web GAN's "small noisy component")."""
    labels = torch.full_like(logits, 1.0 if real else 0.0)
    if flip > 0:
        mask = torch.rand(logits.shape, generator=generator, device=logits.device) < flip
        labels = torch.where(mask, 1 - labels, labels)
    return F.binary_cross_entropy_with_logits(logits, labels)


def feature_loss(features_x: torch.Tensor, features_rec: torch.Tensor) -> torch.Tensor:
    """Eq. 7: ``||TD(x) - TD(x_rec)||^2`` per image, averaged over the batch."""
    return (features_x - features_rec).pow(2).flatten(1).sum(1).mean()
