"""A shot's saved temporal state: atomic save/load, and moving a shot between real backends over the
socket (``refine_shot`` with ``return_state``, then ``set_shot_state`` on another backend)."""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import FAST_BACKEND, backend_process
from synthetic import synthetic_shot

from neural_backend.client.blocking import Client
from neural_backend.client.results import BackendError, RefinedShot
from neural_backend.protocol.passes import FramePasses, PassError
from neural_backend.protocol.saved_state import STATE_TENSORS, SavedShotState
from neural_backend.protocol.wire import Message

SHOT_STEPS = ("--shot-steps", "5")  # after FAST_BACKEND: the last one wins


def make_state(shot: str = "sh010", frame: int = 7, generator: str = "gen-a") -> SavedShotState:
    rng = np.random.default_rng(frame)
    return SavedShotState(
        shot=shot,
        frame=frame,
        generator=generator,
        latent=rng.standard_normal((4, 8), dtype=np.float32),
        gan=rng.uniform(-1, 1, (3, 8, 8)).astype(np.float32),
        region=rng.integers(0, 6, (6, 5)).astype(np.float32),
        composite=rng.random((3, 6, 5), dtype=np.float32),
        quad=rng.standard_normal((4, 2)),
        matrix=rng.standard_normal((3, 3)),
    )


def assert_same_state(a: SavedShotState, b: SavedShotState) -> None:
    assert (a.shot, a.frame, a.generator) == (b.shot, b.frame, b.generator)
    for name in STATE_TENSORS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        np.testing.assert_array_equal(x, y, err_msg=name)


# ---- files -------------------------------------------------------------------------------------------


def test_a_saved_state_loads_back_equal_and_no_partial_file_is_left(tmp_path: Path) -> None:
    state = make_state()
    path = tmp_path / "state" / "after_0007.npz"
    state.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["after_0007.npz"]
    loaded = SavedShotState.load(path)
    assert_same_state(loaded, state)
    assert isinstance(loaded.frame, int) and isinstance(loaded.shot, str)

    newer = make_state(frame=8)  # overwriting replaces the file whole
    newer.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["after_0007.npz"]
    assert_same_state(SavedShotState.load(path), newer)


def test_a_state_round_trips_through_its_message() -> None:
    state = make_state()
    message = state.to_message(request_id=5)
    assert message.type == "set_shot_state" and message.id == 5
    assert_same_state(SavedShotState.from_message(message), state)
    with pytest.raises(PassError, match="unknown tensors"):
        SavedShotState.from_message(message.replace(tensors={**message.tensors, "extra": np.zeros(2)}))


def test_bad_states_are_refused_naming_the_tensor() -> None:
    state = make_state()
    with pytest.raises(PassError, match="composite"):
        replace(state, composite=np.zeros((3, 4, 4), np.float32))
    with pytest.raises(PassError, match="gan"):
        replace(state, gan=np.zeros((3, 8, 6), np.float32))
    with pytest.raises(PassError, match="quad"):
        replace(state, quad=np.zeros((3, 2)))
    with pytest.raises(PassError, match="generator"):
        replace(state, generator="")


@pytest.mark.parametrize(
    "damage",
    ["text", "truncated", "missing", "wrong_shape", "empty"],
)
def test_loading_something_else_names_the_file(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "after_0001.npz"
    make_state().save(path)
    if damage == "text":
        path.write_text("not a state\n")
    elif damage == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "missing":
        np.savez(path, latent=np.zeros((4, 8), np.float32))
    elif damage == "wrong_shape":
        tensors = {**make_state().tensors, "quad": np.zeros((5, 2))}
        np.savez(path, shot=np.array("s"), frame=np.array(1), generator=np.array("g"), **tensors)
    else:
        path.write_bytes(b"")
    with pytest.raises(PassError) as refused:
        SavedShotState.load(path)
    assert str(path) in refused.value.message
    if damage == "wrong_shape":
        assert "quad" in refused.value.message
    else:
        assert "not a saved shot state" in refused.value.message


def test_a_corrupted_member_names_the_file(tmp_path: Path) -> None:
    """Bytes flipped inside the archive (same size): the zip's CRC catches it."""
    path = tmp_path / "after_0001.npz"
    make_state().save(path)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("latent.npy")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF  # inside latent's stored data
    path.write_bytes(bytes(data))
    with pytest.raises(PassError) as refused:
        SavedShotState.load(path)
    assert str(path) in refused.value.message


# ---- between backends ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[str, str, str]]:
    """Two 32 px backends running the same built-in generator, and a 64 px one."""
    with contextlib.ExitStack() as stack:
        one = stack.enter_context(backend_process(*FAST_BACKEND, *SHOT_STEPS))
        other = stack.enter_context(backend_process(*FAST_BACKEND, *SHOT_STEPS))
        bigger = stack.enter_context(backend_process(*FAST_BACKEND, *SHOT_STEPS, "--gan-resolution", "64"))
        yield one.address, other.address, bigger.address


def refine(client: Client, frames: list[FramePasses], end_shot: bool = False) -> RefinedShot:
    for passes in frames:
        client.add_frame(passes)
    return client.refine_held_shot(frames[0].shot, timeout=300, end_shot=end_shot, return_state=True)


def test_a_shot_moved_to_another_backend_with_its_state_refines_bit_identically(
    backends: tuple[str, str, str],
) -> None:
    one, other, _ = backends
    frames = synthetic_shot(4, size=64, shot="moved")
    with Client(one, timeout=300) as client:
        first = refine(client, frames[:2])
        rest_here = refine(client, frames[2:], end_shot=True)
    assert first.state is not None and rest_here.state is not None
    assert first.state.shot == "moved" and first.state.frame == 1
    assert rest_here.state.frame == 3
    with Client(one, timeout=60) as client:
        generator_id = client.health()["generator_id"]
    assert first.state.generator == generator_id == "builtin-untrained-32"
    assert first.state.latent.ndim == 2 and first.state.gan.shape[1:] == (32, 32)
    assert first.state.region.shape == first.state.composite.shape[1:] == (64, 64)

    with Client(other, timeout=300) as client:
        client.set_shot_state(first.state)
        assert client.health()["shots"] == 1
        rest_there = refine(client, frames[2:], end_shot=True)
        fresh = refine(client, [replace(p, shot="fresh") for p in frames[2:]], end_shot=True)

    assert [f.frame for f in rest_there.frames] == [2, 3] == [f.frame for f in rest_here.frames]
    for here, there in zip(rest_here.frames, rest_there.frames, strict=True):
        np.testing.assert_array_equal(here.image, there.image)
        np.testing.assert_array_equal(here.gan, there.gan)
        assert here.metrics["temporal_error"] == there.metrics["temporal_error"]
    assert rest_there.state is not None
    assert_same_state(rest_there.state, rest_here.state)
    # the state mattered: without it the same frames come out otherwise
    assert not np.array_equal(fresh.frames[0].image, rest_here.frames[0].image)


def test_a_state_from_another_generator_or_shape_is_refused_and_the_server_keeps_serving(
    backends: tuple[str, str, str],
) -> None:
    one, _, bigger = backends
    frames = synthetic_shot(2, size=64, shot="refused")
    with Client(one, timeout=300) as client:
        state = refine(client, frames, end_shot=True).state
    assert state is not None
    with Client(bigger, timeout=60) as client:
        bigger_id = client.health()["generator_id"]
        assert bigger_id == "builtin-untrained-64"

        with pytest.raises(BackendError) as other_generator:
            client.set_shot_state(state)
        assert other_generator.value.code == "bad_field"
        assert "builtin-untrained-32" in other_generator.value.message
        assert "builtin-untrained-64" in other_generator.value.message
        assert client.health()["status"] == "ok"

        # the right generator name on the wrong state: the shapes do not fit a 64 px generator
        with pytest.raises(BackendError) as wrong_shape:
            client.set_shot_state(replace(state, generator=bigger_id))
        assert wrong_shape.value.code == "bad_field"
        assert "32 px" in wrong_shape.value.message and "64 px" in wrong_shape.value.message
        assert client.health()["status"] == "ok" and client.health()["shots"] == 0

        with pytest.raises(BackendError) as malformed:
            client.request(state.to_message().replace(fields={"shot": "refused", "frame": 1}))
        assert malformed.value.code == "bad_field" and "generator" in malformed.value.message

        with pytest.raises(BackendError) as bad_flag:
            client.request(Message("refine_shot", fields={"shot": "refused", "return_state": "yes"}))
        assert bad_flag.value.code == "bad_field" and "return_state" in bad_flag.value.message

        assert client.health()["status"] == "ok"
        refined = refine(client, [replace(p, shot="after") for p in frames], end_shot=True)
        assert [f.frame for f in refined.frames] == [0, 1]
        assert refined.state is not None and refined.state.generator == bigger_id

    with Client(one, timeout=60) as client:  # the 32 px backend takes its own state back
        client.set_shot_state(state)
        client.end_shot(state.shot)


def test_without_return_state_the_reply_has_no_state(backends: tuple[str, str, str]) -> None:
    one, _, _ = backends
    frames = synthetic_shot(1, size=64, shot="plain")
    with Client(one, timeout=300) as client:
        client.add_frame(frames[0])
        shot = client.refine_held_shot("plain", timeout=300)
        assert shot.state is None and len(shot.frames) == 1
        client.add_frame(frames[0])
        reply = client.request(Message("refine_shot", fields={"shot": "plain"}), timeout=300)
        assert "state_frame" not in reply.fields and not reply.tensors
        client.end_shot("plain")
