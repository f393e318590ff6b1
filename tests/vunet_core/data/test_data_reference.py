"""Stickmen and crops against a transcription of the reference code (CompVis/vunet `batches.py`).

`ref_make_joint_img` and `ref_get_crop`/`ref_normalize` below follow the original
functions line by line (joints looked up by name through `jo.index`), with the one
change cv2 >= 4 needs: point tuples hold Python ints. The project's implementation
must give the same pixels for random joints, missing ones included, in another
joint order (the 15-joint COCO order, spec §9.2), at several sizes.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from vunet_core.data.crops import make_crops
from vunet_core.data.joints import JOINT_ORDER, to_canonical
from vunet_core.data.stickman import make_stickman

COCO15 = ("rankle", "rknee", "rhip", "lhip", "lknee", "lankle", "rwrist", "relbow", "rshoulder",
          "lshoulder", "lelbow", "lwrist", "cnose", "leye", "reye")  # fmt: skip


def _f32(x: Any) -> np.ndarray:
    """The reference's `np.float32(list)`, spelled so type checkers accept it."""
    return np.array(x, dtype=np.float32)


def _t(p: np.ndarray) -> tuple[int, int]:
    """The reference's `tuple(np.int_(p))` (truncation toward zero) as Python ints."""
    a = np.asarray(p).astype(np.int_)
    return int(a[0]), int(a[1])


def ref_make_joint_img(img_shape: tuple[int, int, int], jo: list[str], joints: np.ndarray) -> np.ndarray:
    scale_factor = img_shape[1] / 128
    thickness = max(1, int(3 * scale_factor))  # the project's documented >= 1 (only matters < 43 px)
    imgs = [np.zeros(img_shape[:2], dtype="uint8") for _ in range(3)]
    body = ["lhip", "lshoulder", "rshoulder", "rhip"]
    body_pts = np.array([[joints[jo.index(part), :] for part in body]])
    if np.min(body_pts) >= 0:
        body_pts = body_pts.astype(np.int_)
        cv2.fillPoly(imgs[2], [body_pts[0].astype(np.int32)], 255)
    right_lines = [
        ("rankle", "rknee"),
        ("rknee", "rhip"),
        ("rhip", "rshoulder"),
        ("rshoulder", "relbow"),
        ("relbow", "rwrist"),
    ]
    for line in right_lines:
        ln = [jo.index(line[0]), jo.index(line[1])]
        if np.min(joints[ln]) >= 0:
            cv2.line(imgs[0], _t(joints[ln[0]]), _t(joints[ln[1]]), color=255, thickness=thickness)
    left_lines = [
        ("lankle", "lknee"),
        ("lknee", "lhip"),
        ("lhip", "lshoulder"),
        ("lshoulder", "lelbow"),
        ("lelbow", "lwrist"),
    ]
    for line in left_lines:
        ln = [jo.index(line[0]), jo.index(line[1])]
        if np.min(joints[ln]) >= 0:
            cv2.line(imgs[1], _t(joints[ln[0]]), _t(joints[ln[1]]), color=255, thickness=thickness)
    rs = joints[jo.index("rshoulder")]
    ls = joints[jo.index("lshoulder")]
    cn = joints[jo.index("cnose")]
    neck = 0.5 * (rs + ls)
    a = _t(neck)
    b = _t(cn)
    if np.min(a) >= 0 and np.min(b) >= 0:
        cv2.line(imgs[0], a, b, color=127, thickness=thickness)
        cv2.line(imgs[1], a, b, color=127, thickness=thickness)
    cn_t = _t(cn)
    leye = _t(joints[jo.index("leye")])
    reye = _t(joints[jo.index("reye")])
    if np.min(reye) >= 0 and np.min(leye) >= 0 and np.min(cn_t) >= 0:
        cv2.line(imgs[0], cn_t, reye, color=255, thickness=thickness)
        cv2.line(imgs[1], cn_t, leye, color=255, thickness=thickness)
    return np.stack(imgs, axis=-1)


def ref_get_crop(  # noqa: C901  mirrors the original get_crop branch for branch, so it stays one function
    bpart: list[str], joints: np.ndarray, jo: list[str], wh: np.ndarray, o_h: int, ar: float
) -> np.ndarray | None:
    part_src = _f32(joints[[jo.index(b) for b in bpart]])
    if not (part_src >= 0).all():
        if bpart[0] == "lhip" and bpart[1] == "lknee":
            bpart = ["lhip"]
        elif bpart[0] == "rhip" and bpart[1] == "rknee":
            bpart = ["rhip"]
        elif bpart[0] == "lshoulder" and bpart[1] == "rshoulder" and bpart[2] == "cnose":
            bpart = ["lshoulder", "rshoulder", "rshoulder"]
        part_src = _f32(joints[[jo.index(b) for b in bpart]])
    if not (part_src >= 0).all():
        return None
    if part_src.shape[0] == 1:
        a = part_src[0]
        part_src = _f32([a, _f32([a[0], o_h - 1])])
    if part_src.shape[0] == 3:
        if bpart == ["lshoulder", "rshoulder", "rshoulder"]:
            segment = part_src[1] - part_src[0]
            normal = np.array([-segment[1], segment[0]])
            if normal[1] > 0.0:
                normal = -normal
            part_src = _f32([part_src[0] + normal, part_src[0], part_src[1], part_src[1] + normal])
        else:
            neck = 0.5 * (part_src[0] + part_src[1])
            neck_to_nose = part_src[2] - neck
            part_src = _f32([neck + 2 * neck_to_nose, neck])
            segment = part_src[1] - part_src[0]
            normal = np.array([-segment[1], segment[0]])
            alpha = 1.0 / 2.0
            a, b = part_src[0] + alpha * normal, part_src[0] - alpha * normal
            c, d = part_src[1] - alpha * normal, part_src[1] + alpha * normal
            part_src = _f32([b, c, d, a])
    elif part_src.shape[0] == 2:
        segment = part_src[1] - part_src[0]
        normal = np.array([-segment[1], segment[0]])
        alpha = ar / 2.0
        a, b = part_src[0] + alpha * normal, part_src[0] - alpha * normal
        c, d = part_src[1] - alpha * normal, part_src[1] + alpha * normal
        part_src = _f32([a, b, c, d])
    dst = _f32([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    return cv2.getPerspectiveTransform(part_src, _f32(wh * dst))


def ref_normalize(img: np.ndarray, joints: np.ndarray, jo: list[str], box_factor: int) -> np.ndarray:
    o_h = img.shape[0]
    h = w = o_h // 2**box_factor
    wh = np.expand_dims(np.array([w, h]), 0)
    bparts = [["lshoulder", "lhip", "rhip", "rshoulder"], ["lshoulder", "rshoulder", "cnose"], ["lshoulder", "lelbow"],
              ["lelbow", "lwrist"], ["rshoulder", "relbow"], ["relbow", "rwrist"], ["lhip", "lknee"], ["rhip", "rknee"]]  # fmt: skip
    parts = []
    for bpart in bparts:
        part_img = np.zeros((h, w, 3))
        m = ref_get_crop(bpart, joints, jo, wh, o_h, 0.5)
        if m is not None:
            part_img = cv2.warpPerspective(img, m, (h, w), borderMode=cv2.BORDER_REPLICATE)
        parts.append(part_img)
    return np.concatenate(parts, axis=2)


def _random_joints(rng: np.random.Generator, size: int, jo: tuple[str, ...], p_missing: float) -> np.ndarray:
    joints = rng.uniform(0.05, 0.95, size=(len(jo), 2)).astype(np.float32) * size
    joints[rng.random(len(jo)) < p_missing] = -1.0
    return joints


@pytest.mark.parametrize("size", [64, 128, 256])
def test_stickman_matches_reference(size: int) -> None:
    rng = np.random.default_rng(size)
    for trial in range(40):
        jo15 = _random_joints(rng, size, COCO15, p_missing=0.15 if trial % 2 else 0.0)
        ours = make_stickman(to_canonical(jo15[None], COCO15, "test")[0], size)
        ref = ref_make_joint_img((size, size, 3), list(COCO15), jo15)
        assert np.array_equal(ours, ref), f"trial {trial}"
        assert ours.any()


@pytest.mark.parametrize(("size", "box_factor"), [(64, 2), (128, 1)])
def test_crops_match_reference(size: int, box_factor: int) -> None:
    rng = np.random.default_rng(7)
    image = rng.uniform(-1, 1, size=(size, size, 3)).astype(np.float32)
    seen_missing = 0
    for trial in range(30):
        jo15 = _random_joints(rng, size, COCO15, p_missing=0.2 if trial % 2 else 0.0)
        crops, valid = make_crops(image, to_canonical(jo15[None], COCO15, "test")[0], size // 2**box_factor)
        ref = ref_normalize(image, jo15, list(COCO15), box_factor)
        np.testing.assert_allclose(crops, ref, atol=1e-6, err_msg=f"trial {trial}")
        seen_missing += int((~valid).sum())
    assert seen_missing > 0  # the fallbacks and the zero crops were exercised


def test_canonical_order_is_spec_order() -> None:
    assert JOINT_ORDER[:3] == ("cnose", "cneck", "rshoulder") and JOINT_ORDER[-2:] == ("rear", "lear")
    assert len(JOINT_ORDER) == 18
