"""Losses against hand-computed values and external references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bigpaint.train import losses


def test_gradient_penalty_linear_critic_hand_computed():
    """C(x) = w . x has gradient w everywhere: penalty = lambda (||w|| - 1)^2."""
    critic = torch.nn.Linear(4, 1, bias=True)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.5, 1.0, 2.0, 0.5]]))
    real, fake = torch.randn(3, 4), torch.randn(3, 4)
    gp = losses.gradient_penalty(lambda x: critic(x)[:, 0], real, fake, weight=10.0)
    assert float(gp.detach()) == pytest.approx(10 * (math.sqrt(5.5) - 1) ** 2, rel=1e-6)
    # differentiable w.r.t. the critic: d/dw = 2 lambda (||w|| - 1) w / ||w||
    gp.backward()
    w = critic.weight.detach()
    expect = 20 * (w.norm() - 1) * w / w.norm()
    torch.testing.assert_close(critic.weight.grad, expect)


def test_gradient_penalty_quadratic_critic_hand_computed():
    """C(x) = |x|^2 / 2 has gradient x_hat = eps real + (1 - eps) fake."""
    real = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    fake = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    eps = torch.tensor([0.5, 0.3])
    gp = losses.gradient_penalty(lambda x: 0.5 * (x**2).sum(1), real, fake, weight=10.0, eps=eps)
    # sample 1: x_hat = (1.5, 2), |grad| = 2.5 -> 10 * 1.5^2; sample 2: x_hat = (1, 0) -> 0
    assert float(gp.detach()) == pytest.approx((22.5 + 0.0) / 2, rel=1e-6)


def test_gradient_penalty_several_inputs_and_a_condition():
    real = [torch.ones(2, 2), torch.ones(2, 2, 3)]
    fake = [torch.zeros(2, 2), torch.zeros(2, 2, 3)]
    cond = torch.full((2, 1), 3.0)

    def critic(c, a, b):
        return (c[:, 0] * a.sum(1)) + 2 * b.flatten(1).sum(1)

    gp = losses.gradient_penalty(critic, real, fake, weight=1.0, condition=(cond,))
    # grad wrt a: 3 (x2), wrt b: 2 (x6): |grad|^2 = 18 + 24
    assert float(gp.detach()) == pytest.approx((math.sqrt(42) - 1) ** 2, rel=1e-6)


def test_wasserstein_losses():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0])
    assert float(losses.critic_loss(real, fake)) == pytest.approx(-1.0 - 2.0)
    assert float(losses.generator_adversarial_loss(fake)) == pytest.approx(1.0)


def test_selective_normalized_l1():
    g = torch.rand(2, 1, 8, 8, 8) + 0.5
    p = torch.rand(2, 1, 8, 8, 8)
    inner = (slice(None), slice(None), slice(2, 6), slice(2, 6), slice(2, 6))
    expect = (g[inner] - p[inner]).abs().mean() / g[inner].mean()
    assert float(losses.selective_normalized_l1(p, g, buffer=2)) == pytest.approx(
        float(expect), rel=1e-6
    )
    q = p.clone()
    q[..., 0, :, :] += 100  # inside the buffer: ignored
    assert float(losses.selective_normalized_l1(q, g, buffer=2)) == pytest.approx(
        float(expect), rel=1e-6
    )
    with pytest.raises(ValueError, match="leaves nothing"):
        losses.selective_normalized_l1(p, g, buffer=4)


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.random((40, 36))
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1)
    ref = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    ours = losses.ssim(
        torch.as_tensor(b)[None, None], torch.as_tensor(a)[None, None], data_range=1.0
    )
    assert float(ours) == pytest.approx(ref, rel=1e-6)
    assert float(
        losses.dssim(torch.as_tensor(a)[None, None], torch.as_tensor(a)[None, None])
    ) == pytest.approx(0, abs=1e-9)
    assert float(
        losses.dssim(torch.as_tensor(b)[None, None], torch.as_tensor(a)[None, None])
    ) == pytest.approx((1 - ref) / 2, rel=1e-5)


def test_msle_and_perceptual_loss():
    t = torch.tensor([[[[0.0, 1.0], [3.0, 7.0]]]])
    p = torch.tensor([[[[1.0, 1.0], [1.0, 3.0]]]])
    expect = (
        (math.log(1) - math.log(2)) ** 2
        + 0
        + (math.log(4) - math.log(2)) ** 2
        + (math.log(8) - math.log(4)) ** 2
    ) / 4
    assert float(losses.msle(p, t)) == pytest.approx(expect)
    total = losses.ember_perceptual_loss([p, p], [t, t], alpha=0.0, beta=2.0)
    assert float(total) == pytest.approx(4 * expect)


def test_bce_label_noise_and_feature_loss():
    logits = torch.tensor([0.3, -1.2, 2.0])
    assert float(losses.bce_with_label_noise(logits, True, flip=0.0)) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(logits, torch.ones(3)))
    )
    g = torch.Generator().manual_seed(0)
    flipped = losses.bce_with_label_noise(logits, True, flip=0.999999, generator=g)
    assert float(flipped) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(logits, torch.zeros(3)))
    )
    a, b = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    assert float(losses.feature_loss(a, b)) == pytest.approx((5 + 9) / 2)
