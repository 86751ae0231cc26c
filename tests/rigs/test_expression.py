"""Action units and emotions solved into a rig's expression space: the demo head (named shapes), a FLAME file
in the official format (PCA expressions, jaw as pose) and the errors a user can make."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from official_files import write_flame

import rigs
from rigs import Rig
from rigs.expression import (
    ACTION_UNITS,
    COEFFICIENT_LIMIT,
    EMOTIONS,
    ExpressionError,
    ExpressionOffset,
    action_unit_offset,
    emotion_offset,
    ibug68,
    landmark_displacement,
    target_displacement,
)

# AUs the demo head has a matching named shape for: they must be performed well on it.
DEMO_NAMED = ("AU1", "AU4", "AU5", "AU7", "AU12", "AU15", "AU26", "AU43")


def box_least_squares(matrix: np.ndarray, target: np.ndarray, limit: float, steps: int = 5000) -> np.ndarray:
    """min |A x - t|² with |x_i| <= limit, by projected gradient descent (an independent reference)."""
    step = 1.0 / np.linalg.norm(matrix, 2) ** 2
    x = np.zeros(matrix.shape[1])
    for _ in range(steps):
        x = np.clip(x - step * matrix.T @ (matrix @ x - target), -limit, limit)
    return x


def achieved(rig: Rig, units: dict[str, float]) -> float:
    """Share of the target displacement the solved offset makes (projection onto the target)."""
    target = target_displacement(rig, units)
    made = landmark_displacement(rig, action_unit_offset(rig, units))
    return float((made * target).sum() / (target * target).sum())


@pytest.mark.parametrize("unit", list(ACTION_UNITS))
def test_every_action_unit_moves_the_demo_head_towards_its_pattern(head: Rig, unit: str) -> None:
    share = achieved(head, {unit: 1.0})
    assert share > 0.0, f"{unit} moves the landmarks against its pattern"
    if unit in DEMO_NAMED:
        assert share >= 0.6, f"{unit}: only {share:.2f} of the pattern on a rig with a matching shape"


def test_a_named_shape_that_matches_the_unit_does_most_of_the_work(head: Rig) -> None:
    smile = action_unit_offset(head, {"AU12": 1.0}).expression
    assert int(np.argmax(np.abs(smile))) == head.expression_names.index("smile")
    blink = action_unit_offset(head, {"AU43": 1.0}).expression
    assert int(np.argmax(np.abs(blink))) == head.expression_names.index("blink")


def test_jaw_drop_is_a_jaw_rotation_that_opens_the_mouth(head: Rig) -> None:
    offset = action_unit_offset(head, {"AU26": 1.0})
    assert offset.jaw_joint == head.joint_names.index("jaw")
    assert offset.jaw[0] > 0.05 and not np.any(offset.expression)  # +X opens the demo head's jaw
    moved = landmark_displacement(head, offset)
    assert moved[57, 1] < -0.005  # the lower lip goes down (metres, +Y up)


def test_happiness_raises_and_widens_the_mouth_corners(head: Rig) -> None:
    moved = landmark_displacement(head, emotion_offset(head, "happiness", 1.0))
    neutral = head.forward().landmarks
    width = np.linalg.norm(neutral[54] - neutral[48])
    assert moved[48, 1] > 0 and moved[54, 1] > 0  # corners up
    assert np.linalg.norm((neutral + moved)[54] - (neutral + moved)[48]) > width  # and apart


def test_contempt_is_one_sided(head: Rig) -> None:
    target = target_displacement(head, EMOTIONS["contempt"])
    assert np.any(target[48]) and not np.any(target[54])  # the subject's right corner only


def test_offsets_scale_with_intensity_and_add_up(head: Rig) -> None:
    full, half = emotion_offset(head, "surprise", 1.0), emotion_offset(head, "surprise", 0.5)
    np.testing.assert_allclose(half.expression, 0.5 * full.expression, atol=1e-12)
    np.testing.assert_allclose(half.jaw, 0.5 * full.jaw, atol=1e-12)
    both = action_unit_offset(head, {"AU1": 1.0, "AU12": 0.5})
    parts = action_unit_offset(head, {"AU1": 1.0}) + action_unit_offset(head, {"AU12": 0.5})
    np.testing.assert_allclose(both.expression, parts.expression, atol=1e-12)
    zero = emotion_offset(head, "anger", 0.0)
    assert not np.any(zero.expression) and not np.any(zero.jaw)


def test_apply_adds_to_a_frames_parameters_and_pads_short_expressions(head: Rig) -> None:
    offset = emotion_offset(head, "surprise", 1.0)
    pose = np.zeros((head.num_joints, 3))
    pose[0] = [0.1, 0.2, 0.3]
    params = {"expression": np.ones(3), "pose": pose, "transl": np.array([1.0, 2.0, 3.0])}
    out = offset.apply(params)
    np.testing.assert_allclose(out["expression"][:3], 1 + offset.expression[:3])
    np.testing.assert_allclose(out["expression"][3:], offset.expression[3:])
    np.testing.assert_allclose(out["pose"][offset.jaw_joint], offset.jaw)
    np.testing.assert_allclose(out["pose"][0], pose[0])
    np.testing.assert_array_equal(out["transl"], params["transl"])
    np.testing.assert_array_equal(params["expression"], np.ones(3))  # the input is not changed
    take = {"expression": np.zeros((4, head.num_expressions)), "pose": np.zeros((4, head.num_joints, 3))}
    takes = offset.apply(take)
    np.testing.assert_allclose(takes["expression"], np.tile(offset.expression, (4, 1)))
    np.testing.assert_allclose(takes["pose"][:, offset.jaw_joint], np.tile(offset.jaw, (4, 1)))


def test_a_flame_file_solves_into_its_pca_expressions_and_jaw(tmp_path: Path) -> None:
    """FLAME's 51 static landmarks after its 17 contour ones make the 68; the solve gets (nearly) as close to
    each pattern as any combination of the file's expression components can."""
    flame = rigs.load(write_flame(tmp_path, num_vertices=300, num_components=400))
    assert flame.num_expressions == 100 and ibug68(flame).shape == (68, 3)
    neutral = ibug68(flame)
    columns = [
        (ibug68(flame, expression=np.eye(flame.num_expressions)[i]) - neutral).reshape(-1)
        for i in range(flame.num_expressions)
    ]
    jacobian = np.stack(columns, axis=1)
    for unit in ("AU12", "AU4", "AU43"):
        target = target_displacement(flame, {unit: 1.0}).reshape(-1)
        best = box_least_squares(jacobian, target, COEFFICIENT_LIMIT)
        best_share = float((jacobian @ best) @ target / (target @ target))
        assert best_share > 0.05, "the synthetic file's expressions should reach some of the pattern"
        offset = action_unit_offset(flame, {unit: 1.0})
        assert np.abs(offset.expression).max() <= COEFFICIENT_LIMIT + 1e-9
        assert achieved(flame, {unit: 1.0}) >= 0.8 * best_share, unit
    offset = emotion_offset(flame, "surprise", 1.0)
    assert offset.jaw_joint == flame.joint_names.index("jaw") and offset.jaw[0] != 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda rig: emotion_offset(rig, "joy"), "unknown 'joy'; known: happiness"),
        (lambda rig: action_unit_offset(rig, {"AU99": 1.0}), "unknown 'AU99'"),
        (lambda rig: emotion_offset(rig, "anger", 1.5), "intensity: expected a number in [0, 1], got 1.5"),
        (lambda rig: emotion_offset(rig, "anger", -0.1), "in [0, 1]"),
        (lambda rig: action_unit_offset(rig, {"AU12": "lots"}), "AU12 intensity"),
    ],
)
def test_mistakes_are_one_line_errors_naming_them(head: Rig, call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExpressionError) as error:
        call(head)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_rig_without_an_expression_space_is_refused(make_rig) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig()
    bare = Rig(**{**rig.__dict__, "exprdirs": np.zeros((rig.num_vertices, 3, 0)), "expression_names": ()})
    with pytest.raises(ExpressionError, match="no expression space"):
        emotion_offset(bare, "happiness")


def test_an_offset_is_plain_data() -> None:
    offset = ExpressionOffset(np.array([1.0, 2.0]))
    assert offset.apply({})["expression"].tolist() == [1.0, 2.0]


def test_the_docs_tables_are_the_module_s() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "expressions.md").read_text()
    for emotion, units in EMOTIONS.items():
        row = f"| {emotion} | " + " + ".join(f"{unit} {weight:g}" for unit, weight in units.items())
        assert row in doc, f"docs/expressions.md: the {emotion} row does not match EMOTIONS"
    for name, unit in ACTION_UNITS.items():
        assert f"| {name} | {unit.label} |" in doc, f"docs/expressions.md has no row for {name}"
