"""The decoder on truncated, split, oversized, wrong-dtype, wrong-shape, NaN-carrying, shared-memory and
garbage input, plus Hypothesis fuzzing: nothing but ProtocolError ever escapes, and nothing big is
allocated for a header that merely claims a big tensor."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_helpers import small_passes

from neural_backend.protocol.passes import FramePasses
from neural_backend.protocol.wire import (
    ERR_BAD_FIELD,
    ERR_BAD_MESSAGE,
    ERR_SHM_UNAVAILABLE,
    ERR_TOO_LARGE,
    ERR_UNAUTHORIZED,
    Limits,
    Message,
    ProtocolError,
    decode,
    encode,
)

GOOD = [bytes(frame) for frame in encode(small_passes().to_message(3))]


def decode_passes(frames: list[bytes], **kwargs: object) -> FramePasses:
    return FramePasses.from_message(decode(frames, **kwargs))  # type: ignore[arg-type]


def test_a_message_split_across_frames_at_the_wrong_place_is_refused() -> None:
    joined = GOOD[1] + GOOD[2]
    with pytest.raises(ProtocolError, match="needs"):
        decode([GOOD[0], joined[:100], joined[100:], *GOOD[3:]])


@pytest.mark.parametrize("cut", [0, 1, 7, len(GOOD[0]) // 2, len(GOOD[0]) - 1])
def test_a_truncated_header_is_bad_message(cut: int) -> None:
    with pytest.raises(ProtocolError) as info:
        decode([GOOD[0][:cut], *GOOD[1:]])
    assert info.value.code == ERR_BAD_MESSAGE


def test_a_truncated_tensor_frame_names_the_tensor_and_the_request() -> None:
    with pytest.raises(ProtocolError) as info:
        decode([GOOD[0], GOOD[1][:-4], *GOOD[2:]])
    assert (
        info.value.code == ERR_BAD_MESSAGE and "beauty" in info.value.message and info.value.request_id == 3
    )


def test_missing_and_extra_frames_are_refused() -> None:
    for frames in (GOOD[:-1], [*GOOD, b"extra"]):
        with pytest.raises(ProtocolError, match="tensor frames"):
            decode(frames)


def test_oversized_claims_are_refused_before_allocation() -> None:
    header = msgpack.packb(
        {
            "rigstyle": 2,
            "type": "refine_frame",
            "id": 1,
            "tensors": [{"name": "beauty", "dtype": "float32", "shape": [1 << 14, 1 << 14, 3]}],
        }
    )
    with pytest.raises(ProtocolError) as info:
        decode([header, b""], Limits(max_tensor_bytes=1 << 20))
    assert info.value.code == ERR_TOO_LARGE
    with pytest.raises(ProtocolError, match="frames exceed"):
        decode([GOOD[0]] + [b""] * 100)


@pytest.mark.parametrize(
    "tensor, words",
    [
        (("beauty", np.zeros((16, 16, 3), np.complex64)), "not carried"),
        (("beauty", np.zeros((16, 16, 4), np.float32)), "beauty: expected shape [*, *, 3]"),
        (("region", np.zeros((16, 15), np.uint8)), "region: expected shape [16, 16]"),
        (("beauty", np.full((16, 16, 3), np.nan, np.float32)), "beauty: contains NaN"),
        (("intrinsics", np.array([[np.inf, 0, 0], [0, 1, 0], [0, 0, 1]])), "intrinsics: contains NaN"),
        (("depth", np.full((16, 16), np.nan, np.float32)), "depth: contains NaN"),
        (("normal", np.zeros((8, 8, 3), np.float32)), "normal: expected shape [16, 16, 3]"),
    ],
)
def test_wrong_dtype_shape_or_nan_is_bad_field_naming_it(tensor: tuple[str, np.ndarray], words: str) -> None:
    message = small_passes().to_message(4)
    name, array = tensor
    with pytest.raises(ProtocolError) as info:
        FramePasses.from_message(decode(encode(message.replace(tensors={**message.tensors, name: array}))))
    assert info.value.code == ERR_BAD_FIELD and words in info.value.message


def test_depth_may_be_infinite_for_background() -> None:
    message = small_passes().to_message(4)
    depth = np.full((16, 16), np.inf, np.float32)
    passes = decode_passes(
        [bytes(f) for f in encode(message.replace(tensors={**message.tensors, "depth": depth}))]
    )
    assert np.isinf(passes.extra["depth"]).all()


def test_wrong_token_and_unnegotiated_or_out_of_bounds_shared_memory_are_refused() -> None:
    with pytest.raises(ProtocolError) as info:
        decode(GOOD, token="right-token-0123456")
    assert info.value.code == ERR_UNAUTHORIZED and info.value.request_id == 3
    assert decode(encode(Message("health", auth="right-token-0123456")), token="right-token-0123456")
    header = {
        "rigstyle": 2,
        "type": "x",
        "shm": "ab" * 16,
        "tensors": [{"name": "a", "dtype": "uint8", "shape": [100], "offset": 0}],
    }
    with pytest.raises(ProtocolError) as info:
        decode([msgpack.packb(header)])
    assert info.value.code == ERR_SHM_UNAVAILABLE
    area = memoryview(bytearray(64))
    with pytest.raises(ProtocolError, match="outside"):
        decode([msgpack.packb(header)], shm=lambda segment: area)
    header["tensors"][0].update(shape=[8], offset=3)
    with pytest.raises(ProtocolError, match="unaligned"):
        decode([msgpack.packb(header)], shm=lambda segment: area)


def test_decoded_tensors_are_views_not_copies() -> None:
    frames = [bytearray(f) for f in GOOD]
    message = decode(frames)
    frames[1][:4] = b"\x00\x00\x80\x3f"
    assert message.tensors["beauty"].reshape(-1)[0] == 1.0


FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(st.binary(max_size=200), min_size=0, max_size=8))
def test_fuzz_random_frames(frames: list[bytes]) -> None:
    try:
        decode_passes(frames)
    except ProtocolError:
        pass


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), (1 << 64) - 1)
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
specs = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["beauty", "region", "landmarks2d", "intrinsics", "x", ""]),
        "dtype": st.sampled_from(["uint8", "float32", "float64", "int64", "object", "<f4"]),
        "shape": st.lists(st.integers(-2, 70), max_size=5),
    },
    optional={"offset": st.integers(-1, 1 << 20)},
)
headers = st.fixed_dictionaries(
    {
        "rigstyle": st.sampled_from([1, 2, 3, True, "2"]),
        "type": st.sampled_from(["refine_frame", "health", "cancel", "hello"]) | st.integers(-1, 1 << 40),
        "id": st.integers(-5, (1 << 64) - 1) | st.text(max_size=3),
        "fields": st.dictionaries(st.sampled_from(["shot", "frame", "target"]), json_values, max_size=3)
        | json_values,
        "tensors": st.lists(specs, max_size=4) | json_values,
    },
    optional={"auth": json_values, "deadline_ms": json_values, "progress": json_values, "shm": json_values},
)


@FUZZ
@given(headers, st.lists(st.binary(max_size=600), max_size=5))
def test_fuzz_structured_headers(header: dict, payloads: list[bytes]) -> None:
    try:
        decode_passes([msgpack.packb(header), *payloads], shm=lambda segment: memoryview(bytearray(256)))
    except ProtocolError:
        pass


@FUZZ
@given(st.data())
def test_fuzz_mutations_of_a_valid_message(data: st.DataObject) -> None:
    frames = [bytearray(f) for f in GOOD]
    for _ in range(data.draw(st.integers(1, 6))):
        target = frames[data.draw(st.integers(0, len(frames) - 1))]
        if target:
            target[data.draw(st.integers(0, len(target) - 1))] = data.draw(st.integers(0, 255))
    keep = data.draw(st.integers(1, len(frames)))
    try:
        decode_passes([bytes(f) for f in frames[:keep]])
    except ProtocolError:
        pass


def test_nil_options_count_as_absent() -> None:
    header = {"rigstyle": 2, "type": "health", "id": 1, "deadline_ms": None, "progress": None, "auth": None}
    message = decode([msgpack.packb(header)])
    assert message.deadline_ms is None and message.progress is False and message.auth is None


def test_a_nil_shm_needs_no_segment() -> None:
    header = {"rigstyle": 2, "type": "cancel", "id": 1, "shm": None}
    assert decode([msgpack.packb(header)], shm=lambda segment: memoryview(b"")).shm is None
