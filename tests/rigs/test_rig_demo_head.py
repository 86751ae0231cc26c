"""The procedural demo head: geometry, labels, joints, weights, blendshapes and landmarks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rigs import Rig, demo_head, regions
from rigs.mesh import face_areas, face_normals, signed_volume

ROOT, NECK, JAW, LEFT_EYE, RIGHT_EYE = range(5)
# iBUG-300W mirror pairs (subject's right <-> left); the other indices lie on the midline.
MIRROR = {
    **{i: 16 - i for i in range(17)},
    **{17 + i: 26 - i for i in range(10)},
    31: 35,
    32: 34,
    35: 31,
    34: 32,
    36: 45,
    37: 44,
    38: 43,
    39: 42,
    40: 47,
    41: 46,
    45: 36,
    44: 37,
    43: 38,
    42: 39,
    47: 40,
    46: 41,
    48: 54,
    49: 53,
    50: 52,
    54: 48,
    53: 49,
    52: 50,
    55: 59,
    56: 58,
    59: 55,
    58: 56,
    60: 64,
    61: 63,
    64: 60,
    63: 61,
    65: 67,
    67: 65,
}
MIDLINE = (8, 27, 28, 29, 30, 33, 51, 57, 62, 66)


def expression(head: Rig, name: str, value: float = 1.0) -> np.ndarray:
    coeffs = np.zeros(head.num_expressions)
    coeffs[head.expression_names.index(name)] = value
    return coeffs


def jaw_pose(angle: float) -> np.ndarray:
    pose = np.zeros((5, 3))
    pose[JAW, 0] = angle
    return pose


def eye_vertices(head: Rig) -> np.ndarray:
    return np.flatnonzero(head.lbs_weights[:, LEFT_EYE] + head.lbs_weights[:, RIGHT_EYE] > 0)


def face_front(head: Rig) -> np.ndarray:
    """Skin vertices on the front of the face (not the eyeballs, not the neck)."""
    v = head.v_template
    skin = np.ones(len(v), dtype=bool)
    skin[eye_vertices(head)] = False
    return skin & (v[:, 2] > 0.04) & (np.abs(v[:, 0]) < 0.045)


# --- basics ----------------------------------------------------------------------------------------------


def test_sizes_and_names(head):
    assert head.num_vertices >= 2000
    assert head.faces.shape[1] == 3 and len(head.faces) >= 4000
    assert head.joint_names == ("root", "neck", "jaw", "left_eye", "right_eye")
    assert head.parents.tolist() == [-1, 0, 1, 1, 1]
    assert head.num_betas >= 10 and head.num_expressions >= 10 and head.num_landmarks == 68
    assert {"jaw_open", "smile", "brow_raise", "blink"} <= set(head.expression_names)
    assert len(set(head.expression_names)) == head.num_expressions


def test_deterministic():
    a, b = demo_head(), demo_head()
    for field in dataclasses.fields(Rig):
        x, y = getattr(a, field.name), getattr(b, field.name)
        assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y, field.name


def test_forward_at_rest_is_template(head):
    out = head.forward()
    np.testing.assert_allclose(out.vertices, head.v_template, atol=1e-12)
    np.testing.assert_allclose(out.joints, head.rest_joints, atol=1e-12)


def test_posedirs_are_zero_with_flame_shape(head):
    assert head.posedirs.shape == ((5 - 1) * 9, head.num_vertices * 3)
    assert not head.posedirs.any()


# --- geometry --------------------------------------------------------------------------------------------


def test_every_part_is_closed_and_consistently_oriented(head):
    faces = head.faces
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = set(map(tuple, directed.tolist()))
    assert len(edges) == len(directed), "a directed edge appears twice: neighbouring faces disagree"
    assert all((b, a) in edges for a, b in edges), "the mesh has holes"
    assert np.all(face_areas(head.v_template, faces) > 1e-10)


def test_normals_point_outward(head):
    v, faces, labels = head.v_template, head.faces, head.face_regions
    centroid = v[faces].mean(axis=1)
    eyes = labels == regions.EYES
    body = faces[~eyes]
    assert signed_volume(v, body) > 0.002  # litres: about a head and a neck
    for side in (centroid[:, 0] > 0, centroid[:, 0] < 0):
        eyeball = faces[eyes & side]
        assert signed_volume(v, eyeball) == pytest.approx(4 / 3 * np.pi * 0.012**3, rel=0.1)
    # Away from the central axis of the head and neck (x = 0, z = the vertex mean), almost everywhere.
    axis_point = np.array([0.0, 0.0, v[:, 2].mean()])
    outward = centroid - axis_point
    outward[:, 1] = np.where(centroid[:, 1] > 0.0, centroid[:, 1], 0.0)  # the crown faces up
    outward[:, 1] = np.where(centroid[:, 1] < -0.17, -1.0, outward[:, 1])  # the neck cut faces down
    dots = np.einsum("fi,fi->f", face_normals(v, faces), outward)
    assert np.mean(dots[~eyes] > 0) > 0.97


def test_layout_metres_y_up_face_toward_plus_z(head):
    v, lm = head.v_template, head.forward().landmarks
    crown, chin = v[:, 1].max(), lm[8, 1]
    assert 0.20 < crown - chin < 0.25  # head height
    assert lm[30, 2] > 0.07 and v[:, 2].min() < -0.08  # nose forward, skull behind
    np.testing.assert_allclose(v[:, 0].min(), -v[:, 0].max(), atol=1e-9)  # mirror-symmetric
    assert np.linalg.norm(lm.mean(axis=0)) < 0.1  # the face is near the origin
    assert v[:, 1].min() < chin - 0.05  # a neck below the chin


def test_eyeballs_are_spheres_around_their_joints(head):
    joints = head.rest_joints
    for joint in (LEFT_EYE, RIGHT_EYE):
        members = head.lbs_weights[:, joint] == 1.0
        radii = np.linalg.norm(head.v_template[members] - joints[joint], axis=1)
        np.testing.assert_allclose(radii, 0.012, rtol=1e-9)
        np.testing.assert_allclose(joints[joint], head.v_template[members].mean(axis=0), atol=1e-12)
    assert joints[LEFT_EYE, 0] > 0.02 and joints[RIGHT_EYE, 0] < -0.02  # left eye on +X
    lm = head.forward().landmarks
    assert joints[LEFT_EYE, 2] + 0.012 > lm[42:48, 2].mean()  # the eyeball front pokes out of the socket


# --- regions ---------------------------------------------------------------------------------------------


def test_regions_present_with_sensible_areas(head):
    areas = face_areas(head.v_template, head.faces)
    share = {label: areas[head.face_regions == label].sum() / areas.sum() for label in regions.REGION_NAMES}
    assert 0.25 < share[regions.SKIN] < 0.6
    assert 0.15 < share[regions.HAIR] < 0.45
    assert 0.1 < share[regions.NECK] < 0.45
    assert 0.01 < share[regions.EYES] < 0.06
    assert 0.0 < share[regions.MOUTH] < 0.01
    assert share[regions.BACKGROUND] == 0.0


def test_regions_are_where_they_belong(head):
    centroid = head.v_template[head.faces].mean(axis=1)
    lm = head.forward().landmarks
    labels = head.face_regions
    mouth = centroid[labels == regions.MOUTH]
    assert np.all(np.abs(mouth[:, 0]) <= abs(lm[48, 0]) + 1e-9)
    assert np.all((mouth[:, 1] > lm[66, 1] - 0.003) & (mouth[:, 1] < lm[48, 1] + 0.003))
    hair = centroid[labels == regions.HAIR]
    assert hair[:, 1].max() == centroid[:, 1].max()  # the crown is scalp
    assert np.all(hair[:, 1] > lm[8, 1])
    front_hair = hair[hair[:, 2] > 0.05]
    assert front_hair.size and front_hair[:, 1].min() > lm[19, 1] + 0.015  # above the brows
    neck = centroid[labels == regions.NECK]
    assert neck[:, 1].max() < lm[30, 1] and neck[:, 1].min() == centroid[:, 1].min()
    eyes = centroid[labels == regions.EYES]
    assert np.all(np.abs(np.abs(eyes[:, 0]) - 0.032) < 0.013)


# --- joints and weights ----------------------------------------------------------------------------------


def test_joint_regressor_averages_nearby_vertices(head):
    reg = head.j_regressor
    assert np.all(reg >= 0) and np.allclose(reg.sum(axis=1), 1.0)
    j, v = head.rest_joints, head.v_template
    for row in range(5):
        used = v[reg[row] > 0]
        assert np.linalg.norm(used - j[row], axis=1).max() < 0.1


def test_joint_positions(head):
    j, lm = head.rest_joints, head.forward().landmarks
    np.testing.assert_allclose(j[:3, 0], 0.0, atol=1e-9)
    assert j[ROOT, 1] < j[NECK, 1] < lm[8, 1] + 0.04  # root at the neck base, neck joint at its top
    assert j[ROOT, 1] < head.v_template[:, 1].min() + 0.03
    mouth_y = 0.5 * (lm[62, 1] + lm[66, 1])
    assert abs(j[JAW, 1] - mouth_y) < 0.015 and j[JAW, 2] < lm[62, 2] - 0.06  # behind the lip line
    ears = head.v_template[np.abs(head.v_template[:, 0]) > 0.08]
    assert ears[:, 2].min() - 0.02 < j[JAW, 2] < ears[:, 2].max() + 0.02  # between the ears


def test_skinning_weights(head):
    w, v = head.lbs_weights, head.v_template
    assert np.all(w >= 0) and np.allclose(w.sum(axis=1), 1.0)
    for joint in (LEFT_EYE, RIGHT_EYE):
        members = w[:, joint] > 0
        assert np.all(w[members, joint] == 1.0) and members.sum() > 50
    lm_faces = head.faces[head.landmark_faces]
    assert np.all(w[lm_faces[8], JAW] > 0.95)  # chin
    assert np.all(w[lm_faces[57], JAW] > 0.95) and np.all(w[lm_faces[51], JAW] == 0.0)  # lower / upper lip
    assert np.all(w[lm_faces[66], JAW] > 0.95) and np.all(w[lm_faces[62], JAW] == 0.0)
    assert np.all(w[lm_faces[27:36], JAW] == 0.0)  # nose
    crown = v[:, 1] > 0.1
    assert np.all(w[crown, NECK] == 1.0)
    bottom = v[:, 1] < v[:, 1].min() + 0.005
    assert np.all(w[bottom, ROOT] == 1.0)
    neck_mid = np.abs(v[:, 1] - 0.5 * (head.rest_joints[ROOT, 1] + head.rest_joints[NECK, 1])) < 0.005
    assert np.all(w[neck_mid][:, [ROOT, NECK]].sum(axis=1) > 0.999)
    assert np.any((w[neck_mid, ROOT] > 0.1) & (w[neck_mid, NECK] > 0.1))  # a blend, not a cut
    cheek_falloff = w[:, JAW][(v[:, 2] > 0.02) & (np.abs(v[:, 0]) > 0.05) & (np.abs(v[:, 1] + 0.045) < 0.01)]
    assert cheek_falloff.size and np.any((cheek_falloff > 0.05) & (cheek_falloff < 0.95))


def test_jaw_rotation_moves_only_jaw_weighted_vertices(head):
    out = head.forward(pose=jaw_pose(0.25))
    moved = np.linalg.norm(out.vertices - head.v_template, axis=1)
    free = head.lbs_weights[:, JAW] == 0.0
    assert np.all(moved[free] < 1e-15)
    assert np.all(moved[head.lbs_weights[:, JAW] > 0.5] > 1e-3)


def test_positive_jaw_rotation_opens_the_mouth(head):
    rest, opened = head.forward().landmarks, head.forward(pose=jaw_pose(0.2)).landmarks
    gap = np.linalg.norm(rest[62] - rest[66]), np.linalg.norm(opened[62] - opened[66])
    assert gap[1] > gap[0] + 0.012
    chin = opened[8] - rest[8]
    assert chin[1] < -0.008 and chin[2] < 0.0  # down and back
    np.testing.assert_allclose(opened[17:36], rest[17:36], atol=1e-12)  # brows, nose and eyes stay


def test_neck_rotation_carries_the_whole_head(head):
    pose = np.zeros((5, 3))
    pose[NECK, 1] = 0.5
    out = head.forward(pose=pose)
    neck = head.rest_joints[NECK]
    r = np.array([[np.cos(0.5), 0, np.sin(0.5)], [0, 1, 0], [-np.sin(0.5), 0, np.cos(0.5)]])
    np.testing.assert_allclose(out.landmarks, (head.forward().landmarks - neck) @ r.T + neck, atol=1e-12)


# --- blendshapes -----------------------------------------------------------------------------------------


def test_identity_components_are_smooth_and_move_eyes_rigidly(head):
    eyes = [head.lbs_weights[:, joint] == 1.0 for joint in (LEFT_EYE, RIGHT_EYE)]
    for k in range(head.num_betas):
        d = head.shapedirs[:, :, k]
        assert 0.002 < np.linalg.norm(d, axis=1).max() < 0.02
        for members in eyes:
            np.testing.assert_allclose(
                d[members], np.broadcast_to(d[members][0], d[members].shape), atol=1e-15
            )


def test_expressions_move_millimetres_and_never_the_eyeballs(head):
    eyes = eye_vertices(head)
    for k, name in enumerate(head.expression_names):
        d = np.linalg.norm(head.exprdirs[:, :, k], axis=1)
        assert 0.002 < d.max() < 0.025, name
        assert not d[eyes].any(), name


def test_jaw_open_moves_the_lower_face_down(head):
    lm = head.forward().landmarks
    mouth_y = lm[48, 1]
    dy = head.forward(expression=expression(head, "jaw_open")).vertices[:, 1] - head.v_template[:, 1]
    y = head.v_template[:, 1]
    front = face_front(head)
    below = front & (y < mouth_y - 0.01) & (y > lm[8, 1])
    above = front & (y > mouth_y + 0.01)
    assert dy[below].mean() < -0.005 and np.abs(dy[above]).mean() < 0.0005
    out = head.forward(expression=expression(head, "jaw_open")).landmarks
    assert out[57, 1] < lm[57, 1] - 0.005 and np.linalg.norm(out[62] - out[66]) > 0.008


def test_smile_lifts_the_mouth_corners_outward(head):
    rest, smile = head.forward().landmarks, head.forward(expression=expression(head, "smile")).landmarks
    delta = smile - rest
    assert delta[48, 1] > 0.002 and delta[54, 1] > 0.002
    assert delta[48, 0] < -0.001 and delta[54, 0] > 0.001


def test_brow_raise_lifts_the_brows(head):
    rest, out = head.forward().landmarks, head.forward(expression=expression(head, "brow_raise")).landmarks
    assert np.all(out[17:27, 1] - rest[17:27, 1] > 0.003)
    np.testing.assert_allclose(out[48:68], rest[48:68], atol=1e-6)  # the mouth stays


def test_blink_lowers_the_upper_eyelids(head):
    v = head.v_template
    dy = head.forward(expression=expression(head, "blink")).vertices[:, 1] - v[:, 1]
    eye = head.rest_joints[LEFT_EYE]
    lid = face_front(head) & (np.abs(np.abs(v[:, 0]) - eye[0]) < 0.006)
    lid &= (v[:, 1] > eye[1] + 0.006) & (v[:, 1] < eye[1] + 0.012)
    assert lid.sum() >= 4 and dy[lid].mean() < -0.005
    rest, out = head.forward().landmarks, head.forward(expression=expression(head, "blink")).landmarks
    assert np.all(out[[37, 38, 43, 44], 1] < rest[[37, 38, 43, 44], 1] - 0.004)


def test_expressions_and_betas_are_padded(head):
    out = head.forward(betas=[1.0], expression=[1.0])
    expected = head.v_template + head.shapedirs[:, :, 0] + head.exprdirs[:, :, 0]
    np.testing.assert_allclose(out.vertices, expected, atol=1e-12)


# --- landmarks -------------------------------------------------------------------------------------------


def test_landmarks_lie_on_skin_or_mouth(head):
    assert set(np.unique(head.face_regions[head.landmark_faces])) <= {regions.SKIN, regions.MOUTH}
    assert np.all(head.landmark_bary >= -1e-12) and np.allclose(head.landmark_bary.sum(axis=1), 1.0)


def test_landmark_order_follows_ibug(head):
    lm = head.forward().landmarks
    x, y, z = lm[:, 0], lm[:, 1], lm[:, 2]
    assert np.all(np.diff(x[0:17]) > 0) and y[8] == y[0:17].min()  # jaw: subject's right ear -> left
    assert np.all(x[17:22] < 0) and np.all(x[22:27] > 0)  # brows: right (-X), then left
    assert np.all(np.diff(x[17:22]) > 0) and np.all(np.diff(x[22:27]) > 0)
    assert np.all(np.diff(y[27:31]) < 0) and z.argmax() == 30  # bridge down to the tip, the most forward
    assert np.all(np.diff(x[31:36]) > 0) and np.all(y[31:36] < y[30])
    assert np.all(x[36:42] < 0) and np.all(x[42:48] > 0)  # right eye on -X, left eye on +X
    for first in (36, 42):
        eye = lm[first : first + 6]
        assert eye[0, 0] < eye[3, 0]  # corners in image left -> right order
        assert eye[1, 1] > eye[5, 1] and eye[2, 1] > eye[4, 1]  # upper lid above lower lid
    assert x[48] < 0 < x[54] and y[51] > y[62] > y[66] > y[57]
    assert np.all(np.diff(x[48:55]) > 0) and np.all(np.diff(x[54:60]) < 0)  # outer lips
    assert np.all(np.diff(x[60:65]) > 0) and np.all(np.diff(x[64:68]) < 0)  # inner lips


def test_landmarks_sit_on_their_features(head):
    lm, j = head.forward().landmarks, head.rest_joints
    for first, joint in ((36, RIGHT_EYE), (42, LEFT_EYE)):
        dist = np.linalg.norm(lm[first : first + 6, :2] - j[joint, :2], axis=1)
        assert np.all(dist > 0.004) and np.all(dist < 0.018)
    mouth_faces = np.flatnonzero(head.face_regions == regions.MOUTH)
    mouth_x = head.v_template[head.faces[mouth_faces]][:, :, 0]
    np.testing.assert_allclose([lm[48, 0], lm[54, 0]], [mouth_x.min(), mouth_x.max()], atol=0.004)


def test_landmarks_are_mirror_symmetric(head):
    lm = head.forward().landmarks
    mirrored = lm * [-1.0, 1.0, 1.0]
    for i, k in MIRROR.items():
        np.testing.assert_allclose(lm[i], mirrored[k], atol=1e-9, err_msg=f"landmarks {i} and {k}")
    np.testing.assert_allclose(lm[list(MIDLINE), 0], 0.0, atol=1e-9)
