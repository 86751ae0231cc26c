"""Shots over the real socket: add_frame + refine_shot against the real server process (and the echo
server for cancel/restore timing), frame_result and per-step progress events, preview mode, bad input."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np
import pytest
from serving_helpers import UNTRAINED, backend_process, running_server, small_passes
from synthetic import synthetic_shot

from neural_backend.client.blocking import Client
from neural_backend.client.results import BackendError, ProgressEvent
from neural_backend.protocol.passes import RefinedFrame
from neural_backend.protocol.wire import Message

SHOT_STEPS = 4
PREVIEW_STEPS = 2


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    args = [*UNTRAINED, "--gan-resolution", "32", "--steps-first", "10", "--shot-steps", str(SHOT_STEPS)]
    with backend_process(*args, "--preview-steps", str(PREVIEW_STEPS)) as backend:
        yield backend.address


def test_a_shot_is_refined_jointly_with_frame_results_and_step_progress(server: str) -> None:
    frames = synthetic_shot(3, size=64, shot="socket-shot")
    results: list[RefinedFrame] = []
    events: list[ProgressEvent] = []
    with Client(server, timeout=120) as client:
        shot = client.refine_shot(frames, on_result=results.append, on_progress=events.append)
        health = client.health()
    assert [r.frame for r in results] == [0, 1, 2] == [f.frame for f in shot.frames]
    for passes, refined in zip(frames, results, strict=True):
        assert refined.image.shape == passes.beauty.shape and refined.gan.shape == (32, 32, 3)
        assert 0 < refined.metrics["skin_psnr"] < 100
    assert "temporal_error" in results[1].metrics and "latent_drift" in results[2].metrics
    steps = [e.fields for e in events if e.stage == "step"]
    assert [(s["phase"], s["step"], s["steps"]) for s in steps] == [
        ("invert", i, SHOT_STEPS) for i in range(1, 5)
    ]
    assert all(s["loss"] > 0 for s in steps)
    assert shot.metrics["frames"] == 3 and shot.metrics["seconds_per_frame"] > 0
    assert shot.metrics["skin_psnr"] == pytest.approx(np.mean([r.metrics["skin_psnr"] for r in results]))
    assert (
        health["held_frames"] == 0 and health["shots"] == 0
    )  # refine_shot took them, end_shot dropped the state


def test_a_bad_frame_is_refused_and_the_held_frames_survive_for_a_retry(server: str) -> None:
    frames = synthetic_shot(3, size=64, shot="retry-shot")
    no_skin = replace(frames[1], region=np.where(frames[1].region == 1, 5, frames[1].region).astype(np.uint8))
    with Client(server, timeout=120) as client:
        with pytest.raises(BackendError) as refused:
            client.add_frame(replace(frames[0], landmarks2d=frames[0].landmarks2d[:5]))
        assert refused.value.code == "refine_failed" and "68" in refused.value.message
        for passes in (frames[0], no_skin, frames[2]):
            client.add_frame(passes)
        with pytest.raises(BackendError) as failed:
            client.request(Message("refine_shot", fields={"shot": "retry-shot"}))
        assert failed.value.code == "refine_failed" and "frame 1" in failed.value.message
        assert client.health()["held_frames"] == 3  # nothing lost
        assert client.add_frame(frames[1]) == 3  # the fixed frame replaces the bad one
        reply = client.request(Message("refine_shot", fields={"shot": "retry-shot"}))
        assert reply.fields["frames"] == [0, 1, 2]
        client.end_shot("retry-shot")
        with pytest.raises(BackendError) as empty:
            client.request(Message("refine_shot", fields={"shot": "retry-shot"}))
        assert empty.value.code == "bad_field" and "add_frame" in empty.value.message


def test_preview_mode_runs_few_steps_and_an_unknown_mode_is_refused(server: str) -> None:
    frames = synthetic_shot(2, size=64, shot="preview-shot")
    with Client(server, timeout=120) as client:
        client.refine_frame(frames[0])
        preview = client.refine_frame(frames[1], mode="preview")
        assert preview.metrics["steps"] == PREVIEW_STEPS
        with pytest.raises(BackendError) as refused:
            client.refine_frame(frames[1], mode="draft")
        assert refused.value.code == "bad_field" and "mode" in refused.value.message
        client.end_shot("preview-shot")


def test_cancel_stops_a_running_shot_and_keeps_its_frames() -> None:
    with running_server(delay_s=0.2) as (_, address), Client(address, timeout=30) as client:
        for frame in range(5):
            client.add_frame(small_passes(frame, shot="long"))
        request = client.send(Message("refine_shot", fields={"shot": "long"}))
        first: list[RefinedFrame] = []

        def cancel_after_the_first_frame(frame: RefinedFrame) -> None:
            first.append(frame)
            if len(first) == 1:
                client.send(Message("cancel", fields={"target": request}))

        with pytest.raises(BackendError) as cancelled:
            client.wait(request, on_result=cancel_after_the_first_frame)
        assert cancelled.value.code == "cancelled"
        assert 1 <= len(first) < 5
        # The worker stops at its next frame and puts the frames back; a shot that ran to the end would
        # have consumed them (held_frames 0).
        assert wait_for(lambda: client.health()["held_frames"] == 5), client.health()
        results: list[RefinedFrame] = []
        reply = client.request(Message("refine_shot", fields={"shot": "long"}), on_result=results.append)
        assert reply.fields["frames"] == [0, 1, 2, 3, 4] and [r.frame for r in results] == [0, 1, 2, 3, 4]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes (a synchronisation aid, not a timing test)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
