"""Blender rigs from official-format FLAME / SMPL-X files vs the smplx reference: max vertex difference.

    .venv/bin/python benchmarks/bench_parity_blender.py

Writes small synthetic model files in the official formats, builds each rig in real Blender (bpy), keys
random betas, expression, pose and translation on three frames, evaluates Blender's depsgraph mesh on each
frame and prints the largest vertex difference to smplx for the same parameters (the test asserts 1e-4).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "blender_addon")]

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from rig_checks import evaluated_vertices  # noqa: E402
from test_rig_parity_smplx import key_random_frames, model, reference_vertices  # noqa: E402

from blender_addon.rig_builder import build_rig  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="rigstyle-parity-") as folder:
        for kind in ("flame", "smplx"):
            bpy.ops.wm.read_factory_settings(use_empty=True)
            rig, reference = model(kind, Path(folder) / kind)
            objects = build_rig(rig, kind)
            keyed = key_random_frames(objects, rig, (1, 5, 9))
            worst = 0.0
            for frame in (9, 1, 5):
                bpy.context.scene.frame_set(frame)
                expected = reference_vertices(reference, rig, keyed[frame])
                worst = max(worst, float(np.abs(evaluated_vertices(objects.mesh) - expected).max()))
            print(f"{kind:6s} max |blender - smplx| vertex difference {worst:.2e} (test bound 1e-4)")


if __name__ == "__main__":
    main()
