"""Networks: shapes, per-sample independence, embeddings, class labels with the null class."""
import math

import pytest
import torch
from torch import nn

from sdelab.nets import FourierEmbedding, MLPScore, SinusoidalEmbedding, TimeEmbedding, UNet


def _randomize(net: nn.Module) -> nn.Module:
    """Undo the zero-initialised output convolutions so every input actually reaches the output."""
    torch.manual_seed(0)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.reset_parameters()
    return net


def test_sinusoidal_matches_formula_and_separates_times():
    emb = SinusoidalEmbedding(16, scale=1000.0, max_period=10_000.0)
    t = torch.tensor([0.0, 0.25, 1.0])
    e = emb(t)
    assert e.shape == (3, 16)
    k = torch.arange(8, dtype=torch.float64)
    w = 10_000.0 ** (-k / 7)
    arg = 1000 * t.double()[:, None] * w
    torch.testing.assert_close(e.double(), torch.cat([arg.sin(), arg.cos()], 1), atol=2e-4, rtol=0)
    ts = torch.linspace(0, 1, 1001)
    d = torch.cdist(SinusoidalEmbedding(64)(ts), SinusoidalEmbedding(64)(ts))
    d.fill_diagonal_(float("inf"))
    assert d.min() > 1e-3  # 1001 distinct times on a 1e-3 grid give 1001 distinct embeddings


def test_fourier_embedding_formula_distinct_and_reproducible():
    a = FourierEmbedding(32, scale=16.0, generator=torch.Generator().manual_seed(0))
    b = FourierEmbedding(32, scale=16.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.W, b.W) and "W" in a.state_dict()  # saved with the model
    t = torch.tensor([0.3, 0.7])
    arg = 2 * math.pi * t[:, None] * a.W[None]
    torch.testing.assert_close(a(t), torch.cat([arg.sin(), arg.cos()], 1))
    ts = torch.linspace(0, 1, 1001)
    d = torch.cdist(a(ts), a(ts))
    d.fill_diagonal_(float("inf"))
    assert d.min() > 1e-3


@pytest.mark.parametrize("bad", [3, 0, 5.5])
def test_embedding_rejects_bad_dim(bad):
    with pytest.raises(ValueError, match="dim"):
        SinusoidalEmbedding(bad)
    with pytest.raises(ValueError, match="embedding must be one of"):
        TimeEmbedding(16, kind="learned")


def test_mlp_shapes_scalar_time_and_independence():
    net = _randomize(MLPScore(dim=2, hidden=32, depth=2, emb_dim=16))
    x, t = torch.randn(5, 2), torch.rand(5)
    out = net(x, t)
    assert out.shape == (5, 2)
    torch.testing.assert_close(net(x[:1], t[:1]), out[:1])  # a sample does not see the others
    torch.testing.assert_close(net(x, 0.5), net(x, torch.full((5,), 0.5)))
    assert not torch.allclose(net(x, torch.zeros(5)), net(x, torch.ones(5)))  # t matters
    assert MLPScore(dim=3)(torch.randn(4, 3), torch.rand(4)).shape == (4, 3)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\)"):
        net(torch.randn(5, 3), t)
    with pytest.raises(ValueError, match="t must be a scalar or have shape"):
        net(x, torch.rand(4))
    with pytest.raises(ValueError, match="num_classes"):
        net(x, t, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="depth"):
        MLPScore(depth=0)


def test_unet_shapes_default_and_small():
    x, t = torch.randn(2, 1, 28, 28), torch.rand(2)
    net = UNet()
    assert net.channels == (32, 64, 128)
    assert net(x, t).shape == (2, 1, 28, 28)
    small = _randomize(UNet(base=8))
    assert small.channels == (8, 16, 32)
    out = small(x, t)
    assert out.shape == (2, 1, 28, 28) and torch.isfinite(out).all()
    torch.testing.assert_close(small(x[1:], t[1:]), out[1:], atol=1e-5, rtol=1e-5)  # GroupNorm is per sample
    assert not torch.allclose(small(x, torch.zeros(2)), small(x, torch.ones(2)))
    assert UNet(in_channels=3, channels=(8, 16), num_res_blocks=2)(torch.randn(1, 3, 16, 16), 0.5).shape == (1, 3, 16, 16)


def test_unet_starts_at_zero_output():
    # the output convolution is zero-initialised: an untrained eps-model predicts eps = 0 (score 0)
    assert torch.equal(UNet(base=8)(torch.randn(2, 1, 28, 28), torch.rand(2)), torch.zeros(2, 1, 28, 28))


def test_unet_class_conditional_null_label():
    net = _randomize(UNet(base=8, num_classes=10)).eval()
    x, t = torch.randn(3, 1, 28, 28), torch.rand(3)
    null = net(x, t)
    torch.testing.assert_close(net(x, t, torch.full((3,), -1)), null)
    torch.testing.assert_close(net(x, t, torch.full((3,), 10)), null)
    cond = net(x, t, torch.tensor([0, 1, 2]))
    assert cond.shape == x.shape and not torch.allclose(cond, null)
    assert not torch.allclose(net(x, t, torch.tensor([3, 3, 3])), cond)
    with pytest.raises(ValueError, match=r"y must hold class labels in 0..9"):
        net(x, t, torch.tensor([0, 11, 2]))
    with pytest.raises(ValueError, match="y must be an integer tensor"):
        net(x, t, torch.tensor([0.0, 1.0, 2.0]))


def test_mlp_class_conditional():
    net = _randomize(MLPScore(hidden=32, num_classes=3))
    x, t = torch.randn(4, 2), torch.rand(4)
    torch.testing.assert_close(net(x, t, torch.full((4,), -1)), net(x, t))
    assert not torch.allclose(net(x, t, torch.zeros(4, dtype=torch.long)), net(x, t))


def test_unet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="divisible by 4"):
        UNet(base=8)(torch.randn(1, 1, 30, 30), torch.rand(1))
    with pytest.raises(ValueError, match=r"shape \(B, 1, H, W\)"):
        UNet(base=8)(torch.randn(1, 28, 28), torch.rand(1))
    with pytest.raises(ValueError, match="channels must be"):
        UNet(channels=(12, 24))
    with pytest.raises(ValueError, match="either channels or base"):
        UNet(channels=(8, 16), base=8)
    with pytest.raises(ValueError, match="dropout"):
        UNet(base=8, dropout=1.0)
