"""``rigstyle serve --ray``: a real server process with a local Ray and two CPU replicas, spoken to by the
unchanged :class:`Client`."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from serving_helpers import FAST_BACKEND, BackendProcess, backend_process
from synthetic import synthetic_shot

from neural_backend.client.blocking import Client
from neural_backend.client.results import BackendError
from neural_backend.protocol.passes import FramePasses, RefinedFrame

pytest.importorskip("ray.serve")
pytestmark = pytest.mark.slow

# two replicas of half a CPU each (this machine has 2); two requests per replica so preview batches form;
# two requests queued in Ray beyond those (Ray counts a request as queued until its router has placed it,
# so a limit of 1 already refuses two shots that arrive together), then Ray refuses with back-pressure
RAY_BACKEND = (
    "--ray", "--replicas", "2", "--cpus-per-replica", "0.5", "--max-ongoing-requests", "2",
    "--max-queued-requests", "2", "--queue-size", "2", *FAST_BACKEND,
)  # fmt: skip
SIZE = 64


def _ray_processes() -> list[str]:
    listing = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in listing.splitlines() if "raylet" in line or "gcs_server" in line]


@pytest.fixture(scope="module")
def ray_backend() -> Iterator[BackendProcess]:
    assert not _ray_processes(), "a Ray instance is already running on this machine"
    with backend_process(*RAY_BACKEND) as backend:
        yield backend
    assert "Traceback" not in backend.stderr.split("stopped; replies sent")[0], backend.stderr[-4000:]
    assert not _ray_processes(), "the server left Ray processes behind"


def _refine_shot(address: str, frames: list[FramePasses]) -> list[RefinedFrame]:
    with Client(address, timeout=120) as client:
        for passes in frames:
            client.add_frame(passes)
        shot = client.refine_held_shot(frames[0].shot, timeout=120)
    return sorted(shot.frames, key=lambda refined: refined.frame)


def _refine_into(
    address: str, frames: list[FramePasses], results: dict[int, list[RefinedFrame]], key: int
) -> None:
    results[key] = _refine_shot(address, frames)


def _check(refined: list[RefinedFrame], frames: list[FramePasses]) -> None:
    assert [r.frame for r in refined] == [f.frame for f in frames]
    for result in refined:
        assert result.image.shape == (SIZE, SIZE, 3)
        assert np.isfinite(result.image).all() and np.isfinite(result.gan).all()


def test_refines_a_shot_like_a_local_backend(ray_backend: BackendProcess) -> None:
    frames = synthetic_shot(3, size=SIZE, shot="ray-shot")
    refined = _refine_shot(ray_backend.address, frames)
    _check(refined, frames)
    with backend_process(*FAST_BACKEND) as local:
        reference = _refine_shot(local.address, frames)
    # the same code on the same CPU with one torch thread: bit-identical here (measured 0); the tolerance
    # only allows for float32 rounding should the two runs ever use another torch thread count
    diff = max(float(np.abs(a.image - b.image).max()) for a, b in zip(refined, reference, strict=True))
    print(f"largest difference to a local backend: {diff:.3g}")
    for ours, theirs in zip(refined, reference, strict=True):
        np.testing.assert_allclose(ours.image, theirs.image, atol=1e-5)
        np.testing.assert_allclose(ours.gan, theirs.gan, atol=1e-5)


def test_two_clients_two_shots_both_replicas(ray_backend: BackendProcess) -> None:
    served: dict[str, int] = {}
    for attempt in range(3):  # Ray picks replicas itself: both serve within a few rounds
        shots = [synthetic_shot(3, size=SIZE, shot=f"ray-pair-{attempt}-{n}") for n in range(2)]
        results: dict[int, list[RefinedFrame]] = {}
        threads = [
            threading.Thread(target=_refine_into, args=(ray_backend.address, frames, results, n))
            for n, frames in enumerate(shots)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(240)
        for n, frames in enumerate(shots):
            _check(results[n], frames)
        with Client(ray_backend.address) as client:
            health = client.health()
        served = health["ray"]["served"]
        if len(served) == 2:
            break
    assert len(served) == 2, served
    assert health["ray"]["replicas"] == 2 and health["shots"] == 0


def test_back_pressure_answers_busy_and_keeps_serving(ray_backend: BackendProcess) -> None:
    codes: list[str] = []
    frames = [synthetic_shot(1, size=SIZE, shot=f"flood-{n}")[0] for n in range(12)]

    def preview(passes: FramePasses) -> None:
        with Client(ray_backend.address, timeout=120) as client:
            try:
                result = client.refine_frame(passes, mode="preview")
                assert result.image.shape == (SIZE, SIZE, 3)
                codes.append("ok")
            except BackendError as exc:
                codes.append(exc.code)

    threads = [threading.Thread(target=preview, args=(passes,)) for passes in frames]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert set(codes) <= {"ok", "busy"} and len(codes) == len(frames), codes
    assert "busy" in codes and "ok" in codes, codes
    with Client(ray_backend.address, timeout=120) as client:
        result = client.refine_frame(synthetic_shot(1, size=SIZE, shot="after-flood")[0], mode="preview")
        assert np.isfinite(result.image).all()
        ray = client.health()["ray"]
    print(
        "flood:", sorted(codes), "ray rejected:", ray["rejected"], "preview batches:", ray["preview_batches"]
    )
