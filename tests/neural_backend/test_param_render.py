"""Passes rendered from rig parameters with pyrender (offscreen EGL), checked without Blender."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import rigs
from neural_backend.protocol.passes import PassError
from neural_backend.refine import param_render
from neural_backend.refine.param_render import ParamRenderError, render_passes
from rigs import regions
from rigs.camera import project
from rigs.mesh import raycast

HEIGHT, WIDTH = 48, 64
NOSE_TIP = 30  # iBUG-68 index


@pytest.fixture(scope="module")
def rig() -> rigs.Rig:
    return rigs.demo_head()


@pytest.fixture(scope="module")
def camera(rig: rigs.Rig) -> tuple[np.ndarray, np.ndarray]:
    """(intrinsics, extrinsics) of a 50 mm camera 0.4 m in front of the rest face (rig frame = world)."""
    focal = 50.0 / 36.0 * WIDTH
    intrinsics = np.array([[focal, 0.0, WIDTH / 2], [0.0, focal, HEIGHT / 2], [0.0, 0.0, 1.0]])
    centre = rig.forward().landmarks.mean(axis=0)
    extrinsics = np.diag([1.0, -1.0, -1.0, 1.0])  # looks down world -Z at the face, which faces +Z
    extrinsics[:3, 3] = -extrinsics[:3, :3] @ (centre + [0.0, 0.0, 0.4])
    return intrinsics, extrinsics


def render(
    rig: rigs.Rig, camera: tuple[np.ndarray, np.ndarray], **kwargs: object
) -> param_render.FramePasses:
    args: dict[str, object] = {"params": {}, "size": (HEIGHT, WIDTH), "shot": "s", "frame": 3}
    args.update(kwargs)
    return render_passes(rig, intrinsics=camera[0], extrinsics=camera[1], **args)  # type: ignore[arg-type]


def test_passes_have_the_frame_size_and_types(rig: rigs.Rig, camera: tuple[np.ndarray, np.ndarray]) -> None:
    params = {"expression": np.array([0.5]), "pose": np.zeros((rig.num_joints, 3)), "transl": np.zeros(3)}
    passes = render(rig, camera, params=params)
    assert (passes.shot, passes.frame, passes.size) == ("s", 3, (HEIGHT, WIDTH))
    assert passes.region.dtype == np.uint8 and passes.region.shape == (HEIGHT, WIDTH)
    assert passes.beauty.dtype == np.float32 and passes.beauty.shape == (HEIGHT, WIDTH, 3)
    assert passes.landmarks2d.shape == (rig.num_landmarks, 2)
    assert set(passes.params) == set(params) and passes.params["expression"].dtype == np.float32
    assert passes.region[0, 0] == regions.BACKGROUND
    np.testing.assert_allclose(passes.beauty[0, 0], param_render.BACKGROUND, atol=0.01)
    skin = passes.beauty[passes.region == regions.SKIN]
    assert skin.mean() > passes.beauty[0, 0].mean() and 0.0 <= passes.beauty.min() <= passes.beauty.max() <= 1


def test_nose_tip_pixel_is_skin(rig: rigs.Rig, camera: tuple[np.ndarray, np.ndarray]) -> None:
    assert rig.face_regions[rig.landmark_faces[NOSE_TIP]] == regions.SKIN
    passes = render(rig, camera)
    x, y = np.floor(passes.landmarks2d[NOSE_TIP]).astype(int)
    assert passes.region[y, x] == regions.SKIN
    assert {regions.SKIN, regions.EYES, regions.HAIR, regions.NECK} <= set(np.unique(passes.region).tolist())


def test_region_is_the_face_under_each_pixel_centre(
    rig: rigs.Rig, camera: tuple[np.ndarray, np.ndarray]
) -> None:
    """An independent ray caster through pixel centres (x + 0.5, y + 0.5) gives the same labels."""
    intrinsics, extrinsics = camera
    passes = render(rig, camera)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    pixels = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5, np.ones(xs.size)], axis=1)
    rotation, translation = extrinsics[:3, :3], extrinsics[:3, 3]
    directions = pixels @ np.linalg.inv(intrinsics).T @ rotation  # camera -> world: R^T d
    origin = -rotation.T @ translation
    hits = np.concatenate(
        [
            raycast(rig.v_template, rig.faces, np.broadcast_to(origin, chunk.shape), chunk)[0]
            for chunk in np.array_split(directions, 16)
        ]
    )
    expected = np.where(hits >= 0, rig.face_regions[hits], regions.BACKGROUND).reshape(HEIGHT, WIDTH)
    assert np.mean(expected == passes.region) >= 0.995  # only rays grazing an edge may differ


def test_landmarks_are_the_projected_rig_landmarks(
    rig: rigs.Rig, camera: tuple[np.ndarray, np.ndarray]
) -> None:
    pose = np.zeros((rig.num_joints, 3))
    pose[rig.joint_names.index("neck")] = [0.0, 0.3, 0.0]
    params = {"pose": pose, "transl": np.array([0.01, 0.0, 0.0])}
    passes = render(rig, camera, params=params)
    expected = project(rig.forward(pose=pose, transl=params["transl"]).landmarks, *camera)
    np.testing.assert_allclose(passes.landmarks2d, expected, atol=1e-3)


def test_world_from_rig_is_the_same_as_moving_the_camera(
    rig: rigs.Rig, camera: tuple[np.ndarray, np.ndarray]
) -> None:
    intrinsics, extrinsics = camera
    world_from_rig = np.eye(4)
    world_from_rig[:3, :3] = [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]  # +90° about X, as Blender
    world_from_rig[:3, 3] = [0.2, -0.1, 1.5]
    moved = render(
        rig, (intrinsics, extrinsics @ np.linalg.inv(world_from_rig)), world_from_rig=world_from_rig
    )
    still = render(rig, camera)
    assert np.mean(moved.region == still.region) >= 0.999
    np.testing.assert_allclose(moved.landmarks2d, still.landmarks2d, atol=1e-3)


def test_repeated_calls_over_many_sizes_and_threads_give_the_same_passes(
    rig: rigs.Rig, camera: tuple[np.ndarray, np.ndarray]
) -> None:
    first = render(rig, camera)
    for side in (8, 9, 200, 33):
        assert render(rig, camera, size=(side, side)).region.shape == (side, side)
    with ThreadPoolExecutor(max_workers=3) as pool:
        again = list(pool.map(lambda _: render(rig, camera), range(6)))
    for passes in again:
        np.testing.assert_array_equal(passes.region, first.region)
        np.testing.assert_array_equal(passes.beauty, first.beauty)
    param_render.close_renderer()
    np.testing.assert_array_equal(render(rig, camera).region, first.region)


def test_rig_behind_the_camera_renders_background(
    rig: rigs.Rig, camera: tuple[np.ndarray, np.ndarray]
) -> None:
    intrinsics, extrinsics = camera
    turned = np.diag([-1.0, 1.0, -1.0, 1.0]) @ extrinsics  # the camera turned 180° about its y axis
    passes = render(rig, (intrinsics, turned))
    assert not passes.region.any()
    np.testing.assert_allclose(passes.beauty, np.broadcast_to(param_render.BACKGROUND, passes.beauty.shape))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"params": {"shape": np.zeros(3)}}, "params: unknown parameters ['shape']"),
        ({"params": {"pose": np.zeros((2, 3))}}, "pose: expected shape"),
        ({"params": {"pose": np.zeros(4)}}, "pose: expected shape"),
        ({"params": {"betas": np.zeros(1000)}}, "betas: expected shape"),
        ({"params": {"transl": np.array([0.0, np.nan, 0.0])}}, "transl: contains NaN"),
        ({"intrinsics": np.eye(4)}, "intrinsics: expected shape [3, 3]"),
        ({"intrinsics": np.array([[1.0, 0.5, 1], [0, 1, 1], [0, 0, 1]])}, "intrinsics: expected a pinhole"),
        ({"intrinsics": np.diag([-1.0, 1.0, 1.0])}, "intrinsics: focal lengths"),
        ({"extrinsics": np.ones((4, 4))}, "extrinsics: expected an affine"),
        ({"world_from_rig": np.eye(3)}, "world_from_rig: expected shape [4, 4]"),
        ({"size": (4, 64)}, "size: height and width"),
        ({"size": (100_000, 64)}, "size: height and width"),
        ({"size": "large"}, "size: expected (height, width)"),
        ({"size": (48.5, 64)}, "size: expected (height, width)"),
        ({"shot": ""}, "shot: expected a non-empty string"),
    ],
)
def test_bad_input_names_the_field(
    rig: rigs.Rig, camera: tuple[np.ndarray, np.ndarray], change: dict[str, object], field: str
) -> None:
    intrinsics, extrinsics = camera
    args: dict[str, object] = {
        "params": {},
        "intrinsics": intrinsics,
        "extrinsics": extrinsics,
        "size": (HEIGHT, WIDTH),
        "shot": "s",
        "frame": 0,
    }
    args.update(change)
    with pytest.raises(ParamRenderError) as caught:
        render_passes(rig, **args)  # type: ignore[arg-type]
    assert str(caught.value).startswith(field)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, PassError)


def test_imports_without_a_display() -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYOPENGL_PLATFORM")
    }
    code = "import os, neural_backend.refine.param_render; print(os.environ['PYOPENGL_PLATFORM'])"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "egl"
