"""The "A or B?" expression search in real Blender: the operators render two candidates headless side by
side, an answer updates the estimate, "apply" keys it (on the frame or over the range) and the scene is
otherwise left as it was; the search survives save and reopen; bad requests are refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import addon_utils
import bpy
import numpy as np
import pytest
from serving_helpers import BackendProcess

from blender_addon.demo_job import build_demo_scene
from blender_addon.expression import rig_expression_space
from blender_addon.names import CANDIDATES_IMAGE, EXPRESSION_KEY_PREFIX
from blender_addon.preference import GAP, candidate_pixels, clear_sessions, session_of, settings_of
from blender_addon.rig_builder import RigObjects
from blender_addon.rig_params import find_rig, read_params, shape_keys
from blender_addon.sequences import existing_fcurves, export_sequence

pytestmark = pytest.mark.blender
SIZE = 64
FRAMES = 4
TARGET = np.array([0.8, 0.3])  # the simulated user's ideal happiness and jaw drop (AU26)


@pytest.fixture
def scene() -> Iterator[bpy.types.Scene]:
    build_demo_scene(FRAMES, SIZE, SIZE, samples=1)
    addon_utils.enable("blender_addon", default_set=True, handle_error=None)
    scene = bpy.context.scene
    bpy.context.view_layer.objects.active = find_rig(scene).armature
    scene.rigstyle_render.preview_scale = 100
    settings = settings_of(scene)
    settings.controls = {"happiness", "AU26"}
    settings.refine = False
    try:
        yield scene
    finally:
        addon_utils.disable("blender_addon", default_set=True)


def take(objects: RigObjects) -> tuple[np.ndarray, np.ndarray]:
    sequence = export_sequence(objects, 1, FRAMES)
    return sequence.expression, sequence.pose


def oracle_answer(scene: bpy.types.Scene) -> str:
    """The candidate nearer the target, as a user with that ideal would answer."""
    session = session_of(settings_of(scene))
    assert session is not None
    a, b = session.next_query()
    return "A" if np.linalg.norm(a - TARGET) < np.linalg.norm(b - TARGET) else "B"


def test_two_candidates_render_side_by_side_and_the_scene_is_left_as_it_was(scene: bpy.types.Scene) -> None:
    objects = find_rig(scene)
    scene.frame_set(2)
    before, keyed_before = read_params(objects), take(objects)

    assert bpy.ops.rigstyle.preference_start() == {"FINISHED"}

    shown = candidate_pixels()
    assert shown.shape == (SIZE, 2 * SIZE + GAP, 3)
    a, b = shown[:, :SIZE], shown[:, SIZE + GAP :]
    assert np.abs(a - b).max() > 0.05, "the two candidates are different faces"
    assert settings_of(scene).status == "query 1: CGI render"
    session = session_of(settings_of(scene))
    assert session is not None and session.controls == ("happiness", "AU26")
    after = read_params(objects)
    for name in ("expression", "pose"):
        np.testing.assert_array_equal(after[name], before[name])
    for old, new in zip(keyed_before, take(objects), strict=True):
        np.testing.assert_array_equal(new, old)
    for owner in (objects.mesh.data.shape_keys, objects.armature):
        fcurves = existing_fcurves(owner)
        assert fcurves is not None and not any(f.mute for f in fcurves), "the muted channels are unmuted"


def test_answers_move_the_estimate_to_the_user_s_target_and_apply_keys_it(scene: bpy.types.Scene) -> None:
    objects = find_rig(scene)
    settings = settings_of(scene)
    assert bpy.ops.rigstyle.preference_start() == {"FINISHED"}
    session = session_of(settings)
    assert session is not None
    prior_mean, prior_covariance = session.estimate()

    assert bpy.ops.rigstyle.preference_answer(choice=oracle_answer(scene)) == {"FINISHED"}
    assert len(settings.answers) == 1 and settings.status == "query 2: CGI render"
    answered = session_of(settings)
    assert answered is not None and answered.answers == [settings.answers]
    mean, covariance = answered.estimate()
    assert np.abs(mean - prior_mean).max() > 0.02 and np.trace(covariance) < np.trace(prior_covariance)

    for _ in range(11):  # the next renders are not needed to answer: the oracle reads the query
        assert bpy.ops.rigstyle.preference_answer(choice=oracle_answer(scene), show_next=False) == {
            "FINISHED"
        }
    assert bpy.ops.rigstyle.preference_answer(choice="NONE", show_next=False) == {"FINISHED"}
    assert settings.answers.endswith("-") and len(settings.answers) == 13
    final = session_of(settings)
    assert final is not None
    estimate = final.estimate()[0]
    assert np.abs(estimate - TARGET).max() < 0.15, estimate

    offset = final.offset(rig_expression_space(objects))
    assert offset.jaw_joint is not None and abs(offset.jaw[0]) > 0.01, "AU26 opens the jaw"
    scene.frame_set(3)
    expression, pose = take(objects)
    keyed = [shape_keys(objects, EXPRESSION_KEY_PREFIX).index(k) for k in demo_keyed_blocks(objects)]
    assert bpy.ops.rigstyle.preference_apply(target="FRAME") == {"FINISHED"}
    keyed_expression, keyed_pose = take(objects)
    np.testing.assert_allclose(keyed_expression[2], expression[2] + offset.expression, atol=1e-5)
    np.testing.assert_allclose(
        keyed_pose[2, offset.jaw_joint], pose[2, offset.jaw_joint] + offset.jaw, atol=1e-5
    )
    others = [0, 1, 3]  # the demo's keys on frames 1, 2 and 4 stay; unkeyed channels get one key, as with I
    np.testing.assert_allclose(keyed_expression[others][:, keyed], expression[others][:, keyed], atol=1e-6)
    np.testing.assert_allclose(keyed_pose[others], pose[others], atol=1e-6)
    np.testing.assert_allclose(read_params(objects)["expression"], keyed_expression[2], atol=1e-5)

    assert bpy.ops.rigstyle.preference_apply(target="RANGE") == {"FINISHED"}
    ranged, ranged_pose = take(objects)
    np.testing.assert_allclose(ranged, keyed_expression + offset.expression[None], atol=1e-5)
    jaw = offset.jaw_joint
    np.testing.assert_allclose(ranged_pose[:, jaw], keyed_pose[:, jaw] + offset.jaw[None], atol=1e-5)


def demo_keyed_blocks(objects: RigObjects) -> list[bpy.types.ShapeKey]:
    fcurves = existing_fcurves(objects.mesh.data.shape_keys)
    assert fcurves is not None
    blocks = shape_keys(objects, EXPRESSION_KEY_PREFIX)
    return [k for k in blocks if fcurves.find(f'key_blocks["{k.name}"].value') is not None]


def test_the_search_survives_save_and_reopen(scene: bpy.types.Scene, tmp_path: Path) -> None:
    settings = settings_of(scene)
    settings.seed = 5
    assert bpy.ops.rigstyle.preference_start() == {"FINISHED"}
    for choice in ("A", "B", "NONE", "A"):
        assert bpy.ops.rigstyle.preference_answer(choice=choice, show_next=False) == {"FINISHED"}
    session = session_of(settings)
    assert session is not None
    estimate, query = session.estimate()[0], session.next_query()
    path = tmp_path / "search.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    settings.answers, settings.seed = "", 0  # changed after saving: the file's values must come back
    bpy.ops.wm.open_mainfile(filepath=str(path))
    clear_sessions()  # replayed from the file's answers, not remembered

    reopened = settings_of(bpy.context.scene)
    assert reopened.answers == "ab-a" and reopened.seed == 5
    replayed = session_of(reopened)
    assert replayed is not None and replayed is not session
    np.testing.assert_array_equal(replayed.estimate()[0], estimate)
    for mine, theirs in zip(replayed.next_query(), query, strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_bad_requests_are_refused_and_change_nothing(scene: bpy.types.Scene) -> None:
    settings = settings_of(scene)
    settings.controls = {"happiness"}
    with pytest.raises(RuntimeError, match="expected 2 to 6 different controls"):
        bpy.ops.rigstyle.preference_start()
    assert settings.session_controls == "" and CANDIDATES_IMAGE not in bpy.data.images
    assert not bpy.ops.rigstyle.preference_answer.poll(), "nothing to answer before Start"
    assert not bpy.ops.rigstyle.preference_apply.poll()

    settings.controls = {"happiness", "AU12"}
    assert bpy.ops.rigstyle.preference_start() == {"FINISHED"}
    settings.answers = "ax"  # an edited file
    with pytest.raises(RuntimeError, match='answers: \'x\' is not "a", "b" or "-"'):
        bpy.ops.rigstyle.preference_answer(choice="A")
    assert settings.answers == "ax"
    objects = find_rig(scene)
    keyed = take(objects)
    with pytest.raises(RuntimeError, match="answers: 'x'"):
        bpy.ops.rigstyle.preference_apply(target="RANGE")
    for old, new in zip(keyed, take(objects), strict=True):
        np.testing.assert_array_equal(new, old)


def test_no_backend_shows_the_cgi_and_says_so(scene: bpy.types.Scene) -> None:
    register_address("tcp://127.0.0.1:9")  # nothing listens on the discard port
    settings_of(scene).refine = True
    assert bpy.ops.rigstyle.preference_start() == {"FINISHED"}
    assert settings_of(scene).status.startswith(
        "query 1: CGI render: backend not reachable at tcp://127.0.0.1:9"
    )


@pytest.mark.slow
def test_a_connected_backend_refines_both_candidates(backend: BackendProcess, scene: bpy.types.Scene) -> None:
    register_address(backend.address)
    settings = settings_of(scene)
    assert bpy.ops.rigstyle.preference_start() == {"FINISHED"}
    cgi = candidate_pixels()
    settings.refine = True
    assert bpy.ops.rigstyle.preference_start() == {"FINISHED"}
    assert settings.status == f"query 1: refined by {backend.address}"
    refined = candidate_pixels()
    assert refined.shape == cgi.shape
    assert np.abs(refined - cgi).mean() > 0.01, "the generator painted the candidates"
    a, b = refined[:, :SIZE], refined[:, SIZE + GAP :]
    assert np.abs(a - b).max() > 0.05


def register_address(address: str) -> None:
    bpy.context.preferences.addons["blender_addon"].preferences.address = address
