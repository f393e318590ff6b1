"""Joint names and their resolution by name (spec §9.1-9.3).

Every reader turns its own joint order into the canonical 18-joint COCO/OpenPose
order of spec §9.2 (missing names become -1, i.e. missing), so stickmen, crops and
the generator only ever index :data:`JOINT_ORDER`. Joints are looked up by
name, never by position, because the original indices disagree on the order
(DeepFashion/Market use 18 joints, COCO 15).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vunet_core.data.errors import DataError

# Spec §9.2: the 18-joint COCO/OpenPose order; the project's canonical order.
JOINT_ORDER: tuple[str, ...] = (
    "cnose", "cneck", "rshoulder", "relbow", "rwrist", "lshoulder", "lelbow", "lwrist", "rhip",
    "rknee", "rankle", "lhip", "lknee", "lankle", "reye", "leye", "rear", "lear",
)  # fmt: skip
NUM_JOINTS = len(JOINT_ORDER)
J = {name: i for i, name in enumerate(JOINT_ORDER)}

# Spec §9.1: names the reference looks up (an index without one of them cannot be used).
REQUIRED_JOINTS: tuple[str, ...] = (
    "rankle", "rknee", "rhip", "rshoulder", "relbow", "rwrist", "reye",
    "lankle", "lknee", "lhip", "lshoulder", "lelbow", "lwrist", "leye", "cnose",
)  # fmt: skip

# Spec §9.3: an image is kept only if these four torso joints are all present.
TORSO_JOINTS: tuple[str, ...] = ("lshoulder", "rshoulder", "lhip", "rhip")


def check_joint_order(joint_order: Sequence[str], source: str) -> list[str]:
    """The names as strings; DataError naming `source` if a name of spec §9.1 is absent."""
    names = [str(n) for n in joint_order]
    missing = [n for n in REQUIRED_JOINTS if n not in names]
    if missing:
        raise DataError(f"{source}: joint_order lacks {', '.join(missing)} (spec §9.1 needs them by name)")
    return names


def to_canonical(joints: np.ndarray, joint_order: Sequence[str], source: str) -> np.ndarray:
    """(N, J_src, 2) joints in `joint_order` -> (N, 18, 2) float32 in :data:`JOINT_ORDER`.

    Names absent from `joint_order` (e.g. ears in the COCO index) become (-1, -1);
    names not in the canonical order are ignored. `source` names the index file in
    errors.
    """
    names = check_joint_order(joint_order, source)
    if joints.ndim != 3 or joints.shape[1:] != (len(names), 2):
        raise DataError(
            f"{source}: joints have shape {tuple(joints.shape)}, expected (N, {len(names)}, 2) for {len(names)} joint names"
        )
    out = np.full((joints.shape[0], NUM_JOINTS, 2), -1.0, dtype=np.float32)
    for src, name in enumerate(names):
        if name in J:
            out[:, J[name]] = joints[:, src]
    return out


def keep_mask(joints: np.ndarray, train: np.ndarray, split_is_train: bool) -> np.ndarray:
    """Spec §9.3: train flag equals the split and both coordinates of the 4 torso joints >= 0.

    joints: (N, 18, 2) canonical; train: (N,) bool -> (N,) bool.
    """
    return np.asarray((train.astype(bool) == split_is_train) & torso_present(joints))


def torso_present(joints: np.ndarray) -> np.ndarray:
    """(N, 18, 2) canonical joints -> (N,) bool: all of :data:`TORSO_JOINTS` present (spec §9.3)."""
    torso = joints[:, [J[n] for n in TORSO_JOINTS]]  # (N, 4, 2)
    return np.asarray((torso >= 0).all(axis=(1, 2)))
