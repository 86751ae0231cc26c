"""The "A or B?" preference session: it finds a simulated user's target, deterministically, and refuses
what it cannot use."""

from __future__ import annotations

import numpy as np
import pytest

from rigs import Rig
from rigs.expression import action_unit_offset, emotion_offset
from rigs.preference import PreferenceError, PreferenceSession


def search(session: PreferenceSession, target: np.ndarray, queries: int = 30) -> np.ndarray:
    """A user who always prefers the candidate nearer ``target``; returns the final estimate."""
    for _ in range(queries):
        a, b = session.next_query()
        session.answer("a" if ((a - target) ** 2).sum() < ((b - target) ** 2).sum() else "b")
    return session.estimate()[0]


@pytest.mark.parametrize("target", [[0.3, 0.7], [0.9, 0.15], [0.02, 0.5]])
def test_a_reliable_answerer_is_found_within_a_hundredth(target: list[float]) -> None:
    found = search(PreferenceSession(["AU12", "AU4"], noise=100.0), np.array(target))
    assert np.abs(found - target).max() < 0.02


def test_active_queries_find_the_target_faster_than_random_ones() -> None:
    rng = np.random.default_rng(3)
    errors = {"active": [], "random": []}
    for seed in range(6):
        target = rng.random(2)
        for strategy in errors:
            found = search(PreferenceSession(["AU1", "AU2"], seed=seed, strategy=strategy), target, 20)
            errors[strategy].append(float(np.mean((found - target) ** 2)))
    assert np.mean(errors["active"]) < np.mean(errors["random"]) / 2


def test_the_session_is_deterministic_for_a_seed() -> None:
    runs = []
    for _ in range(2):
        session = PreferenceSession(["happiness", "AU4", "AU43"], seed=5, strategy="random")
        runs.append(search(session, np.array([0.2, 0.4, 0.9]), 8))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_cant_tell_changes_nothing_and_asking_again_repeats_the_query() -> None:
    session = PreferenceSession(["AU1", "AU2"])
    search(session, np.array([0.4, 0.6]), 5)
    before = session.estimate()
    first = session.next_query()
    np.testing.assert_array_equal(first[0], session.next_query()[0])
    session.answer(None)
    after = session.estimate()
    np.testing.assert_allclose(after[0], before[0], atol=0.02)  # a new sample set, the same posterior
    assert session.answers[-1] is None and len(session.queries) == 6


def test_the_estimate_has_a_covariance_that_shrinks_with_answers() -> None:
    session = PreferenceSession(["AU1", "AU2"], noise=20.0)
    start = np.trace(session.estimate()[1])
    search(session, np.array([0.5, 0.5]), 20)
    mean, covariance = session.estimate()
    assert covariance.shape == (2, 2) and np.trace(covariance) < start / 20
    assert np.all((mean >= 0) & (mean <= 1))


def test_apply_adds_the_estimated_controls_to_the_rig(head: Rig) -> None:
    session = PreferenceSession(["happiness", "AU4"], noise=100.0)
    found = search(session, np.array([0.8, 0.3]))
    expected = emotion_offset(head, "happiness", float(found[0])) + action_unit_offset(
        head, {"AU4": float(found[1])}
    )
    rest = {"expression": np.zeros(head.num_expressions), "pose": np.zeros((head.num_joints, 3))}
    np.testing.assert_allclose(session.apply(head, rest)["expression"], expected.expression, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"controls": ["AU12", "smirk"]}, "unknown ['smirk']"),
        ({"controls": ["AU12"]}, "2 to 6 different controls"),
        ({"controls": ["AU12", "AU12"]}, "2 to 6 different controls"),
        ({"controls": ["AU1", "AU2"], "noise": 0.0}, "noise: expected a positive number"),
        ({"controls": ["AU1", "AU2"], "strategy": "greedy"}, "strategy"),
    ],
)
def test_bad_sessions_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(PreferenceError) as error:
        PreferenceSession(**kwargs)
    assert message in str(error.value)


@pytest.mark.parametrize("answer", ["A", "left", 1, True])
def test_answers_other_than_a_b_or_none_are_refused(answer: object) -> None:
    session = PreferenceSession(["AU1", "AU2"])
    session.next_query()
    with pytest.raises(PreferenceError, match='expected "a", "b" or None'):
        session.answer(answer)  # type: ignore[arg-type]
    assert session.answers == []
