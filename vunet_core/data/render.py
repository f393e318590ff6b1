"""Drawing one synthetic person with OpenCV (anti-aliased, supersampled, then area-downsampled).

Painter's order: background scene, legs (trousers or shorts, shoes), pelvis,
patterned shirt, long hair, neck, head (hair, face, eyes), then both arms (sleeves,
forearms, hands) in a random order, so arms that cross the body pass in front of
it. Clothing follows the limbs (shirt over torso and upper arms, trousers over the
legs), so the part crops of spec §9.6 see the person's identity.
"""

from __future__ import annotations

import cv2
import numpy as np

from vunet_core.data.joints import J
from vunet_core.data.people import Colour, Identity, Pose

SHIFT = 4  # OpenCV fixed-point bits: sub-pixel accurate drawing
RENDER_SIDE = 256  # draw at >= 2x and at least this side, then downsample (anti-aliasing)


class _Canvas:
    """An RGB canvas at ss x the output size; all coordinates are given in output pixels."""

    def __init__(self, size: int, background: np.ndarray) -> None:
        self.ss = max(2, RENDER_SIDE // size)
        self.size = size
        self.img = background

    def pt(self, xy: np.ndarray) -> tuple[int, int]:
        # Output pixel centre x maps to the centre of its ss x ss block: x * ss + (ss - 1) / 2.
        x, y = (np.asarray(xy, dtype=np.float64) * self.ss + (self.ss - 1) / 2) * (1 << SHIFT)
        return round(x), round(y)

    def line(self, a: np.ndarray, b: np.ndarray, colour: Colour, width: float) -> None:
        thickness = max(1, round(width * self.ss))
        cv2.line(self.img, self.pt(a), self.pt(b), colour, thickness, cv2.LINE_AA, SHIFT)

    def disc(self, c: np.ndarray, radius: float, colour: Colour) -> None:
        cv2.circle(self.img, self.pt(c), round(radius * self.ss * (1 << SHIFT)), colour, -1, cv2.LINE_AA, SHIFT)

    def ellipse(
        self, c: np.ndarray, axes: tuple[float, float], up: np.ndarray, colour: Colour, arc: tuple[int, int] = (0, 360)
    ) -> None:
        """Ellipse whose second axis points along `up` (arc angles in its own frame, 180-360 = upper half)."""
        angle = float(np.degrees(np.arctan2(up[1], up[0]))) + 90.0
        ax = (round(axes[0] * self.ss * (1 << SHIFT)), round(axes[1] * self.ss * (1 << SHIFT)))
        cv2.ellipse(self.img, self.pt(c), ax, angle, arc[0], arc[1], colour, -1, cv2.LINE_AA, SHIFT)

    def polygon(self, pts: np.ndarray, colour: Colour | int, target: np.ndarray | None = None) -> None:
        fixed = np.array([self.pt(p) for p in pts], dtype=np.int32)
        cv2.fillPoly(self.img if target is None else target, [fixed], colour, cv2.LINE_AA, SHIFT)

    def output(self) -> np.ndarray:
        """(R, R, 3) -> (S, S, 3) uint8 by pixel-area averaging."""
        return cv2.resize(self.img, (self.size, self.size), interpolation=cv2.INTER_AREA)


def _background(ident: Identity, pose: Pose, size: int, ss: int, rng: np.random.Generator) -> np.ndarray:
    """Vertical gradient wall and a floor below the feet; brightness varies a little per image."""
    r = size * ss
    t = np.linspace(0.0, 1.0, r)[:, None, None]  # (R, 1, 1)
    wall = (1 - t) * np.array(ident.bg_top, np.float32) + t * np.array(ident.bg_bottom, np.float32)  # (R, 1, 3)
    floor_y = (pose.points[[J["lankle"], J["rankle"]], 1].max() + 0.02 * pose.scale) * ss
    rows = np.arange(r)[:, None, None]
    img = np.where(rows >= floor_y, np.array(ident.floor, np.float32), wall) + rng.uniform(-8, 8)
    return np.ascontiguousarray(np.broadcast_to(np.clip(img, 0, 255), (r, r, 3)).astype(np.uint8))


def _torso_up(p: np.ndarray) -> np.ndarray:
    """Unit vector from the hip centre to the neck."""
    up = (p[J["lshoulder"]] + p[J["rshoulder"]] - p[J["lhip"]] - p[J["rhip"]]) / 2
    return up / max(1e-6, float(np.linalg.norm(up)))


def _legs(cv: _Canvas, ident: Identity, pose: Pose) -> None:
    """Both legs (trousers, or shorts over skin), shoes, and the pelvis joining them."""
    p, s = pose.points, pose.scale
    w = ident.leg_w * s
    for side in ("l", "r"):
        hip, knee, ankle = p[J[side + "hip"]], p[J[side + "knee"]], p[J[side + "ankle"]]
        if ident.shorts:
            cv.line(knee, ankle, ident.skin, 0.8 * w)
            cv.line(hip, knee, ident.skin, 0.9 * w)
            cv.line(hip, hip + 0.65 * (knee - hip), ident.trousers, w)
        else:
            cv.line(knee, ankle, ident.trousers, 0.9 * w)
            cv.line(hip, knee, ident.trousers, w)
        cv.ellipse(ankle + np.array([0.0, 0.015 * s]), (0.05 * s, 0.028 * s), np.array([0.0, -1.0]), ident.shoes)
    up, half = _torso_up(p), pose.side * w / 2
    lh, rh = p[J["lhip"]], p[J["rhip"]]
    top, bottom = up * 0.05 * s, -up * 0.03 * s
    cv.polygon(np.stack([lh + half + top, rh - half + top, rh - half + bottom, lh + half + bottom]), ident.trousers)


def _pattern(ident: Identity, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean pattern in body coordinates (units of L), so it moves with the torso."""
    pu, pv = np.floor(u / ident.pattern_period), np.floor(v / ident.pattern_period)
    fu, fv = u / ident.pattern_period % 1 - 0.5, v / ident.pattern_period % 1 - 0.5
    table = {
        "plain": np.zeros_like(u, dtype=bool),
        "hstripes": pv % 2 == 0,
        "vstripes": pu % 2 == 0,
        "checker": (pu + pv) % 2 == 0,
        "dots": fu**2 + fv**2 < 0.09,
        "diagonal": np.floor((u + v) / ident.pattern_period) % 2 == 0,
    }
    return table[ident.pattern]


def _shirt(cv: _Canvas, ident: Identity, pose: Pose) -> None:
    """Torso polygon (shoulders widened by half an arm) filled with the identity's patterned shirt."""
    p, s = pose.points, pose.scale
    ls, rs, lh, rh = (p[J[n]] for n in ("lshoulder", "rshoulder", "lhip", "rhip"))
    up, side = _torso_up(p), pose.side
    half = ident.arm_w * s / 2
    quad = np.stack([ls + side * half + up * 0.01 * s, rs - side * half + up * 0.01 * s,
                     rh - side * 0.3 * half - up * 0.03 * s, lh + side * 0.3 * half - up * 0.03 * s])  # fmt: skip
    mask = np.zeros(cv.img.shape[:2], dtype=np.uint8)
    cv.polygon(quad, 255, target=mask)
    cv2.line(mask, cv.pt(ls), cv.pt(rs), 255, max(1, round(2 * half * cv.ss)), cv2.LINE_AA, SHIFT)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    gy, gx = np.mgrid[y0:y1, x0:x1]
    rel_x = (gx - (cv.ss - 1) / 2) / cv.ss - (ls[0] + rs[0]) / 2  # render px -> output px, relative to neck
    rel_y = (gy - (cv.ss - 1) / 2) / cv.ss - (ls[1] + rs[1]) / 2
    u = (rel_x * side[0] + rel_y * side[1]) / s
    v = -(rel_x * up[0] + rel_y * up[1]) / s
    tex = np.where(
        _pattern(ident, u, v)[..., None], np.array(ident.pattern_colour, np.float32), np.array(ident.shirt, np.float32)
    )
    alpha = mask[y0:y1, x0:x1, None].astype(np.float32) / 255.0
    box = cv.img[y0:y1, x0:x1].astype(np.float32)
    cv.img[y0:y1, x0:x1] = np.round(box * (1 - alpha) + tex * alpha).astype(np.uint8)


def _head(cv: _Canvas, ident: Identity, pose: Pose) -> None:
    p, c, up, r = pose.points, pose.head_centre, pose.head_up, ident.head_r * pose.scale
    neck = (p[J["lshoulder"]] + p[J["rshoulder"]]) / 2
    if ident.hair_style == "long":
        cv.ellipse(c - up * 0.6 * r, (1.1 * r, 1.7 * r), up, ident.hair)
    cv.line(neck, c, ident.skin, 0.9 * r)
    if ident.hair_style != "bald":
        cv.ellipse(c + up * 0.15 * r, (0.98 * r, 0.98 * r), up, ident.hair)
    if ident.hair_style == "bun":
        cv.disc(c + up * 1.05 * r, 0.45 * r, ident.hair)
    cv.ellipse(c - up * 0.08 * r, (0.8 * r, 0.98 * r), up, ident.skin)
    fringe = (0.82 * r, 0.55 * r) if ident.hair_style != "bald" else (0.7 * r, 0.3 * r)
    cv.ellipse(c + up * 0.38 * r, fringe, up, ident.hair, arc=(180, 360))
    for eye in ("reye", "leye"):
        if pose.joints[J[eye]].min() >= 0:
            cv.disc(pose.joints[J[eye]], 0.13 * r, (30, 25, 25))


def _arm(cv: _Canvas, ident: Identity, pose: Pose, side: str) -> None:
    p, s = pose.points, pose.scale
    shoulder, elbow, wrist = p[J[side + "shoulder"]], p[J[side + "elbow"]], p[J[side + "wrist"]]
    w = ident.arm_w * s
    fore = ident.shirt if ident.long_sleeves else ident.skin
    cv.line(elbow, wrist, fore, 0.85 * w)
    hand_dir = (wrist - elbow) / max(1e-6, float(np.linalg.norm(wrist - elbow)))
    cv.disc(wrist + hand_dir * 0.025 * s, 0.6 * w, ident.skin)
    if not ident.long_sleeves:
        cv.line(shoulder, elbow, ident.skin, 0.9 * w)
    cv.line(shoulder, elbow if ident.long_sleeves else shoulder + 0.75 * (elbow - shoulder), ident.shirt, w)


def render_person(ident: Identity, pose: Pose, size: int, rng: np.random.Generator) -> np.ndarray:
    """The person in this pose on its background: (S, S, 3) uint8 RGB."""
    ss = max(2, RENDER_SIDE // size)
    cv = _Canvas(size, _background(ident, pose, size, ss, rng))
    _legs(cv, ident, pose)
    _shirt(cv, ident, pose)
    _head(cv, ident, pose)
    for side in ("l", "r") if rng.random() < 0.5 else ("r", "l"):
        _arm(cv, ident, pose, side)
    return cv.output()
