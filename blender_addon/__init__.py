"""RigStyle Blender extension: FLAME/SMPL-X rigs whose renders a StyleGAN2 backend refines.

The only package of the project that imports ``bpy``. Headless jobs import the modules directly (see
``demo_job``); ``register``/``unregister`` install the UI when Blender loads the extension.

Each UI module lists its ``classes`` and may have ``install()`` / ``uninstall()`` for what is not a class
(properties on Blender types, menu entries); :data:`MODULES` is the order they are registered in.
"""

from __future__ import annotations

import bpy

from . import expression, farm, importers, live, operators, preference, preferences, ui

MODULES = (preferences, ui, operators, farm, expression, preference, importers)
classes = tuple(cls for module in MODULES for cls in module.classes)


def register() -> None:
    for module in MODULES:
        for cls in module.classes:
            bpy.utils.register_class(cls)
        if hasattr(module, "install"):
            module.install()
    live.install_handlers()


def unregister() -> None:
    live.uninstall_handlers()
    for module in reversed(MODULES):
        if hasattr(module, "uninstall"):
            module.uninstall()
        for cls in reversed(module.classes):
            bpy.utils.unregister_class(cls)
