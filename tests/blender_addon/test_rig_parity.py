"""Blender's evaluated rig equals Rig.forward: random keyframes, sequences, renders, reopened files.

Everything runs the real ``bpy``: the armature modifier skins, the live handlers (``blender_addon.live``)
write the pose correctives and the shape-dependent joint offsets, and the depsgraph mesh in the mesh
object's local space (the rig's frame) is compared with the numpy model.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from rig_checks import evaluated_vertices, key_params, posed_joints
from synthetic_rig import small_rig

import rigs
from blender_addon import live
from blender_addon.images import load_pixels
from blender_addon.rig_builder import RigObjects, build_rig
from blender_addon.rig_params import find_rig, read_params, set_params
from blender_addon.sequences import export_sequence, import_sequence
from rigs.sequences import ParamSequence, resample

pytestmark = pytest.mark.blender
ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-4  # scene units (metres), float32 evaluation


def random_params(rig: rigs.Rig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "betas": rng.normal(0.0, 1.0, rig.num_betas),
        "expression": rng.normal(0.0, 0.8, rig.num_expressions),
        "pose": rng.normal(0.0, 0.35, (rig.num_joints, 3)),
        "transl": rng.normal(0.0, 0.05, 3),
    }


def assert_matches_forward(objects: RigObjects, rig: rigs.Rig, params: dict[str, np.ndarray]) -> None:
    expected = rig.forward(params["betas"], params["expression"], params["pose"], params["transl"])
    np.testing.assert_allclose(evaluated_vertices(objects.mesh), expected.vertices, atol=TOLERANCE)
    np.testing.assert_allclose(posed_joints(objects, rig), expected.joints, atol=TOLERANCE)


RIGS = {"small synthetic": small_rig, "demo head": rigs.demo_head}


@pytest.mark.parametrize("make_rig", RIGS.values(), ids=RIGS.keys())
def test_keyframed_random_parameters_match_forward_on_every_frame(make_rig: object) -> None:
    rig = make_rig()  # type: ignore[operator]
    objects = build_rig(rig)
    rng = np.random.default_rng(7)
    keyed = {frame: random_params(rig, rng) for frame in (1, 4, 9)}
    for frame, params in keyed.items():
        key_params(objects, rig, params, frame)
    scene = bpy.context.scene
    for frame in (9, 1, 4, 6):  # out of order, and a frame between keys (params read back from Blender)
        scene.frame_set(frame)
        params = keyed.get(frame) or {k: v.astype(np.float64) for k, v in read_params(objects).items()}
        assert_matches_forward(objects, rig, params)


def test_the_correctives_matter_and_follow_an_interactive_change() -> None:
    """Without the live key the small rig is off by far more than the tolerance; edits update it at once."""
    rig = small_rig()
    objects = build_rig(rig)
    params = random_params(rig, np.random.default_rng(3))
    key_params(objects, rig, params, 1)
    bpy.context.scene.frame_set(1)
    assert_matches_forward(objects, rig, params)
    uncorrected = dataclasses.replace(rig, posedirs=np.zeros_like(rig.posedirs))
    stale = uncorrected.forward(params["betas"], params["expression"], params["pose"], params["transl"])
    assert np.abs(evaluated_vertices(objects.mesh) - stale.vertices).max() > 100 * TOLERANCE
    # A plain edit (no frame change): the depsgraph update handler re-poses and re-shapes.
    params["pose"][2] = [0.5, -0.2, 0.1]
    params["betas"][0] = 2.0
    set_params(objects, pose={rig.joint_names[2]: params["pose"][2]}, betas=params["betas"])
    bpy.context.view_layer.update()
    assert_matches_forward(objects, rig, params)


def test_imported_sequence_is_resampled_keyed_and_matches_forward() -> None:
    rig = small_rig(seed=2)
    objects = build_rig(rig)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 24, 1.0
    rng = np.random.default_rng(11)
    frames = 16
    steps = np.cumsum(rng.normal(0.0, 0.08, (frames, rig.num_joints, 3)), axis=0)
    sequence = ParamSequence(
        fps=30.0,
        pose=steps,
        transl=np.cumsum(rng.normal(0.0, 0.01, (frames, 3)), axis=0),
        expression=rng.normal(0.0, 0.5, (frames, rig.num_expressions)),
        betas=rng.normal(0.0, 1.0, rig.num_betas),
    )
    count = import_sequence(objects, sequence, frame_start=10)
    resampled = resample(sequence, 24.0)
    assert count == resampled.num_frames == 13  # 15 intervals of 1/30 s hold 12 of 1/24 s
    for index in (0, 5, 12):
        scene.frame_set(10 + index)
        params = {
            "betas": resampled.betas,
            "expression": resampled.expression[index],
            "pose": resampled.pose[index],
            "transl": resampled.transl[index],
        }
        assert_matches_forward(objects, rig, params)
    exported = export_sequence(objects, 10, 10 + count - 1)
    assert exported.fps == 24.0 and exported.betas.shape == (rig.num_betas,)
    np.testing.assert_allclose(exported.betas, resampled.betas, atol=1e-6)
    np.testing.assert_allclose(exported.expression, resampled.expression, atol=1e-6)
    np.testing.assert_allclose(exported.transl, resampled.transl, atol=1e-6)
    rotations = rigs.lbs.rodrigues  # compare rotations, not axis-angle vectors (sign/2*pi ambiguity)
    np.testing.assert_allclose(
        rotations(exported.pose.reshape(-1, 3)), rotations(resampled.pose.reshape(-1, 3)), atol=1e-5
    )


def test_sequence_with_the_wrong_joint_count_is_refused_before_keying() -> None:
    rig = small_rig()
    objects = build_rig(rig)
    sequence = ParamSequence(
        fps=24.0,
        pose=np.zeros((3, rig.num_joints + 1, 3)),
        transl=np.zeros((3, 3)),
        betas=np.zeros(0),
        expression=np.zeros((3, 1)),
    )
    with pytest.raises(rigs.RigError, match="sequence has 7 joints, the rig has"):
        import_sequence(objects, sequence)
    assert objects.armature.animation_data is None


def _frame_reference_mesh(rig: rigs.Rig, vertices: np.ndarray, like: bpy.types.Object) -> bpy.types.Object:
    """A static mesh with ``vertices`` (rig frame) placed like the rig's mesh object."""
    data = bpy.data.meshes.new("reference")
    data.from_pydata(vertices.tolist(), [], rig.faces.tolist())
    reference = bpy.data.objects.new("reference", data)
    bpy.context.scene.collection.objects.link(reference)
    reference.matrix_world = like.matrix_world.copy()
    return reference


def _silhouette(path: Path) -> np.ndarray:
    return load_pixels(path)[..., 3] > 0.5


def test_animation_render_uses_each_frames_own_correctives(tmp_path: Path) -> None:
    rig = small_rig(corrective_scale=0.3)
    objects = build_rig(rig)
    scene = bpy.context.scene
    rng = np.random.default_rng(5)
    keyed = {frame: random_params(rig, rng) for frame in (1, 2)}
    for frame, params in keyed.items():
        key_params(objects, rig, params, frame)
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    camera.data.type, camera.data.ortho_scale = "ORTHO", 0.9
    camera.location, camera.rotation_euler = (0.0, -2.0, 0.25), (np.pi / 2, 0.0, 0.0)
    scene.camera = camera
    scene.render.engine = "CYCLES"
    scene.cycles.samples, scene.cycles.filter_width = 1, 0.01
    scene.render.resolution_x = scene.render.resolution_y = 48
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.frame_start, scene.frame_end = 1, 2
    scene.render.filepath = str(tmp_path / "anim_")
    scene.frame_set(2)  # start elsewhere: a stale corrective would be frame 2's on frame 1
    bpy.ops.render.render(animation=True)

    uncorrected = dataclasses.replace(rig, posedirs=np.zeros_like(rig.posedirs))
    objects.mesh.hide_render = True
    for frame, params in keyed.items():
        rendered = _silhouette(tmp_path / f"anim_{frame:04d}.png")
        mismatches = {}
        for label, model in (("corrected", rig), ("uncorrected", uncorrected)):
            vertices = model.forward(params["betas"], params["expression"], params["pose"], params["transl"])
            reference = _frame_reference_mesh(rig, vertices.vertices, objects.mesh)
            scene.render.filepath = str(tmp_path / f"ref_{label}_{frame}.png")
            bpy.ops.render.render(write_still=True)
            bpy.data.objects.remove(reference)
            mismatches[label] = int((_silhouette(tmp_path / f"ref_{label}_{frame}.png") != rendered).sum())
        assert rendered.sum() > 100, "the rig is in view"
        assert mismatches["corrected"] <= 2 < 10 <= mismatches["uncorrected"], mismatches


def _keyed_small_rig(tmp_path: Path) -> tuple[rigs.Rig, dict[int, dict[str, np.ndarray]], Path]:
    rig = small_rig(seed=4)
    objects = build_rig(rig)
    rng = np.random.default_rng(9)
    keyed = {frame: random_params(rig, rng) for frame in (1, 3)}
    for frame, params in keyed.items():
        key_params(objects, rig, params, frame)
    path = tmp_path / "rig.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return rig, keyed, path


def test_saved_and_reopened_blend_still_updates_correctives(tmp_path: Path) -> None:
    rig, keyed, path = _keyed_small_rig(tmp_path)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    live._CACHE.clear()
    bpy.ops.wm.open_mainfile(filepath=str(path))
    objects = find_rig(bpy.context.scene)
    for frame in (3, 1):
        bpy.context.scene.frame_set(frame)
        assert_matches_forward(objects, rig, keyed[frame])


def test_reopened_blend_in_a_fresh_process_with_only_the_handlers_installed(tmp_path: Path) -> None:
    rig, keyed, path = _keyed_small_rig(tmp_path)
    out = tmp_path / "vertices.npy"
    script = (
        "import bpy, numpy as np\n"
        f"bpy.ops.wm.open_mainfile(filepath={str(path)!r})\n"
        "from blender_addon import live\n"
        "from blender_addon.rig_params import find_rig\n"
        "live.install_handlers()\n"
        "bpy.context.scene.frame_set(3)\n"
        "mesh = find_rig(bpy.context.scene).mesh\n"
        "evaluated = mesh.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh()\n"
        "coords = np.empty(len(evaluated.vertices) * 3)\n"
        "evaluated.vertices.foreach_get('co', coords)\n"
        f"np.save({str(out)!r}, coords.reshape(-1, 3))\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, capture_output=True, timeout=120)
    params = keyed[3]
    expected = rig.forward(params["betas"], params["expression"], params["pose"], params["transl"])
    np.testing.assert_allclose(np.load(out), expected.vertices, atol=TOLERANCE)


def _datablock_names() -> dict[str, set[str]]:
    kinds = ("objects", "meshes", "armatures", "materials", "shape_keys", "actions", "texts")
    return {kind: {block.name for block in getattr(bpy.data, kind)} for kind in kinds}


@pytest.mark.parametrize(
    ("field", "damage", "message"),
    [
        ("posedirs", lambda rig: rig.posedirs[:9], "posedirs"),
        ("exprdirs", lambda rig: rig.exprdirs[:-1], None),
    ],
    ids=["posedirs rows", "exprdirs vertices"],
)
def test_inconsistent_rig_leaves_nothing_half_built(field: str, damage: object, message: str | None) -> None:
    build_rig(small_rig(seed=1), "existing")  # what was there before must survive
    before = _datablock_names()
    rig = small_rig()
    object.__setattr__(rig, field, damage(rig))  # type: ignore[operator]  # bypass the Rig's own validation
    with pytest.raises((ValueError, IndexError, RuntimeError, rigs.RigError), match=message):
        build_rig(rig, "broken")
    assert _datablock_names() == before
    assert bpy.context.mode == "OBJECT"
