"""Per-frame live-rig update for an SMPL-X-sized rig in real Blender (bpy), against the bare numpy product.

    .venv/bin/python benchmarks/bench_blender_correctives.py [--frames 60]

Writes a synthetic SMPL-X file of official size and format (10,475 vertices, 55 joints, 300 shape + 100
expression components, (486, 31425) posedirs), loads it with ``rigs.load``, keys a different random pose,
expression and shape on every frame and prints:
- build: seconds to build the rig in Blender from the loaded file;
- smplx: median ms of one ``smplx.SMPLX`` forward pass on the same file (the reference, same run);
- update: median ms of ``live.update_rig`` (read the evaluated pose and keys, pose feature, correctives
  product, write the corrective key, re-regress the joints) for a frame whose parameters changed;
- matmul: median ms of ``feature @ posedirs`` alone (float32, the same arrays), measured in the same run;
- frame_set: median ms of a whole ``scene.frame_set`` (Blender's evaluation of the frame included);
- import: seconds to key a 1,000-frame sequence (``sequences.import_sequence``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import bpy
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "tests"))

from official_files import write_full_size_smplx  # noqa: E402

import rigs  # noqa: E402
from blender_addon import live  # noqa: E402
from blender_addon.rig_builder import build_rig  # noqa: E402
from blender_addon.sequences import import_sequence  # noqa: E402
from rigs.sequences import ParamSequence  # noqa: E402


def smplx_forward_ms(folder: Path, repeats: int = 20) -> float:
    """Median time of one smplx.SMPLX forward pass (CPU, float32) with random parameters."""
    import smplx
    import torch

    model = smplx.SMPLX(str(folder), gender="neutral", ext="npz", num_betas=300, num_expression_coeffs=100)
    model.vertex_joint_selector.extra_joints_idxs = torch.zeros(0, dtype=torch.long)
    samples = []
    with torch.no_grad():
        for _ in range(repeats):
            body = torch.randn(1, 63) * 0.2
            started = time.perf_counter()
            model(body_pose=body, betas=torch.randn(1, 300), expression=torch.randn(1, 100))
            samples.append(time.perf_counter() - started)
    return median_ms(samples)


def median_ms(samples: list[float]) -> float:
    return float(np.median(samples) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    with tempfile.TemporaryDirectory(prefix="rigstyle-bench-") as workdir:  # ~116 MB model file
        rig = rigs.load(write_full_size_smplx(Path(workdir)))
        smplx_ms = smplx_forward_ms(Path(workdir))
    scene = bpy.context.scene

    started = time.perf_counter()
    objects = build_rig(rig, "SMPL-X sized")
    build_s = time.perf_counter() - started

    rng = np.random.default_rng(0)
    frames = args.frames
    sequence = ParamSequence(
        fps=scene.render.fps / scene.render.fps_base,
        pose=rng.normal(0.0, 0.2, (frames, rig.num_joints, 3)),
        transl=rng.normal(0.0, 0.05, (frames, 3)),
        expression=rng.normal(0.0, 1.0, (frames, rig.num_expressions)),
        betas=rng.normal(0.0, 1.0, (frames, rig.num_betas)),
    )
    import_sequence(objects, sequence, frame_start=1)

    update, frame_set = [], []
    for frame in range(1, frames + 1):
        started = time.perf_counter()
        scene.frame_set(frame)
        frame_set.append(time.perf_counter() - started)
        # Re-run the update the handler just did, from scratch, on this frame's evaluated depsgraph.
        state = live.live_rig(objects.mesh.data)
        state.last_feature, state.last_coeffs = None, None
        depsgraph = bpy.context.evaluated_depsgraph_get()
        started = time.perf_counter()
        live.update_rig(objects.mesh, depsgraph)
        update.append(time.perf_counter() - started)

    state = live.live_rig(objects.mesh.data)
    features = rng.normal(0.0, 0.1, (frames, state.posedirs.shape[0])).astype(np.float32)
    matmul = []
    for feature in features:
        started = time.perf_counter()
        _ = feature @ state.posedirs
        matmul.append(time.perf_counter() - started)

    long = ParamSequence(
        fps=30.0,
        pose=rng.normal(0.0, 0.2, (1000, rig.num_joints, 3)),
        transl=rng.normal(0.0, 0.05, (1000, 3)),
        expression=rng.normal(0.0, 1.0, (1000, rig.num_expressions)),
        betas=rng.normal(0.0, 1.0, rig.num_betas),
    )
    scene.render.fps, scene.render.fps_base = 30, 1.0
    started = time.perf_counter()
    import_sequence(objects, long, frame_start=1)
    import_s = time.perf_counter() - started

    print(f"rig: {rig.num_vertices} vertices, {rig.num_joints} joints, posedirs {state.posedirs.shape}")
    print(f"build      {build_s:8.2f} s")
    print(f"update     {median_ms(update):8.2f} ms median per frame (live.update_rig)")
    print(f"matmul     {median_ms(matmul):8.2f} ms median (feature @ posedirs alone)")
    print(f"ratio      {median_ms(update) / median_ms(matmul):8.2f} x update / matmul")
    print(f"smplx      {smplx_ms:8.2f} ms median per forward pass (reference, same file)")
    print(f"ratio      {median_ms(update) / smplx_ms:8.2f} x update / smplx forward")
    print(f"frame_set  {median_ms(frame_set):8.2f} ms median (whole frame evaluation incl. the handler)")
    print(f"import     {import_s:8.2f} s for 1,000 frames x {rig.num_joints} joints + 400 keys")


if __name__ == "__main__":
    main()
