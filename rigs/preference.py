"""Find an expression by answering "A or B?" (PrefGen's relative attribute search, on a rig). numpy only.

People cannot say how angry a face is, but can say which of two faces is closer to what they want. A
:class:`PreferenceSession` keeps a posterior over the user's ideal point ``w`` in the box [0, 1]^D of D
chosen controls (action units or emotions of ``rigs.expression``, intensities 0..1), asks about two
candidates at a time, and updates the posterior from each answer with PrefGen's response model::

    P(the user prefers a over b) = σ(k · (‖b − w‖² − ‖a − w‖²))          (k = ``noise``, 10 by default)

The exponent is linear in ``w`` (``‖b‖² − ‖a‖² − 2 w·(b − a)``), so the log-posterior under a broad
Gaussian prior is concave: its maximum and curvature (a Laplace approximation, a few Newton steps) give the
estimate and its covariance exactly and fast, deterministically for a seed.

Queries are chosen actively (``strategy="active"``, after PrefGen's mean-cut rule): the two candidates lie
symmetric about the posterior's mean, so their bisector cuts the posterior through its middle, along the
direction and at the distance whose answer carries the most information about ``w`` (its mutual
information with the posterior, sampled within the box). ``strategy="random"``
draws both uniformly (the baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import RigError
from .expression import (
    ACTION_UNITS,
    EMOTIONS,
    ExpressionOffset,
    ExpressionSpace,
    action_unit_offset,
    emotion_offset,
)
from .model import Rig

PRIOR_SD = 0.3  # the Gaussian prior about the box's centre: about the spread of a uniform one on [0, 1]
NEWTON_STEPS = 30
RANDOM_DIRECTIONS = 16  # extra query directions scored per active query
QUERY_SAMPLES = 512  # posterior samples that score a query
ESTIMATE_SAMPLES = 4096  # posterior samples behind the estimate
PROPOSAL_WIDENING = 2.0  # the importance-sampling proposal: the Laplace approximation, twice as wide
MIN_INSIDE = 32  # fewer samples in the box than this: all samples, clipped to it
STRATEGIES = ("active", "random")
ANSWERS = ("a", "b", None)


class PreferenceError(RigError):
    """A preference session given unknown controls, or an answer that is not "a", "b" or None."""


@dataclass
class PreferenceSession:
    """A search for the controls' values the user prefers (see the module docstring).

    Args:
        controls: 2 to 6 names of action units (``"AU12"``) or emotions (``"happiness"``).
        seed: the random stream of random queries (the session is deterministic for a seed).
        noise: ``k`` of the response model: how reliably the user answers (larger = more reliable).
        strategy: ``"active"`` or ``"random"`` query selection.
    """

    controls: Sequence[str]
    seed: int = 0
    noise: float = 10.0
    strategy: str = "active"
    queries: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list, init=False)
    answers: list[str | None] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.controls = tuple(self.controls)
        unknown = [c for c in self.controls if c not in ACTION_UNITS and c not in EMOTIONS]
        if unknown:
            known = ", ".join([*ACTION_UNITS, *EMOTIONS])
            raise PreferenceError(f"controls: unknown {unknown}; known: {known}")
        if not 2 <= len(self.controls) <= 6 or len(set(self.controls)) != len(self.controls):
            raise PreferenceError(f"controls: expected 2 to 6 different controls, got {list(self.controls)}")
        if not np.isfinite(self.noise) or self.noise <= 0:
            raise PreferenceError(f"noise: expected a positive number, got {self.noise}")
        if self.strategy not in STRATEGIES:
            raise PreferenceError(f"strategy: expected one of {list(STRATEGIES)}, got {self.strategy!r}")
        self._rng = np.random.default_rng(self.seed)
        self._pending: tuple[np.ndarray, np.ndarray] | None = None
        self._mean = np.full(self.dimensions, 0.5)
        self._covariance = np.eye(self.dimensions) * PRIOR_SD**2
        self._terms: tuple[np.ndarray, np.ndarray] | None = None  # each answer's z = offset + slope · w

    @property
    def dimensions(self) -> int:
        return len(self.controls)

    def next_query(self) -> tuple[np.ndarray, np.ndarray]:
        """The two candidates to show next, as control vectors in [0, 1]^D (asking again repeats them)."""
        if self._pending is None:
            self._pending = self._active() if self.strategy == "active" else self._random()
        return self._pending[0].copy(), self._pending[1].copy()

    def answer(self, choice: str | None) -> None:
        """The user's answer to the pending query: ``"a"``, ``"b"`` or None (can't tell: no update)."""
        if choice not in ANSWERS:
            raise PreferenceError(f'answer: expected "a", "b" or None (can\'t tell), got {choice!r}')
        a, b = self.next_query()
        self._pending = None
        self.queries.append((a, b))
        self.answers.append(choice)
        if choice is not None:
            self._update()

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """The posterior's mean and covariance within the box: the Laplace approximation truncated to the
        box, by sampling it (deterministic for the seed and the answers)."""
        samples = self._samples(ESTIMATE_SAMPLES)
        return samples.mean(axis=0), np.cov(samples, rowvar=False).reshape(self.dimensions, self.dimensions)

    def _samples(self, count: int) -> np.ndarray:
        """Samples of the posterior within the box (deterministic for the seed and the answers).

        Drawn from the Laplace approximation widened twice, kept where they fall in the box, then
        resampled by their importance weight (the exact posterior over the proposal's density), so that a
        sharp, non-Gaussian posterior (a reliable answerer's) is still represented faithfully. When almost
        none fall in the box, the proposal's samples are clipped to it instead.
        """
        rng = np.random.default_rng([self.seed, len(self.answers), count])
        covariance = PROPOSAL_WIDENING**2 * self._covariance
        samples = rng.multivariate_normal(self._mean, covariance, size=count, method="cholesky")
        inside = samples[np.all((samples >= 0.0) & (samples <= 1.0), axis=1)]
        if len(inside) < MIN_INSIDE:
            return np.clip(samples, 0.0, 1.0)
        if not self._terms:
            return inside
        offset, slope = self._terms
        d = inside - self._mean
        log_proposal = -0.5 * np.einsum("ni,ij,nj->n", d, np.linalg.inv(covariance), d)
        prior = inside - 0.5
        log_posterior = -np.logaddexp(0.0, -(offset[None] + inside @ slope.T)).sum(axis=1)
        log_posterior -= 0.5 * (prior * prior).sum(axis=1) / PRIOR_SD**2
        weights = np.exp(log_posterior - log_proposal - (log_posterior - log_proposal).max())
        picks = rng.choice(len(inside), size=len(inside), p=weights / weights.sum())
        return inside[picks]

    def offset(self, rig: Rig | ExpressionSpace, values: np.ndarray | None = None) -> ExpressionOffset:
        """The rig's expression offset for control values (default: the estimate); ``rig`` may be its
        :class:`ExpressionSpace` (a rig inside a DCC)."""
        values = self.estimate()[0] if values is None else np.clip(np.asarray(values, dtype=np.float64), 0, 1)
        total = ExpressionOffset(np.zeros(rig.num_expressions), np.zeros(3), None)
        for name, value in zip(self.controls, values, strict=True):
            part = (
                emotion_offset(rig, name, float(value))
                if name in EMOTIONS
                else action_unit_offset(rig, {name: float(value)})
            )
            total = ExpressionOffset(total.expression + part.expression, total.jaw + part.jaw, part.jaw_joint)
        return total

    def apply(self, rig: Rig, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``params`` with the estimated controls' offset added (see ``ExpressionOffset.apply``)."""
        return self.offset(rig).apply(params)

    # ---- the posterior ---------------------------------------------------------------------------

    def _update(self) -> None:
        """Laplace approximation of the posterior: Newton steps to its maximum, its curvature there."""
        preferred, other = [], []
        for (a, b), choice in zip(self.queries, self.answers, strict=True):
            if choice is not None:
                preferred.append(a if choice == "a" else b)
                other.append(b if choice == "a" else a)
        p, n = np.array(preferred), np.array(other)
        # k (‖n − w‖² − ‖p − w‖²) = offset + w · slope, per answer
        offset = self.noise * ((n * n).sum(axis=1) - (p * p).sum(axis=1))
        slope = 2.0 * self.noise * (p - n)
        centre, precision = np.full(self.dimensions, 0.5), np.eye(self.dimensions) / PRIOR_SD**2

        def objective(w: np.ndarray) -> float:  # the log-posterior, up to a constant
            d = w - centre
            return float(-np.logaddexp(0.0, -(offset + slope @ w)).sum() - 0.5 * d @ precision @ d)

        def curvature(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            sig = 0.5 * (1.0 + np.tanh(0.5 * (offset + slope @ w)))  # σ(z), stable for large |z|
            gradient = slope.T @ (1.0 - sig) - precision @ (w - centre)
            hessian = slope.T @ (slope * (sig * (1.0 - sig))[:, None]) + precision
            return gradient, hessian

        w = np.clip(self._mean, 0.0, 1.0)
        value = objective(w)
        for _ in range(NEWTON_STEPS):
            gradient, hessian = curvature(w)
            step = np.linalg.solve(hessian, gradient)
            scale = 1.0
            while scale > 1e-6 and objective(w + scale * step) < value:  # damped: never downhill
                scale *= 0.5
            w = w + scale * step
            value = objective(w)
            if np.abs(scale * step).max() < 1e-10:
                break
        self._mean, self._covariance = w, np.linalg.inv(curvature(w)[1])
        self._terms = (offset, slope)

    # ---- queries -----------------------------------------------------------------------------------

    def _random(self) -> tuple[np.ndarray, np.ndarray]:
        return self._rng.random(self.dimensions), self._rng.random(self.dimensions)

    def _active(self) -> tuple[np.ndarray, np.ndarray]:
        """The pair whose answer tells most about ``w``: the largest mutual information between the answer
        and the posterior (sampled within the box), among pairs symmetric about the posterior's mean, so
        that their bisector cuts it through the middle, along its principal axes, the control axes and a
        few random directions, as far apart as the box allows or a half or a quarter of that."""
        samples = self._samples(QUERY_SAMPLES)
        centre = samples.mean(axis=0)
        _, axes = np.linalg.eigh(self._covariance)
        random = self._rng.normal(size=(RANDOM_DIRECTIONS, self.dimensions))
        directions = np.concatenate([axes.T, np.eye(self.dimensions), random])
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        pairs = []
        for direction in directions:
            reach = _reach(centre, direction)
            pairs += [(centre + r * direction, centre - r * direction) for r in (reach, reach / 2, reach / 4)]
        scores = [_information(a, b, samples, self.noise) for a, b in pairs]
        return pairs[int(np.argmax(scores))]


def _information(a: np.ndarray, b: np.ndarray, samples: np.ndarray, k: float) -> float:
    """Mutual information (nats) between the answer to (a, b) and ``w``, over posterior samples of ``w``."""
    z = k * (((samples - b) ** 2).sum(axis=1) - ((samples - a) ** 2).sum(axis=1))
    prefer_a = 0.5 * (1.0 + np.tanh(0.5 * z))
    return float(_entropy(prefer_a.mean())) - float(np.mean(_entropy(prefer_a)))


def _entropy(p: np.ndarray | np.floating) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def _reach(centre: np.ndarray, direction: np.ndarray) -> float:
    """How far both ``centre ± reach · direction`` stay in the box (at most 0.5)."""
    moving = np.abs(direction) > 1e-12
    room = np.minimum(centre[moving], 1.0 - centre[moving]) / np.abs(direction[moving])
    return float(min(room.min(initial=0.5), 0.5))
