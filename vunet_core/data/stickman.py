"""Stickman rendering from keypoints (spec §9.5, reference `batches.py` `make_joint_img`).

Three uint8 planes of S x S: channel 0 the person's right limbs, channel 1 the left
limbs, channel 2 the filled torso polygon; the neck-nose line has value 127 in
channels 0 and 1. Drawn with OpenCV's default 8-connected, non anti-aliased
``line``/``fillPoly`` at integer-truncated coordinates, in the reference's draw
order (later strokes overwrite earlier ones). The cache stores the uint8 result;
:func:`to_signed` maps it to [-1, 1] as ``u8 / 127.5 - 1``.
"""

from __future__ import annotations

import cv2
import numpy as np

from vunet_core.data.joints import J

# Spec §9.5 channel 0 / 1 limb lists, in the reference's drawing order.
RIGHT_LINES = (
    ("rankle", "rknee"),
    ("rknee", "rhip"),
    ("rhip", "rshoulder"),
    ("rshoulder", "relbow"),
    ("relbow", "rwrist"),
)
LEFT_LINES = (
    ("lankle", "lknee"),
    ("lknee", "lhip"),
    ("lhip", "lshoulder"),
    ("lshoulder", "lelbow"),
    ("lelbow", "lwrist"),
)
TORSO_POLYGON = ("lhip", "lshoulder", "rshoulder", "rhip")
NECK_VALUE = 127


def stickman_thickness(size: int) -> int:
    """Spec §9.5: int(3 * S / 128) (6 at 256, 3 at 128, 1 at 64).

    Deviation: at least 1. Below 43 px the reference formula gives 0, which OpenCV
    rejects (`line` asserts thickness > 0), so 32 px stickmen use 1-px lines.
    """
    return max(1, int(3 * size / 128))


def _pt(p: np.ndarray) -> tuple[int, int]:
    """Truncate to int like the reference's `np.int_` (toward zero)."""
    return int(p[0]), int(p[1])


def make_stickman(joints: np.ndarray, size: int) -> np.ndarray:
    """(18, 2) joint pixel coordinates at size S (canonical order, negative = missing) -> (S, S, 3) uint8."""
    t = stickman_thickness(size)
    planes = [np.zeros((size, size), dtype=np.uint8) for _ in range(3)]
    body = joints[[J[n] for n in TORSO_POLYGON]]  # (4, 2)
    if body.min() >= 0:  # the polygon needs all four torso points (spec §9.5)
        cv2.fillPoly(planes[2], [body.astype(np.int32)], 255)
    for plane, lines in ((planes[0], RIGHT_LINES), (planes[1], LEFT_LINES)):
        for a, b in lines:
            pa, pb = joints[J[a]], joints[J[b]]
            if min(pa.min(), pb.min()) >= 0:
                cv2.line(plane, _pt(pa), _pt(pb), 255, thickness=t)
    # The reference checks the neck/nose/eye endpoints after truncation to int, and
    # always recomputes the neck from the shoulders (spec §9.1); we follow the code.
    neck = _pt(0.5 * (joints[J["rshoulder"]] + joints[J["lshoulder"]]))
    nose = _pt(joints[J["cnose"]])
    if min(neck) >= 0 and min(nose) >= 0:
        cv2.line(planes[0], neck, nose, NECK_VALUE, thickness=t)
        cv2.line(planes[1], neck, nose, NECK_VALUE, thickness=t)
    reye, leye = _pt(joints[J["reye"]]), _pt(joints[J["leye"]])
    if min(reye) >= 0 and min(leye) >= 0 and min(nose) >= 0:  # all three must be valid
        cv2.line(planes[0], nose, reye, 255, thickness=t)
        cv2.line(planes[1], nose, leye, 255, thickness=t)
    return np.stack(planes, axis=-1)  # 3 x (S, S) -> (S, S, 3)


def to_signed(u8: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [-1, 1] as `u8 / 127.5 - 1` (spec §9.4/§9.5), in place on the new array."""
    out = u8.astype(np.float32)
    out /= 127.5
    out -= 1.0
    return out
