"""Tests of the VGG19 perceptual loss (spec §6.2) with random weights saved to a temp file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from vunet_core.config import ConfigError, LossesConfig, LossTerm, PerceptualTerm
from vunet_core.losses import color_l1, compute_losses
from vunet_core.model import VUNetOutput
from vunet_core.perceptual import (
    CAFFE_BGR_MEAN,
    PerceptualLoss,
    WeightsError,
    check_vgg_weights,
    gram,
    load_vgg19_features,
)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A features-only VGG19 state dict with random weights (no download, ~80 MB)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg19_features.pth"
    torch.save(make_layers(cfgs["E"]).state_dict(), path)
    return path


def term(path: Path, features: list[float] | None = None, grams: list[float] | None = None) -> PerceptualTerm:
    return PerceptualTerm(
        weight=5.0,
        vgg_weights=str(path),
        feature_weights=features if features is not None else [1.0] * 6,
        gram_weights=grams if grams is not None else [0.0] * 6,
    )


def images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(2, 3, 32, 32, generator=g) * 2 - 1


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "vgg19.pth"
    with pytest.raises(WeightsError, match=r"losses/perceptual/vgg_weights: .*vgg19.pth: no such file"):
        load_vgg19_features(str(missing))
    with pytest.raises(ConfigError, match="no such file"):
        check_vgg_weights(str(missing))
    with pytest.raises(WeightsError, match="not set"):
        PerceptualLoss(PerceptualTerm(weight=5.0))


def test_wrong_or_unreadable_file_is_reported(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot be read"):
        check_vgg_weights(str(garbage))
    other = tmp_path / "vgg16.pth"
    torch.save(make_layers(cfgs["D"]).state_dict(), other)  # VGG16: fewer layers
    with pytest.raises(WeightsError, match="missing"):
        check_vgg_weights(str(other))
    bad_shape = make_layers(cfgs["E"]).state_dict()
    bad_shape["0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(bad_shape, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match=r"shape of 0.weight"):
        load_vgg19_features(str(tmp_path / "bad.pth"))


def test_accepts_full_vgg19_layout(vgg_file: Path, tmp_path: Path) -> None:
    features = torch.load(vgg_file, weights_only=True)
    full = {f"features.{k}": v for k, v in features.items()}
    full["classifier.6.bias"] = torch.zeros(1000)  # the classifier part is ignored
    torch.save(full, tmp_path / "vgg19_full.pth")
    check_vgg_weights(str(tmp_path / "vgg19_full.pth"))
    loaded = load_vgg19_features(str(tmp_path / "vgg19_full.pth"))
    assert torch.equal(loaded.state_dict()["34.weight"], features["34.weight"])


def test_loss_is_per_instance_frozen_and_zero_on_equal_images(vgg_file: Path) -> None:
    check_vgg_weights(str(vgg_file))
    loss = PerceptualLoss(term(vgg_file))
    loss.train()
    assert not loss.vgg.training and not any(p.requires_grad for p in loss.parameters())
    x_hat, x = images()
    value = loss(x_hat, x)
    assert value.shape == (2,) and torch.all(value > 0)
    torch.testing.assert_close(loss(x, x), torch.zeros(2))


def test_input_tap_is_scaled_pixel_l1(vgg_file: Path) -> None:
    loss = PerceptualLoss(term(vgg_file, features=[1.0, 0, 0, 0, 0, 0]))
    x_hat, x = images()
    torch.testing.assert_close(loss(x_hat, x), 127.5 * color_l1(x_hat, x))  # spec §6.2, L0 term


def test_caffe_preprocessing(vgg_file: Path) -> None:
    loss = PerceptualLoss(term(vgg_file))
    image = torch.zeros(1, 3, 16, 16)
    image[:, 0] = 1.0  # pure red in [-1, 1] RGB
    tap0 = loss.taps(image)[0]
    expected = torch.tensor([127.5, 127.5, 255.0]) - torch.tensor(CAFFE_BGR_MEAN)  # BGR, mean-subtracted
    torch.testing.assert_close(tap0[0, :, 0, 0], expected)
    assert [t.shape[1] for t in loss.taps(torch.zeros(1, 3, 32, 32))] == [3, 64, 128, 256, 512, 512]


def test_gradient_flows_through_every_vgg_layer(vgg_file: Path) -> None:
    # only relu5_2: any no_grad around non-tap layers (the edflow port's bug) would zero this
    loss = PerceptualLoss(term(vgg_file, features=[0, 0, 0, 0, 0, 1.0]))
    x_hat, x = images()
    x_hat.requires_grad_()
    loss(x_hat, x).sum().backward()
    assert x_hat.grad is not None and float(x_hat.grad.abs().sum()) > 0


def test_gram_term(vgg_file: Path) -> None:
    f = torch.randn(2, 4, 3, 5)
    manual = torch.einsum("bchw,bdhw->bcd", f, f) / (4 * 3 * 5)
    torch.testing.assert_close(gram(f), manual)
    x_hat, x = images()
    zero = [0.0] * 6
    plain = PerceptualLoss(term(vgg_file, features=zero, grams=zero))
    assert torch.equal(plain(x_hat, x), torch.zeros(2))
    with_gram = PerceptualLoss(term(vgg_file, features=zero, grams=[0, 0.01, 0.01, 0, 0, 0]))
    taps_fake, taps_real = with_gram.taps(x_hat), with_gram.taps(x)
    expected = sum(0.01 * (gram(taps_fake[i]) - gram(taps_real[i])).abs().mean(dim=(1, 2)) for i in (1, 2))
    assert isinstance(expected, torch.Tensor)
    torch.testing.assert_close(with_gram(x_hat, x), expected)


def test_compute_losses_uses_the_perceptual_term(vgg_file: Path) -> None:
    cfg = LossesConfig(color_L1=LossTerm(weight=0.0), KL=LossTerm(weight=0.0), perceptual=term(vgg_file))
    loss = PerceptualLoss(cfg.perceptual)
    x_hat, x = images()
    x_hat.requires_grad_()
    losses = compute_losses(cfg, 0, x, VUNetOutput(image=x_hat), loss)
    assert set(losses["instances"]) == {"perceptual", "total"}
    torch.testing.assert_close(losses["instances"]["total"], 5.0 * loss(x_hat, x))
    losses["batch"]["total"].backward()
    assert x_hat.grad is not None and float(x_hat.grad.abs().sum()) > 0
