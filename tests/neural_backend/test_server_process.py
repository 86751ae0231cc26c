"""The real server process over the real socket: health, refinement, bad input, busy port, SIGTERM."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from serving_helpers import UNTRAINED, backend_process
from synthetic import synthetic_face

from neural_backend.client.blocking import Client
from neural_backend.client.results import BackendError
from neural_backend.protocol.passes import FramePasses
from neural_backend.protocol.wire import Message, decode, encode

FAST = (*UNTRAINED, "--gan-resolution", "32", "--steps-first", "30")  # the plumbing: no trained generator
SERVE = [sys.executable, "-m", "neural_backend", "serve", *FAST]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with backend_process(*FAST) as backend:
        yield backend.address
    assert "UNTRAINED" in backend.stderr


def raw_request(address: str, frames: list[bytes]) -> Message:
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    try:
        socket.send_multipart(frames)
        assert socket.poll(30_000), "server did not answer"
        return decode(socket.recv_multipart())
    finally:
        socket.close()


def test_health_names_the_untrained_builtin_generator(server: str) -> None:
    with Client(server, timeout=10) as client:
        health = client.health()
    assert health["status"] == "ok"
    assert health["untrained"] is True and health["generator"] == "builtin-untrained"
    assert health["resolution"] == 32
    assert health["alignment"] == {"name": "ffhq", "scale": 1.0, "offset": [0.0, 0.0]}
    assert health["checkpoint_path"] is None  # built in memory, no file


def test_refine_frame_round_trip_fits_the_skin(server: str) -> None:
    passes = synthetic_face(frame=1)
    with Client(server, timeout=120) as client:
        refined = client.refine_frame(passes)
        client.end_shot(passes.shot)
    assert refined.frame == 1 and refined.shot == passes.shot
    assert refined.image.shape == passes.beauty.shape and refined.image.dtype == np.float32
    assert refined.gan.shape == (32, 32, 3)
    assert refined.metrics["skin_loss_final"] < refined.metrics["skin_loss_init"]
    # CGI skin is kept: deep inside the skin region the refined frame is the render.
    centre = (slice(128, 142), slice(120, 136))  # between the eyes and the mouth, away from the feather
    assert (passes.region[centre] == 1).all()
    np.testing.assert_allclose(refined.image[centre], passes.beauty[centre], atol=1e-5)


def test_garbage_is_answered_with_an_error_and_the_server_keeps_serving(server: str) -> None:
    reply = raw_request(server, [b"\x00\xffnot msgpack"])
    assert reply.type == "error" and reply.fields["code"] == "bad_message"
    with Client(server, timeout=10) as client:
        assert client.health()["status"] == "ok"


def test_unknown_message_type_is_refused_by_name(server: str) -> None:
    with Client(server, timeout=10) as client, pytest.raises(BackendError) as info:
        client.request(Message("teleport"))
    assert info.value.code == "unknown_type" and "teleport" in info.value.message


def test_a_pass_with_the_wrong_shape_is_refused_naming_the_field(server: str) -> None:
    message = synthetic_face().to_message(9)
    tensors = {**message.tensors, "landmarks2d": np.zeros((68, 3), np.float32)}
    reply = raw_request(server, encode(Message(message.type, 9, message.fields, tensors)))
    assert reply.type == "error" and reply.id == 9
    assert reply.fields["code"] == "bad_field" and "landmarks2d" in reply.fields["message"]


def test_a_frame_without_skin_is_refused_and_the_server_keeps_serving(server: str) -> None:
    passes = synthetic_face()
    no_skin = FramePasses(**{**vars(passes), "region": np.zeros_like(passes.region)})
    with Client(server, timeout=60) as client:
        with pytest.raises(BackendError) as info:
            client.refine_frame(no_skin)
        assert info.value.code == "refine_failed"
        assert client.health()["status"] == "ok"


def test_a_header_claiming_a_huge_tensor_is_refused_before_allocation(server: str) -> None:
    huge = {"name": "beauty", "dtype": "float64", "shape": [1 << 20, 1 << 10, 3]}
    header = {"rigstyle": 2, "type": "refine_frame", "id": 3, "fields": {}, "tensors": [huge]}
    reply = raw_request(server, [msgpack.packb(header), b""])
    assert reply.fields["code"] == "too_large" and reply.id == 3, "the error names the offending request"


def test_a_second_server_on_a_busy_port_exits_2_with_one_line(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    result = subprocess.run([*SERVE, "--port", port], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "busy" in lines[0] and port in lines[0]


def test_refusing_a_non_loopback_bind(tmp_path: Path) -> None:
    result = subprocess.run([*SERVE, "--host", "0.0.0.0"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "loopback" in result.stderr
