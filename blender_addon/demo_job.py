"""Blender side of ``rigstyle demo``: build the demo head shot, render it through the backend, composite.

Run with Blender's Python (the ``bpy`` module or ``blender -b --python-expr``)::

    python -m blender_addon.demo_job --out DIR --backend tcp://127.0.0.1:7557

Progress lines start with ``[rigstyle]``; ``DIR/blender_job.json`` records timings and per-frame metrics.
Exit code 0 on success, 1 if any frame failed (no unrefined frame is written as refined).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import bpy

import rigs

from .animation import keyframe_demo_animation
from .backend_errors import ShotError
from .connection import BackendSettings
from .rig_builder import RigObjects, build_rig
from .scene_setup import add_camera_and_lights, configure_render
from .shot import render_refined_shot

JOB_REPORT = "blender_job.json"


def progress(line: str) -> None:
    print(f"[rigstyle] {line}", flush=True)


def build_demo_scene(frames: int, width: int, height: int, samples: int) -> RigObjects:
    """A fresh scene with the demo head, a camera, lights and the keyframed demo performance."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    rig = rigs.demo_head()
    objects = build_rig(rig, "RigStyle Demo Head")
    configure_render(scene, width, height, samples)
    add_camera_and_lights(scene, rig, objects)
    scene.frame_start, scene.frame_end = 1, frames
    keyframe_demo_animation(objects, 1, frames)
    return objects


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="blender_addon.demo_job", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--backend", required=True, help="backend address, e.g. tcp://127.0.0.1:7557")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--resolution", type=int, nargs=2, default=(256, 256), metavar=("W", "H"))
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--shot", default="demo")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for each frame")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    width, height = args.resolution
    objects = build_demo_scene(args.frames, width, height, args.samples)
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "scene.blend"))
    scene_seconds = time.perf_counter() - started
    progress(f"scene built and saved to {out / 'scene.blend'} ({scene_seconds:.1f} s)")

    frames = list(range(1, args.frames + 1))
    settings = BackendSettings(address=args.backend, frame_timeout=args.timeout)
    try:
        result = render_refined_shot(bpy.context.scene, objects, settings, frames, out, args.shot, progress)
    except ShotError as exc:
        print(f"[rigstyle] error: {exc}", file=sys.stderr, flush=True)
        return 1
    report = {
        "frames": frames,
        "resolution": list(args.resolution),
        "samples": args.samples,
        "seconds": {"scene": scene_seconds, **result.seconds},
        "metrics": {str(frame): metrics for frame, metrics in result.metrics.items()},
        "shot_metrics": result.shot_metrics,
    }
    (out / JOB_REPORT).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
