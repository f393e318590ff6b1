"""VGG19 feature ("perceptual") loss of CompVis/vunet ``deeploss.py`` (spec §6.2).

The network is torchvision's VGG19 convolutional part with weights read from a local
file (``losses/perceptual/vgg_weights``; the original uses the Caffe-converted
ILSVRC weights, stored here in torchvision's key layout). Nothing is downloaded. The
VGG is frozen and in eval mode, but gradients flow through every layer into the
generated image (the edflow port's bug was a ``no_grad`` around non-tap layers).
Inputs get the Caffe preprocessing: [-1, 1] -> [0, 255], RGB -> BGR, minus the
BGR means; taps are the preprocessed input and relu1_2 ... relu5_2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.vgg import cfgs, make_layers

from vunet_core.config import ConfigError, PerceptualTerm

WEIGHTS_PATH = "losses/perceptual/vgg_weights"
TAP_INDICES = (3, 8, 13, 22, 31)  # torchvision vgg19.features: relu1_2, relu2_2, relu3_2, relu4_2, relu5_2
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)  # Keras/Caffe "caffe" preprocessing, BGR order
_HOW_TO_FIX = (
    "give a local VGG19 state dict (torchvision layout: full vgg19 or its `features` part), "
    "or set losses/perceptual/weight 0"
)


class WeightsError(ConfigError):
    """The VGG19 weights file is missing or does not fit; the message names the file and the fix."""


def _vgg19_features() -> nn.Sequential:
    # Same module as torchvision.models.vgg19(weights=None).features, without building
    # (and randomly initializing) the 120M-parameter classifier we never use.
    return make_layers(cfgs["E"], batch_norm=False)


def _fail(path: str, problem: str) -> WeightsError:
    return WeightsError(f"{WEIGHTS_PATH}: {path}: {problem}; {_HOW_TO_FIX}")


def _read_state_dict(path: str, mmap: bool) -> dict[str, Tensor]:
    if not path:
        raise WeightsError(f"{WEIGHTS_PATH}: not set; {_HOW_TO_FIX}")
    if not Path(path).is_file():
        raise _fail(path, "no such file")
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # pickle, zip and I/O errors all mean the same to a user
        raise _fail(path, f"cannot be read as a torch state dict ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise _fail(path, "is not a state dict (a mapping of names to tensors)")
    return _features_part(obj)


def _features_part(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Keys of the `features` part: accepts a full vgg19 state dict or a features-only one."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("features.") for k in state):
        return {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    return state


def _check_keys(path: str, state: dict[str, Tensor], expected: dict[str, Tensor]) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}")
    if wrong:
        k = wrong[0]
        problems.append(f"shape of {k} is {tuple(state[k].shape)}, expected {tuple(expected[k].shape)}")
    if problems:
        raise _fail(path, "not VGG19 weights (" + "; ".join(problems) + ")")


def check_vgg_weights(path: str) -> None:
    """Cheap early check (memory-mapped, architecture on the meta device): raises WeightsError."""
    state = _read_state_dict(path, mmap=True)
    with torch.device("meta"):
        expected = _vgg19_features().state_dict()
    _check_keys(path, state, expected)


def load_vgg19_features(path: str) -> nn.Module:
    """torchvision VGG19 ``features`` with the weights in ``path``; frozen, eval mode. Never downloads."""
    state = _read_state_dict(path, mmap=False)
    features = _vgg19_features()
    _check_keys(path, state, features.state_dict())
    features.load_state_dict(state)
    features.requires_grad_(False)
    return features.eval()


def gram(f: Tensor) -> Tensor:
    """Gram matrix Phi^T Phi / (4 h w) of spec §6.2: (B, C, H, W) -> (B, C, C)."""
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)  # (B, C, hw)
    return flat @ flat.transpose(1, 2) / (4 * h * w)  # (B, C, C)


class PerceptualLoss(nn.Module):
    """Per-instance P_i = sum_l w_l mean|Phi_l(x) - Phi_l(x_hat)| (+ Gram terms), spec §6.2."""

    mean: Tensor

    def __init__(self, term: PerceptualTerm) -> None:
        super().__init__()
        features = load_vgg19_features(term.vgg_weights)
        self.vgg = nn.Sequential(*list(features.children())[: TAP_INDICES[-1] + 1])  # nothing past relu5_2
        self.feature_weights = [float(w) for w in term.feature_weights]
        self.gram_weights = [float(w) for w in term.gram_weights]
        self.register_buffer("mean", torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.vgg.eval()  # frozen: always eval (spec §6.2)
        return self

    def taps(self, image: Tensor) -> list[Tensor]:
        """The 6 taps: preprocessed input, relu1_2 ... relu5_2."""
        x = (image + 1.0) * 127.5  # [-1, 1] -> [0, 255], no clamp
        x = x.flip(1) - self.mean  # RGB -> BGR, Caffe mean subtraction: (B, 3, H, W)
        out = [x]
        for i, layer in enumerate(self.vgg):
            x = layer(x)
            if i in TAP_INDICES:
                out.append(x)
        return out

    def forward(self, x_hat: Tensor, x: Tensor) -> Tensor:
        """(B,) loss; gradients reach ``x_hat`` through every VGG layer, ``x`` is a constant."""
        fake = self.taps(x_hat)
        with torch.no_grad():
            real = self.taps(x)
        loss = x_hat.new_zeros(x_hat.shape[0])
        for w, g_w, f, r in zip(self.feature_weights, self.gram_weights, fake, real, strict=True):
            if w:
                loss = loss + w * (f - r).abs().mean(dim=(1, 2, 3))  # (B,)
            if g_w:  # weights are >= 0 (config validation): the Gram term only runs where asked
                loss = loss + g_w * (gram(f) - gram(r)).abs().mean(dim=(1, 2))  # (B,)
        return loss
