"""A procedural talking take: jaw and viseme curves, for emotion-transfer checks without a tracked clip."""

from __future__ import annotations

import numpy as np

from ..errors import RigError
from ..model import Rig
from ..sequences import ParamSequence

SYLLABLES_PER_SECOND = 4.0  # a calm speaking rate
JAW_OPEN_RAD = 0.12  # the widest jaw opening of a syllable
# Demo-head shapes that shape the lips (when the rig has them), with their strongest weight.
VISEMES = {"mouth_pucker": 0.6, "mouth_left": 0.3, "mouth_right": 0.3}


def talking_take(rig: Rig, frames: int = 120, fps: float = 30.0, seed: int = 0) -> ParamSequence:
    """``frames`` of speech-like motion for ``rig``: the jaw opening and closing per syllable (random
    heights), lip-shaping visemes on the rig's named shapes when it has them, a slight head nod.

    Raises:
        RigError: the rig has no jaw joint, or fewer than 2 frames are asked for.
    """
    if "jaw" not in rig.joint_names:
        raise RigError(f"rig {rig.name!r} has no jaw joint to talk with")
    if frames < 2:
        raise RigError(f"frames: expected at least 2, got {frames}")
    rng = np.random.default_rng(seed)
    time = np.arange(frames) / fps
    syllables = int(np.ceil(time[-1] * SYLLABLES_PER_SECOND)) + 2
    heights = rng.uniform(0.3, 1.0, syllables)
    phase = time * SYLLABLES_PER_SECOND
    index = np.floor(phase).astype(int)
    opening = heights[index] * np.sin(np.pi * (phase - index)) ** 2  # 0 between syllables
    pose = np.zeros((frames, rig.num_joints, 3))
    pose[:, rig.joint_names.index("jaw"), 0] = JAW_OPEN_RAD * opening
    if "neck" in rig.joint_names:
        pose[:, rig.joint_names.index("neck"), 0] = 0.03 * np.sin(2 * np.pi * 0.5 * time)
    expression = np.zeros((frames, rig.num_expressions))
    for name, strongest in VISEMES.items():
        weights = np.clip(rng.normal(0.0, 0.5, syllables), 0.0, 1.0)
        if name in rig.expression_names:
            expression[:, rig.expression_names.index(name)] = strongest * weights[index] * opening
    return ParamSequence(
        fps=fps, pose=pose, transl=np.zeros((frames, 3)), betas=np.zeros(rig.num_betas), expression=expression
    )
