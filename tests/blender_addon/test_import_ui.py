"""File › Import / Export in real Blender: a FLAME / SMPL-X model file becomes a rig at the 3D cursor; a
motion take is keyed on it resampled to the scene's rate, and exported back; bad files are one error naming
the file, with the scene left as it was; the menu entries come and go with the add-on."""

from __future__ import annotations

from pathlib import Path

import addon_utils
import bpy
import numpy as np
import pytest
from official_files import write_flame, write_smplx

from blender_addon import importers
from blender_addon.rig_builder import RigObjects
from blender_addon.rig_params import find_rig, joint_names, shape_keys
from blender_addon.sequences import existing_fcurves, export_sequence
from rigs.pose import FLAME_JOINT_NAMES
from rigs.sequences import load_sequence

pytestmark = pytest.mark.blender
TAKE_FRAMES = 13  # at 60 fps: 0.2 s, 7 frames at 30 fps
COMPONENTS = {"num_betas": 10, "num_expressions": 10}  # a small SMPL-X rig builds fast
DATA = ("objects", "meshes", "armatures", "actions", "shape_keys", "materials")


def counts() -> dict[str, int]:
    return {name: len(getattr(bpy.data, name)) for name in DATA}


def amass_take(path: Path, fps: float = 60.0) -> dict[str, np.ndarray]:
    """An AMASS SMPL-X take: smooth poses (55 joints), translation, 10 betas and 10 expressions."""
    rng = np.random.default_rng(5)
    ramp = np.linspace(0.0, 1.0, TAKE_FRAMES)[:, None]
    fields = {
        "poses": ramp * rng.normal(0.0, 0.4, (1, 165)),
        "trans": ramp * np.array([[0.1, 0.0, -0.2]]),
        "betas": rng.normal(0.0, 1.0, 10),
        "expression": ramp * rng.normal(0.0, 1.0, (1, 10)),
        "mocap_frame_rate": np.array(fps),
    }
    np.savez(path, **fields)
    return fields


def smplx_rig(tmp_path: Path) -> RigObjects:
    assert bpy.ops.rigstyle.import_rig(filepath=str(write_smplx(tmp_path / "models")), **COMPONENTS) == {
        "FINISHED"
    }
    return find_rig(bpy.context.scene)


def keyed_frames(objects: RigObjects) -> tuple[float, float, int]:
    """First and last keyed frame and key count of the root bone's rotation W channel."""
    fcurves = existing_fcurves(objects.armature)
    assert fcurves is not None
    fcurve = fcurves.find(f'pose.bones["{joint_names(objects)[0]}"].rotation_quaternion', index=0)
    points = fcurve.keyframe_points
    return points[0].co[0], points[-1].co[0], len(points)


def test_official_flame_file_becomes_a_rig_at_the_cursor_selected_and_active(
    tmp_path: Path, addon: None
) -> None:
    model = write_flame(tmp_path / "FLAME2020", "chumpy")
    bpy.ops.mesh.primitive_cube_add()  # selected before: deselected by the import
    cube = bpy.context.object
    bpy.context.scene.cursor.location = (0.5, -1.0, 2.0)

    assert bpy.ops.rigstyle.import_rig(filepath=str(model)) == {"FINISHED"}

    objects = find_rig(bpy.context.scene)
    assert bpy.context.view_layer.objects.active == objects.armature
    assert set(bpy.context.selected_objects) == {objects.armature, objects.mesh}
    assert not cube.select_get()
    assert tuple(objects.armature.location) == pytest.approx((0.5, -1.0, 2.0))
    assert objects.mesh.parent == objects.armature
    assert len(shape_keys(objects, "shape.")) == 300 and len(shape_keys(objects, "expression.")) == 100
    assert joint_names(objects) == list(FLAME_JOINT_NAMES)


def test_folder_and_component_options(tmp_path: Path, addon: None) -> None:
    folder = tmp_path / "models"
    write_smplx(folder, gender="neutral", gender_field=True)
    write_smplx(folder, gender="female", gender_field=True, seed=1)
    result = bpy.ops.rigstyle.import_rig(
        filepath=str(folder), gender="FEMALE", num_betas=4, num_expressions=2
    )
    assert result == {"FINISHED"}
    objects = find_rig(bpy.context.scene)
    assert "female" in objects.armature.name
    assert len(shape_keys(objects, "shape.")) == 4 and len(shape_keys(objects, "expression.")) == 2


@pytest.mark.parametrize("damage", ["truncated", "garbage", "wrong gender", "missing"])
def test_a_bad_model_file_is_one_error_naming_it_and_nothing_is_built(
    tmp_path: Path, addon: None, damage: str
) -> None:
    model = write_smplx(tmp_path / "models", variant="chumpy", gender="male", gender_field=True)
    options: dict[str, str] = {}
    if damage == "truncated":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    elif damage == "garbage":
        model.write_bytes(np.random.default_rng(0).bytes(4096))
    elif damage == "wrong gender":
        options["gender"] = "FEMALE"
    else:
        model = tmp_path / "nowhere" / "SMPLX_NEUTRAL.npz"
    before = counts()
    with pytest.raises(RuntimeError) as error:
        bpy.ops.rigstyle.import_rig(filepath=str(model), **options)
    assert str(model) in str(error.value)
    assert counts() == before


def test_import_rig_needs_object_mode(tmp_path: Path, addon: None) -> None:
    bpy.ops.mesh.primitive_cube_add()
    bpy.ops.object.mode_set(mode="EDIT")
    assert not bpy.ops.rigstyle.import_rig.poll()
    with pytest.raises(RuntimeError, match="Object Mode"):
        bpy.ops.rigstyle.import_rig(filepath=str(write_smplx(tmp_path / "models")))


def test_a_60_fps_take_is_keyed_at_30_fps_from_the_start_frame(tmp_path: Path, addon: None) -> None:
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    objects = smplx_rig(tmp_path)
    fields = amass_take(tmp_path / "walk.npz")

    assert bpy.ops.rigstyle.import_take(filepath=str(tmp_path / "walk.npz"), frame_start=5) == {"FINISHED"}

    count = (TAKE_FRAMES + 1) // 2
    assert keyed_frames(objects) == (5.0, 4.0 + count, count)
    assert (scene.frame_start, scene.frame_end) == (5, 4 + count)  # "Set Frame Range" is on by default
    keyed = export_sequence(objects, 5, 4 + count, scene)
    np.testing.assert_allclose(keyed.pose, fields["poses"][::2].reshape(count, 55, 3), atol=1e-5)
    np.testing.assert_allclose(keyed.expression, fields["expression"][::2], atol=1e-5)
    np.testing.assert_allclose(keyed.transl, fields["trans"][::2], atol=1e-6)
    np.testing.assert_allclose(keyed.betas, fields["betas"], atol=1e-5)


def test_the_start_frame_defaults_to_the_scene_s_and_the_range_can_stay(tmp_path: Path, addon: None) -> None:
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 60, 1.0
    scene.frame_start, scene.frame_end = 3, 100
    objects = smplx_rig(tmp_path)
    amass_take(tmp_path / "walk.npz")
    result = bpy.ops.rigstyle.import_take(filepath=str(tmp_path / "walk.npz"), use_frame_range=False)
    assert result == {"FINISHED"}
    assert keyed_frames(objects) == (3.0, 2.0 + TAKE_FRAMES, TAKE_FRAMES)
    assert (scene.frame_start, scene.frame_end) == (3, 100)


@pytest.mark.parametrize(
    "take",
    ["flame tracker", "no known fields", "truncated"],
)
def test_a_take_of_another_rig_is_refused_and_nothing_is_keyed(
    tmp_path: Path, addon: None, take: str
) -> None:
    objects = smplx_rig(tmp_path)
    path = tmp_path / "track.npz"
    if take == "flame tracker":  # 5 FLAME joints on a 55-joint SMPL-X rig
        np.savez(path, exp=np.zeros((4, 10)), pose=np.zeros((4, 6)), trans=np.zeros((4, 3)))
        words = "sequence has 5 joints, the rig has 55"
    elif take == "no known fields":
        np.savez(path, something=np.zeros(3))
        words = "not a known sequence format"
    else:
        amass_take(path)
        path.write_bytes(path.read_bytes()[:100])
        words = "not a readable .npz sequence"
    scene = bpy.context.scene
    before, frame_range = counts(), (scene.frame_start, scene.frame_end)
    with pytest.raises(RuntimeError) as error:
        bpy.ops.rigstyle.import_take(filepath=str(path))
    assert str(path) in str(error.value) and words in str(error.value)
    assert counts() == before and (scene.frame_start, scene.frame_end) == frame_range
    assert objects.armature.animation_data is None and objects.mesh.data.shape_keys.animation_data is None


def test_take_operators_need_a_rig(tmp_path: Path, addon: None) -> None:
    assert not bpy.ops.rigstyle.import_take.poll() and not bpy.ops.rigstyle.export_take.poll()
    with pytest.raises(RuntimeError, match="No RigStyle rig"):
        bpy.ops.rigstyle.export_take(filepath=str(tmp_path / "take.npz"))


def test_an_exported_take_imports_back_to_the_same_keys(tmp_path: Path, addon: None) -> None:
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    objects = smplx_rig(tmp_path)
    amass_take(tmp_path / "walk.npz")
    assert bpy.ops.rigstyle.import_take(filepath=str(tmp_path / "walk.npz"), frame_start=1) == {"FINISHED"}
    keyed = export_sequence(objects, scene.frame_start, scene.frame_end, scene)

    out = tmp_path / "exported"  # the extension is added
    assert bpy.ops.rigstyle.export_take(filepath=str(out)) == {"FINISHED"}
    written = load_sequence(tmp_path / "exported.npz")
    assert written.fps == 30.0 and written.num_frames == keyed.num_frames == scene.frame_end
    for owner in (objects.armature, objects.mesh.data.shape_keys):
        owner.animation_data_clear()

    assert bpy.ops.rigstyle.import_take(filepath=str(tmp_path / "exported.npz"), frame_start=1) == {
        "FINISHED"
    }
    again = export_sequence(objects, scene.frame_start, scene.frame_end, scene)
    for name in ("pose", "transl", "betas", "expression"):
        np.testing.assert_allclose(getattr(again, name), getattr(keyed, name), atol=1e-6, err_msg=name)


def test_an_unwritable_export_path_is_reported(tmp_path: Path, addon: None) -> None:
    smplx_rig(tmp_path)
    out = tmp_path / "no such folder" / "take.npz"
    with pytest.raises(RuntimeError) as error:
        bpy.ops.rigstyle.export_take(filepath=str(out))
    assert str(out) in str(error.value) and not out.exists()


def test_the_menu_entries_come_and_go_with_the_add_on() -> None:
    def entries() -> tuple[bool, bool]:
        return (
            importers._menu_import in bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize(),
            importers._menu_export in bpy.types.TOPBAR_MT_file_export._dyn_ui_initialize(),
        )

    addon_utils.enable("blender_addon", default_set=True, handle_error=None)
    try:
        assert entries() == (True, True)
    finally:
        addon_utils.disable("blender_addon", default_set=True)
    assert entries() == (False, False)
