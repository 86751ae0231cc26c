"""Passes rendered with Eevee (headless via software EGL: slow to start) agree with Cycles and geometry."""

from __future__ import annotations

import bpy
import numpy as np
import pytest

from blender_addon import camera as cam
from blender_addon.demo_job import build_demo_scene
from blender_addon.render_passes import EEVEE_ENGINES, landmark_points, render_frame_passes
from blender_addon.rig_params import find_rig
from rigs import regions
from rigs.camera import project, transform

pytestmark = [pytest.mark.blender, pytest.mark.slow]

WIDTH, HEIGHT = 96, 80
PASSES = ("depth", "motion")


def eevee_engine(scene: bpy.types.Scene) -> str:
    """Eevee's engine id in this Blender ('BLENDER_EEVEE_NEXT' in 4.2-4.5, 'BLENDER_EEVEE' in 5.0)."""
    ids = {item.identifier for item in scene.render.bl_rna.properties["engine"].enum_items}
    return next(engine for engine in EEVEE_ENGINES if engine in ids)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Frame 3 of the demo shot rendered with Cycles, then with Eevee, plus the landmarks' camera z."""
    build_demo_scene(frames=8, width=WIDTH, height=HEIGHT, samples=2)
    scene = bpy.context.scene
    tmp = tmp_path_factory.mktemp("eevee")
    cycles = render_frame_passes(scene, find_rig(scene), 3, "test", tmp / "cycles", passes=PASSES)
    scene.render.engine = eevee_engine(scene)
    scene.eevee.taa_render_samples = 4
    samples, filter_size = scene.eevee.taa_render_samples, scene.render.filter_size
    eevee = render_frame_passes(scene, find_rig(scene), 3, "test", tmp / "eevee", passes=PASSES)
    assert (scene.eevee.taa_render_samples, scene.render.filter_size) == (samples, filter_size), "restored"
    points = landmark_points(find_rig(scene))
    extrinsic = cam.extrinsics(scene.camera)
    return {
        "cycles": cycles,
        "eevee": eevee,
        "camera_z": transform(extrinsic, points)[:, 2],
        "pixels": project(points, cam.intrinsics(scene, scene.camera), extrinsic),
    }


def test_eevee_beauty_looks_like_the_cycles_one(rendered: dict) -> None:
    cycles, eevee = rendered["cycles"], rendered["eevee"]
    assert eevee.beauty.dtype == np.float32 and eevee.beauty.shape == (HEIGHT, WIDTH, 3)
    skin = eevee.beauty[eevee.region == regions.SKIN].mean(axis=0)
    assert skin[0] > skin[2], "skin is warm"
    assert abs(eevee.beauty.mean() - cycles.beauty.mean()) < 0.3 * cycles.beauty.mean()


def test_eevee_region_labels_match_cycles(rendered: dict) -> None:
    agreement = (rendered["eevee"].region == rendered["cycles"].region).mean()
    assert agreement > 0.99, agreement


def test_eevee_depth_is_the_camera_z_of_the_surface(rendered: dict) -> None:
    eevee = rendered["eevee"]
    depth = eevee.extra["depth"]
    np.testing.assert_array_equal(np.isinf(depth), eevee.region == regions.BACKGROUND)
    inner = range(27, 68)  # nose, eyes, mouth: away from the silhouette
    seen = np.array([depth[int(y), int(x)] for x, y in rendered["pixels"][inner]])
    np.testing.assert_allclose(seen, rendered["camera_z"][inner], rtol=0.02)


def test_eevee_motion_matches_cycles(rendered: dict) -> None:
    cycles, eevee = rendered["cycles"].extra["motion"], rendered["eevee"].extra["motion"]
    rig = rendered["cycles"].region != regions.BACKGROUND
    assert np.median(np.linalg.norm(cycles[rig], axis=-1)) > 1.0, "the head moves"
    error = np.linalg.norm(eevee - cycles, axis=-1)[rig]
    print(f"eevee vs cycles motion: median {np.median(error):.5f} px, p95 {np.percentile(error, 95):.5f} px")
    assert np.median(error) < 0.01 and np.percentile(error, 95) < 0.05
    assert (eevee[~rig] == 0).all()
