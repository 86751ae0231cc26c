"""Emotion transfer on a talking take: speech kept, emotion shown — against naive addition of the emotion's
offset, in the same run.

The take is ``rigs.demo.talking.talking_take`` on the demo head (jaw and viseme curves, 120 frames at 30
fps). For each emotion, at intensity 1:

- ``lip_gap_corr``: correlation over frames of the inner-lip gap (landmarks 62–66) with the original take's;
- ``mouth_width_mm_err``: the largest change of the mouth width (48–54) in any frame, mm;
- ``jaw_change_rad``: the largest change of the jaw's pose;
- ``lip_gap_mm_err``: the largest change of that gap in any frame, mm (correlation ignores a constant shift);
- ``emotion_achieved``: the share of the emotion's displacement (what naive addition makes at the neutral
  face) that the method makes where emotion shows and speech does not: brows, nose and eyes (landmarks
  17–47) and the height of the mouth corners (48, 54); the jaw line is speech's;
- ``jerk_ratio``: mean landmark jerk (third difference) of the result over the original's.

    .venv/bin/python benchmarks/emotion_transfer.py

The last line is the happiness row of the transfer.
"""

from __future__ import annotations

import numpy as np

import rigs
from rigs.demo.talking import talking_take
from rigs.expression import (
    EMOTIONS,
    emotion_offset,
    ibug68,
    landmark_displacement,
    speech_preserving_offset,
    transfer_emotion,
)
from rigs.sequences import ParamSequence

UP = 1  # the demo head's up axis


def carriers(displacement: np.ndarray) -> np.ndarray:
    """Where emotion shows and speech does not: brows, nose, eyes (17-47) and the mouth corners' height."""
    return np.concatenate([displacement[17:48].reshape(-1), displacement[[48, 54], UP]])


def landmarks(rig: rigs.Rig, take: ParamSequence) -> np.ndarray:
    return np.stack([ibug68(rig, take.expression[t], take.pose[t]) for t in range(take.num_frames)])


def figures(
    rig: rigs.Rig, original: ParamSequence, edited: ParamSequence, shown: np.ndarray, wanted: np.ndarray
) -> dict[str, float]:
    before, after = landmarks(rig, original), landmarks(rig, edited)
    gap_before = np.linalg.norm(before[:, 66] - before[:, 62], axis=1)
    gap_after = np.linalg.norm(after[:, 66] - after[:, 62], axis=1)
    width_before = np.linalg.norm(before[:, 54] - before[:, 48], axis=1)
    width_after = np.linalg.norm(after[:, 54] - after[:, 48], axis=1)
    jerk = lambda points: float(np.abs(np.diff(points, n=3, axis=0)).mean())  # noqa: E731
    jaw = rig.joint_names.index("jaw")
    wanted_c, shown_c = carriers(wanted), carriers(shown)
    return {
        "lip_gap_corr": float(np.corrcoef(gap_before, gap_after)[0, 1]),
        "lip_gap_mm_err": float(np.abs(gap_after - gap_before).max() * 1000),
        "mouth_width_mm_err": float(np.abs(width_after - width_before).max() * 1000),
        "jaw_change_rad": float(np.abs(edited.pose[:, jaw] - original.pose[:, jaw]).max()),
        "emotion_achieved": float((shown_c * wanted_c).sum() / (wanted_c * wanted_c).sum()),
        "jerk_ratio": jerk(after) / jerk(before),
    }


def main() -> None:
    head = rigs.demo_head()
    take = talking_take(head, frames=120)
    line = ""
    print("emotion    method   figures")
    for emotion in EMOTIONS:
        naive_offset = emotion_offset(head, emotion, 1.0)
        wanted = landmark_displacement(head, naive_offset)
        naive_params = naive_offset.apply({"expression": take.expression, "pose": take.pose})
        naive = ParamSequence(
            take.fps, naive_params["pose"], take.transl, take.betas, naive_params["expression"]
        )
        transferred = transfer_emotion(head, take, emotion, 1.0)
        shown = landmark_displacement(head, speech_preserving_offset(head, emotion))
        for method, edited, moved in (("naive", naive, wanted), ("transfer", transferred, shown)):
            f = figures(head, take, edited, moved, wanted)
            row = (f"lip_gap_corr={f['lip_gap_corr']:.4f} lip_gap_mm_err={f['lip_gap_mm_err']:.3f} "
                   f"mouth_width_mm_err={f['mouth_width_mm_err']:.3f} "
                   f"jaw_change_rad={f['jaw_change_rad']:.2e} emotion_achieved={f['emotion_achieved']:.3f} "
                   f"jerk_ratio={f['jerk_ratio']:.3f}")  # fmt: skip
            print(f"{emotion:10} {method:8} {row}")
            if method == "transfer" and emotion == "happiness":
                line = row
    print(line)


if __name__ == "__main__":
    main()
