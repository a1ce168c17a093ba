"""Per family: output shapes, parameter counts, derived context, and that training lowers the loss."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bigpaint.errors import ShapeError
from bigpaint.painters import (
    DM2GalConfig,
    EmberUNetConfig,
    HaloPainterConfig,
    ProtohaloUNetConfig,
    build_painter,
    families,
    paint_array,
)
from bigpaint.painters.cosmic_web_gan import DCGANDiscriminator
from bigpaint.painters.ember import EmberCritic, EmberCriticConfig, downsample_targets
from bigpaint.painters.halo_painter import HaloCritic, HaloCriticConfig
from bigpaint.train import losses

from .conftest import SMALL, small


def _conv(cin: int, cout: int, k: int, nd: int, bias: bool = True) -> int:
    return cin * cout * k**nd + (cout if bias else 0)


def test_registry_has_the_five_families():
    assert families() == sorted(
        ["cosmic-web-gan", "dm2gal", "ember", "halo-painter", "protohalo-unet"]
    )


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("n", [9, 17, 24, 30])
def test_halo_painter_valid_shapes(n):
    p = small("halo-painter").eval()
    assert p.mode == "valid" and p.context == 4
    y = p(torch.zeros(2, 1, n, n + 1, n + 2))
    assert tuple(y.shape) == (2, 1, n - 8, n - 7, n - 6)
    assert p.output_shape((n, n + 1, n + 2)) == (n - 8, n - 7, n - 6)


def test_halo_painter_paper_patch_and_bins():
    p = build_painter("halo-painter", {"out_channels": 4})
    assert tuple(p(torch.zeros(1, 1, 58, 58, 58)).shape) == (1, 4, 50, 50, 50)
    with pytest.raises(ShapeError, match="at least 9 voxels"):
        p.check_input_shape((8, 9, 9))


def test_halo_critic_paper_shapes():
    c = HaloCritic(HaloCriticConfig())
    feats = c.features(torch.zeros(1, 1, 50, 50, 50))
    assert tuple(feats.shape) == (1, 64, 8, 8, 8)  # Fig. 6: 64 x 8^3 = 32768 into the linear unit
    assert c.linear.in_features == 32768
    assert tuple(c(torch.zeros(3, 1, 50, 50, 50)).shape) == (3,)


@pytest.mark.parametrize("n", [8, 12, 16])
def test_protohalo_same_shapes(n):
    p = small("protohalo-unet").eval()
    assert p.alignment == 4
    assert tuple(p(torch.zeros(1, 1, n, n, 2 * n)).shape) == (1, 1, n, n, 2 * n)
    with pytest.raises(ShapeError, match="divisible by 4"):
        p.check_input_shape((n + 2, n, n))


@pytest.mark.parametrize("n", [65, 66, 70])
def test_dm2gal_dense_shapes(n):
    p = small("dm2gal").eval()
    assert p.mode == "valid" and p.context == 32
    with torch.no_grad():
        assert tuple(p.infer(torch.zeros(1, 2, n, n, n + 1)).shape) == (
            1,
            1,
            n - 64,
            n - 64,
            n - 63,
        )
        assert tuple(p(torch.zeros(3, 2, 65, 65, 65)).shape) == (3, 1, 1, 1, 1)
    with pytest.raises(ShapeError, match="65"):
        p(torch.zeros(1, 2, 66, 66, 66))


@pytest.mark.parametrize("kernels", [(7, 7, 5), (7, 5, 3)])
def test_dm2gal_dense_form_equals_per_patch_evaluation(kernels):
    """The fully convolutional form at voxel i equals the patch network on the patch whose
    centre is input voxel i + context (eval mode, batch-norm running statistics)."""
    patch = 65 if kernels == (7, 7, 5) else 37
    torch.manual_seed(11)
    p = build_painter(
        "dm2gal", {"channels": 2, "hidden": 8, "patch": patch, "kernels": list(kernels)}
    )
    p = p.double()
    p.train()
    with torch.no_grad():  # give batch norm non-trivial running statistics
        for _ in range(3):
            p(torch.randn(2, 2, patch, patch, patch, dtype=torch.float64) * 2 + 0.5)
    p.eval()
    ctx = p.context
    assert 2 * ctx + 1 == patch
    shape = (patch + 7, patch + 5, patch + 4)
    x = torch.randn(1, 2, *shape, dtype=torch.float64)
    with torch.no_grad():
        dense = p.infer(x)
        assert tuple(dense.shape[2:]) == tuple(n - 2 * ctx for n in shape)
        rng = np.random.default_rng(0)
        for _ in range(6):
            i, j, k = (int(rng.integers(n - 2 * ctx)) for n in shape)
            one = p(x[:, :, i : i + patch, j : j + patch, k : k + patch])[0, :, 0, 0, 0]
            torch.testing.assert_close(dense[0, :, i, j, k], one, rtol=1e-10, atol=1e-12)


def test_dm2gal_rejects_kernels_that_do_not_tile_the_patch():
    with pytest.raises(ValueError, match="does not tile"):
        DM2GalConfig(kernels=(5, 5, 5))


@pytest.mark.parametrize("n", [8, 12, 20])
def test_ember_multiscale_shapes(n):
    p = small("ember")
    outs = p.forward_multiscale(torch.zeros(2, 1, n, 2 * n))
    assert [tuple(o.shape) for o in outs] == [(2, 1, n // 2, n), (2, 1, n, 2 * n)]
    assert tuple(p(torch.zeros(1, 1, n, n)).shape) == (1, 1, n, n)
    assert p.noise_shapes((n, n), batch=2) == [(2, 1, n // 2, n // 2), (2, 1, n, n)]


def test_ember_critic_reads_every_scale():
    g = small("ember")
    c = EmberCritic(EmberCriticConfig(levels=2, image=16, filters=2))
    x = torch.randn(4, 1, 16, 16)
    assert tuple(c(x, g.forward_multiscale(x)).shape) == (4,)
    assert tuple(c(x, downsample_targets(torch.rand(4, 1, 16, 16), 2)).shape) == (4,)


def test_cosmic_web_shapes():
    p = small("cosmic-web-gan").eval()
    assert p.mode == "tile" and p.tile == 32 and p.context == 0
    assert tuple(p.encode(torch.zeros(2, 1, 32, 32)).shape) == (2, 100)
    assert tuple(p.generate(torch.zeros(2, 100)).shape) == (2, 1, 32, 32)
    assert tuple(p(torch.zeros(2, 1, 32, 32)).shape) == (2, 1, 32, 32)
    with pytest.raises(ShapeError, match="32"):
        p.check_input_shape((64, 64))


def test_cosmic_web_paper_sizes():
    p = build_painter("cosmic-web-gan")
    d = DCGANDiscriminator(p.config)
    assert tuple(d.features(torch.zeros(1, 1, 128, 128)).shape) == (1, 8192)
    assert d.head.in_features == 8192 and p.encoder.head.out_features == 100
    with torch.no_grad():
        img = p.generate(torch.randn(2, 100))
    assert tuple(img.shape) == (2, 1, 128, 128) and float(img.abs().max()) <= 1


# ---------------------------------------------------------------- parameter counts


def test_halo_painter_parameter_count_against_paper():
    """Paper: 31,930. Ours: 32,031 with a bias on every convolution and Fig. 3's projection
    (the module docstring explains the 101); the weights alone are 31,870."""
    p = build_painter("halo-painter")
    assert p.parameter_count() == 32031
    weights = sum(v.numel() for k, v in p.named_parameters() if k.endswith("weight"))
    assert weights == 31870
    f = 10
    block1 = _conv(1, f, 1, 3) * 3 + _conv(f, f, 3, 3) + _conv(f, f, 5, 3) + _conv(1, 3 * f, 1, 3)
    block2 = _conv(3 * f, f, 1, 3) * 3 + _conv(f, f, 3, 3) + _conv(f, f, 5, 3)
    head = _conv(3 * f, f, 1, 3) + 2 * _conv(f, f, 1, 3) + _conv(f, 1, 1, 3)
    assert block1 + block2 + head == 32031
    assert abs(32031 - 31930) / 31930 < 0.004
    assert build_painter("halo-painter", {"out_channels": 4}).parameter_count() == 32031 - 11 + 44


def test_protohalo_parameter_count_paper_size():
    """Paper (L=5, n_f=12): "14.5 10^6"; constructed, not run."""
    p = build_painter("protohalo-unet", ProtohaloUNetConfig(levels=5, filters=12))
    n = p.parameter_count()
    assert n == 14_590_741
    assert abs(n - 14.5e6) / 14.5e6 < 0.01
    # independent count from the architecture as described
    f, count, cin = 12, 0, 1
    for lv in range(5):
        count += _conv(cin, f * 2**lv, 3, 3) + _conv(f * 2**lv, f * 2**lv, 3, 3)
        cin = f * 2**lv
    count += _conv(cin, f * 32, 3, 3) + _conv(f * 32, f * 32, 3, 3)
    cin = f * 32
    for lv in reversed(range(5)):
        c = f * 2**lv
        count += _conv(cin, c, 3, 3) + _conv(2 * c, c, 3, 3) + _conv(c, c, 3, 3)
        cin = c
    assert n == count + _conv(f, 1, 1, 3)
    # Table 1: the transposed convolutions hold 372 filters in total
    assert sum(u.out_channels for u in p.upsamples) == 372


def test_dm2gal_parameter_count():
    p = build_painter("dm2gal", {"channels": 3, "hidden": 16})
    c = 3
    widths = [2, c, 2 * c, 2 * c, 4 * c, 4 * c, 8 * c]
    kernels = [7, 3, 7, 3, 5, 3]
    count = sum(
        _conv(a, b, k, 3) + 2 * b
        for (a, b), k in zip(itertools.pairwise(widths), kernels, strict=True)
    )
    count += (8 * c * 27 + 1) * 16 + (16 + 1) * 1
    assert p.parameter_count() == count


def test_ember_parameter_count():
    cfg = EmberUNetConfig(levels=3, filters=4, noise=True)
    p = build_painter("ember", cfg)
    w = [4, 8, 16, 32]
    count = _conv(1, 4, 3, 2) + _conv(4, 4, 3, 2)
    for lv in range(1, 4):
        count += _conv(w[lv - 1], w[lv], 3, 2) + 2 * _conv(w[lv], w[lv], 3, 2)
    for lv in reversed(range(3)):
        count += _conv(w[lv + 1], w[lv], 3, 2) + w[lv]  # upsampling conv + noise weights
        count += _conv(2 * w[lv], w[lv], 3, 2) + _conv(w[lv], w[lv], 3, 2) + _conv(w[lv], 1, 1, 2)
    assert p.parameter_count() == count
    no_noise = build_painter("ember", cfg.model_copy(update={"noise": False}))
    assert no_noise.parameter_count() == count - (4 + 8 + 16)


def test_cosmic_web_parameter_count():
    p = build_painter("cosmic-web-gan")
    gen = 100 * 8192 + 8192 + 2 * 512
    widths = [512, 256, 128, 64, 32, 1]
    for a, b in itertools.pairwise(widths):
        gen += a * b * 25 + b + (2 * b if b != 1 else 0)
    enc = 0
    cin = 1
    for i, c in enumerate([32, 64, 128, 256, 512]):
        enc += cin * c * 25 + c + (2 * c if i else 0)
        cin = c
    enc += 8192 * 100 + 100
    assert sum(q.numel() for q in p.generator.parameters()) == gen
    assert sum(q.numel() for q in p.encoder.parameters()) == enc
    assert p.parameter_count() == gen + enc


# ---------------------------------------------------------------- context


def _perturbed(run, x: torch.Tensor, index: tuple[int, ...], amount: float = 1e3) -> torch.Tensor:
    y = x.clone()
    y[(0, 0, *index)] += amount
    return run(y)


def _alive(p) -> None:
    """Shift the output biases up so the output ReLU passes every change (any weights are a
    valid architecture; a dead output voxel would hide a dependence). The protohalo U-Net's
    output is clipped to [0, 1]: its output layer is scaled to stay inside."""
    with torch.no_grad():
        for name, q in p.named_parameters():
            if p.family == "protohalo-unet" and name.startswith("out."):
                q.fill_(0.5) if name.endswith("bias") else q.mul_(0.1)
            elif name in ("head.3.bias", "out.bias") or name.startswith("outputs."):
                if name.endswith("bias"):
                    q.fill_(5.0)


@pytest.mark.parametrize("family", ["halo-painter", "dm2gal"])
def test_valid_context_by_perturbation(family):
    """Output voxel i sees input voxels i .. i + 2 context: perturbations at distance
    context + 1 from the centre leave it unchanged, one at distance context changes it."""
    p = small(family).eval()
    _alive(p)
    ctx = p.context
    n = 2 * ctx + 3
    x = torch.randn(1, p.in_channels, n, n, n)
    run = torch.no_grad()(p.infer)
    base = run(x)[0, :, 1, 1, 1]  # output voxel 1 <-> input voxel 1 + ctx
    c = 1 + ctx
    far = x.clone()
    for axis in range(3):
        for sign in (-1, 1):
            idx = [c, c, c]
            idx[axis] = c + sign * (ctx + 1)
            far[(0, 0, *idx)] += 1e3
    far[0, :, c + ctx + 1, c + ctx + 1, c - ctx - 1] += 1e3  # a corner beyond the cube
    assert torch.equal(run(far)[0, :, 1, 1, 1], base)
    for idx in [(c - ctx, c, c), (c, c + ctx, c), (c - ctx, c + ctx, c + ctx)]:
        assert not torch.equal(_perturbed(run, x, idx)[0, :, 1, 1, 1], base), idx


@pytest.mark.parametrize("family", ["protohalo-unet", "ember"])
def test_same_context_by_perturbation(family):
    """U-Nets: the aligned centre block does not change for a perturbation context + 1 voxels
    beyond it on any side, and does for one exactly context voxels beyond (one side at least)."""
    p = small(family).eval()
    _alive(p)
    torch.manual_seed(1)
    ctx, a, nd = p.context, p.alignment, p.ndim
    n = -(-(2 * ctx + 2 * a + 2) // a) * a
    x = torch.randn(1, 1, *(n,) * nd)
    noise = [torch.zeros(s) for s in p.noise_shapes((n,) * nd)] if family == "ember" else None

    def run(t):
        with torch.no_grad():
            return p.forward_multiscale(t, noise)[-1] if noise is not None else p(t)

    base = run(x)
    lo = (n // 2) // a * a
    block = (0, slice(None), *(slice(lo, lo + a),) * nd)
    mid = [lo] * nd
    for axis in range(nd):
        for pos in (lo - ctx - 1, lo + a - 1 + ctx + 1):
            idx = list(mid)
            idx[axis] = pos
            assert torch.equal(_perturbed(run, x, tuple(idx))[block], base[block])
    edge = []
    for pos in (lo - ctx, lo + a - 1 + ctx):
        idx = list(mid)
        idx[0] = pos
        edge.append(not torch.equal(_perturbed(run, x, tuple(idx))[block], base[block]))
    assert any(edge)


def test_context_is_derived_not_typed():
    """Contexts follow the architecture: deeper U-Nets and wider blocks need more."""
    halo = [build_painter("halo-painter", HaloPainterConfig(blocks=b)).context for b in (1, 2, 3)]
    assert halo == [2, 4, 6]
    unet = [
        build_painter("protohalo-unet", ProtohaloUNetConfig(levels=lv, filters=1)).context
        for lv in (1, 2, 3)
    ]
    assert unet[0] < unet[1] < unet[2]
    dm = build_painter("dm2gal", DM2GalConfig(patch=73, kernels=(7, 7, 7)))
    assert dm.context == 36


def test_full_context_makes_tiled_painting_seam_free():
    """Painting in tiles with the derived context equals painting the whole periodic array;
    a smaller context leaves seams (so the comparison can fail)."""
    p = small("protohalo-unet").double()
    _alive(p)
    x = np.random.default_rng(3).standard_normal((1, 16, 16, 16))
    whole = paint_array(p, x)
    tiled = paint_array(p, x, tile=8)
    np.testing.assert_allclose(tiled, whole, rtol=1e-6, atol=1e-6)
    seams = paint_array(p, x, tile=8, context=4)
    err_tiled, err_seams = np.abs(tiled - whole).max(), np.abs(seams - whole).max()
    assert err_seams > 1e-5 and err_seams > 20 * err_tiled


def test_valid_painter_tiles_equal_whole():
    p = small("halo-painter")
    x = np.random.default_rng(4).standard_normal((20, 20, 20)).astype("f4")
    np.testing.assert_allclose(paint_array(p, x, tile=7), paint_array(p, x), rtol=1e-5, atol=1e-6)


def test_tile_painter_paints_each_tile():
    p = small("cosmic-web-gan").eval()
    x = np.random.default_rng(5).random((64, 32)).astype("f4")
    out = paint_array(p, x)
    np.testing.assert_allclose(out[:, 32:], p.paint(x[None, 32:]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ShapeError, match="multiple"):
        paint_array(p, x[:40])


# ---------------------------------------------------------------- a few steps lower the loss


def _steps(params, loss_fn, n: int = 15, lr: float = 3e-3) -> tuple[float, float]:
    """Loss before the first and after the last of ``n`` Adam steps on a fixed batch."""
    opt = torch.optim.Adam(params, lr=lr)
    first = None
    for _ in range(n):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
    with torch.no_grad():
        final = float(loss_fn())
    return first, final


def test_halo_painter_learns():
    p = small("halo-painter")
    x = torch.randn(2, 1, 16, 16, 16)
    y = F.relu(x[:, :, 4:-4, 4:-4, 4:-4] + F.avg_pool3d(x, 9, stride=1))  # local, non-linear
    first, last = _steps(p.parameters(), lambda: F.mse_loss(p(x), y))
    assert last < 0.8 * first


def test_halo_critic_learns_to_separate():
    c = HaloCritic(HaloCriticConfig(patch=20))
    real, fake = torch.rand(4, 1, 20, 20, 20) * 2, torch.rand(4, 1, 20, 20, 20)
    first, last = _steps(c.parameters(), lambda: losses.critic_loss(c(real), c(fake)), lr=1e-3)
    assert last < first - 0.05


def test_protohalo_learns():
    p = small("protohalo-unet", dropout=0.0)
    x = torch.randn(2, 1, 16, 16, 16)
    y = F.avg_pool3d(F.relu(x), 3, stride=1, padding=1)
    first, last = _steps(
        p.parameters(), lambda: losses.selective_normalized_l1(p(x), y, buffer=2), lr=1e-2
    )
    assert last < 0.8 * first


def test_protohalo_dead_output_recovers_and_paints_relu():
    """An output driven below zero everywhere still learns (straight-through ReLU gradient
    in training), and training and painting give the same values."""
    p = small("protohalo-unet", dropout=0.0)
    with torch.no_grad():
        p.out.bias.fill_(-0.5)  # every output clipped: plain ReLU has no gradient here
    x = torch.randn(2, 1, 16, 16, 16)
    y = F.avg_pool3d(F.relu(x), 3, stride=1, padding=1)
    assert torch.equal(p.train()(x), p.eval()(x))
    assert float(p.eval()(x).abs().max()) == 0.0
    with torch.no_grad():
        p.out.bias.fill_(5.0)
        assert float(p(x).min()) == float(p(x).max()) == 1.0  # the target's range: [0, 1]
        p.out.bias.fill_(-0.5)
    p.train()
    losses.selective_normalized_l1(p(x), y, buffer=2).backward()
    assert float(p.out.bias.grad.abs()) > 0
    first, last = _steps(
        p.parameters(), lambda: losses.selective_normalized_l1(p(x), y, buffer=2), n=40, lr=3e-2
    )
    assert last < 0.5 * first


def test_dm2gal_learns():
    p = small("dm2gal")
    x = torch.randn(2, 2, 65, 65, 65)
    y = x[:, :1, 31:34, 31:34, 31:34].mean((2, 3, 4), keepdim=True) * 3
    first, last = _steps(p.parameters(), lambda: F.mse_loss(p(x), y), n=6, lr=1e-2)
    assert last < first


def test_ember_learns():
    p = small("ember", noise=False)
    x = torch.randn(2, 1, 16, 16)
    y = F.relu(x) * 0.5
    ts = downsample_targets(y, 2)
    first, last = _steps(
        p.parameters(), lambda: losses.ember_perceptual_loss(p.forward_multiscale(x), ts), lr=1e-2
    )
    assert last < 0.8 * first


def test_cosmic_web_encoder_learns_through_frozen_generator():
    p = small("cosmic-web-gan").eval()
    d = DCGANDiscriminator(p.config).eval()
    for q in list(p.generator.parameters()) + list(d.parameters()):
        q.requires_grad_(False)
    x = torch.tanh(torch.randn(4, 1, 32, 32))
    first, last = _steps(
        p.encoder.parameters(),
        lambda: losses.feature_loss(d.features(x), d.features(p(x))),
        lr=1e-3,
    )
    assert last < first
    assert all(q.grad is None for q in p.generator.parameters())


@pytest.mark.parametrize("family", sorted(SMALL))
def test_paint_applies_and_inverts_normalizations(family):
    p = small(family).eval()
    nd = p.ndim
    n = {"valid": 2 * p.context + 3, "same": 2 * p.alignment, "tile": p.tile or 0}[p.mode]
    x = np.random.default_rng(0).random((p.in_channels, *(n,) * nd)).astype("f4") * 5
    p.set_normalization(
        {"kind": "affine", "shift": 1.0, "scale": 2.0},
        {"kind": "ember", "k": 2.0, "x0": 3.0, "q": 1.0},
    )
    with torch.no_grad():
        net = p.infer(torch.as_tensor((x - 1.0) / 2.0)[None])[0].numpy()
    expected = 3.0 * np.clip(np.exp(2.0 * net) - 1, 0, None)
    np.testing.assert_allclose(p.paint(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", sorted(SMALL))
def test_prepare_inference_keeps_the_painted_values(family):
    """The inference layout (channels-last weights for the U-Net on CPU) changes speed, not
    results: the prepared painter paints what the training-layout painter paints."""
    p = small(family).eval()
    q = small(family)
    q.load_state_dict(p.state_dict())
    q.prepare_inference()
    assert not q.training and not any(t.requires_grad for t in q.parameters())
    channels_last = type(q).cpu_channels_last and q.ndim == 3
    assert getattr(q, "_channels_last", False) == channels_last
    if channels_last:
        w = next(t for t in q.parameters() if t.dim() == 5 and t.shape[1] > 1)
        assert w.is_contiguous(memory_format=torch.channels_last_3d) and not w.is_contiguous()
    nd = p.ndim
    n = {"valid": 2 * p.context + 3, "same": 2 * p.alignment, "tile": p.tile or 0}[p.mode]
    x = np.random.default_rng(1).standard_normal((p.in_channels, *(n,) * nd)).astype("f4")
    np.testing.assert_allclose(
        q.paint(x), p.paint(x), rtol=1e-4, atol=1e-5 * np.abs(p.paint(x)).max()
    )
