"""The demo head built in real Blender deforms, projects and renders like the numpy rig says."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from rig_checks import evaluated_vertices

import rigs
from blender_addon import camera as cam
from blender_addon.demo_job import build_demo_scene
from blender_addon.render_passes import landmark_points, render_frame_passes
from blender_addon.rig_builder import build_rig
from blender_addon.rig_params import find_rig, read_params, set_params
from rigs import regions
from rigs.camera import project

pytestmark = pytest.mark.blender


def test_blender_deformation_matches_rig_forward() -> None:
    rig = rigs.demo_head()
    objects = build_rig(rig)
    rng = np.random.default_rng(0)
    pose = {name: rng.normal(0, 0.25, 3) for name in rig.joint_names}
    expression = {name: float(rng.normal(0, 0.7)) for name in rig.expression_names}
    set_params(objects, pose=pose, expression=expression, transl=np.array([0.01, -0.02, 0.03]))
    bpy.context.view_layer.update()
    params = read_params(objects)
    expected = rig.forward(expression=params["expression"], pose=params["pose"], transl=params["transl"])
    np.testing.assert_allclose(params["pose"], np.stack([pose[n] for n in rig.joint_names]), atol=1e-5)
    np.testing.assert_allclose(evaluated_vertices(objects.mesh), expected.vertices, atol=2e-5)
    world = np.array(objects.armature.matrix_world)
    np.testing.assert_allclose(
        landmark_points(objects), expected.landmarks @ world[:3, :3].T + world[:3, 3], atol=2e-5
    )


def test_keyframes_drive_the_parameters_per_frame() -> None:
    build_demo_scene(frames=9, width=64, height=64, samples=1)
    scene = bpy.context.scene
    objects = find_rig(scene)
    readings = []
    for frame in (1, 5, 9):
        scene.frame_set(frame)
        readings.append(read_params(objects))
    neck = list(objects.armature.pose.bones.keys()).index("neck")
    yaws = [r["pose"][neck][1] for r in readings]
    assert yaws[0] < -0.2 and yaws[2] > 0.2, "the head turns"
    smile = rigs.demo_head().expression_names.index("smile")
    assert readings[0]["expression"][smile] == 0 and readings[2]["expression"][smile] > 0.9


def test_projection_matches_blenders_own_camera_mapping() -> None:
    build_demo_scene(frames=2, width=120, height=80, samples=1)
    scene = bpy.context.scene
    scene.camera.data.shift_x, scene.camera.data.shift_y = 0.05, -0.03
    bpy.context.view_layer.update()
    points = landmark_points(find_rig(scene))
    ours = project(points, cam.intrinsics(scene, scene.camera), cam.extrinsics(scene.camera))
    import mathutils

    theirs = []
    for point in points:
        ndc = world_to_camera_view(scene, scene.camera, mathutils.Vector(point))
        theirs.append((ndc.x * 120, (1 - ndc.y) * 80))
    np.testing.assert_allclose(ours, np.array(theirs), atol=1e-3)


def test_rendered_passes_label_regions_exactly_and_landmarks_fall_on_the_face(tmp_path: Path) -> None:
    build_demo_scene(frames=2, width=128, height=128, samples=2)
    scene = bpy.context.scene
    passes = render_frame_passes(scene, find_rig(scene), 1, "test", tmp_path)
    labels = set(np.unique(passes.region).tolist())
    assert {regions.BACKGROUND, regions.SKIN, regions.EYES, regions.HAIR} <= labels
    assert labels <= set(regions.REGION_NAMES)
    assert passes.beauty.dtype == np.float32 and 0.0 < passes.beauty.mean() < 1.0
    skin = passes.beauty[passes.region == regions.SKIN].mean(axis=0)
    assert skin[0] > skin[2], "skin is warm"
    landmarks = passes.landmarks2d
    assert landmarks.shape == (68, 2)
    assert (landmarks > 0).all() and (landmarks < 128).all()
    # Landmarks sit on the face: the pixel under each is skin, eye or mouth (allowing one pixel of slack).
    on_face = 0
    for x, y in landmarks:
        window = passes.region[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2]
        on_face += bool(np.isin(window, (regions.SKIN, regions.EYES, regions.MOUTH)).any())
    assert on_face >= 64
    # Eye landmarks straddle the eyes: their centroid is on an eye pixel.
    for eye in (slice(36, 42), slice(42, 48)):
        x, y = landmarks[eye].mean(axis=0)
        assert passes.region[int(y), int(x)] in (regions.EYES, regions.SKIN)
    for name in ("beauty_0001.exr", "beauty_0001.png", "region_0001.png", "frame_0001.npz"):
        assert (tmp_path / name).is_file()


def test_the_motion_pass_maps_each_frame_onto_the_previous_one(tmp_path: Path) -> None:
    build_demo_scene(frames=8, width=128, height=128, samples=4)
    scene = bpy.context.scene
    objects = find_rig(scene)
    before = render_frame_passes(scene, objects, 2, "test", tmp_path)
    now = render_frame_passes(scene, objects, 3, "test", tmp_path)
    flow = now.extra["motion"]
    assert flow.shape == (128, 128, 2) and flow.dtype == np.float32
    assert (flow[now.region == regions.BACKGROUND] == 0).all()  # nothing moves where no rig is seen
    # Landmarks (exact points of the surface) land where they were in the previous frame.
    moved = np.linalg.norm(now.landmarks2d - before.landmarks2d, axis=1)
    assert np.median(moved) > 2.0, "the demo performance moves the head between frames 2 and 3"
    inner = now.landmarks2d[17:]  # brows, nose, eyes, mouth: away from the silhouette
    x, y = np.clip(inner.astype(int), 0, 127).T
    error = np.linalg.norm(inner + flow[y, x] - before.landmarks2d[17:], axis=1)
    assert np.median(error) < 0.2 and np.percentile(error, 90) < 0.5, error
    # The previous beauty pass warped by the flow matches this one on the skin much better than unwarped.
    ys, xs = np.mgrid[0:128, 0:128]
    sx = np.clip(np.rint(xs + 0.5 + flow[..., 0] - 0.5).astype(int), 0, 127)
    sy = np.clip(np.rint(ys + 0.5 + flow[..., 1] - 0.5).astype(int), 0, 127)
    skin = now.region == regions.SKIN
    warped = ((before.beauty[sy, sx] - now.beauty) ** 2)[skin].mean()
    unwarped = ((before.beauty - now.beauty) ** 2)[skin].mean()
    assert warped < 0.6 * unwarped, (warped, unwarped)
    assert (tmp_path / "frame_0003.npz").is_file() and not (tmp_path / "motion_0003.exr").exists()
