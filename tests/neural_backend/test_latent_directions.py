"""Latent directions from the rig: measured by inverting renders of the demo head with and without a control,
applied to a shot with a smoothed weight per frame, through the Refiner and through a real backend process
(``refine_shot``'s ``directions``); bad requests are refused and the held frames kept."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from serving_helpers import FAST_BACKEND, backend_process

import rigs
from neural_backend.checkpoints.io import read_checkpoint
from neural_backend.client.blocking import Client
from neural_backend.client.results import BackendError
from neural_backend.protocol.messages import DirectionWeights
from neural_backend.protocol.passes import FramePasses, PassError
from neural_backend.refine.directions import (
    DirectionError,
    direction_renders,
    directions_from_latents,
    measure_directions,
)
from neural_backend.refine.latent_edit import LatentEdit
from neural_backend.refine.param_render import front_camera, render_passes
from neural_backend.refine.refiner import RefineConfig, Refiner, ShotState

FRAMES = 6


@pytest.fixture(scope="module")
def refiner() -> Refiner:
    checkpoint = read_checkpoint("builtin-untrained", untrained_resolution=32)
    return Refiner(checkpoint.generator, RefineConfig(shot_steps=15), alignment=checkpoint.alignment)


def shot(rig: rigs.Rig, name: str = "talk") -> list[FramePasses]:
    intrinsics, extrinsics = front_camera(rig, 128)
    frames = []
    for frame in range(FRAMES):
        pose = np.zeros((rig.num_joints, 3))
        pose[rig.joint_names.index("jaw"), 0] = 0.1 * np.sin(frame)
        params = {"pose": pose, "expression": np.zeros(rig.num_expressions)}
        frames.append(render_passes(rig, params, intrinsics, extrinsics, (128, 128), name, frame + 1))
    return frames


def test_the_renders_differ_only_by_the_control() -> None:
    head = rigs.demo_head()
    renders = direction_renders(head, ["happiness", "AU26"], yaws=(0.0, 0.1))
    assert [r.frame for r in renders] == [0, 2, 4, 6, 8, 10], "two apart: no temporal link"
    base, happy, jaw = renders[:3]
    assert np.abs(happy.beauty - base.beauty).max() > 0.05 and np.abs(jaw.beauty - base.beauty).max() > 0.05
    assert np.abs(renders[3].beauty - base.beauty).max() > 0.05, "the second yaw turns the head"


def test_directions_are_mean_pair_differences_with_their_agreement() -> None:
    rng = np.random.default_rng(0)
    direction = torch.from_numpy(rng.normal(size=(4, 8))).float()
    identity = torch.from_numpy(rng.normal(size=(3, 4, 8))).float()  # another identity per yaw
    noise = 0.1 * torch.from_numpy(rng.normal(size=(3, 4, 8))).float()
    latents = torch.stack([identity, identity + direction + noise], dim=1).reshape(6, 4, 8)
    measured = directions_from_latents(latents, ["happiness"], yaws=3)
    torch.testing.assert_close(measured.vectors[0], direction + noise.mean(dim=0))
    assert 0.95 < measured.consistency[0] < 1.0
    opposite = torch.stack([identity, identity + direction, identity - direction], dim=1)[:, :2]
    opposite[1, 1] = identity[1] - direction  # one yaw disagrees
    assert directions_from_latents(opposite.reshape(6, 4, 8), ["happiness"], 3).consistency[0] < 0.0


def test_measuring_gives_one_direction_per_control_and_refuses_unknown_ones(refiner: Refiner) -> None:
    head = rigs.demo_head()
    measured = measure_directions(refiner, head, ["AU26"], yaws=(0.0,))
    generator = refiner.generator
    assert measured.controls == ("AU26",)
    assert measured.vectors.shape == (1, generator.num_ws, generator.w_dim)
    assert float(measured.vectors.norm()) > 0
    with pytest.raises(DirectionError, match="unknown control 'grin'"):
        measure_directions(refiner, head, ["grin"])


def test_a_shot_edit_changes_the_frames_by_their_smoothed_weights(refiner: Refiner) -> None:
    head = rigs.demo_head()
    frames = shot(head)
    plain: dict[int, np.ndarray] = {}
    refiner.refine_shot(frames, ShotState(), on_frame=lambda f: plain.setdefault(f.frame, f.gan))
    vectors = torch.full((1, refiner.generator.num_ws, refiner.generator.w_dim), 0.5)
    weights = np.zeros((FRAMES, 1))
    weights[3:] = 1.0
    edit = LatentEdit.smoothed(vectors, weights)
    smooth = edit.weights[:, 0]
    assert np.all(np.diff(smooth) > 0) and smooth[0] < 0.2 and smooth[-1] > 0.8, "a ramp, not a step"
    edited: dict[int, np.ndarray] = {}
    torch.manual_seed(0)
    refiner.refine_shot(frames, ShotState(), on_frame=lambda f: edited.setdefault(f.frame, f.gan), edit=edit)
    change = [float(np.abs(edited[f] - plain[f]).mean()) for f in sorted(plain)]
    assert change[0] < change[-1] and change[-1] > 0.01, change
    with pytest.raises(DirectionError, match=r"expected \(frames, 1\)"):
        LatentEdit.smoothed(vectors, np.zeros((FRAMES, 2)))
    with pytest.raises(DirectionError, match="within"):
        LatentEdit.smoothed(vectors, np.full((FRAMES, 1), 4.0))


def test_the_directions_field_is_checked() -> None:
    parsed = DirectionWeights.from_field({"rig": "demo", "weights": {"happiness": [0, 0.5, 1]}})
    assert parsed.controls == ("happiness",) and parsed.matrix(3).tolist() == [[0.0], [0.5], [1.0]]
    with pytest.raises(PassError, match="3 weights for a shot of 4 held frames"):
        parsed.matrix(4)
    for field, match in [
        ([1], "expected"),
        ({"rig": "demo"}, "expected"),
        ({"rig": "", "weights": {"happiness": [0]}}, "rig"),
        ({"rig": "demo", "weights": {}}, "at least one control"),
        ({"rig": "demo", "weights": {"grin": [0]}}, "unknown control 'grin'"),
        ({"rig": "demo", "weights": {"happiness": [True]}}, "list of numbers"),
        ({"rig": "demo", "weights": {"happiness": [float("nan")]}}, "finite"),
        ({"rig": "demo", "weights": {"happiness": [5]}}, "within"),
    ]:
        with pytest.raises(PassError, match=match):
            DirectionWeights.from_field(field)


@pytest.fixture(scope="module")
def backend() -> Iterator[str]:
    with backend_process(*FAST_BACKEND) as process:
        yield process.address


def test_refine_shot_applies_directions_over_the_socket(backend: str) -> None:
    head = rigs.demo_head()
    frames = shot(head, "socket")
    ramp = DirectionWeights("demo", {"happiness": tuple(np.linspace(0, 1, FRAMES))})
    with Client(backend, timeout=300) as client:
        plain = client.refine_shot(frames)
        edited = client.refine_shot(frames, directions=ramp)
        again = client.refine_shot(frames, directions=ramp)
    assert set(edited.directions) == {"happiness"}
    assert -1.0 <= edited.directions["happiness"]["consistency"] <= 1.0
    assert again.directions == edited.directions, "measured once, then kept"
    change = [float(np.abs(e.gan - p.gan).mean()) for e, p in zip(edited.frames, plain.frames, strict=True)]
    assert change[-1] > change[0], change


def test_bad_directions_are_refused_and_the_frames_kept(backend: str) -> None:
    frames = shot(rigs.demo_head(), "refused")
    with Client(backend, timeout=300) as client:
        for passes in frames:
            client.add_frame(passes)
        short = DirectionWeights("demo", {"happiness": (0.0, 1.0)})
        with pytest.raises(BackendError, match="2 weights for a shot of 6 held frames") as error:
            client.refine_held_shot("refused", directions=short, end_shot=False)
        assert error.value.code == "bad_field"
        unknown = DirectionWeights("nobody", {"happiness": (0.0,) * FRAMES})
        with pytest.raises(BackendError, match="unknown rig 'nobody'"):
            client.refine_held_shot("refused", directions=unknown, end_shot=False)
        held = {s["shot"]: s for s in client.list_shots()}["refused"]
        assert held["held_frames"] == FRAMES, "nothing is lost"
        result = client.refine_held_shot("refused")
    assert [f.frame for f in result.frames] == [f.frame for f in frames]
