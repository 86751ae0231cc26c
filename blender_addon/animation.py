"""The demo shot's keyframes: a head turn with an expression change."""

from __future__ import annotations

import numpy as np

from .rig_builder import RigObjects
from .rig_params import set_params


def keyframe_demo_animation(objects: RigObjects, frame_start: int, frame_end: int) -> None:
    """Key a head turn (neck yaw), a smile with a brow raise, a jaw opening and a blink.

    Keys sit at fixed fractions of the range, so any shot length gets the same performance.
    """
    span = max(frame_end - frame_start, 1)
    keys = [  # (fraction of the shot, neck yaw rad, jaw open rad, expression coefficients)
        (0.0, -0.30, 0.00, {"smile": 0.0, "brow_raise": 0.0, "blink": 0.0}),
        (0.4, 0.00, 0.12, {"smile": 0.6, "brow_raise": 1.0, "blink": 0.0}),
        (0.7, 0.15, 0.05, {"smile": 1.0, "brow_raise": 0.3, "blink": 1.0}),
        (1.0, 0.30, 0.00, {"smile": 1.0, "brow_raise": 0.0, "blink": 0.0}),
    ]
    for fraction, yaw, jaw, expression in keys:
        frame = frame_start + round(fraction * span)
        set_params(
            objects,
            expression=expression,
            pose={"neck": np.array([0.0, yaw, 0.0]), "jaw": np.array([jaw, 0.0, 0.0])},
            keyframe_at=frame,
        )
