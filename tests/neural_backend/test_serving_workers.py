"""``ServeOptions.workers``: several requests in flight at once, never two of one shot, each shot in order."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from typing import Any

import pytest
from serving_helpers import small_passes

from neural_backend.client.blocking import Client
from neural_backend.client.results import BackendError
from neural_backend.protocol.messages import FrameWork
from neural_backend.protocol.passes import RefinedFrame
from neural_backend.serving.core import RequestCore
from neural_backend.serving.engine import FrameOutcome, WorkEvents
from neural_backend.serving.engines.echo import EchoEngine
from neural_backend.serving.shell import ServeOptions, Server


class RecordingEngine(EchoEngine):
    """Pretends to refine for ``delay_s``; records what ran at the same time."""

    def __init__(self, delay_s: float):
        super().__init__()
        self.pause_s = delay_s
        self.lock = threading.Lock()
        self.running: list[str] = []
        self.most_at_once = 0
        self.shot_overlap = False
        self.order: list[tuple[str, int]] = []

    def refine_frame(self, work: FrameWork, state: object | None, events: WorkEvents) -> FrameOutcome:
        shot, frame = work.frame.shot, work.frame.frame
        with self.lock:
            self.shot_overlap |= shot in self.running
            self.running.append(shot)
            self.most_at_once = max(self.most_at_once, len(self.running))
            self.order.append((shot, frame))
        time.sleep(self.pause_s)
        with self.lock:
            self.running.remove(shot)
        image = work.frame.beauty  # type: ignore[union-attr]
        return FrameOutcome(RefinedFrame(shot, frame, image, image[:8, :8]), state)


def _serve(engine: RecordingEngine, requests: list[tuple[str, int]], **options: Any) -> list[str]:
    """Send the requests in list order, each shot from its own client (shots are per connection), without
    waiting for replies in between; returns the error codes."""
    folder = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
    server = Server(ServeOptions(address=f"ipc://{folder}/b.sock", **options))
    thread = threading.Thread(target=server.serve_forever, args=(RequestCore(engine), False), daemon=True)
    thread.start()
    errors: list[str] = []
    step_s = 0.02  # arrival order is the order of the list

    def send(shot: str) -> None:
        mine = [(n, frame) for n, (s, frame) in enumerate(requests) if s == shot]
        with Client(server.address, timeout=10, shm=False) as client:
            started = time.monotonic()
            ids = []
            for n, frame in mine:
                time.sleep(max(0.0, started + n * step_s - time.monotonic()))
                ids.append(client.send(small_passes(frame, shot).to_message()))
            for request_id in ids:
                try:
                    client.wait(request_id)
                except BackendError as exc:
                    errors.append(exc.code)

    try:
        threads = [
            threading.Thread(target=send, args=(shot,)) for shot in dict.fromkeys(s for s, _ in requests)
        ]
        for sender in threads:
            sender.start()
        for sender in threads:
            sender.join(20)
    finally:
        server.stop()
        thread.join(15)
        shutil.rmtree(folder, ignore_errors=True)
    return errors


def test_one_worker_runs_one_request_at_a_time() -> None:
    handler = RecordingEngine(0.1)
    assert _serve(handler, [("a", 1), ("b", 1), ("c", 1)]) == []
    assert handler.most_at_once == 1


def test_workers_run_shots_at_once_but_each_shot_in_order() -> None:
    handler = RecordingEngine(0.3)
    requests = [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("c", 1)]
    assert _serve(handler, requests, workers=3) == []
    assert handler.most_at_once == 3
    assert not handler.shot_overlap
    assert [frame for shot, frame in handler.order if shot == "a"] == [1, 2, 3]


def test_workers_count_towards_the_queue_limit() -> None:
    handler = RecordingEngine(0.5)
    requests = [(f"s{n}", 1) for n in range(5)]
    errors = _serve(handler, requests, workers=2, queue_size=1)  # 2 running + 1 waiting
    assert errors == ["busy", "busy"]


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers"):
        ServeOptions(workers=0)
