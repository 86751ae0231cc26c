"""Reading a built rig's evaluated state back out of Blender, and keying parameters, for parity tests."""

from __future__ import annotations

import bpy
import numpy as np

import rigs
from blender_addon.rig_builder import RigObjects
from blender_addon.rig_params import set_params


def evaluated_vertices(mesh_object: bpy.types.Object) -> np.ndarray:
    evaluated = mesh_object.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    coords = np.empty(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", coords)
    evaluated.to_mesh_clear()
    return coords.reshape(-1, 3)


def posed_joints(objects: RigObjects, rig: rigs.Rig) -> np.ndarray:
    """(J, 3) heads of the joint bones in the armature's space (the rig's frame)."""
    return np.array([objects.armature.pose.bones[n].head for n in rig.joint_names])


def key_params(objects: RigObjects, rig: rigs.Rig, params: dict[str, np.ndarray], frame: int) -> None:
    set_params(
        objects,
        betas=params["betas"],
        expression=dict(zip(rig.expression_names, params["expression"], strict=True)),
        pose=dict(zip(rig.joint_names, params["pose"], strict=True)),
        transl=params["transl"],
        keyframe_at=frame,
    )
