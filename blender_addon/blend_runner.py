"""``python -m blender_addon.blend_runner SCENE.blend EXPRESSION``: what ``blender -b SCENE.blend
--python-exit-code 1 --python-expr EXPRESSION`` does, through the ``bpy`` module.

Opens the file, registers the add-on (as the enabled extension is in a Blender binary), runs the
expression and exits 1 when it raises. ``rigstyle render|passes|composite`` use it when no ``--blender``
binary is given.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import bpy

import blender_addon


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``EXPRESSION`` in ``SCENE.blend``; the exit code (see the module docstring)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m blender_addon.blend_runner SCENE.blend EXPRESSION", file=sys.stderr)
        return 2
    scene_file, expression = args
    bpy.ops.wm.open_mainfile(filepath=str(Path(scene_file).resolve()))
    blender_addon.register()  # as the enabled extension would be in a Blender binary
    try:
        exec(compile(expression, "<--python-expr>", "exec"), {"__name__": "__main__"})
    except Exception as error:  # Blender prints the traceback and exits 1 as well
        print(f"Error: {error}", file=sys.stderr)
        return 1
    finally:
        blender_addon.unregister()
    return 0


if __name__ == "__main__":
    sys.exit(main())
