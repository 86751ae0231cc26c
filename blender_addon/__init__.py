"""RigStyle Blender extension: FLAME/SMPL-X rigs whose renders a StyleGAN2 backend refines.

The only package of the project that imports ``bpy``. Headless jobs import the modules directly (see
``demo_job``); ``register``/``unregister`` install the UI when Blender loads the extension.
"""

from __future__ import annotations

import bpy

import rigs

from . import expression, farm, live, operators, preference, preferences, preview
from .names import SETTINGS_PROP
from .ui import (
    RIGSTYLE_OT_randomise_params,
    RIGSTYLE_OT_reset_params,
    RIGSTYLE_PG_rig_settings,
    RIGSTYLE_PT_rig,
)


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


classes = (
    *preferences.classes,
    RIGSTYLE_PG_rig_settings,
    RIGSTYLE_OT_add_demo_head,
    RIGSTYLE_OT_reset_params,
    RIGSTYLE_OT_randomise_params,
    RIGSTYLE_PT_rig,
    *operators.classes,
    *farm.classes,
    expression.RIGSTYLE_OT_transfer_emotion,
    *preference.classes,
)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    setattr(bpy.types.Object, SETTINGS_PROP, bpy.props.PointerProperty(type=RIGSTYLE_PG_rig_settings))
    operators.register_properties()
    preference.register_properties()
    bpy.types.VIEW3D_MT_add.append(_menu_add)
    live.install_handlers()


def unregister() -> None:
    live.uninstall_handlers()
    preview.close_session()
    preferences.stop_local_backends()
    operators.unregister_properties()
    preference.unregister_properties()
    bpy.types.VIEW3D_MT_add.remove(_menu_add)
    delattr(bpy.types.Object, SETTINGS_PROP)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
