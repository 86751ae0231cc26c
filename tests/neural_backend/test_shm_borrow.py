"""Borrowed replies (``Client(borrow_replies=True)``) and in-place requests (``Client.request_arrays``):
zero-copy views of the shared areas, read-only / documented to be invalidated by the next request."""

from __future__ import annotations

import mmap

import numpy as np
import pytest
from serving_helpers import running_server, small_passes

from neural_backend.client.blocking import Client
from neural_backend.protocol.shm import layout, pack


def test_a_borrowed_reply_is_the_echo_read_only_and_overwritten_by_the_next_request() -> None:
    first, second = small_passes(frame=1, size=64), small_passes(frame=2, size=64)
    object.__setattr__(second, "beauty", (second.beauty * 0.5).astype(np.float32))
    with running_server() as (_, address):
        with Client(address, timeout=5, borrow_replies=True) as client:
            reply = client.request(first.to_message())
            assert reply.shm is not None, "the reply came through shared memory"
            image = reply.tensors["image"]
            np.testing.assert_array_equal(image, first.beauty)
            assert not image.flags.writeable
            with pytest.raises(ValueError):
                image[0, 0, 0] = 1.0
            kept = np.array(image)  # what the docs tell a caller to do with what it keeps
            client.request(second.to_message())
            # the contract: a borrowed array is valid only until the next request, which reuses the area
            np.testing.assert_array_equal(image, second.beauty)
            np.testing.assert_array_equal(kept, first.beauty)
    assert "valid only until this client's next request" in " ".join((Client.__doc__ or "").split())


def test_replies_are_owned_copies_by_default() -> None:
    passes = small_passes(size=64)
    with running_server() as (_, address):
        with Client(address, timeout=5) as client:
            reply = client.request(passes.to_message())
            assert reply.shm is not None
            image = reply.tensors["image"]
            assert image.flags.writeable and image.flags.owndata
            client.request(small_passes(frame=2, size=64).to_message())
            np.testing.assert_array_equal(image, passes.beauty)


def test_a_request_rendered_in_place_round_trips() -> None:
    passes = small_passes(size=64)
    message = passes.to_message()
    with running_server() as (_, address):
        with Client(address, timeout=5, borrow_replies=True) as client:
            arrays = client.request_arrays({k: (v.shape, v.dtype) for k, v in message.tensors.items()})
            assert list(arrays) == list(message.tensors)
            for name, array in arrays.items():
                array[...] = message.tensors[name]
            reply = client.request(message.replace(tensors=arrays))
            np.testing.assert_array_equal(reply.tensors["image"], passes.beauty)


def test_pack_skips_arrays_in_place_and_copies_out_misplaced_ones_first() -> None:
    area = memoryview(mmap.mmap(-1, 1 << 16))
    a, b = np.arange(1000, dtype=np.float32), np.arange(1000, 2000, dtype=np.float32)
    placed = layout(area, {"a": (a.shape, a.dtype), "b": (b.shape, b.dtype)})
    placed["a"][...], placed["b"][...] = a, b
    assert pack(area, placed) == {"a": 0, "b": 4032}
    np.testing.assert_array_equal(placed["a"], a)
    # swapped order: each lies in the area but not at its place; packing must not clobber either
    offsets = pack(area, {"b": placed["b"], "a": placed["a"]})
    assert offsets == {"b": 0, "a": 4032}
    np.testing.assert_array_equal(np.frombuffer(area, np.float32, 1000, 0), b)
    np.testing.assert_array_equal(np.frombuffer(area, np.float32, 1000, 4032), a)
