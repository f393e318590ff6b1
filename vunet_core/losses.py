"""Loss terms, their step-dependent weights and the weighted total (spec §6, §7.3).

Terms keep the seed's names (``color_L1``, ``color_L2``, ``color_gradient``, ``KL``,
``perceptual``) and are per instance, shape (B,); the batch value is their mean.
A term's weight is a pure function of the global step (:func:`ramp_weight`), never
written back into the config; a term whose weight is 0 at a step is not computed.
The loss dict has the format of spec §6.5: ``{"instances": {...}, "batch": {...}}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from torch import Tensor

from vunet_core.config import LOSS_TERMS, LossesConfig, LossTerm
from vunet_core.model import VUNetOutput

if TYPE_CHECKING:  # torchvision is only imported where a perceptual loss is built
    from vunet_core.perceptual import PerceptualLoss


def ramp_weight(step: int, term: LossTerm) -> float:
    """Weight of ``term`` at global ``step`` (spec §7.3, DESIGN §3).

    Not ramped: the constant ``weight``. Ramped: ``start_ramp_val`` before
    ``start_ramp_it``, ``end_ramp_val`` after ``end_ramp_it``, linear in between (or
    log-linear for ``ramp_shape: log``); ``end_ramp_it <= start_ramp_it`` is a step at
    ``start_ramp_it``. Defined for every combination: no division by zero.
    """
    if not term.ramped:
        return float(term.weight)
    a, b, va, vb = term.start_ramp_it, term.end_ramp_it, term.start_ramp_val, term.end_ramp_val
    assert a is not None and b is not None and va is not None and vb is not None  # LossTerm: all four or none
    if b <= a:  # degenerate window: a step at start_ramp_it
        return float(va if step < a else vb)
    if term.ramp_shape == "log" and a < step < b and va > 0 and vb > 0:  # validation guarantees > 0 for "log"
        return math.exp(linear_window(step, a, b, math.log(va), math.log(vb)))
    return linear_window(step, a, b, va, vb)


def linear_window(step: int, a: float, b: float, va: float, vb: float) -> float:
    """`va` up to step `a`, `vb` from step `b` on, linear in between (needs b > a).

    The reference's `make_linear_var` (spec §7.1); shared by loss ramps and the LR schedule.
    """
    if step <= a:
        return float(va)
    if step >= b:
        return float(vb)
    return float(va + (step - a) / (b - a) * (vb - va))


def loss_weights(cfg: LossesConfig, step: int) -> dict[str, float]:
    """Weight of every loss term at ``step``."""
    return {name: ramp_weight(step, getattr(cfg, name)) for name in LOSS_TERMS}


def kl_per_instance(q_means: dict[str, Tensor], p_means: dict[str, Tensor]) -> Tensor:
    """KL(N(q, I) || N(p, I)) = sum over elements and scales of 0.5 (q - p)^2, (B,) (spec §6.3).

    q and p are paired by latent key, never by order (spec §5.3, pitfall 11).
    """
    if not q_means or set(q_means) != set(p_means):
        raise ValueError(f"KL: posterior keys {sorted(q_means)} and prior keys {sorted(p_means)} must match")
    total: Tensor | None = None
    for key, q in q_means.items():
        kl = 0.5 * (q - p_means[key]).pow(2).sum(dim=(1, 2, 3))  # (B, C, r, r) -> (B,)
        total = kl if total is None else total + kl
    assert total is not None
    return total


def color_l1(x_hat: Tensor, x: Tensor) -> Tensor:
    """mean_{c,h,w} |x_hat - x| (spec §6.4): (B, 3, H, W) -> (B,)."""
    return (x_hat - x).abs().mean(dim=(1, 2, 3))


def color_l2(x_hat: Tensor, x: Tensor) -> Tensor:
    """mean_{c,h,w} (x_hat - x)^2 (spec §6.4): (B, 3, H, W) -> (B,)."""
    return (x_hat - x).pow(2).mean(dim=(1, 2, 3))


def color_gradient(x_hat: Tensor, x: Tensor) -> Tensor:
    """L1 between forward-difference magnitudes along width and height (spec §6.4), (B,)."""

    def diff_w(t: Tensor) -> Tensor:
        return (t[..., :, 1:] - t[..., :, :-1]).abs()  # (B, C, H, W-1)

    def diff_h(t: Tensor) -> Tensor:
        return (t[..., 1:, :] - t[..., :-1, :]).abs()  # (B, C, H-1, W)

    along_w = (diff_w(x_hat) - diff_w(x)).abs().mean(dim=(1, 2, 3))
    along_h = (diff_h(x_hat) - diff_h(x)).abs().mean(dim=(1, 2, 3))
    return along_w + along_h


_IMAGE_TERMS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "color_L1": color_l1,
    "color_L2": color_l2,
    "color_gradient": color_gradient,
}


def compute_terms(
    names: Iterable[str], target: Tensor, output: VUNetOutput, perceptual: PerceptualLoss | None
) -> dict[str, Tensor]:
    """Per-instance (B,) values of the requested terms, unweighted (spec §6)."""
    out: dict[str, Tensor] = {}
    for name in names:
        if name in _IMAGE_TERMS:
            out[name] = _IMAGE_TERMS[name](output.image, target)
        elif name == "KL":
            out[name] = kl_per_instance(output.q_means, output.p_means)
        elif name == "perceptual":
            if perceptual is None:
                raise ValueError(
                    "the perceptual term needs a PerceptualLoss (losses/perceptual/vgg_weights); "
                    "set losses/perceptual/weight 0 to train without it"
                )
            out[name] = perceptual(output.image, target)
        else:
            raise ValueError(f"unknown loss term {name!r}; expected one of {', '.join(LOSS_TERMS)}")
    return out


def weighted_total(weights: Mapping[str, float], instances: Mapping[str, Tensor], start: Tensor) -> Tensor:
    """`start + sum_k w_k * loss_k`, per instance (B,) (spec §6.5)."""
    total = start
    for name, value in instances.items():
        total = total + weights[name] * value
    return total


def compute_losses(
    cfg: LossesConfig, step: int, target: Tensor, output: VUNetOutput, perceptual: PerceptualLoss | None
) -> dict[str, dict[str, Tensor]]:
    """Loss dict of spec §6.5 with ``total = sum_k w_k(step) * loss_k``.

    Terms whose weight is 0 at ``step`` are not computed (absent); KL is absent when
    the output has no posterior (sample mode). Backprop ``["batch"]["total"]``.
    """
    weights = loss_weights(cfg, step)
    names = [n for n in LOSS_TERMS if weights[n] != 0 and (n != "KL" or output.q_means)]
    instances = compute_terms(names, target, output, perceptual)
    # A zero that is still part of the graph: backward() on a step where every weight
    # is 0 is then a valid no-op instead of an error.
    total = weighted_total(weights, instances, output.image.sum(dim=(1, 2, 3)) * 0.0)  # (B,)
    instances["total"] = total
    return {"instances": instances, "batch": {name: value.mean() for name, value in instances.items()}}
