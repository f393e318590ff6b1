"""Tests of the VUNet building blocks against spec §2 (weight norm, DDI, RB, DOWN, UP, TF s2d order)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vunet_core.blocks import (
    Down,
    ResBlock,
    Up,
    WNConv2d,
    conv3,
    d2s_tf,
    ddi_pass,
    elu_dropout,
    merge_groups,
    nin,
    s2d_tf,
    split_groups,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_s2d_tf_channel_order_is_tf() -> None:
    x = torch.randn(2, 3, 6, 8)
    y = s2d_tf(x)
    assert y.shape == (2, 12, 3, 4)
    c_in = 3
    for dy in range(2):
        for dx in range(2):
            for c in range(c_in):
                # spec §2.8: out[(2dy+dx)*C + c][i, j] = in[c][2i+dy, 2j+dx]
                assert torch.equal(y[:, (2 * dy + dx) * c_in + c], x[:, c, dy::2, dx::2])
    assert torch.equal(d2s_tf(y), x)


def test_split_groups_are_the_strided_sub_lattices() -> None:
    x = torch.randn(2, 5, 8, 8)
    groups = split_groups(x)
    assert len(groups) == 4
    for k, g in enumerate(groups):
        assert torch.equal(g, x[:, :, k // 2 :: 2, k % 2 :: 2])
    assert torch.equal(merge_groups(groups), x)
    # plain pixel_unshuffle + chunk is a different split (pitfall 14)
    assert not torch.equal(torch.chunk(F.pixel_unshuffle(x, 2), 4, dim=1)[1], groups[1])


def test_wnconv_init_and_formula() -> None:
    layer = WNConv2d(64, 32, kernel_size=3)
    assert abs(float(layer.v.detach().std()) - 0.05) < 0.005
    assert torch.equal(layer.g, torch.ones(32)) and torch.equal(layer.b, torch.zeros(32))
    with torch.no_grad():
        layer.g.uniform_(0.5, 2.0)
        layer.b.normal_()
    x = torch.randn(2, 64, 5, 5)
    norm = layer.v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)  # per output filter over (in, kh, kw)
    expected = layer.g.view(1, -1, 1, 1) * F.conv2d(x, layer.v / norm, padding=1) + layer.b.view(1, -1, 1, 1)
    torch.testing.assert_close(layer(x), expected, rtol=1e-4, atol=1e-5)
    # the effective filters have norm g
    torch.testing.assert_close(layer.weight(layer.g).flatten(1).norm(dim=1), layer.g)


@pytest.mark.parametrize("side", [1, 2])  # 1x1 and 2x2 maps: <= MATMUL_MAX_PIXELS
def test_tiny_maps_use_the_same_conv(side: int) -> None:
    # maps of <= MATMUL_MAX_PIXELS pixels take the unfold + matmul path: same function, same gradients
    layer = conv3(16, 8)
    x = torch.randn(3, 16, side, side, requires_grad=True)
    w = layer.weight(layer.g)
    expected = F.conv2d(x, w, layer.b, padding=1)
    y = layer(x)
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # without autograd the layer takes oneDNN's conv: the same function
        torch.testing.assert_close(layer(x), y.detach(), rtol=1e-4, atol=1e-5)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, layer.v), g)
    grads_ref = torch.autograd.grad(expected, (x, layer.v), g)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_nin_is_weight_normed_dense_over_channels() -> None:
    layer = nin(6, 4)
    x = torch.randn(3, 6, 2, 2)
    v = layer.v.view(4, 6)
    dense = (x.permute(0, 2, 3, 1) @ (v / v.norm(dim=1, keepdim=True)).t()).permute(0, 3, 1, 2)
    torch.testing.assert_close(layer(x), dense, rtol=1e-5, atol=1e-6)


def test_down_uses_tf_same_alignment() -> None:
    down = Down(2, 3)
    x = torch.randn(1, 2, 8, 8)
    y = down(x)
    assert y.shape == (1, 3, 4, 4)
    w = down.weight(down.g).detach()
    # TF SAME, stride 2, even size: output (i, j) reads rows 2i..2i+2, cols 2j..2j+2 (zero beyond the end)
    padded = F.pad(x, (0, 1, 0, 1))
    manual = torch.einsum("bchw,ochw->bo", padded[:, :, 2:5, 4:7], w) + down.b.detach()
    torch.testing.assert_close(y[:, :, 1, 2], manual, rtol=1e-4, atol=1e-5)
    shifted = F.conv2d(x, w, down.b.detach(), stride=2, padding=1)  # PyTorch's symmetric padding
    assert not torch.allclose(y, shifted)


@pytest.mark.parametrize("side", [2, 4])
def test_up_is_d2s_tf_of_conv(side: int) -> None:
    up = Up(6, 5)
    x = torch.randn(2, 6, side, side)  # 2x2 takes the matmul path
    expected = d2s_tf(up.conv(x))  # reference definition, spec §2.7
    torch.testing.assert_close(up(x), expected, rtol=1e-5, atol=1e-6)
    assert up(x).shape == (2, 5, 2 * side, 2 * side)


def test_elu_dropout_without_dropout_is_elu() -> None:
    x = torch.linspace(-6, 6, 1001, dtype=torch.float64).view(1, 1, 7, 143).requires_grad_()
    torch.testing.assert_close(elu_dropout(x), F.elu(x), rtol=0, atol=1e-7)
    assert torch.autograd.gradcheck(lambda t: elu_dropout(t, 0.0), (x,))


def test_elu_dropout_drops_and_rescales() -> None:
    x = torch.full((4, 8, 32, 32), 2.0, requires_grad=True)
    y = elu_dropout(x, 0.25)
    kept = y != 0
    assert abs(float(kept.float().mean()) - 0.75) < 0.02
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 2.0 / 0.75))
    y.sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.75))
    assert torch.all(x.grad[~kept] == 0)


def test_resblock_matches_spec_formula() -> None:
    block = ResBlock(4, skip_channels=6, drop_prob=0.0)
    x, a = torch.randn(2, 4, 5, 5), torch.randn(2, 6, 5, 5)
    r = torch.cat([x, block.skip(F.elu(a))], dim=1) if block.skip is not None else x
    expected = x + block.conv(F.elu(r))
    torch.testing.assert_close(block(x, a), expected, rtol=1e-5, atol=1e-5)
    assert block.conv.in_channels == 8
    with pytest.raises(ValueError, match="skip"):
        block(x)


def test_resblock_dropout_follows_training_mode() -> None:
    block = ResBlock(4, drop_prob=0.5)
    x = torch.randn(2, 4, 8, 8)
    block.eval()
    assert torch.equal(block(x), block(x))
    block.train()
    assert not torch.equal(block(x), block(x))


def test_ddi_normalizes_each_layer_once() -> None:
    layer = conv3(8, 16)
    x = torch.randn(32, 8, 6, 6) * 3 + 1
    with ddi_pass():
        y = layer(x)
        again = layer(x * 2)  # second call inside the same pass must not re-initialize
    var, mean = torch.var_mean(y, dim=(0, 2, 3), correction=0)
    torch.testing.assert_close(mean, torch.zeros(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(var, torch.ones(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(layer(x), y, rtol=1e-4, atol=1e-4)  # (g, b) were set to produce y
    torch.testing.assert_close(again, layer(x * 2), rtol=1e-4, atol=1e-4)
    g_before = layer.g.detach().clone()
    layer(x * 5)  # outside the pass: no initialization
    assert torch.equal(layer.g, g_before)


def test_ddi_of_up_and_down() -> None:
    up, down = Up(4, 3), Down(4, 6)
    x = torch.randn(16, 4, 8, 8)
    with ddi_pass():
        u, d = up(x), down(x)
    for out in (u, d):
        var, mean = torch.var_mean(out, dim=(0, 2, 3), correction=0)
        torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-5, rtol=0)
        torch.testing.assert_close(var, torch.ones_like(var), atol=1e-4, rtol=0)
    torch.testing.assert_close(up(x), u, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(down(x), d, rtol=1e-4, atol=1e-4)
