"""``ServeOptions.workers``: several requests in flight at once, never two of one shot, each shot in order."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from typing import Any

import pytest

from neural_backend.client.blocking import BackendError, Client
from neural_backend.protocol.wire import OK, REFINE_FRAME, Message
from neural_backend.serving.shell import Emit, ServeOptions, Server


class RecordingHandler:
    """Pretends to refine for ``delay_s``; records what ran at the same time."""

    work_types = frozenset({REFINE_FRAME})
    control_types: frozenset[str] = frozenset()

    def __init__(self, delay_s: float):
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.running: list[str] = []
        self.most_at_once = 0
        self.shot_overlap = False
        self.order: list[tuple[str, int]] = []

    def handle(self, message: Message, emit: Emit) -> Message:
        shot, frame = message.fields["shot"], message.fields["frame"]
        with self.lock:
            self.shot_overlap |= shot in self.running
            self.running.append(shot)
            self.most_at_once = max(self.most_at_once, len(self.running))
            self.order.append((shot, frame))
        time.sleep(self.delay_s)
        with self.lock:
            self.running.remove(shot)
        return Message(OK, message.id, {"shot": shot, "frame": frame})

    def control(self, message: Message) -> Message:
        raise AssertionError("no control types")

    def describe(self) -> dict[str, Any]:
        return {"generator": "recording", "device": "none"}

    def end_shot(self, shot: str) -> None:
        pass


def _serve(handler: RecordingHandler, requests: list[tuple[str, int]], **options: Any) -> list[str]:
    """Send every request from its own client at once; returns the error codes."""
    folder = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
    server = Server(ServeOptions(address=f"ipc://{folder}/b.sock", **options))
    thread = threading.Thread(target=server.serve_forever, args=(handler, False), daemon=True)
    thread.start()
    errors: list[str] = []

    def send(shot: str, frame: int) -> None:
        with Client(server.address, timeout=10) as client:
            try:
                client.request(Message(REFINE_FRAME, fields={"shot": shot, "frame": frame}))
            except BackendError as exc:
                errors.append(exc.code)

    try:
        threads = []
        for shot, frame in requests:
            threads.append(threading.Thread(target=send, args=(shot, frame)))
            threads[-1].start()
            time.sleep(0.02)  # arrival order is the order of the list
        for sender in threads:
            sender.join(20)
    finally:
        server.stop()
        thread.join(15)
        shutil.rmtree(folder, ignore_errors=True)
    return errors


def test_one_worker_runs_one_request_at_a_time() -> None:
    handler = RecordingHandler(0.1)
    assert _serve(handler, [("a", 1), ("b", 1), ("c", 1)]) == []
    assert handler.most_at_once == 1


def test_workers_run_shots_at_once_but_each_shot_in_order() -> None:
    handler = RecordingHandler(0.3)
    requests = [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("c", 1)]
    assert _serve(handler, requests, workers=3) == []
    assert handler.most_at_once == 3
    assert not handler.shot_overlap
    assert [frame for shot, frame in handler.order if shot == "a"] == [1, 2, 3]


def test_workers_count_towards_the_queue_limit() -> None:
    handler = RecordingHandler(0.5)
    requests = [(f"s{n}", 1) for n in range(5)]
    errors = _serve(handler, requests, workers=2, queue_size=1)  # 2 running + 1 waiting
    assert errors == ["busy", "busy"]


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers"):
        ServeOptions(workers=0)
