"""The Variational U-Net (Esser et al., CVPR 2018) as in CompVis/vunet ``models.py`` (spec §1-§5).

Three networks: the pose encoder E_theta over the stickman (``dec_up``), the
appearance encoder F_phi over the 8 part crops with its posterior head
(``enc_up`` + ``enc_down``), and the decoder G_theta with the two-scale
autoregressive prior (``dec_down`` + ``dec_parameters``). ``VUNet.forward`` returns
a typed :class:`VUNetOutput` for the three modes of spec Table 5.3 (train /
transfer / sample); dropout follows ``self.training``. ``data_dependent_init`` runs
the one-pass initialization of spec §2.2 and records it in a state-dict buffer.

Widths come from ``ModelConfig.base_channels`` (32 in the original) and
``max_channels`` (128, also the latent channels); scales from spatial_size,
bottleneck_factor and box_factor (spec §3). With ``appearance_input: image`` F_phi
sees the full (B, 3, S, S) image and has as many scales as E_theta (box_factor is
treated as 0 on the appearance path).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from vunet_core.blocks import Down, ResBlock, Up, conv3, ddi_pass, merge_groups, nin, s2d_tf, split_groups
from vunet_core.config import ModelConfig, num_scales_of

MODES = ("train", "transfer", "sample")
NUM_LATENT_SCALES = 2  # hard-coded in the reference (spec §8)
NUM_CROPS = 8  # in-plane normalized part crops, 3 channels each (spec §9.6)
POSE_CHANNELS = 3  # stickman planes (spec §9.5)


@dataclass
class VUNetOutput:
    """What one forward pass produces; q/p/samples are keyed by latent side ("4x4", "8x8")."""

    image: Tensor  # (B, 3, S, S) linear output in [-1, 1] units, unbounded (no tanh, no clamp)
    q_means: dict[str, Tensor] = field(default_factory=dict)  # posterior means (empty in sample mode)
    p_means: dict[str, Tensor] = field(default_factory=dict)  # prior means (teacher-forced unless sampling)
    samples: dict[str, Tensor] = field(default_factory=dict)  # z decoded: posterior sample / mean / prior sample

    def float(self) -> VUNetOutput:
        """The same output in fp32 (a no-op for fp32 tensors; bf16 autocast outputs are cast)."""
        return VUNetOutput(
            image=self.image.float(),
            q_means={k: v.float() for k, v in self.q_means.items()},
            p_means={k: v.float() for k, v in self.p_means.items()},
            samples={k: v.float() for k, v in self.samples.items()},
        )


# --------------------------------------------------------------------------- scale arithmetic (§3)


def appearance_channels(cfg: ModelConfig) -> int:
    """Channels of the appearance input: 24 for the crop stack, 3 for the whole image."""
    return NUM_CROPS * 3 if cfg.appearance_input == "crops" else 3


def _appearance_box(cfg: ModelConfig) -> int:
    # The whole-image option feeds F_phi at full resolution: box_factor acts as 0 there.
    return cfg.box_factor if cfg.appearance_input == "crops" else 0


def crop_size(cfg: ModelConfig) -> int:
    """Side of the appearance input: S / 2**box_factor for crops, S for the whole image."""
    return cfg.spatial_size // 2 ** _appearance_box(cfg)


def latent_keys(cfg: ModelConfig) -> list[str]:
    """Latent sides, lowest resolution first, e.g. ["4x4", "8x8"] at 64 px with bottleneck 2."""
    side = cfg.spatial_size // 2 ** (num_scales_of(cfg) - 1)
    return [f"{side * 2**lvl}x{side * 2**lvl}" for lvl in range(NUM_LATENT_SCALES)]


def pose_widths(cfg: ModelConfig) -> list[int]:
    """E_theta / G_theta width per scale, high to low resolution: base doubling, capped (§3)."""
    return [min(cfg.base_channels * 2**k, cfg.max_channels) for k in range(num_scales_of(cfg))]


def appearance_widths(cfg: ModelConfig) -> list[int]:
    """F_phi width per scale, high to low resolution; starts at base * 2**box (§3).

    The reference does not cap the first width (32 * 2**box <= 128 for its configs); we
    cap it so tiny configs keep F_phi's latent widths equal to E_theta's.
    """
    box = _appearance_box(cfg)
    return pose_widths(cfg)[box:]


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters (each weight-normed layer counts V + g + b, as spec §3.4)."""
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- sub-networks


class UpPath(nn.Module):
    """E_theta (``dec_up``) or F_phi's up path (``enc_up``): NIN, then 2 RBs per scale + DOWN.

    Returns the skips block 1, block 2 of every scale, high to low resolution (§3).
    """

    def __init__(self, in_channels: int, widths: list[int], drop_prob: float) -> None:
        super().__init__()
        self.widths = widths
        self.stem = nin(in_channels, widths[0])
        self.first = nn.ModuleList(ResBlock(w, drop_prob=drop_prob) for w in widths)  # block 1 per scale
        self.second = nn.ModuleList(ResBlock(w, drop_prob=drop_prob) for w in widths)  # block 2 per scale
        self.downs = nn.ModuleList(Down(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))

    def forward(self, x: Tensor) -> list[Tensor]:
        h = self.stem(x)  # (B, in, S, S) -> (B, w0, S, S)
        skips: list[Tensor] = []
        for scale in range(len(self.widths)):
            h = self.first[scale](h)
            skips.append(h)
            h = self.second[scale](h)
            skips.append(h)
            if scale < len(self.downs):
                h = self.downs[scale](h)  # (B, w_k, s, s) -> (B, w_k+1, s/2, s/2)
        return skips


class PosteriorHead(nn.Module):
    """F_phi's down path (``enc_down``): posterior means q_l and samples z_l, lowest side first (§4).

    Deviation (allowed by spec §4): the reference also builds, after the second latent,
    RB(h, [skip, z_1]) and one UP whose outputs reach no output or loss (328,192 +
    590,848 parameters at full width; the extra RB that spec §3.4 counts in the tail is
    commented out in models.py and never existed). They are omitted, so every
    parameter gets a gradient: 46,042,118 parameters at 256 px instead of 47,272,966.
    """

    def __init__(self, widths: list[int], drop_prob: float, feedback: str) -> None:
        super().__init__()
        self.feedback = feedback  # "sample" (reference) or "mean" (deterministic transfer)
        low = widths[::-1]  # lowest resolution first
        self.stem = nin(low[0], low[0])
        self.pre = nn.ModuleList(ResBlock(low[lvl], low[lvl], drop_prob) for lvl in range(NUM_LATENT_SCALES))
        self.means = nn.ModuleList(conv3(low[lvl], low[lvl]) for lvl in range(NUM_LATENT_SCALES))
        live = NUM_LATENT_SCALES - 1  # scales whose feedback RB and UP feed a later latent
        self.post = nn.ModuleList(ResBlock(low[lvl], 2 * low[lvl], drop_prob) for lvl in range(live))
        self.ups = nn.ModuleList(Up(low[lvl], low[lvl + 1]) for lvl in range(live))

    def forward(self, skips: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        skips = list(skips)
        h = self.stem(skips[-1])  # peek, no pop
        means: list[Tensor] = []
        samples: list[Tensor] = []
        for lvl in range(NUM_LATENT_SCALES):
            h = self.pre[lvl](h, skips.pop())  # block-2 skip
            q = self.means[lvl](h)  # (B, C, r, r) posterior mean, unit variance
            z = q + torch.randn_like(q)  # reparameterized sample
            means.append(q)
            samples.append(z)
            if lvl < len(self.post):
                fb = z if self.feedback == "sample" else q
                h = self.post[lvl](h, torch.cat([skips.pop(), fb], dim=1))  # block-1 skip ++ z: (B, 2C, r, r)
                h = self.ups[lvl](h)  # (B, C, r, r) -> (B, C', 2r, 2r)
        return means, samples


class ARPrior(nn.Module):
    """Learned prior p(z_l | h) at side r: four autoregressive polyphase groups (spec §5.2).

    At side 1 (bottleneck_factor 0) there are no groups: one 3x3 conv gives the mean.
    """

    def __init__(self, channels: int, side: int, drop_prob: float) -> None:
        super().__init__()
        self.grouped = side > 1
        if not self.grouped:
            self.mean = conv3(channels, channels)
            return
        c4 = 4 * channels
        self.features = ResBlock(channels, drop_prob=drop_prob)
        self.group_means = nn.ModuleList(conv3(c4, channels) for _ in range(4))
        self.group_blocks = nn.ModuleList(ResBlock(c4, channels, drop_prob) for _ in range(3))

    def forward(self, h: Tensor, feedback: Tensor | None, temperature: float = 1.0) -> tuple[Tensor, Tensor | None]:
        """Prior means (B, C, r, r) and, without teacher forcing, an ancestral sample.

        ``feedback`` is the posterior z the decoder consumes (train/transfer: teacher
        forcing, no prior sample drawn); None samples the groups 0 -> 3 (sample mode).
        """
        if not self.grouped:
            p = self.mean(h)
            return p, (p + temperature * torch.randn_like(p)) if feedback is None else None
        fb = split_groups(feedback) if feedback is not None else None
        f = s2d_tf(self.features(h))  # (B, C, r, r) -> (B, 4C, r/2, r/2)
        means: list[Tensor] = []
        draws: list[Tensor] = []
        for k in range(4):
            p_k = self.group_means[k](f)  # (B, 4C, r/2, r/2) -> (B, C, r/2, r/2)
            means.append(p_k)
            if fb is None:
                draws.append(p_k + temperature * torch.randn_like(p_k))
            if k < 3:
                f = self.group_blocks[k](f, fb[k] if fb is not None else draws[k])  # skip: ELU, NIN C -> 4C
        return merge_groups(means), merge_groups(draws) if fb is None else None


class Decoder(nn.Module):
    """G_theta (``dec_down`` + ``dec_parameters``): U-Net decoder with the latents in its stream (§5.1)."""

    def __init__(self, widths: list[int], latent_sides: list[int], drop_prob: float) -> None:
        super().__init__()
        low = widths[::-1]  # lowest resolution first
        self.stem = nin(low[0], low[0])
        self.pre = nn.ModuleList(ResBlock(w, w, drop_prob) for w in low)
        self.priors = nn.ModuleList(ARPrior(low[lvl], latent_sides[lvl], drop_prob) for lvl in range(NUM_LATENT_SCALES))
        self.fuse = nn.ModuleList(nin(2 * low[lvl], low[lvl]) for lvl in range(NUM_LATENT_SCALES))
        self.post = nn.ModuleList(ResBlock(w, w, drop_prob) for w in low)
        self.ups = nn.ModuleList(Up(a, b) for a, b in zip(low[:-1], low[1:], strict=True))
        self.out = conv3(low[-1], 3)

    def forward(
        self, skips: list[Tensor], latents: list[Tensor] | None, temperature: float, prior: bool = True
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Image, prior means and decoded z per latent scale; ``latents`` None = sample mode.

        With ``latents`` given and ``prior`` False the priors are skipped (no prior means):
        they are a side branch, so the image is the same.
        """
        skips = list(skips)
        h = self.stem(skips[-1])  # peek, no pop
        p_means: list[Tensor] = []
        decoded: list[Tensor] = []
        for lvl, pre in enumerate(self.pre):
            h = pre(h, skips.pop())  # block-2 skip
            if lvl < NUM_LATENT_SCALES:
                z_post = latents[lvl] if latents is not None else None
                z = z_post
                if z_post is None or prior:
                    p, z_prior = self.priors[lvl](h, z_post, temperature)  # side branch, h unchanged
                    z = z_post if z_post is not None else z_prior
                    p_means.append(p)
                assert z is not None
                decoded.append(z)
                h = self.fuse[lvl](torch.cat([h, z], dim=1))  # z joins the stream: (B, 2C, r, r) -> (B, C, r, r)
            h = self.post[lvl](h, skips.pop())  # block-1 skip
            if lvl < len(self.ups):
                h = self.ups[lvl](h)  # (B, C, r, r) -> (B, C', 2r, 2r)
        return self.out(h), p_means, decoded  # (B, w0, S, S) -> (B, 3, S, S), linear


# --------------------------------------------------------------------------- the model


class VUNet(nn.Module):
    """Variational U-Net: ``forward(pose, appearance, mode) -> VUNetOutput`` (spec Table 5.3)."""

    initialized_flag: Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.keys = latent_keys(cfg)
        sides = [int(k.split("x")[0]) for k in self.keys]
        p = cfg.drop_prob
        self.pose_encoder = UpPath(POSE_CHANNELS, pose_widths(cfg), p)
        self.appearance_encoder = UpPath(appearance_channels(cfg), appearance_widths(cfg), p)
        self.posterior = PosteriorHead(appearance_widths(cfg), p, cfg.posterior_feedback)
        self.decoder = Decoder(pose_widths(cfg), sides, p)
        # Persisted so a restored checkpoint never re-runs DDI (spec §2.2).
        self.register_buffer("initialized_flag", torch.zeros((), dtype=torch.bool))

    @property
    def initialized(self) -> bool:
        return bool(self.initialized_flag.item())

    def forward(
        self, pose: Tensor, appearance: Tensor | None = None, mode: str = "train", *, prior: bool = True
    ) -> VUNetOutput:
        """Decode ``pose`` (B, 3, S, S) with the appearance of ``appearance`` (see spec Table 5.3).

        train: posterior sample decoded, prior teacher-forced on it. transfer: posterior
        mean decoded (call ``eval()`` first). sample: pose only, ancestral prior sample.
        ``prior=False`` (train and transfer only) skips the learned prior, a side branch that
        only yields ``p_means``: the same image, ``p_means`` empty, and a transfer at the CPU
        recipe's widths in 0.44x the time. For callers that use the image alone.
        """
        if not prior and mode == "sample":
            raise ValueError("VUNet.forward: sample mode draws from the prior; prior=False needs train or transfer")
        self._check_inputs(pose, appearance, mode)
        q_means: list[Tensor] = []
        latents: list[Tensor] | None = None
        if mode != "sample":
            assert appearance is not None
            q_means, z_post = self.posterior(self.appearance_encoder(appearance))
            latents = z_post if mode == "train" else q_means
        image, p_means, decoded = self.decoder(self.pose_encoder(pose), latents, self.cfg.temperature, prior)
        return VUNetOutput(
            image=image,
            q_means=dict(zip(self.keys, q_means, strict=False)),
            p_means=dict(zip(self.keys, p_means, strict=False)),
            samples=dict(zip(self.keys, decoded, strict=True)),
        )

    @torch.no_grad()
    def data_dependent_init(self, pose: Tensor, appearance: Tensor) -> None:
        """Spec §2.2: one train-mode pass with dropout on sets every layer's (g, b); once only."""
        if self.initialized:
            return
        was_training = self.training
        self.train()  # dropout active at drop_prob during DDI
        try:
            with ddi_pass():
                self.forward(pose, appearance, "train")
        finally:
            self.train(was_training)
        self.initialized_flag.fill_(True)

    def _check_inputs(self, pose: Tensor, appearance: Tensor | None, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"VUNet.forward: mode {mode!r}, expected one of {', '.join(MODES)}")
        s = self.cfg.spatial_size
        if pose.dim() != 4 or tuple(pose.shape[1:]) != (POSE_CHANNELS, s, s):
            raise ValueError(f"VUNet.forward: pose of shape {tuple(pose.shape)}, expected (B, 3, {s}, {s})")
        if mode == "sample":
            return
        c, sc = appearance_channels(self.cfg), crop_size(self.cfg)
        if appearance is None or appearance.dim() != 4 or tuple(appearance.shape[1:]) != (c, sc, sc):
            got = None if appearance is None else tuple(appearance.shape)
            raise ValueError(f"VUNet.forward({mode}): appearance of shape {got}, expected (B, {c}, {sc}, {sc})")
        if appearance.shape[0] != pose.shape[0]:
            raise ValueError("VUNet.forward: pose and appearance batch sizes differ")
