"""The sans-I/O protocol core on good, split, truncated, oversized and garbage input."""

from __future__ import annotations

from pathlib import Path

import msgpack
import numpy as np
import pytest

from neural_backend.protocol.passes import FramePasses, PassError, RefinedFrame
from neural_backend.protocol.wire import (
    ERR_BAD_MESSAGE,
    ERR_TOO_LARGE,
    ERR_UNSUPPORTED_VERSION,
    PROTOCOL_VERSION,
    Limits,
    Message,
    ProtocolError,
    decode,
    encode,
)


def make_passes(height: int = 32, width: int = 48) -> FramePasses:
    rng = np.random.default_rng(0)
    return FramePasses(
        shot="shot-1",
        frame=7,
        beauty=rng.random((height, width, 3), dtype=np.float32),
        region=rng.integers(0, 7, (height, width)).astype(np.uint8),
        landmarks2d=rng.random((68, 2)).astype(np.float32) * 30,
        intrinsics=np.eye(3),
        extrinsics=np.eye(4),
        params={"expression": np.zeros(10), "pose": np.zeros((5, 3)), "transl": np.ones(3)},
    )


def header(**overrides: object) -> bytes:
    fields = {"rigstyle": PROTOCOL_VERSION, "type": "health", "id": 1, "fields": {}, "tensors": []}
    fields.update(overrides)
    return msgpack.packb(fields)


def test_round_trip_keeps_every_tensor_bit_exact() -> None:
    passes = make_passes()
    decoded = FramePasses.from_message(decode(encode(passes.to_message(42))))
    assert decoded.shot == "shot-1" and decoded.frame == 7
    for name in ("beauty", "region", "landmarks2d", "intrinsics", "extrinsics"):
        original, received = getattr(passes, name), getattr(decoded, name)
        assert received.dtype == original.dtype and np.array_equal(received, original), name
    assert np.array_equal(decoded.params["transl"], np.ones(3, np.float32))


def test_big_endian_and_non_contiguous_input_arrive_as_little_endian_values() -> None:
    array = np.arange(12, dtype=">f4").reshape(3, 4).T
    message = decode(encode(Message("x", tensors={"a": array})))
    assert message.tensors["a"].dtype == np.dtype("<f4")
    assert np.array_equal(message.tensors["a"], array)


@pytest.mark.parametrize(
    "array", [np.zeros((0, 3), np.float32), np.float64(2.5), np.arange(6, dtype=np.int64)[::2]]
)
def test_empty_scalar_and_strided_tensors_keep_shape_and_values(array: np.ndarray) -> None:
    received = decode(encode(Message("x", tensors={"a": array}))).tensors["a"]
    assert received.shape == np.shape(array) and np.array_equal(received, array)


def test_refined_frame_round_trip() -> None:
    frame = RefinedFrame("s", 3, np.zeros((8, 8, 3), np.float32), np.ones((4, 4, 3), np.float32), {"a": 1.5})
    back = RefinedFrame.from_message(decode(encode(frame.to_message(5))))
    assert back.frame == 3 and back.metrics == {"a": 1.5} and back.gan.shape == (4, 4, 3)


@pytest.mark.parametrize(
    "frames, code, words",
    [
        ([], ERR_BAD_MESSAGE, "empty"),
        ([b"\xc1garbage"], ERR_BAD_MESSAGE, "msgpack"),
        ([msgpack.packb([1, 2])], ERR_BAD_MESSAGE, "map"),
        ([header(rigstyle=99)], ERR_UNSUPPORTED_VERSION, "version"),
        ([header(rigstyle=True)], ERR_UNSUPPORTED_VERSION, "version"),
        ([header(type=5)], ERR_BAD_MESSAGE, "'type'"),
        (
            [header(tensors=[{"name": "a", "dtype": "float32", "shape": [2]}])],
            ERR_BAD_MESSAGE,
            "1 tensor frames",
        ),
        (
            [header(tensors=[{"name": "a", "dtype": "object", "shape": [2]}]), b"12345678"],
            ERR_BAD_MESSAGE,
            "dtype",
        ),
        ([header(tensors=[{"name": "a", "dtype": "uint8", "shape": [-1]}]), b""], ERR_BAD_MESSAGE, "shape"),
        (
            [header(tensors=[{"name": "a", "dtype": "float32", "shape": [3]}]), b"1234"],
            ERR_BAD_MESSAGE,
            "needs 12",
        ),
        (
            [header(tensors=[{"name": "a", "dtype": "uint8", "shape": [1 << 30, 4]}]), b""],
            ERR_TOO_LARGE,
            "size",
        ),
    ],
)
def test_malformed_messages_raise_protocol_errors_naming_the_problem(frames, code, words) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(frames)
    assert info.value.code == code
    assert words in info.value.message


def test_limits_are_checked_before_the_payload_is_touched() -> None:
    limits = Limits(max_frames=3, max_header_bytes=64)
    with pytest.raises(ProtocolError, match="frames exceed"):
        decode([header()] + [b""] * 3, limits)
    with pytest.raises(ProtocolError, match="header of"):
        decode([header(fields={"pad": "x" * 100})], limits)


def test_decoding_random_garbage_never_raises_anything_but_protocol_error() -> None:
    rng = np.random.default_rng(1)
    good = encode(make_passes().to_message())
    for trial in range(300):
        frames = [bytearray(f) for f in good]
        target = frames[rng.integers(len(frames))]
        if len(target):
            for _ in range(rng.integers(1, 8)):
                target[rng.integers(len(target))] = rng.integers(256)
        if trial % 3 == 0:
            frames = frames[: rng.integers(1, len(frames) + 1)]
        try:
            FramePasses.from_message(decode([bytes(f) for f in frames]))
        except ProtocolError:
            pass


@pytest.mark.parametrize(
    "change, words",
    [
        ({"beauty": np.zeros((16, 16), np.float32)}, "beauty: expected shape [*, *, 3]"),
        ({"region": np.zeros((5, 5), np.uint8)}, "region: expected shape [32, 48]"),
        ({"landmarks2d": np.full((68, 2), np.nan, np.float32)}, "landmarks2d: contains NaN"),
        ({"intrinsics": np.eye(4)}, "intrinsics: expected shape [3, 3]"),
        ({"shot": ""}, "shot"),
        ({"frame": "7"}, "frame"),
        ({"params": {"pose": np.zeros((5, 2))}}, "pose: expected shape [*, 3]"),
        ({"params": {"wiggle": np.zeros(3)}}, "unknown parameter 'wiggle'"),
    ],
)
def test_frame_passes_reject_bad_fields_by_name(change, words) -> None:
    passes = make_passes()
    fields = {k: getattr(passes, k) for k in FramePasses.__dataclass_fields__}
    fields.update(change)
    with pytest.raises(PassError) as info:
        FramePasses(**fields)
    assert words in info.value.message


def test_unknown_tensors_in_a_refine_request_are_refused() -> None:
    message = make_passes().to_message()
    extra = Message(message.type, message.id, message.fields, {**message.tensors, "mystery": np.zeros(2)})
    with pytest.raises(PassError, match="mystery"):
        FramePasses.from_message(decode(encode(extra)))


def test_the_worked_example_in_the_spec_is_what_encode_produces() -> None:
    spec = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    one_line = next(line.strip("`") for line in spec.splitlines() if line.startswith("`85 a8"))
    assert bytes(encode(Message("health", 1))[0]).hex(" ") == one_line
    transl = encode(Message("x", tensors={"transl": np.array([0, 0, 1], np.float32)}))[1]
    assert bytes(transl).hex(" ", 4) == "00000000 00000000 0000803f"
    assert "`00 00 00 00  00 00 00 00  00 00 80 3f`" in spec
