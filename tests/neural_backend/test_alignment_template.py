"""Alignment templates: how a generator frames a face (the FFHQ square scaled and moved), their JSON form,
their errors, and the refiner cropping by its generator's template."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic import synthetic_face

from neural_backend.refine.framing import FFHQ, Alignment, AlignmentError, adjust_quad, crop_matrix, ffhq_quad
from neural_backend.refine.refiner import RefineConfig, Refiner, ShotState, check_face
from neural_backend.stylegan2.builtin import builtin_generator


def landmarks(angle_deg: float = 0.0) -> np.ndarray:
    """The synthetic face's 68 landmarks (optionally turned in the image plane)."""
    return synthetic_face(angle_deg=angle_deg).landmarks2d.astype(np.float64)


def side_and_axes(quad: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """A crop square's side, and its unit x (left -> right) and y (top -> bottom) axes."""
    x, y = quad[3] - quad[0], quad[1] - quad[0]
    return float(np.linalg.norm(x)), x / np.linalg.norm(x), y / np.linalg.norm(y)


@pytest.mark.parametrize("angle", [0.0, 17.0])
def test_ffhq_template_is_exactly_the_ffhq_recipe(angle: float) -> None:
    points = landmarks(angle)
    assert np.array_equal(FFHQ.quad(points), ffhq_quad(points))
    assert FFHQ == Alignment() == Alignment("ffhq", 1.0, (0.0, 0.0))
    assert FFHQ.describe() == "ffhq (the FFHQ crop recipe)"


@pytest.mark.parametrize("angle", [0.0, 17.0])
def test_scale_grows_the_square_about_its_centre(angle: float) -> None:
    points = landmarks(angle)
    base = ffhq_quad(points)
    for scale in (0.75, 1.5):
        quad = Alignment("zoom", scale).quad(points)
        np.testing.assert_allclose(quad.mean(axis=0), base.mean(axis=0), atol=1e-9)
        np.testing.assert_allclose(quad - quad.mean(axis=0), scale * (base - base.mean(axis=0)), atol=1e-9)


@pytest.mark.parametrize("angle", [0.0, 17.0])
def test_offset_moves_the_centre_by_sides_along_the_crop_s_own_axes(angle: float) -> None:
    points = landmarks(angle)
    base = ffhq_quad(points)
    side, x_axis, y_axis = side_and_axes(base)
    quad = Alignment("moved", 1.0, (0.1, -0.05)).quad(points)
    expected_centre = base.mean(axis=0) + 0.1 * side * x_axis - 0.05 * side * y_axis
    np.testing.assert_allclose(quad.mean(axis=0), expected_centre, atol=1e-9)
    np.testing.assert_allclose(quad - quad.mean(axis=0), base - base.mean(axis=0), atol=1e-9)  # same size
    # scale and offset together: the offset counts FFHQ sides, not sides of the scaled square
    both = Alignment("both", 0.5, (0.0, 0.2)).quad(points)
    np.testing.assert_allclose(both.mean(axis=0), base.mean(axis=0) + 0.2 * side * y_axis, atol=1e-9)
    assert side_and_axes(both)[0] == pytest.approx(0.5 * side)


def test_a_positive_y_offset_moves_the_crop_down_the_face() -> None:
    """Upright face: +y is toward the chin, so the face sits higher in the moved crop."""
    points = landmarks()
    base, lower = ffhq_quad(points), Alignment("lower", 1.0, (0.0, 0.1)).quad(points)
    assert lower.mean(axis=0)[1] > base.mean(axis=0)[1]
    assert lower.mean(axis=0)[0] == pytest.approx(base.mean(axis=0)[0])
    eyes = points[36:48].mean(axis=0)
    in_base = np.linalg.solve(crop_matrix(base, 64), [*eyes, 1.0])[:2]
    in_lower = np.linalg.solve(crop_matrix(lower, 64), [*eyes, 1.0])[:2]
    assert in_lower[1] < in_base[1]  # the eyes' crop row moved up


def test_adjust_quad_with_identity_values_changes_nothing() -> None:
    base = ffhq_quad(landmarks(9.0))
    np.testing.assert_allclose(adjust_quad(base, 1.0, (0.0, 0.0)), base, atol=1e-12)


@pytest.mark.parametrize(
    "alignment",
    [FFHQ, Alignment("face-prior", 0.75, (0.0, 0.017)), Alignment("calibrated", 1.3, (-0.25, 1.0))],
)
def test_json_round_trip(alignment: Alignment) -> None:
    text = alignment.to_json()
    assert json.loads(text) == {
        "name": alignment.name,
        "scale": alignment.scale,
        "offset": list(alignment.offset),
    }
    assert Alignment.from_json(text) == alignment


def test_from_json_accepts_the_bare_recipe_name_and_defaults() -> None:
    assert Alignment.from_json("ffhq") is FFHQ
    assert Alignment.from_json(" ffhq\n") is FFHQ
    assert Alignment.from_json('{"name": "ffhq"}') == FFHQ
    assert Alignment.from_json('{"name": "big", "scale": 2}') == Alignment("big", 2.0, (0.0, 0.0))
    assert Alignment.from_json('{"name": "moved", "offset": [0, 0.5]}') == Alignment("moved", 1.0, (0.0, 0.5))


def test_values_given_as_lists_or_ints_equal_the_same_tuple_of_floats() -> None:
    assert Alignment("a", 1, [0, 0.5]) == Alignment("a", 1.0, (0.0, 0.5))  # type: ignore[arg-type]
    assert hash(Alignment("a", 1, [0, 0.5])) == hash(Alignment("a", 1.0, (0.0, 0.5)))  # type: ignore[arg-type]


def test_describe_names_the_template_and_its_numbers() -> None:
    text = Alignment("face-prior", 0.75, (0.0, 0.017)).describe()
    assert text.startswith("face-prior") and "0.750" in text and "+0.017" in text


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("face", ["not JSON"]),
        ("[1, 2]", ["expected an object"]),
        ('{"scale": 1.0}', ["expected an object", "name"]),
        ('{"name": "x", "zoom": 2}', ["unknown keys", "zoom"]),
        ('{"name": "x", "scale": 9}', ["scale", "outside"]),
        ('{"name": "x", "scale": 0.1}', ["scale", "outside"]),
        ('{"name": "x", "scale": "big"}', ["big"]),
        ('{"name": "x", "offset": [0.5]}', ["offset"]),
        ('{"name": "x", "offset": [0, 2]}', ["offset", "[-1, 1]"]),
        ('{"name": "x", "offset": 3}', ["alignment"]),
        ('{"name": ""}', ["name is empty"]),
    ],
)
def test_bad_json_is_a_one_line_alignment_error(text: str, words: list[str]) -> None:
    with pytest.raises(AlignmentError) as info:
        Alignment.from_json(text)
    message = str(info.value)
    assert message.startswith("alignment") and "\n" not in message, message
    assert "alignment: alignment" not in message, message  # no doubled prefix
    for word in words:
        assert word in message, message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "values",
    [
        {"name": "x", "scale": float("nan")},
        {"name": "x", "scale": float("inf")},
        {"name": "x", "scale": 0.0},
        {"name": "x", "offset": (0.0, float("nan"))},
        {"name": "x", "offset": (0.0, 0.0, 0.0)},
    ],
)
def test_bad_values_are_refused_by_the_constructor(values: dict) -> None:
    with pytest.raises(AlignmentError):
        Alignment(**values)


def test_check_face_uses_the_alignment() -> None:
    passes = synthetic_face()
    prior = Alignment("face-prior", 0.75, (0.0, 0.017))
    assert np.array_equal(check_face(passes), ffhq_quad(passes.landmarks2d))
    assert np.array_equal(check_face(passes, prior), prior.quad(passes.landmarks2d))


def test_a_refiner_with_another_alignment_crops_another_region() -> None:
    """The same frame, the same generator: a smaller crop square (scale 0.75) moved down the face gives
    another crop matrix, a crop where the skin fills more, and another refined frame."""
    passes = synthetic_face(frame=1, size=128, scale=0.5)
    prior = Alignment("face-prior", 0.75, (0.0, 0.017))
    results = {}
    for alignment in (FFHQ, prior):
        refiner = Refiner(builtin_generator(16), RefineConfig(steps_first=2), alignment=alignment)
        assert refiner.alignment == alignment
        state = ShotState()
        refined = refiner.refine(passes, state)
        assert state.previous is not None
        np.testing.assert_allclose(state.previous.quad, alignment.quad(passes.landmarks2d))
        np.testing.assert_allclose(state.previous.matrix, crop_matrix(alignment.quad(passes.landmarks2d), 16))
        results[alignment.name] = (state.previous.quad, state.previous.matrix, refined)
    (ffhq_q, ffhq_m, ffhq_r), (prior_q, prior_m, prior_r) = results["ffhq"], results["face-prior"]
    assert not np.allclose(ffhq_m, prior_m)
    assert side_and_axes(prior_q)[0] == pytest.approx(0.75 * side_and_axes(ffhq_q)[0])
    assert prior_q.mean(axis=0)[1] > ffhq_q.mean(axis=0)[1]  # moved toward the chin
    assert prior_r.metrics["skin_fraction"] > ffhq_r.metrics["skin_fraction"]
    assert not np.array_equal(prior_r.image, ffhq_r.image)
