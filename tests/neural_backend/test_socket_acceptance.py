"""Acceptance of the socket API against real server processes over real TCP sockets (issue 4):
fuzzing with generated malformed messages, 8 concurrent clients against a too-small queue, and a server
killed mid-shot. The 100,000-message fuzz is ``benchmarks/bench_socket_fuzz.py``; the test sends 20,000."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq
from malformed import fuzz_server
from serving_helpers import UNTRAINED, small_passes
from synthetic import synthetic_face

from neural_backend.client.blocking import Client, wait_until_healthy
from neural_backend.client.results import ShotInterrupted
from neural_backend.protocol.wire import decode, encode
from neural_backend.serving.ports import free_port

SERVE = [sys.executable, "-m", "neural_backend", "serve"]


def start(args: list[str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen([*SERVE, *args, "--port", str(port)], stderr=subprocess.PIPE, text=True)


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    return stderr


@pytest.fixture(scope="module")
def echo_server() -> Iterator[tuple[str, int]]:
    port = free_port()
    process = start(["--echo", "--echo-delay", "0.002", "--queue-size", "2"], port)
    address = f"tcp://127.0.0.1:{port}"
    try:
        wait_until_healthy(address, timeout=60, is_alive=lambda: process.poll() is None)
        yield address, process.pid
    finally:
        stop(process)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_fuzz_20k_malformed_messages_each_get_one_reply_and_health_still_answers(echo_server) -> None:
    address, _ = echo_server
    report = fuzz_server(address, 20_000, seed=1)
    print(
        f"fuzz: {report.sent} sent, {report.replies} replies in {report.seconds:.1f} s: {dict(report.codes)}"
    )
    assert report.replies == report.sent == 20_000
    assert report.codes["internal"] == 0, "a malformed message reached an unhandled exception"
    with Client(address, timeout=10) as client:
        assert client.health()["status"] == "ok"


def run_load_client(address: str, index: int, frames: int, outcome: dict[int, Counter[str]]) -> None:
    """Pipeline ``frames`` requests (every third with a 5 ms deadline) and tally the one reply of each."""
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    tally: Counter[str] = Counter()
    seen: Counter[int] = Counter()
    try:
        for request_id in range(1, frames + 1):
            message = small_passes(request_id, shot=f"load-{index}", size=16).to_message(request_id)
            socket.send_multipart(encode(message.replace(deadline_ms=5 if request_id % 3 == 0 else None)))
        while sum(seen.values()) < frames and socket.poll(20_000):
            reply = decode(socket.recv_multipart())
            seen[reply.id] += 1
            if reply.type == "result":
                assert reply.fields["frame"] == reply.id and reply.fields["shot"] == f"load-{index}"
            tally[reply.fields.get("code", reply.type)] += 1
        while socket.poll(200):  # anything more would be a duplicate
            seen[decode(socket.recv_multipart()).id] += 1
    finally:
        socket.close()
    tally["lost"] = sum(1 for request_id in range(1, frames + 1) if seen[request_id] == 0)
    tally["duplicated"] = sum(1 for count in seen.values() if count > 1)
    outcome[index] = tally


def load_round(address: str) -> Counter[str]:
    outcome: dict[int, Counter[str]] = {}
    threads = [threading.Thread(target=run_load_client, args=(address, i, 100, outcome)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcome) == 8
    return sum(outcome.values(), Counter())


@pytest.mark.slow
def test_load_8_clients_x_100_frames_on_a_too_small_queue(echo_server) -> None:
    address, pid = echo_server
    load_round(address)  # warm-up: allocator pools, zmq buffers
    before = rss_kib(pid)
    totals = [load_round(address) for _ in range(3)]
    growth = rss_kib(pid) - before
    for total in totals:
        print(f"load round: {dict(total)}")
        assert total["lost"] == 0 and total["duplicated"] == 0
        assert total["result"] + total["busy"] + total["deadline"] == 800
        assert total["busy"] > 0 and total["result"] > 0
    print(f"server RSS {before} KiB -> {before + growth} KiB over 3 rounds")
    assert growth < 16 * 1024, f"server memory grew by {growth} KiB"


@pytest.mark.slow
def test_a_killed_server_fails_the_shot_fast_and_a_restarted_one_completes_it() -> None:
    port = free_port()
    args = [*UNTRAINED, "--gan-resolution", "16", "--steps-first", "25", "--steps-warm", "25"]
    address = f"tcp://127.0.0.1:{port}"
    frames = [synthetic_face(frame=f, size=96, shift=(f * 0.5, 0.0)) for f in range(1, 6)]
    server = start(args, port)
    try:
        wait_until_healthy(address, timeout=60, is_alive=lambda: server.poll() is None)
        client = Client(address, timeout=30)
        killed_at: list[float] = []

        def kill_after_two(refined) -> None:  # type: ignore[no-untyped-def]
            if refined.frame == 2:
                threading.Timer(0.05, server.kill).start()
                killed_at.append(time.monotonic())

        with pytest.raises(ShotInterrupted) as info:
            client.stream_shot(frames, on_result=kill_after_two)
        elapsed = time.monotonic() - killed_at[0]
    finally:
        server.kill()
        server.communicate(timeout=30)
    interrupted = info.value
    assert interrupted.code == "unavailable" and "lost" in interrupted.message, interrupted.message
    assert elapsed < 5, f"the client took {elapsed:.1f} s to notice (its deadline is 30 s)"
    assert [r.frame for r in interrupted.completed] == [1, 2] and interrupted.frame == 3

    restarted = start(args, port)
    try:
        rest = [f for f in frames if f.frame >= interrupted.frame]
        refined = client.stream_shot(rest)  # the same client reconnects by itself
        assert [r.frame for r in refined] == [3, 4, 5]
        assert all(np.isfinite(r.image).all() for r in refined)
        client.close()
    finally:
        stop(restarted)
