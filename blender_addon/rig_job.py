"""Blender side of ``rigstyle rig to-blend``: a rig model (plus an optional motion sequence) as a .blend.

Run with Blender's Python (the ``bpy`` module or ``blender -b --python-expr``)::

    python -m blender_addon.rig_job --model FLAME2020/generic_model.pkl --out rig.blend

Exit code 0 on success, 2 with one ``error:`` line on stderr for a bad model or sequence file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import bpy

import rigs
from rigs.sequences import load_sequence

from .rig_builder import build_rig
from .sequences import import_sequence

USER_ERROR_EXIT = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="blender_addon.rig_job", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sequence", type=Path)
    parser.add_argument("--gender", choices=("neutral", "male", "female"))
    parser.add_argument("--fps", type=float, help="scene frame rate (default: the sequence's, else 30)")
    args = parser.parse_args(argv)
    try:
        rig = rigs.load(args.model, gender=args.gender)
        sequence = load_sequence(args.sequence) if args.sequence else None
    except rigs.RigError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return USER_ERROR_EXIT
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    fps = args.fps or (sequence.fps if sequence else 30.0)
    scene.render.fps, scene.render.fps_base = round(fps), round(fps) / fps
    objects = build_rig(rig, rig.name)
    if sequence is not None:
        try:
            count = import_sequence(objects, sequence, frame_start=1, scene=scene)
        except rigs.RigError as exc:
            print(f"error: {args.sequence}: {exc}", file=sys.stderr, flush=True)
            return USER_ERROR_EXIT
        scene.frame_start, scene.frame_end = 1, count
    args.out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(args.out.resolve()))
    print(f"[rigstyle] wrote {args.out} ({rig.kind} rig, {rig.num_vertices} vertices"
          f"{f', {scene.frame_end} frames' if sequence else ''})", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
