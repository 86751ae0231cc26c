"""PrefGen's localisation protocol with a simulated answerer: "A or B?" sessions (``rigs.preference``) find
a target in the control box; active query selection against random queries, in the same run.

For D = 2 and 4 controls, 20 targets drawn uniformly in [0, 1]^D, 30 queries each. The simulated answerer
prefers the candidate nearer the target: always (noiseless), by PrefGen's logistic model with k = 20, 10,
5, 2.5, or always but with 10% of its answers flipped. The session's own ``noise`` is matched to the
answerer (100 for the noiseless one, k for the logistic ones, 10 for the flipping one). Figures, means over
targets:

- ``mse``: mean squared error of the estimate per control (PrefGen's "preference MSE in the unit box");
- ``constraints``: the share of 1,000 held-out random pairs the estimate orders as the target does;
- ``percentile``: the share (%) of 5,000 random points nearer the target than the estimate (0 is best);
- ``rig_mm``: mean landmark distance (mm) between the demo head at the estimate and at the target;
- seconds per query (choosing it and updating the posterior).

    .venv/bin/python benchmarks/preference_editor.py

The last line is the noiseless 2-D active case: ``prefgen_2d_mse=… constraints=… percentile=…``.
PrefGen's published log, for comparison (2-D, 30 queries, noiseless): MCMV 1.69e-5 / 99.8% / 0.003.
"""

from __future__ import annotations

import time

import numpy as np

import rigs
from rigs.expression import landmark_displacement
from rigs.preference import PreferenceSession

CONTROLS = ("AU12", "AU4", "AU1", "AU43")
TARGETS, QUERIES = 20, 30
ANSWERERS = {  # name -> (logistic k or None for always right, share of flipped answers, the session's noise)
    "noiseless": (None, 0.0, 100.0),
    "k=20": (20.0, 0.0, 20.0),
    "k=10": (10.0, 0.0, 10.0),
    "k=5": (5.0, 0.0, 5.0),
    "k=2.5": (2.5, 0.0, 2.5),
    "10% flipped": (None, 0.1, 10.0),
}


def run(head: rigs.Rig, dims: int, strategy: str, answerer: str) -> dict[str, float]:
    k, flipped, noise = ANSWERERS[answerer]
    rng = np.random.default_rng(7)
    held_out = rng.random((1000, 2, dims))
    points = rng.random((5000, dims))
    mse, constraints, percentile, rig_mm, seconds = [], [], [], [], 0.0
    for index in range(TARGETS):
        target = rng.random(dims)
        session = PreferenceSession(CONTROLS[:dims], seed=index, noise=noise, strategy=strategy)
        for _ in range(QUERIES):
            started = time.perf_counter()
            a, b = session.next_query()
            seconds += time.perf_counter() - started
            gap = ((b - target) ** 2).sum() - ((a - target) ** 2).sum()  # > 0: a is nearer
            prefers_a = gap > 0 if k is None else rng.random() < 1.0 / (1.0 + np.exp(-k * gap))
            if rng.random() < flipped:
                prefers_a = not prefers_a
            started = time.perf_counter()
            session.answer("a" if prefers_a else "b")
            seconds += time.perf_counter() - started
        estimate, _ = session.estimate()
        mse.append(float(np.mean((estimate - target) ** 2)))
        first, second = held_out[:, 0], held_out[:, 1]
        truth = ((first - target) ** 2).sum(1) < ((second - target) ** 2).sum(1)
        guess = ((first - estimate) ** 2).sum(1) < ((second - estimate) ** 2).sum(1)
        constraints.append(float(np.mean(truth == guess)))
        distance = np.linalg.norm(estimate - target)
        percentile.append(float(np.mean(np.linalg.norm(points - target, axis=1) < distance) * 100))
        moved = landmark_displacement(
            head, session.offset(head, estimate) + session.offset(head, target).scaled(-1)
        )
        rig_mm.append(float(np.linalg.norm(moved, axis=1).mean() * 1000))
    return {
        "mse": float(np.mean(mse)),
        "constraints": float(np.mean(constraints)),
        "percentile": float(np.mean(percentile)),
        "rig_mm": float(np.mean(rig_mm)),
        "seconds_per_query": seconds / (TARGETS * QUERIES),
    }


def main() -> None:
    head = rigs.demo_head()
    last = ""
    for dims in (2, 4):
        for answerer in ANSWERERS:
            rows = {strategy: run(head, dims, strategy, answerer) for strategy in ("active", "random")}
            for strategy, f in rows.items():
                ms = 1000 * f["seconds_per_query"]
                print(f"D={dims} {answerer:12} {strategy:6} mse={f['mse']:.2e} "
                      f"constraints={f['constraints']:.3f} percentile={f['percentile']:.3f} "
                      f"rig_mm={f['rig_mm']:.3f} ms_per_query={ms:.1f}")  # fmt: skip
            ratio = rows["random"]["mse"] / rows["active"]["mse"]
            print(f"D={dims} {answerer:12} active_vs_random_mse_ratio={ratio:.1f}")
            if dims == 2 and answerer == "noiseless":
                f = rows["active"]
                last = (f"prefgen_2d_mse={f['mse']:.2e} constraints={f['constraints'] * 100:.1f} "
                        f"percentile={f['percentile']:.3f}")  # fmt: skip
    print(last)


if __name__ == "__main__":
    main()
