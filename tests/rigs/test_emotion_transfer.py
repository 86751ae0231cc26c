"""Emotion transfer on a talking take (NED's task, training-free): speech kept exactly where it shows (jaw,
lip gaps, mouth width), the emotion shown on brows, eyes and the corners' height, no flicker."""

from __future__ import annotations

import numpy as np
import pytest

import rigs
from rigs import Rig
from rigs.demo.talking import talking_take
from rigs.expression import (
    ExpressionError,
    emotion_offset,
    ibug68,
    landmark_displacement,
    speech_constraints,
    speech_preserving_offset,
    transfer_emotion,
)
from rigs.sequences import ParamSequence


def take_landmarks(rig: Rig, take: ParamSequence) -> np.ndarray:
    return np.stack([ibug68(rig, take.expression[t], take.pose[t]) for t in range(take.num_frames)])


@pytest.fixture(scope="module")
def take(head: Rig) -> ParamSequence:
    return talking_take(head, frames=90)


def test_the_talking_take_talks(head: Rig, take: ParamSequence) -> None:
    points = take_landmarks(head, take)
    gap = np.linalg.norm(points[:, 66] - points[:, 62], axis=1)
    assert gap.max() - gap.min() > 0.004  # the lips part by millimetres, syllable by syllable


@pytest.mark.parametrize("emotion", ["happiness", "sadness", "surprise", "anger"])
def test_speech_is_kept_and_the_emotion_shows(head: Rig, take: ParamSequence, emotion: str) -> None:
    edited = transfer_emotion(head, take, emotion, 1.0)
    jaw = head.joint_names.index("jaw")
    assert np.abs(edited.pose[:, jaw] - take.pose[:, jaw]).max() <= 1e-9
    np.testing.assert_array_equal(edited.pose, take.pose)
    before, after = take_landmarks(head, take), take_landmarks(head, edited)
    gap_before = np.linalg.norm(before[:, 66] - before[:, 62], axis=1)
    gap_after = np.linalg.norm(after[:, 66] - after[:, 62], axis=1)
    assert np.corrcoef(gap_before, gap_after)[0, 1] >= 0.99
    assert np.abs(gap_after - gap_before).max() < 2e-4  # metres
    width = lambda p: np.linalg.norm(p[:, 54] - p[:, 48], axis=1)  # noqa: E731
    assert np.abs(width(after) - width(before)).max() < 2e-4
    wanted = landmark_displacement(head, emotion_offset(head, emotion, 1.0))
    shown = landmark_displacement(head, speech_preserving_offset(head, emotion))
    carriers = lambda d: np.concatenate([d[17:48].reshape(-1), d[[48, 54], 1]])  # noqa: E731
    achieved = float(carriers(shown) @ carriers(wanted) / (carriers(wanted) @ carriers(wanted)))
    assert achieved >= 0.8, f"{emotion}: {achieved:.2f} of the emotion on brows, eyes and corners"
    jerk = lambda p: np.abs(np.diff(p, n=3, axis=0)).mean()  # noqa: E731
    assert jerk(after) <= 1.005 * jerk(before)


def test_naive_addition_breaks_the_speech_the_transfer_keeps(head: Rig, take: ParamSequence) -> None:
    offset = emotion_offset(head, "surprise", 1.0)
    params = offset.apply({"expression": take.expression, "pose": take.pose})
    naive = ParamSequence(take.fps, params["pose"], take.transl, take.betas, params["expression"])
    before = take_landmarks(head, take)
    gap = lambda p: np.linalg.norm(p[:, 66] - p[:, 62], axis=1)  # noqa: E731
    assert (
        np.abs(gap(take_landmarks(head, naive)) - gap(before)).max()
        > 10 * np.abs(gap(take_landmarks(head, transfer_emotion(head, take, "surprise"))) - gap(before)).max()
    )


def test_the_offset_satisfies_the_speech_constraints(head: Rig) -> None:
    for emotion in ("happiness", "fear", "contempt"):
        offset = speech_preserving_offset(head, emotion)
        assert np.abs(speech_constraints(head) @ offset.expression).max() < 1e-9
        assert not np.any(offset.jaw)


def test_an_intensity_curve_is_applied_smoothly(head: Rig, take: ParamSequence) -> None:
    step = np.where(np.arange(take.num_frames) < 45, 0.0, 1.0)
    edited = transfer_emotion(head, take, "happiness", step)
    offset = speech_preserving_offset(head, "happiness").expression
    applied = (edited.expression - take.expression) @ offset / (offset @ offset)
    assert applied[0] == pytest.approx(0.0, abs=1e-9) and applied[-1] == pytest.approx(1.0)
    assert np.abs(np.diff(applied)).max() < 0.25  # a 0 -> 1 step spread over several frames


def test_a_reference_take_transfers_its_expression_style(head: Rig, take: ParamSequence) -> None:
    style = speech_preserving_offset(head, "anger").expression  # a style that keeps speech already
    reference = ParamSequence(take.fps, take.pose, take.transl, take.betas, take.expression + style)
    edited = transfer_emotion(head, take, reference=reference)
    added = np.median(edited.expression - take.expression, axis=0)
    # the reference's own visemes count in its median: the style is found up to them
    np.testing.assert_allclose(added, style + np.median(take.expression, axis=0), atol=0.05)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give an emotion label or a reference take"),
        ({"emotion": "glee"}, "unknown 'glee'"),
        ({"emotion": "anger", "intensity": 2.0}, "in [0, 1]"),
        ({"emotion": "anger", "intensity": np.ones(3)}, "one value per frame"),
        ({"emotion": "anger", "intensity": np.full(90, 1.5)}, "must be in [0, 1]"),
    ],
)
def test_mistakes_are_one_line_errors(head: Rig, take: ParamSequence, kwargs: dict, message: str) -> None:
    with pytest.raises(ExpressionError) as error:
        transfer_emotion(head, take, **kwargs)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_reference_of_another_rig_is_refused(head: Rig, take: ParamSequence) -> None:
    other = ParamSequence(30.0, np.zeros((4, 55, 3)), np.zeros((4, 3)), np.zeros(10), np.zeros((4, 10)))
    with pytest.raises(ExpressionError, match="reference: a take of another rig"):
        transfer_emotion(head, take, reference=other)
    with pytest.raises(ExpressionError, match="take: a take of another rig"):
        transfer_emotion(head, other, "anger")


def test_a_rig_without_a_jaw_cannot_talk(make_rig) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(rigs.RigError, match="no jaw joint"):
        talking_take(make_rig())
