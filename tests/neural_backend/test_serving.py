"""The socket shell in-process over ipc:// with the echo handler: busy, deadlines, cancel, health while
busy, tokens, drain, progress, shared memory, previews, reconnects and every request type of the spec."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from serving_helpers import running_server, small_passes

from neural_backend.client.blocking import Client
from neural_backend.client.preview import PreviewClient
from neural_backend.client.results import BackendError, BackendUnavailable
from neural_backend.protocol.shm import SHM_DIR
from neural_backend.protocol.wire import Message, decode, encode
from neural_backend.serving.ports import BindError, check_endpoint


class Raw:
    """A bare DEALER for pipelined requests and exact reply accounting."""

    def __init__(self, address: str):
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(address)

    def send(self, message: Message) -> None:
        self.socket.send_multipart(encode(message))

    def receive(self, timeout: float = 5.0) -> Message:
        assert self.socket.poll(int(timeout * 1000)), "no reply"
        return decode(self.socket.recv_multipart())

    def close(self) -> None:
        self.socket.close()


def work(request_id: int, **options: object) -> Message:
    return small_passes(request_id).to_message(request_id).replace(**options)


def test_a_full_queue_answers_busy_at_once_and_every_request_gets_one_reply() -> None:
    with running_server(delay_s=0.3, queue_size=1) as (_, address):
        raw = Raw(address)
        for request_id in range(1, 6):
            raw.send(work(request_id))
        started = time.monotonic()
        replies = [raw.receive() for _ in range(5)]
        busy = [r for r in replies if r.type == "error"]
        assert [r.fields["code"] for r in busy] == ["busy"] * 3
        assert sorted(r.id for r in replies) == [1, 2, 3, 4, 5]
        assert {r.id for r in replies if r.type == "result"} == {1, 2}
        assert time.monotonic() - started < 2
        assert not raw.socket.poll(300), "a request was answered twice"
        raw.close()


def test_deadlines_answer_queued_and_running_requests_at_their_deadline() -> None:
    with running_server(delay_s=1.0) as (_, address):
        raw = Raw(address)
        raw.send(work(1, deadline_ms=150))
        raw.send(work(2, deadline_ms=300))
        started = time.monotonic()
        first, second = raw.receive(), raw.receive()
        assert (first.id, first.fields["code"]) == (1, "deadline") and "running" in first.fields["message"]
        assert (second.id, second.fields["code"]) == (2, "deadline")
        assert time.monotonic() - started < 0.9, "the deadline did not wait for the running frame"
        raw.close()


def test_cancel_answers_the_target_at_once_and_health_answers_while_a_frame_runs() -> None:
    with running_server(delay_s=1.0) as (_, address):
        raw = Raw(address)
        raw.send(work(1))
        raw.send(work(2))
        time.sleep(0.1)
        started = time.monotonic()
        raw.send(Message("health", 3))
        health = raw.receive()
        assert health.fields["queue"] == {"waiting": 1, "running": 1, "size": 4}
        raw.send(Message("cancel", 4, {"target": 2}))
        raw.send(Message("cancel", 5, {"target": 1}))
        replies = {(r.id, r.type): r for r in (raw.receive() for _ in range(4))}
        assert replies[(2, "error")].fields["code"] == "cancelled"
        assert "running" in replies[(1, "error")].fields["message"]
        assert replies[(4, "ok")].fields["found"] and replies[(5, "ok")].fields["found"]
        assert time.monotonic() - started < 0.5
        raw.send(Message("cancel", 6, {"target": 1}))
        assert raw.receive().fields["found"] is False
        raw.close()


def test_progress_events_come_before_the_result() -> None:
    with running_server() as (_, address), Client(address, timeout=5) as client:
        events: list[str] = []
        refined = client.refine_frame(small_passes(), on_progress=lambda e: events.append(e.stage))
        assert events == ["queued", "running"] and refined.frame == 1


def test_a_token_is_required_when_set() -> None:
    token = "s3cret-token-0123456789"
    with running_server(token=token) as (_, address):
        with Client(address, timeout=5) as client, pytest.raises(BackendError) as info:
            client.health()
        assert info.value.code == "unauthorized"
        with Client(address, token, timeout=5) as client:
            assert client.health()["status"] == "ok"
            assert client.refine_frame(small_passes()).frame == 1


def test_non_loopback_binds_need_a_long_token() -> None:
    with pytest.raises(BindError, match="without a token"):
        check_endpoint("tcp://0.0.0.0:7557")
    with pytest.raises(BindError, match="at least 16"):
        check_endpoint("tcp://0.0.0.0:7557", "short")
    check_endpoint("tcp://0.0.0.0:7557", "x" * 16)
    check_endpoint("tcp://127.0.0.1:7557")
    check_endpoint("ipc:///tmp/rigstyle.sock")
    with pytest.raises(BindError, match="unsupported"):
        check_endpoint("udp://127.0.0.1:1")


def test_stop_drains_accepted_work_refuses_new_work_and_cancels_what_outlives_the_timeout() -> None:
    with running_server(delay_s=0.4, drain_timeout_s=0.6) as (server, address):
        raw = Raw(address)
        for request_id in (1, 2):
            raw.send(work(request_id))
        time.sleep(0.1)
        server.stop()
        raw.send(work(3))
        raw.send(Message("ready", 4))
        replies = {r.id: r for r in (raw.receive(3) for _ in range(4))}
        assert replies[3].fields["code"] == "busy" and replies[4].fields["ready"] is False
        assert replies[1].type == "result"
        assert replies[2].fields["code"] == "cancelled" and "shut down" in replies[2].fields["message"]
        raw.close()


def test_shared_memory_round_trip_is_server_owned_and_released() -> None:
    passes = small_passes(size=64)
    with running_server() as (server, address):
        with Client(address, timeout=5) as client:
            refined = client.refine_frame(passes)
            segment = client.session["shm"]["path"] if client.session else None
            assert segment is not None and Path(segment).exists()
            np.testing.assert_array_equal(refined.image, passes.beauty)
            assert client.health()["shm_segments"] == 1
            assert server.counts["result"] == 1
        assert not Path(segment).exists(), "close() releases the segment"


def test_a_client_process_that_exits_does_not_unlink_the_segment() -> None:
    with running_server() as (_, address):
        code = (
            "import sys; sys.path.insert(0, 'tests')\n"
            "from serving_helpers import small_passes\n"
            "from neural_backend.client.blocking import Client\n"
            f"c = Client({address!r}, timeout=5)\n"
            "c.refine_frame(small_passes())\n"
            "print(c.session['shm']['path'])\n"
            "import os; os._exit(0)\n"  # no close(): the server must keep the segment
        )
        root = Path(__file__).resolve().parents[2]
        path = subprocess.run(
            [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
        assert Path(path).exists()
    assert not Path(path).exists(), "the server unlinks its segments when it stops"
    assert not [p for p in SHM_DIR.glob(f"rigstyle-{os.getpid()}-*")]


def test_an_evicted_segment_falls_back_transparently() -> None:
    with running_server(shm_max_segments=1) as (_, address):
        with Client(address, timeout=5) as first, Client(address, timeout=5) as second:
            assert first.refine_frame(small_passes(1)).frame == 1
            assert second.refine_frame(small_passes(2, shot="t")).frame == 2  # evicts first's segment
            assert first.refine_frame(small_passes(3)).frame == 3  # shm_unavailable -> hello again


def test_preview_client_newest_request_wins() -> None:
    results = []
    done = threading.Event()

    def on_result(result) -> None:  # type: ignore[no-untyped-def]
        results.append(result)
        done.set()

    with running_server(delay_s=0.2) as (_, address), PreviewClient(address, on_result=on_result) as preview:
        numbers = [preview.submit(small_passes(frame)) for frame in range(1, 6)]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (results and results[-1].number == numbers[-1]):
            time.sleep(0.02)
        assert results and results[-1].number == 5 and results[-1].frame is not None
        assert results[-1].frame.frame == 5
        assert all(r.error is None for r in results)
        assert preview.poll() is not None


def test_the_client_reconnects_after_a_server_restart() -> None:
    with running_server() as (_, address):
        client = Client(address, timeout=5)
        assert client.refine_frame(small_passes()).frame == 1
    folder = address.removeprefix("ipc://").rsplit("/", 1)[0]
    os.makedirs(folder, exist_ok=True)
    from neural_backend.serving.core import RequestCore
    from neural_backend.serving.engines.echo import EchoEngine
    from neural_backend.serving.shell import ServeOptions, Server

    server = Server(ServeOptions(address=address))
    thread = threading.Thread(
        target=server.serve_forever, args=(RequestCore(EchoEngine()), False), daemon=True
    )
    thread.start()
    try:
        try:
            refined = client.refine_frame(small_passes(2))
        except BackendUnavailable:
            # The old connection's drop may be noticed only now (the contract: that call reports it,
            # the next one reconnects).
            refined = client.refine_frame(small_passes(2))
        assert refined.frame == 2
        assert client.health()["status"] == "ok"
    finally:
        client.close()
        server.stop()
        thread.join(10)
