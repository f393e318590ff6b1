"""Building blocks of the Variational U-Net, as in CompVis/vunet ``nn.py`` (spec §2).

Weight-normalized 3x3 and 1x1 convolutions with data-dependent initialization
(§2.1-2.2), the ELU pre-activation residual block with optional skip input and
dropout (§2.3-2.5), the stride-2 downsample with TF "SAME" alignment (§2.6), the
subpixel upsample (§2.7) and space-to-depth / depth-to-space in TF channel order
with the polyphase group split used by the autoregressive prior (§2.8).

Weight norm is computed directly in ``forward`` (``w = g * v / ||v||`` with ATen's
fused kernel) instead of through ``torch.nn.utils.parametrizations.weight_norm``:
same (v, g, b) parameterization, less per-call overhead, and the data-dependent
init can read the unscaled response without toggling a parametrization. ELU and
dropout are fused into one autograd node, and 3x3 convs on tiny maps run as
unfold + matmul: the three changes that made the CPU training step faster.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

# Layers already initialized during the running data-dependent-init pass (by id);
# None outside such a pass. A module-level set keeps DDI to a single forward pass:
# each layer initializes on its first call inside `ddi_pass()` (spec §2.2).
_DDI_DONE: set[int] | None = None
_DDI_EPS = 1e-10  # variance epsilon of the reference (nn.py conv2d/dense)
_NORM_EPS = 1e-12  # tf.nn.l2_normalize clamps the squared norm at 1e-12
MATMUL_MAX_PIXELS = 4  # 3x3 convs on maps of at most this many pixels run as unfold + matmul


@contextmanager
def ddi_pass() -> Iterator[None]:
    """Inside this context, every weight-normed layer sets (g, b) on its first call."""
    global _DDI_DONE
    previous, _DDI_DONE = _DDI_DONE, set()
    try:
        yield
    finally:
        _DDI_DONE = previous


class WNConv2d(nn.Module):
    """Weight-normalized conv ``y = g * conv(x, V/||V||) + b`` (spec §2.1).

    ``kernel_size`` 1 is the reference's NIN (dense over channels), 3 its conv2d.
    ``stride`` 2 pads (0, 1, 0, 1) explicitly, TF "SAME" alignment on even sizes (§2.6).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        if kernel_size not in (1, 3) or stride not in (1, 2) or (stride == 2 and kernel_size != 3):
            raise ValueError(f"unsupported WNConv2d(kernel_size={kernel_size}, stride={stride})")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        # V ~ N(0, 0.05^2), g = 1, b = 0 (spec §2.1).
        self.v = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) * 0.05)
        self.g = nn.Parameter(torch.ones(out_channels))
        self.b = nn.Parameter(torch.zeros(out_channels))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"

    def weight(self, scale: Tensor | None = None) -> Tensor:
        """The effective filter bank ``scale * V / ||V||`` (norm per output filter), (O, I, k, k)."""
        if scale is None:  # unscaled direction, only needed (without grad) by DDI
            inv_norm = self.v.pow(2).sum(dim=(1, 2, 3)).clamp_min(_NORM_EPS).rsqrt()  # (O,)
            return self.v * inv_norm.view(-1, 1, 1, 1)
        # ATen's fused weight-norm kernel (what nn.utils.weight_norm calls): one pass
        # forward and backward instead of ~6 elementwise passes over the largest
        # weights (the 4.7M-element AR-prior filters), ~3x faster on CPU.
        return torch._weight_norm(self.v, scale.view(-1, 1, 1, 1), 0)  # noqa: SLF001  no public fused weight norm

    def convolve(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """`x` convolved with the filter bank `weight` (O, I, k, k) and `bias` at this layer's kernel size and
        stride (TF SAME alignment); `Up` calls it with its filters reordered for ``pixel_shuffle``."""
        # The matmul form pays off through its backward; without autograd (validation, grids,
        # DDI) oneDNN's forward is faster, and torch.matmul would broadcast the weight into a
        # batched matmul of B tiny products (~10x slower than either).
        tiny = x.shape[-2] * x.shape[-1] <= MATMUL_MAX_PIXELS
        if self.kernel_size == 3 and self.stride == 1 and tiny and torch.is_grad_enabled():
            return _conv3_as_matmul(x, weight, bias)
        if self.stride == 2:
            x = F.pad(x, (0, 1, 0, 1))  # (B, C, H, W) -> (B, C, H+1, W+1), TF SAME alignment
            return F.conv2d(x, weight, bias, stride=2)  # -> (B, O, H/2, W/2)
        return F.conv2d(x, weight, bias, padding=self.kernel_size // 2)  # (B, C, H, W) -> (B, O, H, W)

    def forward(self, x: Tensor) -> Tensor:
        if _DDI_DONE is not None and id(self) not in _DDI_DONE:
            return self._init_forward(x)
        return self.convolve(x, self.weight(self.g), self.b)

    @torch.no_grad()
    def _init_forward(self, x: Tensor) -> Tensor:
        """Spec §2.2: g = 1/sqrt(var + 1e-10), b = -mean * g from t = conv(x, V/||V||)."""
        assert _DDI_DONE is not None
        t = self.convolve(x, self.weight(), None)  # (B, O, H', W') unscaled response
        var, mean = torch.var_mean(t, dim=(0, 2, 3), correction=0)  # biased, per channel (O,)
        g = torch.rsqrt(var + _DDI_EPS)
        self.g.copy_(g)
        self.b.copy_(-mean * g)
        _DDI_DONE.add(id(self))
        return t * g.view(1, -1, 1, 1) + self.b.view(1, -1, 1, 1)


def _conv3_as_matmul(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """3x3 SAME conv as unfold + one matmul: faster than oneDNN on tiny maps (the AR prior's 2x2).

    oneDNN's backward for (8, 1024, 2, 2) -> 512 runs at ~30 GFLOP/s on CPU; the
    matmul form (rows = B*h*w, K = 9C) keeps the big weight GEMMs efficient.
    """
    b, _, h, w = x.shape
    cols = F.unfold(x, 3, padding=1)  # (B, C, h, w) -> (B, 9C, hw), index c*9 + ky*3 + kx
    y = weight.flatten(1) @ cols  # (O, 9C) @ (B, 9C, hw) -> (B, O, hw)
    if bias is not None:
        y = y + bias.view(1, -1, 1)
    return y.view(b, -1, h, w)  # (B, O, h, w)


def nin(in_channels: int, out_channels: int) -> WNConv2d:
    """NIN_C: weight-normed 1x1 layer (spec conventions)."""
    return WNConv2d(in_channels, out_channels, kernel_size=1)


def conv3(in_channels: int, out_channels: int) -> WNConv2d:
    """CONV3_C: weight-normed 3x3 conv, stride 1, SAME padding."""
    return WNConv2d(in_channels, out_channels, kernel_size=3)


def _keep_mask(x: Tensor, p: float) -> tuple[Tensor, float]:
    """Bernoulli keep mask of x's shape and its exact keep probability (p rounded to 1/65536).

    Each 64-bit draw of torch's generator yields four uniform 16-bit numbers, so a mask
    costs a quarter of the draws of ``rand_like`` (5x faster than ``bernoulli_`` on CPU,
    where the generator is serial). Seeding and reproducibility stay with torch's RNG.
    """
    if x.device.type != "cpu":  # GPU generators are parallel (Philox): the plain form is fast there
        return torch.rand_like(x) >= p, 1.0 - p
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)  # full 64-bit range
    uniform16 = words.view(torch.int16)[:n].view(x.shape)  # uniform on [-32768, 32767]
    drop = round(p * 65536)
    return uniform16 >= drop - 32768, 1.0 - drop / 65536


class _EluDropout(torch.autograd.Function):
    """ELU (alpha = 1, spec §2.3) followed by inverted dropout (§2.5), in one autograd node.

    ``F.elu`` evaluates ``expm1``, which is ~5x slower than ``exp`` on CPU and made ELU
    ~8% of a training step; ``max(x, exp(min(x, 0)) - 1)`` is the same function
    (absolute error < 1e-7 near 0-), and ``exp(min(x, 0))`` is also its derivative.
    The dropout mask comes from :func:`_keep_mask` and is folded into the saved derivative.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, p: float) -> Tensor:
        d = x.clamp_max(0).exp_()  # exp(min(x, 0)) = ELU'(x)
        y = torch.maximum(d - 1, x)  # ELU(x): exp(x) - 1 >= x for x <= 0, and d - 1 = 0 for x > 0
        if p > 0:
            keep, keep_prob = _keep_mask(x, p)
            mask = torch.where(keep, 1.0 / keep_prob, 0.0).to(x.dtype)  # inverted dropout: E[mask] = 1
            y.mul_(mask)
            d.mul_(mask)
        ctx.save_for_backward(d)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (d,) = ctx.saved_tensors
        return grad * d, None


def elu_dropout(x: Tensor, p: float = 0.0) -> Tensor:
    """``Dropout_p(ELU(x))`` with inverted dropout; p = 0 is plain ELU."""
    out: Tensor = _EluDropout.apply(x, p)
    return out


class ResBlock(nn.Module):
    """RB(x, a): pre-activation residual block with optional skip input (spec §2.4).

    ``r = cat(x, NIN(ELU(a)))`` if a skip is given; ``x + CONV3(Dropout(ELU(r)))``.
    Dropout is active at ``drop_prob`` only in training mode (``self.training``).
    """

    def __init__(self, channels: int, skip_channels: int = 0, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob
        self.skip = nin(skip_channels, channels) if skip_channels else None
        self.conv = conv3(2 * channels if skip_channels else channels, channels)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"

    def forward(self, x: Tensor, a: Tensor | None = None) -> Tensor:
        if (a is None) != (self.skip is None):
            raise ValueError("ResBlock: the skip input must be given iff the block was built with skip_channels")
        r = x
        if self.skip is not None and a is not None:
            r = torch.cat([x, self.skip(elu_dropout(a))], dim=1)  # (B, C, H, W) ++ (B, C, H, W) -> (B, 2C, H, W)
        p = self.drop_prob if self.training else 0.0
        return x + self.conv(elu_dropout(r, p))  # (B, C, H, W)


class Down(WNConv2d):
    """DOWN_C: weight-normed 3x3 stride-2 conv, no activation before it (spec §2.6)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=3, stride=2)


class Up(nn.Module):
    """UP_C = d2s_tf(CONV3_{4C}(x)), no activation (spec §2.7).

    The conv's parameters keep TF channel order (portable weights). Forward permutes
    the filters instead of the activations, so a plain ``pixel_shuffle`` yields exactly
    ``d2s_tf(conv(x))`` without the extra activation copy of ``d2s_tf``.
    """

    perm: Tensor

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = conv3(in_channels, 4 * out_channels)
        # Output channel 4c + k of the shuffled layout is TF channel k*C + c (§2.8).
        c, k = torch.meshgrid(torch.arange(out_channels), torch.arange(4), indexing="ij")
        self.register_buffer("perm", (k * out_channels + c).reshape(-1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if _DDI_DONE is not None and id(self.conv) not in _DDI_DONE:
            return d2s_tf(self.conv(x))  # DDI statistics are per channel; order does not matter
        weight = self.conv.weight(self.conv.g)[self.perm]  # (4C, I, 3, 3) in pixel_shuffle order
        y = self.conv.convolve(x, weight, self.conv.b[self.perm])  # (B, I, H, W) -> (B, 4C, H, W)
        return F.pixel_shuffle(y, 2)  # -> (B, C, 2H, 2W)


def s2d_tf(x: Tensor) -> Tensor:
    """TF space_to_depth(2): ``out[(2dy+dx)*C + c][i, j] = x[c][2i+dy, 2j+dx]`` (spec §2.8)."""
    b, c, h, w = x.shape
    y = F.pixel_unshuffle(x, 2)  # (B, C, H, W) -> (B, 4C, H/2, W/2), channel-major 4c + k
    return y.view(b, c, 4, h // 2, w // 2).transpose(1, 2).reshape(b, 4 * c, h // 2, w // 2)  # -> k*C + c


def d2s_tf(y: Tensor) -> Tensor:
    """TF depth_to_space(2), the inverse of :func:`s2d_tf` (spec §2.8)."""
    b, c4, h, w = y.shape
    c = c4 // 4
    y = y.view(b, 4, c, h, w).transpose(1, 2).reshape(b, c4, h, w)  # TF order k*C + c -> 4c + k
    return F.pixel_shuffle(y, 2)  # (B, 4C, H, W) -> (B, C, 2H, 2W)


def split_groups(x: Tensor) -> list[Tensor]:
    """Four polyphase groups; group k == ``x[:, :, k//2::2, k%2::2]`` (spec §2.8)."""
    return list(torch.chunk(s2d_tf(x), 4, dim=1))  # (B, C, H, W) -> 4 x (B, C, H/2, W/2)


def merge_groups(groups: list[Tensor]) -> Tensor:
    """Inverse of :func:`split_groups`."""
    return d2s_tf(torch.cat(groups, dim=1))  # 4 x (B, C, h, w) -> (B, C, 2h, 2w)
