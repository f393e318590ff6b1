"""Synthetic people: per-identity looks, random articulated poses, and their 18 keypoints.

A person is an :class:`Identity` (body proportions and a look: skin, hair, shirt
colour and pattern, trousers, shoes, background scene) that stays fixed across
all its images (:data:`BACKGROUNDS` and :data:`CLOTHES` choose how varied the
scene and the clothes are), plus a random :class:`Pose` per image (lean, arm and leg angles
including limbs crossing the body, head tilt and turn, scale and position).
Geometry lives in units of the body height L and is placed in output-pixel
coordinates (pixel centres at integers, like OpenCV and the stickman), giving the
18 COCO/OpenPose keypoints of spec §9.2. Drawing is in :mod:`vunet_core.data.render`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from vunet_core.data.joints import NUM_JOINTS, J

Colour = tuple[int, int, int]

SKIN = ((255, 224, 196), (241, 194, 156), (224, 172, 130), (198, 134, 98), (161, 102, 69), (120, 75, 50), (90, 56, 37))
HAIR = ((20, 16, 14), (60, 40, 25), (110, 70, 40), (170, 125, 70), (220, 190, 120), (150, 60, 30), (160, 160, 160))
HAIR_STYLES = ("short", "long", "bun", "bald")
PATTERNS = ("plain", "hstripes", "vstripes", "checker", "dots", "diagonal")
ARM_MODES = (("down", 0.3), ("side", 0.2), ("up", 0.15), ("across", 0.25), ("hip", 0.1))
LEG_MODES = (("stand", 0.45), ("wide", 0.25), ("cross", 0.15), ("kick", 0.15))
# "scene": each person has their own wall gradient and floor; "studio": one plain light wall and
# floor for everyone (as in DeepFashion's studio shots), so the background tells nothing of who it is.
BACKGROUNDS = ("scene", "studio")
STUDIO_WALL, STUDIO_FLOOR = (200, 200, 200), (170, 170, 170)
# "varied": patterned shirts (stripes, checks, dots) of any saturation; "plain": one strong colour per
# garment, so a person's look is mostly their shirt and trousers colours.
CLOTHES = ("varied", "plain")


@dataclass(frozen=True)
class Identity:
    """Everything that stays the same across one person's images (lengths in body heights L)."""

    head_r: float
    torso_len: float
    shoulder_hw: float
    hip_hw: float
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    arm_w: float
    leg_w: float
    skin: Colour
    hair: Colour
    hair_style: str
    shirt: Colour
    pattern: str
    pattern_colour: Colour
    pattern_period: float
    long_sleeves: bool
    trousers: Colour
    shorts: bool
    shoes: Colour
    bg_top: Colour
    bg_bottom: Colour
    floor: Colour


@dataclass(frozen=True)
class Pose:
    """One image's figure in output pixels: 18 keypoints as annotated (negative = missing) and as drawn."""

    joints: np.ndarray  # (18, 2) float64, output pixel coordinates; -1 = missing (hidden or outside)
    points: np.ndarray  # (18, 2) float64, the true geometry, used for drawing
    head_centre: np.ndarray  # (2,)
    head_up: np.ndarray  # (2,) unit vector from chin to crown
    side: np.ndarray  # (2,) unit vector towards the person's left (image right when facing us)
    scale: float  # pixels per body height L


def _jitter(rng: np.random.Generator, colour: Colour, amount: int) -> Colour:
    c = np.clip(np.asarray(colour) + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return int(c[0]), int(c[1]), int(c[2])


def _hsv(rng: np.random.Generator, s: tuple[float, float], v: tuple[float, float]) -> Colour:
    """A random RGB colour with saturation and value in the given ranges (OpenCV does the conversion)."""
    px = np.array([[[rng.integers(0, 180), 255 * rng.uniform(*s), 255 * rng.uniform(*v)]]], dtype=np.uint8)
    r, g, b = cv2.cvtColor(px, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def make_identity(seed: int, person: int, background: str = "scene", clothes: str = "varied") -> Identity:
    """The person's fixed proportions and look; a pure function of its arguments. The defaults
    give the same people as before the options existed (the options draw from their own stream)."""
    ident = _varied_identity(seed, person)
    if background == "studio":
        ident = replace(ident, bg_top=STUDIO_WALL, bg_bottom=STUDIO_WALL, floor=STUDIO_FLOOR)
    if clothes == "plain":
        rng = np.random.default_rng([seed, person, 3])
        ident = replace(
            ident, pattern="plain", shirt=_hsv(rng, (0.6, 1.0), (0.5, 1.0)), trousers=_hsv(rng, (0.4, 0.9), (0.3, 0.9))
        )
    return ident


def _varied_identity(seed: int, person: int) -> Identity:
    rng = np.random.default_rng([seed, person, 0])
    build = rng.uniform(0.85, 1.25)
    shirt = _hsv(rng, (0.35, 1.0), (0.35, 1.0))
    pattern = str(rng.choice(PATTERNS, p=[0.3, 0.15, 0.15, 0.15, 0.15, 0.1]))
    contrast = rng.integers(3)
    pattern_colour = ((235, 235, 235), (25, 25, 25), _hsv(rng, (0.5, 1.0), (0.4, 1.0)))[contrast]
    return Identity(
        head_r=rng.uniform(0.066, 0.08),
        torso_len=rng.uniform(0.28, 0.32),
        shoulder_hw=rng.uniform(0.09, 0.12) * min(build, 1.1),
        hip_hw=rng.uniform(0.06, 0.08) * min(build, 1.1),
        upper_arm=rng.uniform(0.16, 0.19),
        forearm=rng.uniform(0.14, 0.17),
        thigh=rng.uniform(0.22, 0.26),
        shin=rng.uniform(0.21, 0.25),
        arm_w=0.055 * build,
        leg_w=0.072 * build,
        skin=_jitter(rng, SKIN[rng.integers(len(SKIN))], 8),
        hair=_jitter(rng, HAIR[rng.integers(len(HAIR))], 10),
        hair_style=str(rng.choice(HAIR_STYLES, p=[0.4, 0.3, 0.15, 0.15])),
        shirt=shirt,
        pattern=pattern,
        pattern_colour=pattern_colour,
        pattern_period=rng.uniform(0.06, 0.1),
        long_sleeves=bool(rng.random() < 0.5),
        trousers=_hsv(rng, (0.1, 0.7), (0.15, 0.7)),
        shorts=bool(rng.random() < 0.25),
        shoes=_hsv(rng, (0.0, 0.5), (0.05, 0.9)),
        bg_top=_hsv(rng, (0.0, 0.35), (0.6, 0.95)),
        bg_bottom=_hsv(rng, (0.0, 0.35), (0.5, 0.9)),
        floor=_hsv(rng, (0.0, 0.4), (0.3, 0.7)),
    )


def _rot(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _choice(rng: np.random.Generator, modes: tuple[tuple[str, float], ...]) -> str:
    return str(rng.choice([m for m, _ in modes], p=[p for _, p in modes]))


def _arm_angles(rng: np.random.Generator) -> tuple[float, float, float]:
    """(upper-arm angle, forearm angle, forearm foreshortening); 0 = hanging down, > 0 = outward."""
    ranges = {
        "down": ((0.05, 0.5), (-0.4, 0.4)),
        "side": ((0.8, 1.8), (-1.5, 0.8)),
        "up": ((2.0, 2.9), (-0.6, 0.6)),
        "across": ((-0.5, 0.4), (-2.4, -1.3)),  # forearm swings across the body
        "hip": ((0.5, 0.9), (-2.6, -2.0)),
    }[_choice(rng, ARM_MODES)]
    upper = rng.uniform(*ranges[0])
    return upper, upper + rng.uniform(*ranges[1]), rng.uniform(0.8, 1.0)


def _leg_angles(rng: np.random.Generator) -> tuple[float, float, float]:
    """(thigh angle, shin angle, foreshortening); negative thigh angles cross the other leg."""
    ranges = {
        "stand": ((-0.05, 0.25), (-0.15, 0.15)),
        "wide": ((0.25, 0.55), (-0.3, 0.1)),
        "cross": ((-0.35, -0.12), (-0.1, 0.2)),
        "kick": ((0.6, 1.3), (-1.2, 0.0)),
    }[_choice(rng, LEG_MODES)]
    thigh = rng.uniform(*ranges[0])
    return thigh, thigh + rng.uniform(*ranges[1]), rng.uniform(0.85, 1.0)


def _body_points(rng: np.random.Generator, ident: Identity) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joints (18, 2) in L units around the hip centre, plus the side and up unit vectors."""
    lean = float(np.clip(rng.normal(0.0, 0.08), -0.25, 0.25))
    up, side = _rot(np.array([0.0, -1.0]), lean), _rot(np.array([1.0, 0.0]), lean)
    turn = rng.uniform(0.75, 1.0)  # body turned away from the camera narrows shoulders and hips
    pts = np.zeros((NUM_JOINTS, 2))
    neck = up * ident.torso_len
    pts[J["cneck"]] = neck
    for sign, prefix in ((1.0, "l"), (-1.0, "r")):  # person's left is image right (facing the camera)
        out = sign * side

        def direction(angle: float, out: np.ndarray = out) -> np.ndarray:
            return -up * np.cos(angle) + out * np.sin(angle)

        shoulder = neck + out * ident.shoulder_hw * turn
        upper, fore, short = _arm_angles(rng)
        elbow = shoulder + ident.upper_arm * direction(upper)
        pts[J[prefix + "shoulder"]], pts[J[prefix + "elbow"]] = shoulder, elbow
        pts[J[prefix + "wrist"]] = elbow + ident.forearm * short * direction(fore)
        hip = out * ident.hip_hw * turn
        thigh, shin, short = _leg_angles(rng)
        knee = hip + ident.thigh * short * direction(thigh)
        pts[J[prefix + "hip"]], pts[J[prefix + "knee"]] = hip, knee
        pts[J[prefix + "ankle"]] = knee + ident.shin * short * direction(shin)
    return pts, side, up


def _face_points(
    rng: np.random.Generator, ident: Identity, pts: np.ndarray, side: np.ndarray, up: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nose, eyes, ears on a turned and tilted head; (18,) visibility: far-side features are hidden."""
    tilt, yaw = rng.uniform(-0.25, 0.25), rng.uniform(-0.9, 0.9)
    head_up, head_side = _rot(up, tilt), _rot(side, tilt)
    centre = pts[J["cneck"]] + head_up * (0.03 + ident.head_r)
    r = ident.head_r
    pts[J["cnose"]] = centre + head_side * r * np.sin(yaw) - head_up * 0.15 * r
    visible = np.ones(NUM_JOINTS, dtype=bool)
    for name, azimuth, height, threshold in (("reye", -0.55, 0.2, 0.15), ("leye", 0.55, 0.2, 0.15),
                                             ("rear", -1.5, 0.0, -0.25), ("lear", 1.5, 0.0, -0.25)):  # fmt: skip
        a = azimuth + yaw
        pts[J[name]] = centre + head_side * 0.85 * r * np.sin(a) + head_up * height * r
        visible[J[name]] = np.cos(a) > threshold
    return centre, head_up, visible


def make_pose(seed: int, person: int, image: int, ident: Identity, size: int) -> Pose:
    """A random pose of `ident`, scaled and placed inside an S x S image; pure function of its arguments."""
    rng = np.random.default_rng([seed, person, 1, image])
    pts, side, up = _body_points(rng, ident)
    centre, head_up, valid = _face_points(rng, ident, pts, side, up)
    crown = centre + head_up * ident.head_r * 1.2
    extent = np.vstack([pts[valid], crown[None]])  # (K, 2) points that must fit in the frame
    lo, hi = extent.min(0), extent.max(0)
    margin = 0.06  # limb width and shoes stick out of the joints
    lo, hi = lo - margin, hi + margin
    scale = rng.uniform(0.78, 0.98) * size / (hi[1] - lo[1])
    scale = min(scale, 0.98 * size / (hi[0] - lo[0]))
    offset = np.array(
        [rng.uniform(-lo[0] * scale, size - hi[0] * scale), rng.uniform(-lo[1] * scale, size - hi[1] * scale)]
    )
    points = pts * scale + offset  # (18, 2) L units -> pixels
    outside = ((points < 0) | (points > size - 1)).any(axis=1)  # an annotator cannot mark these
    joints = np.where((valid & ~outside)[:, None], points, -1.0)
    return Pose(joints, points, centre * scale + offset, head_up, side, scale)
