"""The extra passes rendered in real Blender agree with the rig's geometry, materials and camera."""

from __future__ import annotations

import bpy
import numpy as np
import pytest

from blender_addon import camera as cam
from blender_addon.demo_job import build_demo_scene
from blender_addon.render_passes import landmark_points, render_frame_passes
from blender_addon.rig_params import find_rig
from neural_backend.protocol.passes import FramePasses
from rigs import regions
from rigs.camera import project, transform
from rigs.lbs import barycentric_points

pytestmark = pytest.mark.blender

WIDTH, HEIGHT = 128, 96


def near(mask: np.ndarray, radius: int, outside: bool = False) -> np.ndarray:
    """(H, W) bool: some pixel within ``radius`` (Chebyshev) of each pixel is in ``mask``; pixels beyond the
    image border count as ``outside``."""
    padded = np.pad(mask, radius, constant_values=outside)
    out = np.zeros_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Frame 2 of the demo shot with all passes (and a UV map), plus what the scene says they should be."""
    objects = build_demo_scene(frames=4, width=WIDTH, height=HEIGHT, samples=2)
    scene = bpy.context.scene
    tmp = tmp_path_factory.mktemp("passes")
    without_uv = render_frame_passes(scene, find_rig(scene), 2, "test", tmp / "plain", passes=())
    data = objects.mesh.data
    rest = np.empty(len(data.vertices) * 3)
    data.vertices.foreach_get("co", rest)
    rest = rest.reshape(-1, 3)
    corners = np.empty(len(data.loops), dtype=np.int64)
    data.loops.foreach_get("vertex_index", corners)
    data.uv_layers.new(name="test").data.foreach_set("uv", rest[corners, :2].astype(np.float32).ravel())
    passes = render_frame_passes(scene, find_rig(scene), 2, "test", tmp / "all")
    faces = np.array(objects.mesh["rigstyle_landmark_faces"], dtype=np.int64)
    bary = np.array(objects.mesh["rigstyle_landmark_bary"], dtype=float).reshape(-1, 3)
    triangles = np.empty(len(data.polygons) * 3, dtype=np.int64)
    data.polygons.foreach_get("vertices", triangles)
    points = landmark_points(objects)
    extrinsic = cam.extrinsics(scene.camera)
    return {
        "plain": without_uv,
        "passes": passes,
        "camera_z": transform(extrinsic, points)[:, 2],
        "pixels": project(points, cam.intrinsics(scene, scene.camera), extrinsic),
        "landmark_uv": barycentric_points(rest, triangles.reshape(-1, 3), faces, bary)[:, :2],
        "base_colors": {
            label: np.array(
                bpy.data.materials[f"RigStyle {name}"]
                .node_tree.nodes["Principled BSDF"]
                .inputs["Base Color"]
                .default_value[:3]
            )
            for label, name in regions.REGION_NAMES.items()
            if f"RigStyle {name}" in bpy.data.materials
        },
    }


def test_all_passes_are_rendered_and_beauty_is_unchanged(rendered: dict) -> None:
    plain: FramePasses = rendered["plain"]
    passes: FramePasses = rendered["passes"]
    assert plain.extra == {}, "uv is left out without a UV map, the rest only when asked"
    assert set(passes.extra) == {"albedo", "normal", "depth", "motion", "uv", "alpha"}
    assert passes.beauty.dtype == np.float32 and passes.beauty.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_allclose(passes.beauty, plain.beauty, atol=1e-5)
    np.testing.assert_array_equal(passes.region, plain.region)


def test_depth_is_the_camera_z_of_the_surface(rendered: dict) -> None:
    passes: FramePasses = rendered["passes"]
    depth = passes.extra["depth"]
    np.testing.assert_array_equal(np.isinf(depth), passes.region == regions.BACKGROUND)
    inner = range(27, 68)  # nose, eyes, mouth: away from the silhouette
    seen = np.array([depth[int(y), int(x)] for x, y in rendered["pixels"][inner]])
    np.testing.assert_allclose(seen, rendered["camera_z"][inner], rtol=0.02)


def test_normals_are_unit_face_the_camera_and_match_the_depth_map(rendered: dict) -> None:
    passes: FramePasses = rendered["passes"]
    normal, depth, region = passes.extra["normal"], passes.extra["depth"], passes.region
    rig = region != regions.BACKGROUND
    np.testing.assert_allclose(np.linalg.norm(normal[rig], axis=-1), 1.0, atol=1e-4)
    assert (normal[~rig] == 0).all()
    assert (normal[rig][:, 2] < 0).mean() > 0.95, "normals point back toward the camera (OpenCV -z)"
    # Back-project the depth map through the pixel centres and take the normal of the surface it spans.
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH] + 0.5
    rays = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ np.linalg.inv(passes.intrinsics).T
    points = np.where(rig[..., None], rays * depth[..., None], 0.0)
    d_dx = points[1:-1, 2:] - points[1:-1, :-2]
    d_dy = points[2:, 1:-1] - points[:-2, 1:-1]
    estimate = -np.cross(d_dx, d_dy)
    estimate /= np.maximum(np.linalg.norm(estimate, axis=-1, keepdims=True), 1e-12)
    skin = region == regions.SKIN
    interior = skin[1:-1, 2:] & skin[1:-1, :-2] & skin[2:, 1:-1] & skin[:-2, 1:-1] & skin[1:-1, 1:-1]
    cosine = np.sum(estimate * normal[1:-1, 1:-1], axis=-1)[interior]
    assert interior.sum() > 500
    assert np.degrees(np.arccos(np.clip(np.median(cosine), -1, 1))) < 15.0


def test_albedo_is_the_base_colour_of_each_region_material(rendered: dict) -> None:
    passes: FramePasses = rendered["passes"]
    albedo = passes.extra["albedo"]
    assert (albedo[passes.region == regions.BACKGROUND] == 0).all()
    labels = set(np.unique(passes.region).tolist()) - {regions.BACKGROUND}
    assert regions.SKIN in labels and labels <= set(rendered["base_colors"])
    for label in labels:
        error = np.abs(albedo[passes.region == label] - rendered["base_colors"][label])
        assert error.max() < 1e-3, regions.REGION_NAMES[label]


def test_alpha_is_coverage_fractional_only_along_the_silhouette(rendered: dict) -> None:
    passes: FramePasses = rendered["passes"]
    alpha = passes.extra["alpha"]
    rig = passes.region != regions.BACKGROUND
    # The mesh may end just beyond the frame (the neck): the pixel filter sees that edge from the border.
    silhouette = near(rig, 2) & near(~rig, 2, outside=True)
    assert (alpha[rig & ~silhouette] == 1).all()
    assert (alpha[~rig & ~silhouette] == 0).all()
    fractional = (alpha > 0) & (alpha < 1)
    assert fractional.any() and not (fractional & ~silhouette).any()


def test_uv_is_the_mesh_uv_map_at_the_landmarks(rendered: dict) -> None:
    passes: FramePasses = rendered["passes"]
    uv = passes.extra["uv"]
    assert (uv[passes.region == regions.BACKGROUND] == 0).all()
    inner = range(27, 68)
    seen = np.array([uv[int(y), int(x)] for x, y in rendered["pixels"][inner]])
    # The landmark is not at the pixel centre: allow the UV change over half a pixel or so.
    np.testing.assert_allclose(seen, rendered["landmark_uv"][inner], atol=5e-3)
