"""Generated malformed messages for fuzzing a running server, and a runner that counts the replies.

Seeded and fast (numpy's generator, not Hypothesis): the acceptance test and ``benchmarks/
bench_socket_fuzz.py`` send tens of thousands. Every message is small, so the server's replies are
the only thing measured: each message must get exactly one reply (``progress`` events aside).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import msgpack
import numpy as np
import zmq
from serving_helpers import small_passes

from neural_backend.protocol.wire import decode, encode

_GOOD = [bytes(f) for f in encode(small_passes(size=8).to_message(1))]
_VOCAB: list[object] = [
    None,
    True,
    0,
    1,
    2,
    -1,
    1 << 40,
    1.5,
    float("nan"),
    "",
    "refine_frame",
    "health",
    "cancel",
    "hello",
    "ready",
    "end_shot",
    "release_shm",
    "x" * 40,
    b"\x00\xff",
    [],
    {},
    [1, 2],
    {"a": 1},
]
_DTYPES = ["uint8", "float32", "float64", "int64", "object", "<f4", 7]
_KEYS = ["rigstyle", "type", "id", "fields", "tensors", "auth", "deadline_ms", "progress", "shm", "zz"]


def malformed(rng: np.random.Generator, request_id: int) -> list[bytes]:
    """One generated message (list of frames), mostly broken in one of several ways."""
    kind = int(rng.integers(6))
    if kind == 0:  # random bytes
        return [rng.bytes(int(rng.integers(0, 64))) for _ in range(int(rng.integers(1, 5)))]
    if kind == 1:  # a valid request with a few bytes flipped
        frames = [bytearray(f) for f in _GOOD]
        for _ in range(int(rng.integers(1, 6))):
            target = frames[int(rng.integers(len(frames)))]
            if target:
                target[int(rng.integers(len(target)))] = int(rng.integers(256))
        return [bytes(f) for f in frames]
    if kind == 2:  # frames dropped, duplicated or truncated
        frames = list(_GOOD)
        index = int(rng.integers(len(frames)))
        action = int(rng.integers(3))
        if action == 0 and len(frames) > 1:
            del frames[index]
        elif action == 1:
            frames.insert(index, frames[index])
        else:
            frames[index] = frames[index][: int(rng.integers(len(frames[index]) + 1))]
        return frames
    if kind == 3:  # random header maps from a vocabulary of near-valid keys and values
        header = {str(rng.choice(_KEYS)): _VOCAB[int(rng.integers(len(_VOCAB)))] for _ in range(6)}
        header.setdefault("rigstyle", 2)
        header["id"] = request_id
        return [
            msgpack.packb(header),
            *[rng.bytes(int(rng.integers(0, 32))) for _ in range(int(rng.integers(3)))],
        ]
    if kind == 4:  # well-framed tensors with wrong dtypes, shapes, offsets or sizes
        spec = {
            "name": str(rng.choice(["beauty", "region", "landmarks2d", "pose", "mystery"])),
            "dtype": _DTYPES[int(rng.integers(len(_DTYPES)))],
            "shape": [
                int(d) for d in rng.integers(-1, 1 << int(rng.integers(1, 33)), int(rng.integers(0, 6)))
            ],
        }
        if rng.random() < 0.2:
            spec["offset"] = int(rng.integers(0, 1 << 20))
        header = {
            "rigstyle": 2,
            "type": "refine_frame",
            "id": request_id,
            "fields": {"shot": "f", "frame": 1},
            "tensors": [spec],
        }
        return [msgpack.packb(header), rng.bytes(int(rng.integers(0, 64)))]
    # kind 5: a valid message with NaN or a wrong-shaped pass
    message = small_passes(size=8).to_message(request_id)
    tensors = dict(message.tensors)
    tensors[str(rng.choice(["beauty", "landmarks2d"]))] = np.full((3, 5), np.nan, np.float32)
    return [bytes(f) for f in encode(message.replace(tensors=tensors))]


@dataclass
class FuzzReport:
    sent: int = 0
    replies: int = 0
    seconds: float = 0.0
    codes: Counter[str] = field(default_factory=Counter)


def fuzz_server(
    address: str, count: int, seed: int = 0, window: int = 256, timeout: float = 300.0
) -> FuzzReport:
    """Send ``count`` generated messages in windows; return how many replies came (excluding progress)."""
    rng = np.random.default_rng(seed)
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    report = FuzzReport()
    started = time.monotonic()
    try:
        while report.sent < count:
            batch = min(window, count - report.sent)
            for i in range(batch):
                socket.send_multipart(malformed(rng, report.sent + i + 1))
            report.sent += batch
            while report.replies < report.sent:
                if not socket.poll(int(max(0.0, started + timeout - time.monotonic()) * 1000)):
                    return report  # the caller sees the shortfall
                frames = socket.recv_multipart()
                if len(frames) > 1 and not frames[0]:
                    frames = frames[1:]  # the reply to a message that began with an empty (REQ) frame
                reply = decode(frames)
                if reply.type != "progress":
                    report.replies += 1
                    report.codes[str(reply.fields.get("code", reply.type))] += 1
    finally:
        report.seconds = time.monotonic() - started
        socket.close()
    return report
