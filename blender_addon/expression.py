"""Emotion transfer on the keyed take of a built rig, as a new action (the original stays untouched).

The solve is ``rigs.expression``'s; this module gives it the rig's expression space read from Blender
data (the basis and expression shape keys at the landmarks' barycentric points) and writes the result.
"""

from __future__ import annotations

from collections.abc import Callable

import bpy
import numpy as np

from rigs.expression import (
    EMOTIONS,
    JAW_JOINT,
    JAW_STEP,
    ExpressionError,
    ExpressionSpace,
    expression_space,
    transfer_emotion,
)
from rigs.lbs import barycentric_points, rodrigues

from .live import live_rig
from .names import (
    DEFORM_BONE_PREFIX,
    EXPRESSION_KEY_PREFIX,
    LANDMARK_BARY_PROP,
    LANDMARK_FACES_PROP,
    SHAPE_KEY_PREFIX,
)
from .rig_builder import RigObjects
from .rig_params import find_rig, joint_names, shape_keys
from .sequences import export_sequence, fcurves_of, write_fcurve


def rig_expression_space(objects: RigObjects) -> ExpressionSpace:
    """The rig's landmarks at its neutral expression (current identity keys) and their motion per
    expression key, measured on the mesh's shape keys (rest pose), and per radian of jaw rotation
    (:func:`jaw_columns`), as ``rigs.expression`` measures them on the model.

    Raises:
        ExpressionError: the rig has no 68 landmarks or no expression keys.
    """
    mesh = objects.mesh.data
    key = mesh.shape_keys
    expressions = shape_keys(objects, EXPRESSION_KEY_PREFIX)
    faces_prop = objects.mesh.get(LANDMARK_FACES_PROP)
    if key is None or not expressions:
        raise ExpressionError(f"rig {objects.armature.name!r} has no expression shape keys")
    if faces_prop is None or len(faces_prop) != 68:
        count = 0 if faces_prop is None else len(faces_prop)
        raise ExpressionError(f"rig {objects.armature.name!r} has {count} landmarks; emotions need iBUG-68")
    faces = np.empty(len(mesh.polygons) * 3, dtype=np.int64)
    mesh.polygons.foreach_get("vertices", faces)
    faces = faces.reshape(-1, 3)
    landmark_faces = np.asarray(faces_prop, dtype=np.int64)
    bary = np.asarray(objects.mesh[LANDMARK_BARY_PROP], dtype=np.float64).reshape(-1, 3)

    def coordinates(block: bpy.types.ShapeKey) -> np.ndarray:
        values = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        block.points.foreach_get("co", values)
        return values.reshape(-1, 3)

    basis = coordinates(key.reference_key)
    neutral = basis.copy()
    for identity in shape_keys(objects, SHAPE_KEY_PREFIX):
        neutral += identity.value * (coordinates(identity) - basis)
    landmarks = barycentric_points(neutral, faces, landmark_faces, bary)
    columns = [
        (
            barycentric_points(neutral + coordinates(k) - basis, faces, landmark_faces, bary) - landmarks
        ).ravel()
        for k in expressions
    ]
    names = tuple(k.name.removeprefix(EXPRESSION_KEY_PREFIX) for k in expressions)
    joints = joint_names(objects)
    jaw = joints.index(JAW_JOINT) if JAW_JOINT in joints else None

    def landmarks_of(vertices: np.ndarray) -> np.ndarray:
        return barycentric_points(vertices, faces, landmark_faces, bary)

    jaw_motion = None if jaw is None else jaw_columns(objects, jaw, neutral, landmarks_of)
    return expression_space(landmarks, np.stack(columns, axis=1), names, len(joints), jaw_motion, jaw)


def jaw_columns(
    objects: RigObjects, jaw: int, neutral: np.ndarray, landmarks_of: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """(68 * 3, 3) landmark motion per radian of jaw rotation about x, y, z at the neutral face: linear
    blend skinning of the jaw and the joints below it about the jaw joint, plus the jaw's pose correctives,
    by the same forward difference (:data:`JAW_STEP`) as ``rigs.expression`` takes on the model."""
    live = live_rig(objects.mesh.data)
    below = {jaw}
    for joint, parent in enumerate(live.parents):  # parents precede children in model order
        if parent in below:
            below.add(joint)
    groups = {objects.mesh.vertex_groups[DEFORM_BONE_PREFIX + live.joint_names[j]].index for j in below}
    weights = np.zeros(len(neutral))
    for vertex in objects.mesh.data.vertices:
        weights[vertex.index] = sum(g.weight for g in vertex.groups if g.group in groups)
    blocks = objects.mesh.data.shape_keys.key_blocks
    coefficients = np.array(
        [blocks[name].value if name.startswith(SHAPE_KEY_PREFIX) else 0.0 for name in live.coeff_key_names]
    )
    offsets = (live.joint_dirs @ coefficients).reshape(-1, 3)
    pivot = np.asarray(objects.armature.data.bones[live.joint_names[jaw]].head_local) + offsets[jaw]
    correctives = live.posedirs[(jaw - 1) * 9 : jaw * 9].astype(np.float64).reshape(3, 3, -1, 3)
    rest = landmarks_of(neutral)
    columns = np.zeros((68 * 3, 3))
    for axis in range(3):
        step = np.zeros(3)
        step[axis] = JAW_STEP
        turn = rodrigues(step[None])[0] - np.eye(3)
        corrected = neutral + np.einsum("rc,rcvk->vk", turn, correctives)
        moved = corrected + weights[:, None] * ((corrected - pivot) @ turn.T)
        columns[:, axis] = (landmarks_of(moved) - rest).reshape(-1) / JAW_STEP
    return columns


def apply_emotion(
    scene: bpy.types.Scene, emotion: str, intensity: float, frame_start: int, frame_end: int
) -> bpy.types.Action:
    """Transfer ``emotion`` onto the rig's keyed take over the frame range, speech kept, as a new action of
    its expression keys (a copy of the current one with the expression channels rewritten); the previous
    action is kept (fake user) so switching back restores the take.

    Raises:
        LookupError: no rig in the scene. ExpressionError: an unknown emotion, a bad intensity or range.
    """
    if frame_end <= frame_start:
        raise ExpressionError(f"frame range: {frame_start}..{frame_end} is empty")
    objects = find_rig(scene)
    space = rig_expression_space(objects)
    take = export_sequence(objects, frame_start, frame_end, scene)
    edited = transfer_emotion(space, take, emotion, intensity)
    key = objects.mesh.data.shape_keys
    animation = key.animation_data or key.animation_data_create()
    previous = animation.action
    if previous is not None:
        previous.use_fake_user = True  # the original take survives, selectable in the Action editor
        action = previous.copy()
    else:
        action = bpy.data.actions.new(f"{key.name} Action")
    action.name = f"{previous.name if previous else key.name} {emotion} {intensity:.2f}"
    animation.action = action
    fcurves = fcurves_of(key)
    frames = np.arange(frame_start, frame_end + 1, dtype=np.float64)
    for index, block in enumerate(shape_keys(objects, EXPRESSION_KEY_PREFIX)):
        path = f'key_blocks["{block.name}"].value'
        write_fcurve(fcurves, path, 0, frames, edited.expression[:, index], "expression")
    return action


EMOTION_ITEMS = [
    (name, name.capitalize(), f"Transfer {name} onto the take, speech kept") for name in EMOTIONS
]


class RIGSTYLE_OT_transfer_emotion(bpy.types.Operator):
    """Add an emotion to the rig's keyed take (brows, eyes, cheeks, mouth corners), keeping its speech,
    as a new action; the original action is kept"""

    bl_idname = "rigstyle.transfer_emotion"
    bl_label = "Transfer Emotion"
    bl_options = {"REGISTER", "UNDO"}

    emotion: bpy.props.EnumProperty(name="Emotion", items=EMOTION_ITEMS)  # type: ignore[valid-type]
    intensity: bpy.props.FloatProperty(name="Intensity", default=0.7, min=0.0, max=1.0)  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        try:
            action = apply_emotion(scene, self.emotion, self.intensity, scene.frame_start, scene.frame_end)
        except (LookupError, ExpressionError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"new action {action.name!r}")
        return {"FINISHED"}


classes = (RIGSTYLE_OT_transfer_emotion,)
