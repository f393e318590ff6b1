"""Stickman pixels for hand-made keypoints (spec §9.5)."""

from __future__ import annotations

import numpy as np

from vunet_core.data.joints import J
from vunet_core.data.stickman import make_stickman, stickman_thickness, to_signed


def _missing() -> np.ndarray:
    return np.full((18, 2), -1.0, dtype=np.float32)


def test_right_limb_lands_on_channel_0_at_its_place() -> None:
    joints = _missing()
    joints[J["rshoulder"]] = (10, 20)
    joints[J["relbow"]] = (40, 20)
    img = make_stickman(joints, 64)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert (img[20, 10:41, 0] == 255).all()  # the whole segment, 1 px thick at 64 px
    assert img[:, :, 0].sum() == 255 * 31  # and nothing else
    assert not img[:, :, 1:].any()  # not on the left channel, no torso


def test_left_limb_on_channel_1_thickness_3_at_128() -> None:
    joints = _missing()
    joints[J["lknee"]] = (60, 30)
    joints[J["lankle"]] = (60, 90)
    img = make_stickman(joints, 128)
    assert stickman_thickness(128) == 3 and stickman_thickness(256) == 6 and stickman_thickness(64) == 1
    cut = np.nonzero(img[60, :, 1])[0]  # a horizontal cut through the vertical line at x = 60
    # OpenCV's thick 8-connected line: centred on the segment, about thickness (+ rounding) wide.
    assert (np.diff(cut) == 1).all() and cut.min() + cut.max() == 120 and 3 <= len(cut) <= 5
    assert not img[:, :, 0].any() and not img[:, :, 2].any()


def test_missing_joints_draw_nothing() -> None:
    joints = _missing()
    joints[J["rshoulder"]] = (10, 20)  # its partners are missing
    joints[J["lwrist"]] = (30, 30)
    joints[J["lelbow"]] = (-1, 30)  # one negative coordinate is enough to be missing
    assert not make_stickman(joints, 64).any()


def test_torso_polygon_needs_all_four_points(standing: np.ndarray) -> None:
    joints = standing * 64
    full = make_stickman(joints, 64)
    assert full[int(0.4 * 64), 32, 2] == 255  # inside the torso
    joints[J["rhip"]] = -1
    partial = make_stickman(joints, 64)
    assert not partial[:, :, 2].any()
    assert partial[:, :, 1].any()  # the left side still has its limbs


def test_neck_nose_127_and_eye_lines_need_nose_and_both_eyes(standing: np.ndarray) -> None:
    joints = standing * 128
    img = make_stickman(joints, 128)
    mid = (int(0.5 * 128), int(0.2 * 128))  # (x, y) between neck (y 32) and nose (y 19)
    assert img[mid[1], mid[0], 0] == 127 and img[mid[1], mid[0], 1] == 127
    reye = joints[J["reye"]].astype(int)
    assert img[reye[1], reye[0], 0] == 255  # eye lines are drawn last
    joints[J["leye"]] = -1
    no_eye = make_stickman(joints, 128)
    assert no_eye[reye[1], reye[0], 0] == 0  # one eye missing -> neither eye line


def test_signed_values() -> None:
    values = np.unique(to_signed(np.array([0, 127, 255], dtype=np.uint8)))
    np.testing.assert_allclose(values, [-1.0, 127 / 127.5 - 1, 1.0])
