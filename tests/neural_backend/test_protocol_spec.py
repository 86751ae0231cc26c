"""docs/protocol.md is the contract: every message type it lists has an example that round-trips, every
request example gets the reply the spec names from every engine (echo, local torch, Ray), and its
error-code table is the implementation's."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest
import zmq
from protocol_spec import EXAMPLES, MESSAGE_TABLE, message_from_example, table_rows
from serving_helpers import backend_process, running_server
from synthetic import synthetic_face

from neural_backend.protocol.messages import MESSAGES
from neural_backend.protocol.passes import EXTRA_PASSES
from neural_backend.protocol.wire import ERROR_CODES, Message, decode, encode


def test_the_message_table_lists_the_types_the_examples_use() -> None:
    assert len(MESSAGE_TABLE) >= 11
    assert {example["type"] for example in EXAMPLES} == set(MESSAGE_TABLE)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{e['type']}-{e['id']}")
def test_every_example_round_trips(example: dict) -> None:
    if "shm" in example:
        area = memoryview(bytearray(1 << 16))
        offsets = {s["name"]: s["offset"] for s in example["tensors"] if "offset" in s}
        message = message_from_example(example).replace(shm=example["shm"])
        decoded = decode(encode(message, offsets), shm=lambda segment: area)
        assert decoded.shm == example["shm"]
    else:
        message = message_from_example(example)
        decoded = decode(encode(message))
    assert decoded.type == example["type"] and decoded.id == example["id"]
    assert dict(decoded.fields) == example.get("fields", {})
    for spec in example.get("tensors", []):
        assert decoded.tensors[spec["name"]].shape == tuple(spec["shape"])
        assert decoded.tensors[spec["name"]].dtype.name == spec["dtype"]
    assert decoded.deadline_ms == example.get("deadline_ms") and decoded.progress == example.get(
        "progress", False
    )


def test_the_error_code_table_is_the_implementation_s() -> None:
    assert [row[0] for row in table_rows("| code                  |")] == list(ERROR_CODES)


# ---- every engine answers every request example as the spec says ---------------------------------

SIZE = 64  # the frames sent: the examples' 8×8 tensors are layouts, not faces a generator can refine
LOCAL = ("--checkpoint", "builtin-untrained", "--gan-resolution", "32", "--shot-steps", "4",
         "--preview-steps", "2", "--steps-first", "4", "--steps-warm", "2", "--threads", "1")  # fmt: skip
RAY = (*LOCAL, "--ray", "--replicas", "1", "--cpus-per-replica", "0.5")


def front_camera() -> tuple[np.ndarray, np.ndarray]:
    """The demo head seen from the front, filling a SIZE² frame."""
    intrinsics = np.array([[95.0, 0.0, SIZE / 2], [0.0, 95.0, SIZE / 2], [0.0, 0.0, 1.0]])
    rotation = np.diag([1.0, -1.0, -1.0])
    extrinsics = np.eye(4)
    extrinsics[:3, :3], extrinsics[:3, 3] = rotation, -rotation @ np.array([0.0, -0.02, 0.6])
    return intrinsics, extrinsics


def realistic(example: dict, saved: Message | None) -> Message:
    """The example's message with content a real engine can refine: a synthetic face for frames, a front
    camera for the demo head, the state a previous ``refine_shot`` returned for ``set_shot_state``."""
    message = message_from_example(example)
    fields, tensors = dict(message.fields), dict(message.tensors)
    if "beauty" in tensors:
        face = synthetic_face(frame=int(fields["frame"]), size=SIZE, shot=str(fields["shot"]))
        face_tensors = face.to_message().tensors
        for name, array in tensors.items():
            if name in face_tensors:
                tensors[name] = face_tensors[name]
            elif name in EXTRA_PASSES:  # an optional pass, at the frame's size
                tensors[name] = np.zeros((SIZE, SIZE, *array.shape[2:]), array.dtype)
    if message.type == "refine_params":
        tensors["intrinsics"], tensors["extrinsics"] = front_camera()
        tensors["world_from_rig"] = np.eye(4)
        fields.update(height=SIZE, width=SIZE)
    if message.type == "refine_shot":
        fields["return_state"] = True
    if message.type == "set_shot_state" and saved is not None and "state_frame" in saved.fields:
        fields.update(
            shot=fields["shot"], frame=saved.fields["state_frame"], generator=saved.fields["generator"]
        )
        tensors = dict(saved.tensors)
    return message.replace(fields=fields, tensors=tensors)


@contextlib.contextmanager
def serving(engine: str) -> Iterator[str]:
    if engine == "echo":
        with running_server() as (_, address):
            yield address
    else:
        with backend_process(*(LOCAL if engine == "local" else RAY)) as backend:
            yield backend.address


@pytest.mark.parametrize("engine", ["echo", "local", pytest.param("ray", marks=pytest.mark.slow)])
def test_every_request_example_gets_the_reply_the_spec_names_from_every_engine(engine: str) -> None:
    if engine == "ray":
        pytest.importorskip("ray.serve")
    with serving(engine) as address:
        socket = zmq.Context.instance().socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(address)
        saved = None
        try:
            for example in EXAMPLES:
                row = MESSAGE_TABLE[example["type"]]
                if not row[1].startswith("C→S"):
                    continue
                socket.send_multipart(encode(realistic(example, saved)))
                while True:
                    assert socket.poll(120_000), f"no reply to {example['type']} {example['id']}"
                    reply = decode(socket.recv_multipart())
                    if reply.type not in ("progress", "frame_result"):  # events before the reply
                        break
                assert (reply.type, reply.id) == (row[2], example["id"]), (engine, reply)
                if example["type"] == "refine_shot":
                    saved = reply
        finally:
            socket.close()


def test_the_registry_is_the_spec_s_message_table() -> None:
    """Every request type in docs/protocol.md's table is in the registry with the reply it names, and back."""
    requests = {name: row[2] for name, row in MESSAGE_TABLE.items() if row[1].startswith("C→S")}
    assert requests == {name: spec.reply for name, spec in MESSAGES.items()}
