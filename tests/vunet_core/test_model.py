"""Tests of the VUNet model against spec §2.2, §3-§5: shapes, parameter counts, AR prior, DDI, modes."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from torch import Tensor

from vunet_core.blocks import ResBlock, Up, WNConv2d
from vunet_core.config import ModelConfig
from vunet_core.losses import compute_losses
from vunet_core.model import (
    ARPrior,
    VUNet,
    appearance_channels,
    count_parameters,
    crop_size,
    latent_keys,
)


def tiny(spatial_size: int = 32, box: int = 1, bottleneck: int = 1, **kw: Any) -> ModelConfig:
    return ModelConfig(
        spatial_size=spatial_size, box_factor=box, bottleneck_factor=bottleneck, base_channels=8, max_channels=16, **kw
    )


def inputs(cfg: ModelConfig, batch: int = 2, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    s, c, sc = cfg.spatial_size, appearance_channels(cfg), crop_size(cfg)
    return torch.rand(batch, 3, s, s, generator=g) * 2 - 1, torch.rand(batch, c, sc, sc, generator=g) * 2 - 1


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --------------------------------------------------------------------------- shapes and counts (§3)


@pytest.mark.parametrize(
    ("size", "box", "bottleneck", "keys", "crop"),
    [
        (32, 1, 1, ["2x2", "4x4"], 16),
        (64, 2, 2, ["4x4", "8x8"], 16),
        (64, 1, 1, ["2x2", "4x4"], 32),
        (64, 1, 0, ["1x1", "2x2"], 32),
        (128, 1, 1, ["2x2", "4x4"], 64),
    ],
)
def test_output_and_latent_shapes(size: int, box: int, bottleneck: int, keys: list[str], crop: int) -> None:
    cfg = tiny(size, box, bottleneck)
    assert latent_keys(cfg) == keys and crop_size(cfg) == crop and appearance_channels(cfg) == 24
    model = VUNet(cfg)
    pose, app = inputs(cfg)
    out = model(pose, app, "train")
    assert out.image.shape == (2, 3, size, size)
    for key in keys:
        side = int(key.split("x")[0])
        for d in (out.q_means, out.p_means, out.samples):
            assert d[key].shape == (2, cfg.max_channels, side, side)
    assert list(out.q_means) == keys and list(out.p_means) == keys


def test_full_image_appearance_option() -> None:
    cfg = tiny(32, 1, 1, appearance_input="image")
    assert appearance_channels(cfg) == 3 and crop_size(cfg) == 32
    model = VUNet(cfg)
    # F_phi has as many scales as E_theta (box_factor acts as 0 on the appearance path)
    assert model.appearance_encoder.widths == model.pose_encoder.widths
    pose, app = inputs(cfg)
    assert model(pose, app).image.shape == (2, 3, 32, 32)


def _meta_model(size: int, box: int, bottleneck: int) -> VUNet:
    with torch.device("meta"):
        return VUNet(ModelConfig(spatial_size=size, box_factor=box, bottleneck_factor=bottleneck))


def _dead_posterior_tail() -> int:
    """Layers of the reference posterior head after the second latent that feed no output (§4)."""
    with torch.device("meta"):
        blocks = [ResBlock(128, 256), Up(128, 128), ResBlock(128, 128)]  # RB([skip, z_1]), UP, spec's extra RB
    return sum(count_parameters(b) for b in blocks)


@pytest.mark.parametrize(
    ("size", "factors", "spec_total", "spec_appearance"),
    [(256, 2, 47_272_966, 2_071_296), (128, 1, 47_419_270, 2_217_600)],
)
def test_parameter_counts_match_spec_table(size: int, factors: int, spec_total: int, spec_appearance: int) -> None:
    model = _meta_model(size, factors, factors)
    # spec §3.4, per block
    assert count_parameters(model.pose_encoder) == 2_253_216
    assert count_parameters(model.appearance_encoder) == spec_appearance
    assert count_parameters(model.decoder) == 39_862_886
    assert count_parameters(model.decoder.priors[0]) == 16_866_560  # one AR prior
    # the posterior head omits the dead layers; with them it is the spec's 3,085,568
    assert _dead_posterior_tail() == 328_192 + 902_656
    assert count_parameters(model.posterior) + _dead_posterior_tail() == 3_085_568
    assert count_parameters(model) + _dead_posterior_tail() == spec_total
    assert count_parameters(model) == spec_total - 1_230_848  # 46,042,118 / 46,188,422


def test_parameter_count_64px_matches_table_3_3() -> None:
    assert count_parameters(_meta_model(64, 2, 2)) + _dead_posterior_tail() == 43_071_494
    assert count_parameters(_meta_model(64, 1, 1)) + _dead_posterior_tail() == 45_318_534


# --------------------------------------------------------------------------- AR prior (§5.2)


def test_ar_prior_is_causal_over_groups() -> None:
    prior = ARPrior(channels=4, side=4, drop_prob=0.0).eval()
    h, z = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    with torch.no_grad():
        base = torch.stack(_groups(prior(h, z)[0]))
        for j in range(4):
            z2 = z.clone()
            z2[:, :, j // 2 :: 2, j % 2 :: 2] += 1.0  # change posterior group j only
            changed = torch.stack(_groups(prior(h, z2)[0]))
            for k in range(4):
                same = torch.allclose(changed[k], base[k])
                assert same == (k <= j), f"group {k} after changing group {j}"


def _groups(p: Tensor) -> list[Tensor]:
    return [p[:, :, k // 2 :: 2, k % 2 :: 2] for k in range(4)]


def test_ar_prior_samples_without_feedback_and_side_one() -> None:
    prior = ARPrior(channels=4, side=2, drop_prob=0.0).eval()
    p, z = prior(torch.randn(2, 4, 2, 2), None, temperature=0.0)
    assert z is not None and torch.equal(p, z)  # temperature 0: the sample is the mean
    single = ARPrior(channels=4, side=1, drop_prob=0.0)
    p1, z1 = single(torch.randn(2, 4, 1, 1), None)
    assert p1.shape == (2, 4, 1, 1) and z1 is not None and not torch.equal(p1, z1)


# --------------------------------------------------------------------------- DDI (§2.2)


def _record_outputs(model: VUNet) -> tuple[dict[str, Tensor], list[torch.utils.hooks.RemovableHandle]]:
    outs: dict[str, Tensor] = {}
    handles = []
    for name, mod in model.named_modules():
        if isinstance(mod, WNConv2d):
            handles.append(mod.register_forward_hook(lambda m, i, o, name=name: outs.__setitem__(name, o.detach())))
    return outs, handles


def test_data_dependent_init_normalizes_every_layer() -> None:
    cfg = tiny(32, 1, 1, drop_prob=0.1)
    model = VUNet(cfg)
    pose, app = inputs(cfg, batch=8)
    outs, handles = _record_outputs(model)
    torch.manual_seed(1)
    model.data_dependent_init(pose, app)
    during = dict(outs)
    model.train()
    torch.manual_seed(1)  # same dropout masks and posterior noise as the init pass
    with torch.no_grad():
        model(pose, app, "train")
    for h in handles:
        h.remove()
    assert model.initialized and len(outs) == sum(isinstance(m, WNConv2d) for m in model.modules())
    for name, out in outs.items():
        var, mean = torch.var_mean(out, dim=(0, 2, 3), correction=0)
        torch.testing.assert_close(mean, torch.zeros_like(mean), atol=2e-3, rtol=0, msg=name)
        torch.testing.assert_close(var, torch.ones_like(var), atol=2e-3, rtol=0, msg=name)
        torch.testing.assert_close(out, during[name], atol=2e-3, rtol=1e-3, msg=name)


def test_initialized_flag_is_persisted_and_ddi_runs_once() -> None:
    cfg = tiny()
    model = VUNet(cfg)
    assert not model.initialized and "initialized_flag" in model.state_dict()
    pose, app = inputs(cfg)
    model.data_dependent_init(pose, app)
    g_after = model.decoder.out.g.detach().clone()
    model.data_dependent_init(pose * 0.5, app)  # no-op
    assert torch.equal(model.decoder.out.g, g_after)
    restored = VUNet(cfg)
    restored.load_state_dict(model.state_dict())
    assert restored.initialized
    restored.data_dependent_init(pose * 0.5, app)  # restoring must not re-run DDI
    assert torch.equal(restored.decoder.out.g, g_after)


# --------------------------------------------------------------------------- modes (Table 5.3)


def test_every_parameter_gets_a_gradient_in_train_mode() -> None:
    cfg = tiny(32, 1, 1, drop_prob=0.1)
    model = VUNet(cfg).train()
    pose, app = inputs(cfg, batch=2)
    from vunet_core.config import LossesConfig, LossTerm

    losses = LossesConfig(KL=LossTerm(weight=1.0))
    out = model(pose, app, "train")
    compute_losses(losses, 0, pose, out, None)["batch"]["total"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_train_mode_decodes_the_posterior_sample() -> None:
    cfg = tiny()
    model = VUNet(cfg).eval()
    pose, app = inputs(cfg)
    out = model(pose, app, "train")
    for key in out.q_means:
        assert not torch.equal(out.samples[key], out.q_means[key])  # q + eps
    transfer = model(pose, app, "transfer")
    low = latent_keys(cfg)[0]
    torch.testing.assert_close(transfer.samples[low], transfer.q_means[low])


def test_transfer_is_deterministic_where_the_spec_says() -> None:
    cfg = tiny()
    model = VUNet(cfg).eval()
    pose, app = inputs(cfg)
    a, b = model(pose, app, "transfer"), model(pose, app, "transfer")
    low, high = latent_keys(cfg)
    assert torch.equal(a.q_means[low], b.q_means[low]) and torch.equal(a.p_means[low], b.p_means[low])
    # spec §4: the head feeds the *sample* z_0 to the next scale, so q_1 and the image vary
    assert not torch.equal(a.q_means[high], b.q_means[high]) and not torch.equal(a.image, b.image)
    det = VUNet(dataclasses.replace(cfg, posterior_feedback="mean"))
    det.load_state_dict(model.state_dict())
    det.eval()
    c, d = det(pose, app, "transfer"), det(pose, app, "transfer")
    assert torch.equal(c.image, d.image) and torch.equal(c.q_means[high], d.q_means[high])
    assert torch.equal(c.samples[high], c.q_means[high])


@pytest.mark.parametrize("mode", ["train", "transfer"])
def test_skipping_the_prior_keeps_the_image(mode: str) -> None:
    # the prior is a side branch: without it the same image and latents, no prior means
    cfg = tiny()
    model = VUNet(cfg).eval()
    pose, app = inputs(cfg)
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            torch.manual_seed(1)
            full = model(pose, app, mode)
            torch.manual_seed(1)
            lean = model(pose, app, mode, prior=False)
        assert torch.equal(full.image, lean.image)
        assert lean.p_means == {} and list(full.p_means) == latent_keys(cfg)
        for key in full.samples:
            assert torch.equal(full.samples[key], lean.samples[key])
            assert torch.equal(full.q_means[key], lean.q_means[key])
    with pytest.raises(ValueError, match="prior=False"):
        model(pose, mode="sample", prior=False)


def test_sample_mode_needs_only_the_pose() -> None:
    cfg = tiny(temperature=1.0)
    model = VUNet(cfg).eval()
    pose, _ = inputs(cfg)
    a, b = model(pose, mode="sample"), model(pose, mode="sample")
    assert a.q_means == {} and list(a.p_means) == latent_keys(cfg) and list(a.samples) == latent_keys(cfg)
    assert a.image.shape == pose.shape and not torch.equal(a.image, b.image)
    cold = VUNet(dataclasses.replace(cfg, temperature=0.0))
    cold.load_state_dict(model.state_dict())
    cold.eval()
    c = cold(pose, mode="sample")
    assert torch.equal(c.image, cold(pose, mode="sample").image)
    for key in c.samples:
        assert torch.equal(c.samples[key], c.p_means[key])


def test_bad_inputs_are_reported() -> None:
    cfg = tiny()
    model = VUNet(cfg)
    pose, app = inputs(cfg)
    with pytest.raises(ValueError, match="mode"):
        model(pose, app, "generate")
    with pytest.raises(ValueError, match="appearance"):
        model(pose, None, "train")
    with pytest.raises(ValueError, match="pose"):
        model(pose[:, :, :16], app)
    with pytest.raises(ValueError, match="appearance"):
        model(pose, app[:, :3])


def test_output_is_linear_and_unbounded() -> None:
    cfg = tiny()
    model = VUNet(cfg).eval()
    with torch.no_grad():  # output ~ 5 everywhere: no tanh or clamp may squash it (spec §1)
        model.decoder.out.g.fill_(1e-4)
        model.decoder.out.b.fill_(5.0)
        image = model(*inputs(cfg), "transfer").image
    torch.testing.assert_close(image, torch.full_like(image, 5.0), atol=0.05, rtol=0)
