"""The 8 in-plane normalized body-part crops (spec §9.6, reference `batches.py` `get_crop`, `normalize`).

Each part's four source points (joint pixel coordinates at size S) are mapped to
the corners (0,0), (0,Sc), (Sc,Sc), (Sc,0) of an Sc x Sc crop by an OpenCV
perspective transform, warped bilinearly with ``BORDER_REPLICATE`` from the
[-1, 1] float image; parts whose points stay invalid after the fallbacks get an
all-zero crop. The preprocessing cache calls this once per image, so the per-part
``cv2.warpPerspective`` costs nothing at training time.
"""

from __future__ import annotations

import cv2
import numpy as np

from vunet_core.data.joints import J

NUM_PARTS = 8
# Spec §9.6 crop order: torso, head, l upper arm, l forearm, r upper arm, r forearm, l thigh, r thigh.
PARTS: tuple[tuple[str, ...], ...] = (
    ("lshoulder", "lhip", "rhip", "rshoulder"),
    ("lshoulder", "rshoulder", "cnose"),
    ("lshoulder", "lelbow"),
    ("lelbow", "lwrist"),
    ("rshoulder", "relbow"),
    ("relbow", "rwrist"),
    ("lhip", "lknee"),
    ("rhip", "rknee"),
)
LIMB_ASPECT = 0.5  # box width = 0.5 * limb length (reference `ar`)


def _perp(v: np.ndarray) -> np.ndarray:
    """perp(v) = (-v_y, v_x) (spec §9.6)."""
    return np.array([-v[1], v[0]], dtype=v.dtype)


def _limb_box(p0: np.ndarray, p1: np.ndarray, alpha: float) -> np.ndarray:
    """Limb rule: p0+an, p0-an, p1-an, p1+an with n = perp(p1 - p0); axis -> crop x-axis."""
    n = _perp(p1 - p0)
    return np.stack([p0 + alpha * n, p0 - alpha * n, p1 - alpha * n, p1 + alpha * n])  # (4, 2)


def _head_box(ls: np.ndarray, rs: np.ndarray, nose: np.ndarray) -> np.ndarray:
    """Head rule: neck, top = neck + 2 (nose - neck), alpha 0.5; corners top-an, neck-an, neck+an, top+an."""
    neck = 0.5 * (ls + rs)
    top = neck + 2.0 * (nose - neck)
    n = _perp(neck - top)
    return np.stack([top - 0.5 * n, neck - 0.5 * n, neck + 0.5 * n, top + 0.5 * n])  # (4, 2)


def _head_fallback(ls: np.ndarray, rs: np.ndarray) -> np.ndarray:
    """No nose: a shoulder-width square above the shoulders (n made to point up)."""
    n = _perp(rs - ls)
    if n[1] > 0:
        n = -n
    return np.stack([ls + n, ls, rs, rs + n])  # (4, 2)


def _valid(points: np.ndarray) -> bool:
    return bool((points >= 0).all())


def part_quad(part: int, joints: np.ndarray, size: int) -> np.ndarray | None:
    """(4, 2) source points of `part` (index into :data:`PARTS`) or None when invalid (spec §9.6)."""
    names = PARTS[part]
    # float32 throughout, like the reference, so the transforms match it bit for bit.
    pts = joints[[J[n] for n in names]].astype(np.float32)  # (k, 2)
    if len(names) == 4:
        return pts if _valid(pts) else None
    if len(names) == 3:
        if _valid(pts):
            return _head_box(pts[0], pts[1], pts[2])
        return _head_fallback(pts[0], pts[1]) if _valid(pts[:2]) else None
    if not _valid(pts) and names[0].endswith("hip"):
        # Thigh without knee: vertical segment from the hip to the bottom row S - 1.
        pts = np.stack([pts[0], np.array([pts[0][0], size - 1], dtype=np.float32)])
    if not _valid(pts):
        return None
    return _limb_box(pts[0], pts[1], LIMB_ASPECT / 2.0)


def crop_corners(crop_size: int) -> np.ndarray:
    """Destination corners (0,0), (0,Sc), (Sc,Sc), (Sc,0) as (x, y), (4, 2) float32."""
    return np.array([[0, 0], [0, 1], [1, 1], [1, 0]], dtype=np.float32) * crop_size


def make_crops(image: np.ndarray, joints: np.ndarray, crop_size: int) -> tuple[np.ndarray, np.ndarray]:
    """[-1, 1] float image (S, S, 3) + (18, 2) pixel joints -> crops (Sc, Sc, 24) float32, valid (8,) bool.

    Invalid parts are exact zeros (mid-grey in [-1, 1], spec §9.6) and valid[k] is False.
    """
    size = image.shape[0]
    src_img = np.ascontiguousarray(image, dtype=np.float32)
    dst = crop_corners(crop_size)
    crops = np.zeros((crop_size, crop_size, 3 * NUM_PARTS), dtype=np.float32)
    valid = np.zeros(NUM_PARTS, dtype=bool)
    for k in range(NUM_PARTS):
        quad = part_quad(k, joints, size)
        if quad is None:
            continue
        m = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
        if not np.isfinite(m).all():  # degenerate quad (e.g. zero-length limb): keep the zero crop
            continue
        warped = cv2.warpPerspective(
            src_img, m, (crop_size, crop_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )  # (S, S, 3) -> (Sc, Sc, 3)
        crops[:, :, 3 * k : 3 * k + 3] = warped
        valid[k] = True
    return crops, valid
