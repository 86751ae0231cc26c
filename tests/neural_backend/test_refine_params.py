"""Params-only requests against the real backend process: it renders the demo head (or a rig it was started
with) from parameters + camera, then refines; unknown rigs and bad rig options get clear errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import UNTRAINED, backend_process

import rigs
from neural_backend.client.blocking import Client
from neural_backend.client.results import BackendError
from neural_backend.protocol.passes import ParamsRequest
from neural_backend.serving.ports import free_port

SIZE = 128


def front_camera(distance: float = 0.6, focal_px: float = 190.0) -> tuple[np.ndarray, np.ndarray]:
    """A camera on the rig's +Z axis looking back at the face (OpenCV axes: x = rig +X, y = rig -Y)."""
    intrinsics = np.array([[focal_px, 0.0, SIZE / 2], [0.0, focal_px, SIZE / 2], [0.0, 0.0, 1.0]])
    rotation = np.diag([1.0, -1.0, -1.0])
    centre = np.array([0.0, -0.02, distance])
    extrinsics = np.eye(4)
    extrinsics[:3, :3], extrinsics[:3, 3] = rotation, -rotation @ centre
    return intrinsics, extrinsics


def request(rig: str, frame: int = 1, jaw: float = 0.0) -> ParamsRequest:
    intrinsics, extrinsics = front_camera()
    pose = np.zeros((5, 3))
    pose[2, 0] = jaw
    return ParamsRequest(
        shot="params-shot", frame=frame, rig=rig, height=SIZE, width=SIZE, intrinsics=intrinsics,
        extrinsics=extrinsics, world_from_rig=np.eye(4), params={"pose": pose, "expression": np.ones(3)},
    )  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    head = tmp_path_factory.mktemp("rigs") / "head.npz"
    rigs.save(rigs.demo_head(), head)
    with backend_process(
        *UNTRAINED, "--gan-resolution", "32", "--steps-first", "60", "--steps-warm", "30",
        "--rig", f"head={head}",
    ) as backend:  # fmt: skip
        yield backend.address


@pytest.mark.parametrize("rig", ["demo", "head"])
def test_params_only_frames_are_rendered_and_refined(server: str, rig: str) -> None:
    with Client(server, timeout=120) as client:
        first = client.refine_params(request(rig, frame=1))
        second = client.refine_params(request(rig, frame=2, jaw=0.15))
        client.end_shot("params-shot")
    for refined in (first, second):
        assert refined.image.shape == (SIZE, SIZE, 3) and refined.gan.shape == (32, 32, 3)
        assert refined.metrics["skin_loss_final"] <= 0.1 * refined.metrics["skin_loss_init"]
        assert refined.metrics["skin_fraction"] > 0.05  # the rendered face fills a real part of the crop
    assert second.metrics["skin_loss_warm"] < second.metrics["skin_loss_init"], "frame 2 starts warm"
    assert not np.allclose(first.image, second.image), "the jaw moved"


def test_an_unknown_rig_is_refused_naming_the_known_ones(server: str) -> None:
    with Client(server, timeout=60) as client, pytest.raises(BackendError) as info:
        client.refine_params(request("smplx-hero"))
    assert info.value.code == "bad_field"
    assert (
        "smplx-hero" in info.value.message
        and "'demo'" in info.value.message
        and "'head'" in info.value.message
    )


def test_a_bad_rig_option_is_a_one_line_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(b"\x80\x02garbage")
    result = subprocess.run(
        [sys.executable, "-m", "neural_backend", "serve", *UNTRAINED, "--port", str(free_port()),
         "--rig", f"x={broken}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rigstyle: error: --rig x:") and str(broken) in lines[0]
