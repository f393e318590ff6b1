"""In-plane normalized crops (spec §9.6): geometry, orientation, fallbacks, zero crops."""

from __future__ import annotations

import numpy as np

from vunet_core.data.crops import make_crops, part_quad
from vunet_core.data.joints import J

S, SC = 64, 16


def _ramp_image(box: tuple[int, int, int, int]) -> np.ndarray:
    """[-1, 1] image: red ramps with x, green with y, blue = +1 inside box (x0, y0, x1, y1) inclusive, -1 outside."""
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    img = np.stack([xx / S * 2 - 1, yy / S * 2 - 1, -np.ones_like(xx)], axis=-1)
    x0, y0, x1, y1 = box
    img[y0 : y1 + 1, x0 : x1 + 1, 2] = 1.0
    return img


def _missing() -> np.ndarray:
    return np.full((18, 2), -1.0, dtype=np.float32)


def test_torso_rectangle_fills_the_crop_in_corner_order() -> None:
    x0, y0, x1, y1 = 20, 10, 44, 42
    joints = _missing()
    joints[J["lshoulder"]], joints[J["lhip"]] = (x0, y0), (x0, y1)  # -> crop (0, 0), (0, Sc)
    joints[J["rhip"]], joints[J["rshoulder"]] = (x1, y1), (x1, y0)  # -> crop (Sc, Sc), (Sc, 0)
    crops, valid = make_crops(_ramp_image((x0, y0, x1 - 1, y1 - 1)), joints, SC)
    assert crops.shape == (SC, SC, 24) and crops.dtype == np.float32
    torso = crops[:, :, 0:3]
    assert valid[0] and (torso[:, :, 2] == 1.0).all()  # the crop sees only the rectangle
    # Crop pixel (u, v) samples image (x0 + u * w / Sc, y0 + v * h / Sc): x -> crop x, y -> crop y.
    u = np.arange(SC)
    np.testing.assert_allclose(torso[0, :, 0], (x0 + u * (x1 - x0) / SC) / S * 2 - 1, atol=1e-3)
    np.testing.assert_allclose(torso[:, 0, 1], (y0 + u * (y1 - y0) / SC) / S * 2 - 1, atol=1e-3)


def test_limb_axis_maps_to_crop_x_with_half_length_width() -> None:
    joints = _missing()
    joints[J["rshoulder"]], joints[J["relbow"]] = (10, 30), (50, 30)  # length 40 -> box height 20
    img = _ramp_image((10, 20, 49, 40))  # crop rows sample y = 40 (p0 + n/4) .. 21.25
    crops, valid = make_crops(img, joints, SC)
    arm = crops[:, :, 12:15]  # part 5: right upper arm
    assert valid[4] and (arm[:, :, 2] == 1.0).all()
    assert (np.diff(arm[0, :, 0]) > 0).all()  # image x grows along crop x (the limb axis)
    assert (np.diff(arm[:, 0, 1]) < 0).all()  # p0 + n (y = 40) is the crop's first row
    assert valid.sum() == 1 and not np.delete(crops.reshape(SC, SC, 8, 3), 4, axis=2).any()


def test_head_without_nose_uses_square_above_shoulders() -> None:
    joints = _missing()
    joints[J["lshoulder"]], joints[J["rshoulder"]] = (40, 30), (20, 30)
    quad = part_quad(1, joints, S)
    assert quad is not None
    np.testing.assert_allclose(quad, [[40, 10], [40, 30], [20, 30], [20, 10]])  # ls + n, ls, rs, rs + n; n up
    crops, valid = make_crops(_ramp_image((20, 10, 40, 30)), joints, SC)
    assert valid[1] and (crops[:, :, 5] == 1.0).all()
    joints[J["cnose"]] = (30, 20)
    head = part_quad(1, joints, S)  # with a nose: neck (30, 30), top (30, 10), n = perp((0, 20)) = (-20, 0)
    assert head is not None
    np.testing.assert_allclose(head, [[40, 10], [40, 30], [20, 30], [20, 10]])  # top - n/2, neck - n/2, ...


def test_thigh_without_knee_runs_to_the_bottom_row() -> None:
    joints = _missing()
    joints[J["lhip"]] = (36, 40)
    quad = part_quad(6, joints, S)  # hip -> (hip_x, S - 1): length 23, half width 5.75
    assert quad is not None
    np.testing.assert_allclose(
        quad, [[30.25, 40], [41.75, 40], [41.75, 63], [30.25, 63]]
    )  # n = perp((0, 23)) = (-23, 0)
    assert part_quad(7, joints, S) is None  # the right hip is missing too


def test_missing_parts_are_exact_zeros() -> None:
    joints = _missing()
    joints[J["lshoulder"]], joints[J["lelbow"]] = (40, 30), (50, 40)
    rng = np.random.default_rng(0)
    crops, valid = make_crops(rng.uniform(-1, 1, (S, S, 3)).astype(np.float32), joints, SC)
    assert valid.tolist() == [False, False, True, False, False, False, False, False]
    parts = crops.reshape(SC, SC, 8, 3)
    assert (parts[:, :, [0, 1, 3, 4, 5, 6, 7]] == 0.0).all() and parts[:, :, 2].any()
