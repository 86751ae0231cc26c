"""RigStyle Blender extension: FLAME/SMPL-X rigs whose renders a StyleGAN2 backend refines.

The only package of the project that imports ``bpy``. Headless jobs import the modules directly (see
``demo_job``); ``register``/``unregister`` install the UI when Blender loads the extension.
"""

from __future__ import annotations

import bpy

import rigs


class RIGSTYLE_OT_add_demo_head(bpy.types.Operator):
    """Add the licence-free procedural demo head (mesh, armature, shape keys) to the scene"""

    bl_idname = "rigstyle.add_demo_head"
    bl_label = "Add RigStyle Demo Head"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        from .rig_builder import build_rig

        objects = build_rig(rigs.demo_head(), "RigStyle Demo Head", context.collection)
        context.view_layer.objects.active = objects.armature
        return {"FINISHED"}


def _menu_add(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.operator(RIGSTYLE_OT_add_demo_head.bl_idname, icon="USER")


classes = (RIGSTYLE_OT_add_demo_head,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.VIEW3D_MT_add.append(_menu_add)


def unregister() -> None:
    bpy.types.VIEW3D_MT_add.remove(_menu_add)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
