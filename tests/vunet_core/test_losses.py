"""Tests of the loss terms, ramp weights and the weighted total (spec §6, §7.3)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vunet_core.config import LOSS_TERMS, Config, ConfigError, LossesConfig, LossTerm, PerceptualTerm
from vunet_core.losses import (
    color_gradient,
    compute_losses,
    compute_terms,
    kl_per_instance,
    loss_weights,
    ramp_weight,
)
from vunet_core.model import VUNetOutput
from vunet_core.schedules import in_steps

KL_RAMP = LossTerm(weight=1.0, start_ramp_it=50000, end_ramp_it=75000, start_ramp_val=1e-6, end_ramp_val=1.0)


def ramp(a: int, b: int, va: float, vb: float, shape: str = "linear") -> LossTerm:
    return LossTerm(weight=7.0, start_ramp_it=a, end_ramp_it=b, start_ramp_val=va, end_ramp_val=vb, ramp_shape=shape)


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 1e-6), (49999, 1e-6), (50000, 1e-6), (62500, 1e-6 + 0.5 * (1 - 1e-6)), (75000, 1.0), (100000, 1.0)],
)
def test_reference_kl_ramp(step: int, expected: float) -> None:
    assert ramp_weight(step, KL_RAMP) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_constant_weight_and_descending_ramp() -> None:
    assert ramp_weight(123, LossTerm(weight=2.5)) == 2.5
    down = ramp(10, 20, 1.0, 0.0)
    assert [ramp_weight(s, down) for s in (0, 10, 15, 20, 30)] == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0])


@pytest.mark.parametrize("end", [100, 99, 0])
def test_end_before_or_at_start_is_a_step(end: int) -> None:
    term = ramp(100, end, 0.25, 3.0)
    assert ramp_weight(99, term) == 0.25
    assert ramp_weight(100, term) == 3.0
    assert ramp_weight(10**6, term) == 3.0


def test_log_ramp_is_geometric() -> None:
    term = ramp(0, 100, 1e-6, 1.0, "log")
    assert ramp_weight(50, term) == pytest.approx(1e-3, rel=1e-9)
    assert ramp_weight(25, term) == pytest.approx(10**-4.5, rel=1e-9)
    assert ramp_weight(100, term) == 1.0 and ramp_weight(0, term) == 1e-6


def test_loss_weights_has_every_term() -> None:
    # The default schedules resolved for the reference's 100k-step run: KL ramp 50k..75k.
    weights = loss_weights(in_steps(Config(), 100_000).losses, 60000)
    assert set(weights) == set(LOSS_TERMS)
    assert weights["color_L1"] == 637.5 and weights["perceptual"] == 0.0
    assert weights["KL"] == pytest.approx(0.4 + 0.6 * 1e-6)


def test_kl_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    q = {"4x4": torch.randn(3, 5, 4, 4, generator=g), "8x8": torch.randn(3, 5, 8, 8, generator=g)}
    p = {"8x8": torch.randn(3, 5, 8, 8, generator=g), "4x4": torch.randn(3, 5, 4, 4, generator=g)}  # other order
    expected = sum(kl_divergence(Normal(q[k], 1.0), Normal(p[k], 1.0)).sum(dim=(1, 2, 3)) for k in q)
    assert isinstance(expected, torch.Tensor)
    torch.testing.assert_close(kl_per_instance(q, p), expected)
    with pytest.raises(ValueError, match="keys"):
        kl_per_instance(q, {"4x4": p["4x4"]})


def test_color_terms() -> None:
    x = torch.zeros(2, 3, 4, 4)
    x_hat = torch.zeros(2, 3, 4, 4)
    x_hat[0] = 0.5
    x_hat[1, :, :, 2:] = 1.0  # a vertical edge: only the width-gradient differs
    out = VUNetOutput(image=x_hat)
    terms = compute_terms(["color_L1", "color_L2", "color_gradient"], x, out, None)
    torch.testing.assert_close(terms["color_L1"], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(terms["color_L2"], torch.tensor([0.25, 0.5]))
    # width differences: one of 3 columns of differences is 1 -> mean 1/3; height differences equal
    torch.testing.assert_close(terms["color_gradient"], torch.tensor([0.0, 1 / 3]))
    torch.testing.assert_close(color_gradient(x_hat.transpose(2, 3), x), torch.tensor([0.0, 1 / 3]))


def _output(batch: int = 2, with_posterior: bool = True) -> VUNetOutput:
    g = torch.Generator().manual_seed(1)
    image = torch.randn(batch, 3, 8, 8, generator=g, requires_grad=True)
    q = {"2x2": torch.randn(batch, 4, 2, 2, generator=g, requires_grad=True)} if with_posterior else {}
    p = {"2x2": torch.randn(batch, 4, 2, 2, generator=g, requires_grad=True)}
    return VUNetOutput(image=image, q_means=q, p_means=p)


def test_compute_losses_weighted_total_and_skipped_terms() -> None:
    cfg = LossesConfig(color_L1=LossTerm(weight=2.0), color_L2=LossTerm(weight=0.0), KL=ramp(0, 10, 0.0, 1.0))
    target = torch.zeros(2, 3, 8, 8)
    out = _output()
    losses = compute_losses(cfg, 5, target, out, None)
    assert set(losses["instances"]) == {"color_L1", "KL", "total"}  # weight-0 terms are not computed
    inst = losses["instances"]
    torch.testing.assert_close(inst["total"], 2.0 * inst["color_L1"] + 0.5 * inst["KL"])
    assert inst["total"].shape == (2,)
    torch.testing.assert_close(losses["batch"]["total"], inst["total"].mean())
    losses["batch"]["total"].backward()
    assert out.image.grad is not None and out.q_means["2x2"].grad is not None
    assert "KL" not in compute_losses(cfg, 0, target, _output(), None)["instances"]  # ramp value 0 at step 0


def test_kl_absent_in_sample_mode_and_zero_total_is_differentiable() -> None:
    cfg = LossesConfig(color_L1=LossTerm(weight=0.0), KL=LossTerm(weight=1.0))
    out = _output(with_posterior=False)
    losses = compute_losses(cfg, 0, torch.zeros(2, 3, 8, 8), out, None)
    assert set(losses["batch"]) == {"total"}
    losses["batch"]["total"].backward()  # a step where nothing is weighted must not crash
    assert out.image.grad is not None and float(out.image.grad.abs().sum()) == 0.0


def test_perceptual_without_network_is_an_error() -> None:
    cfg = LossesConfig(perceptual=PerceptualTerm(weight=5.0))
    with pytest.raises(ValueError, match="vgg_weights"):
        compute_losses(cfg, 0, torch.zeros(2, 3, 8, 8), _output(), None)
    with pytest.raises(ValueError, match="unknown loss term"):
        compute_terms(["L1"], torch.zeros(2, 3, 8, 8), _output(), None)


def test_ramp_defined_for_a_grid_of_sampled_combinations() -> None:
    for a in (0, 5, 10):
        for b in (0, 5, 10):
            for va, vb in ((0.0, 1.0), (1e-6, 1.0), (2.0, 2.0)):
                for shape in ("linear", "log"):
                    if shape == "log" and min(va, vb) <= 0:  # a term that cannot exist: its own check says so
                        with pytest.raises(ConfigError, match="log needs start_ramp_val and end_ramp_val > 0"):
                            ramp(a, b, va, vb, shape)
                        continue
                    w = [ramp_weight(s, ramp(a, b, va, vb, shape)) for s in range(0, 15)]
                    assert all(math.isfinite(v) and min(va, vb) <= v <= max(va, vb) for v in w)
