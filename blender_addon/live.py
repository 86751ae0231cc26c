"""Live rig evaluation: pose correctives and shape-following joints, updated on every frame and render.

Blender's armature modifier does the linear blend skinning; two things of the model it cannot do alone are
done here, from ``bpy.app.handlers`` (``frame_change_post`` and ``depsgraph_update_post``, both persistent):

- **Pose correctives.** The shape key ``pose_correctives`` (value 1) is rewritten with
  ``basis + pose_feature @ posedirs``, where ``pose_feature = (R[1:] - I)`` of the joint rotations read from
  the *evaluated* armature of the depsgraph being evaluated (so an animation render of frame N, whose
  depsgraph is not the viewport's, uses frame N's pose). A shape key sits in the rest space, before skinning,
  exactly where the model adds correctives. Blender evaluates the depsgraph a second time when a
  ``*_post`` handler changed data, so the frame (or render) sees the new coordinates.
- **Joints that follow shape and expression.** Rest bones stay at the template's joints; the offset
  ``d = J_regressor @ (shapedirs @ betas + exprdirs @ expression)`` goes into pose-bone locations that the
  user never keys: a joint bone gets ``d[j] - d[parent]`` (so its head sits on the shaped joint), its
  deforming twin ``DEF-<joint>`` gets ``-d[j]`` (so it deforms around the shaped joint), and the root joint
  gets ``d[root]`` through a Copy Location (offset) constraint from the bone ``rigstyle_joint_offset``, which
  keeps the root bone's own location free for the keyframed ``transl``.

The arrays the handler needs are stored in the .blend, as custom properties of a Text datablock
``RigStyle live data <mesh>`` that no object uses: the float32 posedirs (61 MB for SMPL-X, in line with
its 400 shape keys, and the only way a .blend stays self-contained on a farm node that has no model file)
and the small joint-offset basis. Not on the mesh itself: the depsgraph copies a mesh's custom properties
on every update (150 ms per frame for SMPL-X). They are cached per mesh (by session uid) as numpy arrays
on first use, so a reopened .blend works as soon as the handlers are installed (by the add-on's
``register`` or by ``install_handlers`` in a headless script).
"""

from __future__ import annotations

import atexit
import uuid
from dataclasses import dataclass, field

import bpy
import numpy as np
from bpy.app.handlers import persistent

from .names import (
    COEFF_KEYS_PROP,
    CORRECTIVE_KEY,
    DEFORM_BONE_PREFIX,
    JOINT_DIRS_PROP,
    JOINT_NAMES_PROP,
    LIVE_DATA_PROP,
    LIVE_TOKEN_PROP,
    OFFSET_BONE,
    PARENTS_PROP,
    POSEDIRS_PROP,
)


@dataclass
class LiveRig:
    """What the handlers need for one rig mesh, as numpy arrays, plus the state last written to Blender."""

    posedirs: np.ndarray  # (P, V * 3) float32 pose-corrective basis, P = (J - 1) * 9
    basis: np.ndarray  # (V * 3,) float32 coordinates of the Basis shape key
    joint_dirs: np.ndarray  # (J * 3, K) float64 joint offset per shape/expression coefficient
    parents: np.ndarray  # (J,) int64
    joint_names: tuple[str, ...]
    coeff_key_names: tuple[str, ...]  # (K,) shape keys whose values are the coefficients
    bone_names: tuple[str, ...] = ()  # pose.bones order the indices below refer to
    joint_bones: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (J,)
    deform_bones: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (J,)
    offset_bone: int = -1
    key_names: tuple[str, ...] = ()  # key_blocks order the indices below refer to
    coeff_keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (K,)
    corrective_key: int = -1
    last_feature: np.ndarray | None = None  # pose feature whose correctives the shape key holds
    last_coeffs: np.ndarray | None = None  # coefficients whose joint offsets the bones hold

    def index_bones(self, bone_names: tuple[str, ...]) -> None:
        position = {name: i for i, name in enumerate(bone_names)}
        self.bone_names = bone_names
        self.joint_bones = np.array([position[n] for n in self.joint_names], dtype=np.int64)
        self.deform_bones = np.array(
            [position[DEFORM_BONE_PREFIX + n] for n in self.joint_names], dtype=np.int64
        )
        self.offset_bone = position[OFFSET_BONE]
        self.last_coeffs = None

    def index_keys(self, key_names: tuple[str, ...]) -> None:
        position = {name: i for i, name in enumerate(key_names)}
        self.key_names = key_names
        self.coeff_keys = np.array([position[n] for n in self.coeff_key_names], dtype=np.int64)
        self.corrective_key = position[CORRECTIVE_KEY]
        self.last_feature = None
        self.last_coeffs = None


_CACHE: dict[int, LiveRig] = {}  # mesh datablock session_uid -> its LiveRig
_busy = False  # set while the handlers write, so updates they cause do not re-enter them


def store_live_data(
    mesh: bpy.types.Mesh,
    posedirs: np.ndarray,
    joint_dirs: np.ndarray,
    coeff_key_names: list[str],
    joint_names: tuple[str, ...],
    parents: np.ndarray,
) -> bpy.types.Text:
    """Store what :func:`update_rig` needs in a new live-data Text of ``mesh`` (saved with the .blend).

    Args:
        mesh: the rig's mesh datablock.
        posedirs: (P, V * 3) pose-corrective basis.
        joint_dirs: (J * 3, K) joint offsets per coefficient, columns in ``coeff_key_names`` order.
        coeff_key_names: (K,) names of the shape keys holding the coefficients.
        joint_names: (J,) bone names of the joints.
        parents: (J,) parent of every joint.

    Returns:
        The Text datablock holding the arrays.

    Raises:
        ValueError: an array's shape does not fit the mesh, the joints or the keys; it names the array.
    """
    joint_count, coords = len(joint_names), len(mesh.vertices) * 3
    for name, array, shape in (
        ("posedirs", posedirs, ((joint_count - 1) * 9, coords)),
        ("joint_dirs", joint_dirs, (joint_count * 3, len(coeff_key_names))),
        ("parents", parents, (joint_count,)),
    ):
        if np.shape(array) != shape:
            raise ValueError(
                f"{name}: expected shape {list(shape)} for this rig, got {list(np.shape(array))}"
            )
    token = uuid.uuid4().hex
    text = bpy.data.texts.new(f"RigStyle live data {mesh.name}")
    text.write(
        f"Pose correctives and joint offsets of the RigStyle rig mesh {mesh.name!r}, as custom properties.\n"
        "Used on every frame change; deleting this text freezes the rig's correctives.\n"
    )
    text.use_fake_user = True
    text[LIVE_TOKEN_PROP] = token
    text[POSEDIRS_PROP] = np.ascontiguousarray(posedirs, dtype=np.float32).ravel()
    text[JOINT_DIRS_PROP] = np.ascontiguousarray(joint_dirs, dtype=np.float64).ravel()
    text[COEFF_KEYS_PROP] = list(coeff_key_names)
    text[PARENTS_PROP] = np.asarray(parents, dtype=np.int32)
    mesh[JOINT_NAMES_PROP] = list(joint_names)
    mesh[LIVE_DATA_PROP] = text.name
    mesh[LIVE_TOKEN_PROP] = token
    _CACHE.pop(mesh.session_uid, None)
    return text


def live_data(mesh: bpy.types.Mesh) -> bpy.types.Text:
    """The live-data Text of a rig mesh (by name, or by token after a rename)."""
    token = mesh[LIVE_TOKEN_PROP]
    text = bpy.data.texts.get(str(mesh[LIVE_DATA_PROP]))
    if text is not None and text.get(LIVE_TOKEN_PROP) == token:
        return text
    for text in bpy.data.texts:
        if text.get(LIVE_TOKEN_PROP) == token:
            mesh[LIVE_DATA_PROP] = text.name
            return text
    raise LookupError(f"{mesh.name}: its RigStyle live data text is missing; rebuild the rig")


def is_rig_mesh(obj: bpy.types.Object) -> bool:
    return obj.type == "MESH" and LIVE_TOKEN_PROP in obj.data


def live_rig(mesh: bpy.types.Mesh) -> LiveRig:
    """The cached :class:`LiveRig` of a rig mesh, rebuilt from the mesh's stored data when missing."""
    live = _CACHE.get(mesh.session_uid)
    if live is not None:
        return live
    data = live_data(mesh)
    joint_names = tuple(str(n) for n in mesh[JOINT_NAMES_PROP])
    coeff_key_names = tuple(str(n) for n in data[COEFF_KEYS_PROP])
    num_coords = len(mesh.vertices) * 3
    posedirs = np.frombuffer(data[POSEDIRS_PROP], dtype=np.float32)
    if posedirs.size != (len(joint_names) - 1) * 9 * num_coords:
        raise ValueError(
            f"{mesh.name}: stored posedirs do not fit {len(joint_names)} joints and {num_coords // 3} "
            "vertices; was the mesh topology edited?"
        )
    basis = np.empty(num_coords, dtype=np.float32)
    mesh.shape_keys.reference_key.points.foreach_get("co", basis)
    live = LiveRig(
        posedirs=posedirs.reshape(-1, num_coords),
        basis=basis,
        joint_dirs=np.asarray(data[JOINT_DIRS_PROP], dtype=np.float64).reshape(len(joint_names) * 3, -1),
        parents=np.asarray(data[PARENTS_PROP], dtype=np.int64),
        joint_names=joint_names,
        coeff_key_names=coeff_key_names,
    )
    _CACHE[mesh.session_uid] = live
    return live


def rig_armature(mesh_object: bpy.types.Object) -> bpy.types.Object | None:
    """The armature deforming ``mesh_object`` (its first Armature modifier's object)."""
    for modifier in mesh_object.modifiers:
        if modifier.type == "ARMATURE" and modifier.object is not None:
            return modifier.object
    return None


def pose_feature(rotations: np.ndarray) -> np.ndarray:
    """(P,) float32 pose feature ``(R[1:] - I).ravel()`` of (J, 3, 3) joint rotations."""
    return (rotations[1:] - np.eye(3)).astype(np.float32).ravel()


def update_rig(mesh_object: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> None:
    """Write the correctives and joint offsets for what ``depsgraph`` evaluated; a no-op when current."""
    armature = rig_armature(mesh_object)
    mesh = mesh_object.data
    if armature is None or mesh.shape_keys is None:
        return
    live = live_rig(mesh)
    armature_eval = armature.evaluated_get(depsgraph)
    key_eval = mesh.shape_keys.evaluated_get(depsgraph)
    bones = armature_eval.pose.bones
    bone_names = tuple(bones.keys())
    if bone_names != live.bone_names:
        live.index_bones(bone_names)
    blocks = key_eval.key_blocks
    if len(blocks) != len(live.key_names) or tuple(blocks.keys()) != live.key_names:
        live.index_keys(tuple(blocks.keys()))

    matrices = np.empty(len(bone_names) * 16, dtype=np.float32)
    bones.foreach_get("matrix_basis", matrices)
    # RNA matrices are column-major: element [b, c, r] is row r, column c of bone b's matrix.
    rotations = matrices.reshape(-1, 4, 4)[live.joint_bones, :3, :3].transpose(0, 2, 1).astype(np.float64)
    feature = pose_feature(rotations)
    if live.last_feature is None or not np.array_equal(feature, live.last_feature):
        coords = live.basis + feature @ live.posedirs
        mesh.shape_keys.key_blocks[live.corrective_key].points.foreach_set("co", coords)
        _tag(mesh.shape_keys, depsgraph, set())
        mesh.update_tag()
        live.last_feature = feature

    values = np.empty(len(blocks), dtype=np.float64)
    blocks.foreach_get("value", values)
    coeffs = values[live.coeff_keys]
    if live.last_coeffs is None or not np.array_equal(coeffs, live.last_coeffs):
        _write_joint_offsets(armature, bones, live, (live.joint_dirs @ coeffs).reshape(-1, 3))
        _tag(armature, depsgraph, {"OBJECT", "DATA"})
        live.last_coeffs = coeffs


def _write_joint_offsets(
    armature: bpy.types.Object, bones_eval: bpy.types.bpy_prop_collection, live: LiveRig, offsets: np.ndarray
) -> None:
    """Locations of the joint, deform and offset bones for (J, 3) joint offsets; other bones keep theirs.

    The evaluated locations are the starting point (the root's keyed ``transl`` at the depsgraph's frame),
    so writing them back to the original bones changes nothing but the offsets.
    """
    locations = np.empty(len(live.bone_names) * 3, dtype=np.float64)
    bones_eval.foreach_get("location", locations)
    locations = locations.reshape(-1, 3)
    relative = offsets - offsets[np.maximum(live.parents, 0)]
    locations[live.joint_bones[1:]] = relative[1:]
    locations[live.deform_bones] = -offsets
    locations[live.offset_bone] = offsets[0]
    armature.pose.bones.foreach_set("location", locations.ravel())


def _tag(owner: bpy.types.ID, depsgraph: bpy.types.Depsgraph, refresh: set[str]) -> None:
    """Tag ``owner`` after a write so the depsgraph copies it again.

    A render depsgraph never flushes animated values back to the original data, so there the copy would
    bring back stale keyed values: re-apply the animation too (TIME). Not in the viewport, where the
    originals are current and may hold the user's not-yet-keyed edits.
    """
    owner.update_tag(refresh=(refresh | {"TIME"}) if depsgraph.mode == "RENDER" else refresh)


def update_scene(scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph) -> None:
    """:func:`update_rig` for every rig mesh in ``scene``; re-entrant calls return at once."""
    global _busy
    if _busy:
        return
    _busy = True
    try:
        for obj in scene.objects:
            if is_rig_mesh(obj):
                update_rig(obj, depsgraph)
    finally:
        _busy = False


@persistent
def _on_frame_change_post(scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph | None = None) -> None:
    update_scene(scene, depsgraph or bpy.context.evaluated_depsgraph_get())


@persistent
def _on_depsgraph_update_post(scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph | None = None) -> None:
    update_scene(scene, depsgraph or bpy.context.evaluated_depsgraph_get())


@persistent
def _on_data_reloaded(*_args: object) -> None:
    """After a file load or undo/redo, stored arrays and written state may differ: drop the cache."""
    _CACHE.clear()


_HANDLERS = (
    ("frame_change_post", _on_frame_change_post),
    ("depsgraph_update_post", _on_depsgraph_update_post),
    ("load_post", _on_data_reloaded),
    ("undo_post", _on_data_reloaded),
    ("redo_post", _on_data_reloaded),
)


def install_handlers() -> None:
    """Add the persistent handlers once (replacing copies from an earlier import of this module).

    They are also removed at interpreter exit: the bpy 4.2 module segfaults on exit while a Python
    function is still in ``bpy.app.handlers`` (exit code -11 after a successful script); 5.0 does not, and
    removing them there is harmless.
    """
    uninstall_handlers()
    for event, handler in _HANDLERS:
        getattr(bpy.app.handlers, event).append(handler)
    atexit.unregister(uninstall_handlers)  # once, however often this is called
    atexit.register(uninstall_handlers)


def uninstall_handlers() -> None:
    for event, handler in _HANDLERS:
        handlers = getattr(bpy.app.handlers, event)
        for existing in [h for h in handlers if _same_function(h, handler)]:
            handlers.remove(existing)


def _same_function(a: object, b: object) -> bool:
    return getattr(a, "__module__", None) == getattr(b, "__module__", None) and getattr(
        a, "__qualname__", None
    ) == getattr(b, "__qualname__", None)
