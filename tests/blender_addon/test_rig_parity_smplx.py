"""Rigs built in real Blender from official-format FLAME / SMPL-X files move exactly like the smplx
reference: keyframed random parameters, evaluated through Blender's depsgraph on several frames."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest
import smplx
import torch
from official_files import write_flame, write_smplx
from rig_checks import evaluated_vertices, key_params

import rigs
from blender_addon.rig_builder import RigObjects, build_rig
from blender_addon.sequences import import_sequence
from rigs.pose import pose_parts
from rigs.sequences import load_sequence, resample

pytestmark = pytest.mark.blender
TOLERANCE = 1e-4  # scene units, float32 through Blender


def reference_vertices(
    reference: torch.nn.Module, rig: rigs.Rig, params: dict[str, np.ndarray]
) -> np.ndarray:
    """smplx's vertices for the same parameters, the pose split into smplx's named parts."""
    inputs = {name: params["pose"][list(joints)].reshape(1, -1) for name, joints in pose_parts(rig).items()}
    inputs.update(
        betas=params["betas"][None], expression=params["expression"][None], transl=params["transl"][None]
    )
    with torch.no_grad():
        output = reference(**{k: torch.tensor(v, dtype=torch.float32) for k, v in inputs.items()})
    return output.vertices[0].double().numpy()


def model(kind: str, folder: Path) -> tuple[rigs.Rig, torch.nn.Module]:
    if kind == "flame":
        write_flame(folder, "chumpy", seed=5)  # ours reads the chumpy pickle as distributed ...
        path = write_flame(folder, "plain", seed=5, name="FLAME_NEUTRAL.pkl")  # ... smplx the plain one
        reference = smplx.FLAME(str(folder), gender="neutral", num_betas=300, num_expression_coeffs=100)
    else:
        path = write_smplx(folder, "npz", seed=6)
        reference = smplx.SMPLX(
            str(folder), gender="neutral", ext="npz", num_betas=300, num_expression_coeffs=100,
            use_pca=False, flat_hand_mean=True,
        )  # fmt: skip
        # smplx appends joints at fixed vertex ids of the full-size mesh; the small test mesh lacks them.
        reference.vertex_joint_selector.extra_joints_idxs = torch.zeros(0, dtype=torch.long)
    return rigs.load(path), reference


def key_random_frames(
    objects: RigObjects, rig: rigs.Rig, frames: tuple[int, ...], seed: int = 11
) -> dict[int, dict[str, np.ndarray]]:
    """Key random betas, expression, pose and translation on ``frames``; returns what was keyed."""
    rng = np.random.default_rng(seed)
    keyed = {}
    for frame in frames:
        keyed[frame] = {
            "betas": rng.normal(0.0, 1.0, rig.num_betas),
            "expression": rng.normal(0.0, 1.0, rig.num_expressions),
            "pose": rng.normal(0.0, 0.3, (rig.num_joints, 3)),
            "transl": rng.normal(0.0, 0.05, 3),
        }
        key_params(objects, rig, keyed[frame], frame)
    return keyed


@pytest.mark.parametrize("kind", ["flame", "smplx"])
def test_keyframed_rig_matches_smplx_on_every_frame(tmp_path: Path, kind: str) -> None:
    rig, reference = model(kind, tmp_path / kind)
    objects = build_rig(rig, kind)
    keyed = key_random_frames(objects, rig, (1, 5, 9))
    scene = bpy.context.scene
    for frame in (9, 1, 5):  # out of order: nothing may depend on the previous frame
        scene.frame_set(frame)
        expected = reference_vertices(reference, rig, keyed[frame])
        np.testing.assert_allclose(evaluated_vertices(objects.mesh), expected, atol=TOLERANCE)


def test_imported_amass_sequence_matches_smplx(tmp_path: Path) -> None:
    rig, reference = model("smplx", tmp_path / "smplx")
    objects = build_rig(rig, "smplx")
    rng = np.random.default_rng(12)
    frames = 9
    turn = np.linspace(0.0, 1.2, frames)[:, None] * rng.normal(0.0, 0.3, (1, 165))  # smooth motion
    np.savez(
        tmp_path / "take.npz", poses=turn, trans=rng.normal(0.0, 0.02, (frames, 3)).cumsum(0),
        betas=rng.normal(0.0, 1.0, 16), expression=rng.normal(0.0, 0.5, (frames, 10)),
        mocap_frame_rate=np.array(60.0),
    )  # fmt: skip
    sequence = load_sequence(tmp_path / "take.npz")
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    count = import_sequence(objects, sequence, frame_start=1, scene=scene)
    resampled = resample(sequence, 30.0)
    assert count == resampled.num_frames == 5
    for index in (0, 2, 4):
        scene.frame_set(1 + index)
        params = {
            "pose": resampled.pose[index],
            "transl": resampled.transl[index],
            "betas": np.pad(resampled.betas, (0, rig.num_betas - resampled.betas.shape[0])),
            "expression": np.pad(resampled.expression[index], (0, rig.num_expressions - 10)),
        }
        expected = reference_vertices(reference, rig, params)
        np.testing.assert_allclose(evaluated_vertices(objects.mesh), expected, atol=TOLERANCE)
