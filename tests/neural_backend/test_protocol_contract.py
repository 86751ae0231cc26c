"""The socket contract of docs/protocol.md (version 3), each point over a real socket to a real server.

The in-process server here serves the echo engine behind the same shell and core as every engine; the
points that depend on the engine run against the real backend in ``test_protocol_spec.py``.
"""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest
import zmq
from serving_helpers import running_server, small_passes
from synthetic import face_landmarks

from neural_backend.client.blocking import Client
from neural_backend.client.results import BackendError
from neural_backend.protocol.messages import LIST_SHOTS, MESSAGES
from neural_backend.protocol.saved_state import SavedShotState
from neural_backend.protocol.wire import (
    ADD_FRAME,
    DEFAULT_LIMITS,
    END_SHOT,
    REFINE_SHOT,
    Message,
    decode,
    encode,
)


class Raw:
    """A bare DEALER (or REQ) socket speaking the wire format, nothing else."""

    def __init__(self, address: str, kind: int = zmq.DEALER, routing_id: bytes | None = None):
        self.socket = zmq.Context.instance().socket(kind)
        self.socket.setsockopt(zmq.LINGER, 0)
        if routing_id is not None:
            self.socket.setsockopt(zmq.ROUTING_ID, routing_id)
        self.socket.connect(address)

    def send(self, message: Message) -> None:
        self.socket.send_multipart(encode(message))

    def send_frames(self, frames: list[bytes]) -> None:
        self.socket.send_multipart(frames)

    def receive(self, timeout: float = 30.0) -> Message:
        assert self.socket.poll(int(timeout * 1000)), "no reply"
        return decode(self.socket.recv_multipart())

    def reply_to(self, message: Message) -> Message:
        """The request's final reply (events skipped)."""
        self.send(message)
        reply = self.receive()
        while reply.type in ("progress", "frame_result"):
            reply = self.receive()
        return reply

    def close(self) -> None:
        self.socket.close()


def code(reply: Message) -> str:
    return str(reply.fields.get("code", reply.type))


def frame_message(request_id: int, frame: int = 1, shot: str = "s", kind: str = "refine_frame") -> Message:
    return small_passes(frame, shot).to_message(request_id).replace(type=kind)


# ---- REQ sockets ---------------------------------------------------------------------------------


def test_a_req_socket_gets_one_reply_per_request_and_no_events() -> None:
    with running_server() as (_, address):
        req = Raw(address, zmq.REQ)
        assert req.reply_to(Message("health", 1)).type == "health"
        reply = req.reply_to(frame_message(2).replace(progress=True))  # events would break REQ's lockstep
        assert (reply.type, reply.id) == ("result", 2)
        refused = req.reply_to(Message(REFINE_SHOT, 3, {"shot": "s"}))
        assert (code(refused), refused.id) == ("bad_field", 3) and "DEALER" in refused.fields["message"]
        assert req.reply_to(Message("ready", 4)).fields["ready"] is True  # still in lockstep
        req.close()


# ---- every error after a readable header carries its id ------------------------------------------


def test_set_shot_state_errors_carry_the_request_id() -> None:
    with running_server() as (_, address):
        raw = Raw(address)
        missing = raw.reply_to(Message("set_shot_state", 41, {"shot": "s", "frame": 1}))
        assert (code(missing), missing.id) == ("bad_field", 41)
        state = SavedShotState(
            "s", 1, "gen", latent=np.zeros((2, 3), np.float32), gan=np.zeros((3, 4, 4), np.float32),
            region=np.zeros((4, 4), np.float32), composite=np.zeros((3, 4, 4), np.float32),
            quad=np.zeros((4, 2)), matrix=np.eye(3),
        )  # fmt: skip
        bad_shape = state.to_message(42)
        bad_shape = bad_shape.replace(tensors={**bad_shape.tensors, "latent": np.zeros(3, np.float32)})
        assert (code(reply := raw.reply_to(bad_shape)), reply.id) == ("bad_field", 42)
        raw.close()


def test_limit_breaches_are_too_large_and_carry_the_id() -> None:
    with running_server() as (_, address):
        raw = Raw(address)
        header = {"rigstyle": 3, "type": "refine_frame", "id": 51, "fields": {}, "tensors": []}
        raw.send_frames([msgpack.packb(header)] + [b""] * DEFAULT_LIMITS.max_frames)
        assert (code(reply := raw.receive()), reply.id) == ("too_large", 51)

        big = {**header, "id": 52, "fields": {"padding": "x" * DEFAULT_LIMITS.max_header_bytes}}
        raw.send_frames([msgpack.packb(big)])
        assert (code(reply := raw.receive()), reply.id) == ("too_large", 52)

        for request_id, shape in ((53, [1, 1, 1, 1, 1]), (54, [2**31, 1])):
            spec = {"name": "beauty", "dtype": "float32", "shape": shape}
            raw.send_frames([msgpack.packb({**header, "id": request_id, "tensors": [spec]}), b""])
            assert (code(reply := raw.receive()), reply.id) == ("too_large", request_id)
        raw.close()


# ---- what a frame's tensors mean -----------------------------------------------------------------


def test_uint8_beauty_is_read_as_0_to_1_not_overbright() -> None:
    passes = small_passes(1)
    as_bytes = np.round(passes.beauty * 255).astype(np.uint8)
    message = passes.to_message(61)
    message = message.replace(tensors={**message.tensors, "beauty": as_bytes})
    with running_server() as (_, address):
        raw = Raw(address)
        reply = raw.reply_to(message)
        assert reply.type == "result"
        np.testing.assert_allclose(reply.tensors["image"], as_bytes / 255.0, atol=1e-6)
        signed = message.replace(id=62, tensors={**message.tensors, "beauty": as_bytes.astype(np.int32)})
        assert code(raw.reply_to(signed)) == "bad_field"
        raw.close()


def test_depth_takes_plus_infinity_only() -> None:
    passes = small_passes(1)
    with running_server() as (_, address):
        raw = Raw(address)
        for request_id, value, expected in ((71, np.inf, "result"), (72, -np.inf, "bad_field")):
            depth = np.full(passes.size, value, np.float32)
            message = passes.to_message(request_id)
            assert (
                code(raw.reply_to(message.replace(tensors={**message.tensors, "depth": depth}))) == expected
            )
        raw.close()


@pytest.mark.parametrize("frame", [2**31, -(2**31) - 1, 2**63 - 1])
def test_frame_numbers_outside_32_bits_are_refused(frame: int) -> None:
    message = frame_message(81)
    with running_server() as (_, address):
        raw = Raw(address)
        reply = raw.reply_to(message.replace(fields={**message.fields, "frame": frame}))
        assert (code(reply), reply.id) == ("bad_field", 81) and "frame" in reply.fields["message"]
        raw.close()


@pytest.mark.parametrize("order", ["reversed", "mirrored"])
def test_landmarks_out_of_ibug_order_are_refused_at_add_frame(order: str) -> None:
    passes = small_passes(1, size=64)
    landmarks = face_landmarks(64)
    wrong = landmarks[::-1] if order == "reversed" else landmarks * [-1, 1] + [64, 0]
    message = passes.to_message(91).replace(type=ADD_FRAME)
    message = message.replace(tensors={**message.tensors, "landmarks2d": wrong.astype(np.float32)})
    with running_server() as (_, address):
        raw = Raw(address)
        reply = raw.reply_to(message)
        assert (code(reply), reply.id) == ("refine_failed", 91) and "iBUG-68 order" in reply.fields["message"]
        assert raw.reply_to(passes.to_message(92).replace(type=ADD_FRAME)).type == "ok"  # the right order
        raw.close()


# ---- shots belong to their connection ------------------------------------------------------------


def test_another_connections_requests_on_a_shot_get_not_owner_and_change_nothing() -> None:
    with running_server() as (_, address):
        owner, other = Raw(address), Raw(address)
        assert owner.reply_to(frame_message(1, 1, "a", ADD_FRAME)).type == "ok"
        assert owner.reply_to(frame_message(2, 2, "a", ADD_FRAME)).type == "ok"
        attempts = [
            frame_message(10, 2, "a", ADD_FRAME),  # would replace the owner's frame 2
            frame_message(11, 3, "a"),
            Message(REFINE_SHOT, 12, {"shot": "a"}),
            Message(END_SHOT, 13, {"shot": "a"}),
        ]
        for attempt in attempts:
            reply = other.reply_to(attempt)
            assert (code(reply), reply.id) == ("not_owner", attempt.id), attempt.type
        owner.send(Message(REFINE_SHOT, 3, {"shot": "a"}))
        frames = []
        reply = owner.receive()
        while reply.type == "frame_result":
            frames.append((reply.fields["frame"], reply.tensors["image"]))
            reply = owner.receive()
        assert (reply.type, reply.fields["frames"]) == ("ok", [1, 2])
        np.testing.assert_array_equal(frames[1][1], small_passes(2, "a").beauty)  # the owner's frame 2
        assert other.reply_to(Message(LIST_SHOTS, 14)).fields["shots"] == []
        assert owner.reply_to(Message(LIST_SHOTS, 4)).fields["shots"] == [
            {"shot": "a", "held_frames": 0, "state": False}
        ]
        owner.close()
        other.close()


def test_set_shot_state_on_anothers_shot_is_not_owner() -> None:
    with running_server() as (_, address), Client(address, timeout=5) as owner, Client(address) as other:
        owner.add_frame(small_passes(1, "b"))
        state = SavedShotState(
            "b", 1, "echo", latent=np.zeros((2, 3), np.float32), gan=np.zeros((3, 4, 4), np.float32),
            region=np.zeros((4, 4), np.float32), composite=np.zeros((3, 4, 4), np.float32),
            quad=np.zeros((4, 2)), matrix=np.eye(3),
        )  # fmt: skip
        with pytest.raises(BackendError, match="not_owner"):
            other.set_shot_state(state)
        owner.set_shot_state(state)
        assert owner.list_shots() == [{"shot": "b", "held_frames": 1, "state": True}]


def test_after_end_shot_the_id_starts_a_new_shot_for_whoever_names_it() -> None:
    with running_server() as (_, address), Client(address, timeout=5) as first, Client(address) as second:
        first.add_frame(small_passes(1, "c"))
        first.end_shot("c")
        assert second.add_frame(small_passes(5, "c")) == 1  # a new shot: no held frames from before
        assert second.list_shots() == [{"shot": "c", "held_frames": 1, "state": False}]
        assert first.list_shots() == []


# ---- a connection that goes away -----------------------------------------------------------------


def test_a_closed_connection_has_its_work_cancelled_and_its_slots_freed() -> None:
    with running_server(delay_s=0.5, queue_size=2) as (server, address):
        gone = Raw(address)
        for request_id in (1, 2, 3):  # one running, two waiting: the queue is full
            gone.send(frame_message(request_id, request_id, "g"))
        with Client(address, timeout=5) as watcher:
            deadline = time.monotonic() + 2
            while watcher.ready() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not watcher.ready(), "the queue should be full"
            gone.close()
            closed = time.monotonic()
            while not watcher.ready() and time.monotonic() - closed < 2:
                time.sleep(0.02)
            freed_after = time.monotonic() - closed
            assert watcher.ready(), "slots still held 2 s after the client went away"
            assert freed_after < 2
            assert watcher.health()["shots"] == 0  # its shot went with it
            assert watcher.refine_frame(small_passes(1, "w")).frame == 1  # others unaffected
        assert server.counts["result"] == 1  # nothing reached the closed socket


def test_a_new_socket_reusing_a_routing_id_gets_none_of_the_old_ones_work() -> None:
    with running_server(delay_s=0.3) as (_, address):
        old = Raw(address, routing_id=b"client-7")
        old.send(frame_message(1, 1, "r"))
        time.sleep(0.05)
        old.close()
        time.sleep(0.1)
        new = Raw(address, routing_id=b"client-7")
        assert new.reply_to(Message("health", 2)).id == 2
        time.sleep(0.5)  # the old request would have finished by now
        assert not new.socket.poll(200), "the new socket received the old one's result"
        assert new.reply_to(frame_message(3, 1, "r")).type == "result"  # the shot id is free again
        new.close()


# ---- hello and the registry ----------------------------------------------------------------------


def test_hello_returns_its_limits_and_the_registry_s_message_types() -> None:
    with running_server() as (_, address), Client(address, timeout=5) as client:
        fields = client.hello()
        assert fields["version"] == 3
        assert fields["limits"] == DEFAULT_LIMITS.to_fields()
        assert set(fields["limits"]) == {
            "max_frames", "max_header_bytes", "max_tensor_bytes", "max_total_bytes", "max_ndim"
        }  # fmt: skip
        assert fields["message_types"] == sorted(MESSAGES)
        assert fields["shm"]["request_bytes"] >= client.shm_bytes


def test_every_request_type_of_the_registry_has_a_typed_client_method() -> None:
    method = {"hello": "hello", "health": "health", "ready": "ready", "cancel": "cancel",
              "release_shm": "close", "add_frame": "add_frame", "set_shot_state": "set_shot_state",
              "end_shot": "end_shot", "list_shots": "list_shots", "refine_frame": "refine_frame",
              "refine_params": "refine_params", "refine_shot": "refine_held_shot"}  # fmt: skip
    assert set(method) == set(MESSAGES), "a new message type needs a client method (and a row here)"
    for name in method.values():
        assert callable(getattr(Client, name))


@pytest.mark.parametrize("version", [1, 2])
def test_older_clients_headers_are_still_served(version: int) -> None:
    """Version 1 and 2 headers keep working; replies say version 3."""
    with running_server() as (_, address):
        raw = Raw(address)
        for request_id, message in ((1, Message("health", 1)), (2, frame_message(2))):
            frames = encode(message)
            header = msgpack.unpackb(frames[0])
            raw.send_frames([msgpack.packb({**header, "rigstyle": version}), *map(bytes, frames[1:])])
            assert raw.socket.poll(30_000)
            reply_frames = raw.socket.recv_multipart()
            assert msgpack.unpackb(reply_frames[0])["rigstyle"] == 3
            reply = decode(reply_frames)
            assert (reply.type, reply.id) == (("health", "result")[request_id - 1], request_id)
        raw.close()
