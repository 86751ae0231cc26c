"""Latent directions from the rig: are they the controls', and what do they cost a shot's stability?

1. Measures the directions of ``--controls`` on the demo head with the generator of ``--checkpoint``
   (default: the shipped face prior): renders at three head yaws, inverted jointly; prints each direction's
   consistency (mean cosine between the yaws' latent differences) and the seconds it took.
2. Held out: the rig at another yaw (0.07 rad) without and with each control. The render without is
   inverted alone (W0); the direction is added (W0 + d) and the generator's change on the skin compared with
   the rig's change there (aligned crops, both sRGB): ``gain`` = the share of the rig's change reproduced
   along it (1: all of it), ``corr`` = their cosine, ``outside`` = mean |change| off the skin (what else the
   edit alters). For contrast, the same pair inverted as a two-frame shot with the shot's own weights.
3. A talking take of the demo head (jaw and visemes, ``--frames``), refined as one shot without and with the
   first control's direction on a ramp 0 -> 1 over the take; prints per variant the mean latent drift
   (frame-to-frame W+ change), the GAN flicker (mean |change| of the generator's output between consecutive
   frames, over its aligned crop) and the skin PSNR of the generator against the render.
4. Writes a picture (``--out``): the last frame's generator output at direction weights 0, 0.5, 1 and 1.5 per
   control, beside the rig's render with and without the control.

The last line is ``direction_consistency=… held_out_gain=… held_out_corr=… shot_gain=… drift_ratio=…
flicker_ratio=…`` (means over the controls; ratios: with the edit / without).

Usage: ``PYOPENGL_PLATFORM=egl .venv/bin/python benchmarks/latent_directions.py [--frames 24]
[--controls happiness,surprise,AU26] [--out docs/images/directions.png]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

import rigs  # noqa: E402
from neural_backend.checkpoints.io import read_checkpoint  # noqa: E402
from neural_backend.images.color import srgb_from_linear  # noqa: E402
from neural_backend.protocol.passes import FramePasses, RefinedFrame  # noqa: E402
from neural_backend.refine.directions import (  # noqa: E402
    RigDirections,
    control_offset,
    measure_directions,
    rest_params,
)
from neural_backend.refine.inversion import synthesize  # noqa: E402
from neural_backend.refine.latent_edit import LatentEdit  # noqa: E402
from neural_backend.refine.param_render import front_camera, render_passes  # noqa: E402
from neural_backend.refine.refiner import RefineConfig, Refiner, ShotState  # noqa: E402
from rigs.demo.talking import talking_take  # noqa: E402

HELD_OUT_YAW = 0.07
SIZE = 256
CELL = 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="builtin-face-prior")
    parser.add_argument("--controls", default="happiness,surprise,AU26")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/images/directions.png"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    controls = args.controls.split(",")
    checkpoint = read_checkpoint(args.checkpoint)
    refiner = Refiner(checkpoint.generator, RefineConfig(), alignment=checkpoint.alignment)
    head = rigs.demo_head()

    start = time.perf_counter()
    directions = measure_directions(refiner, head, controls)
    seconds = time.perf_counter() - start
    print(f"{checkpoint.name}: {len(controls)} directions measured in {seconds:.1f} s")
    print(
        f"{'control':<11} {'consistency':>11} {'norm':>6} {'gain':>6} {'corr':>6} {'outside':>7}"
        f" {'shot gain':>9} {'shot corr':>9}"
    )
    rows = []
    intrinsics, extrinsics = front_camera(head, SIZE)
    for control in controls:
        row = held_out(refiner, head, directions, control, intrinsics, extrinsics)
        rows.append(row)
        consistency = directions.consistency[controls.index(control)]
        norm = float(directions.vector(control).norm())
        print(
            f"{control:<11} {consistency:>11.3f} {norm:>6.2f} {row['gain']:>6.3f} {row['corr']:>6.3f}"
            f" {row['outside']:>7.4f} {row['shot_gain']:>9.3f} {row['shot_corr']:>9.3f}"
        )

    take = talking_take(head, frames=args.frames, fps=24.0)
    frames = []
    for index in range(args.frames):
        params = {"pose": take.pose[index], "expression": take.expression[index]}
        frames.append(render_passes(head, params, intrinsics, extrinsics, (SIZE, SIZE), "talk", index + 1))
    ramp = np.linspace(0.0, 1.0, args.frames)[:, None]
    edit = LatentEdit.smoothed(directions.vectors[:1], ramp)
    print(f"\ntalking take, {args.frames} frames; edit: {controls[0]} ramped 0 -> 1")
    print(f"{'variant':<10} {'latent drift':>12} {'GAN flicker':>11} {'skin PSNR':>9} {'s/frame':>7}")
    results = {}
    for name, variant in (("plain", None), ("edited", edit)):
        outputs: list[tuple[np.ndarray, np.ndarray]] = []

        def keep(frame: RefinedFrame, outputs: list[tuple[np.ndarray, np.ndarray]] = outputs) -> None:
            outputs.append((frame.gan, frame.image))

        torch.manual_seed(0)
        result = refiner.refine_shot(frames, ShotState(), on_frame=keep, edit=variant)
        flicker = gan_flicker([g for g, _ in outputs])
        results[name] = (result.metrics["latent_drift"], flicker)
        print(
            f"{name:<10} {result.metrics['latent_drift']:>12.4f} {flicker:>11.4f} "
            f"{result.metrics['skin_psnr']:>9.2f} {result.metrics['seconds_per_frame']:>7.2f}"
        )
    write_sheet(args.out, refiner, head, directions, controls, frames[-1])
    drift_ratio = results["edited"][0] / results["plain"][0]
    flicker_ratio = results["edited"][1] / results["plain"][1]
    print(f"wrote {args.out}")
    print(
        f"direction_consistency={np.mean(directions.consistency):.3f} "
        f"held_out_gain={np.mean([r['gain'] for r in rows]):.3f} "
        f"held_out_corr={np.mean([r['corr'] for r in rows]):.3f} "
        f"shot_gain={np.mean([r['shot_gain'] for r in rows]):.3f} "
        f"drift_ratio={drift_ratio:.3f} flicker_ratio={flicker_ratio:.3f}"
    )


def held_out(
    refiner: Refiner,
    head: rigs.Rig,
    directions: RigDirections,
    control: str,
    intrinsics: np.ndarray,
    extrinsics: np.ndarray,
) -> dict[str, float]:
    """How the direction reproduces the rig's change at a yaw it was not measured at (see the docstring)."""
    size = (SIZE, SIZE)
    base = render_passes(head, rest_params(head, HELD_OUT_YAW), intrinsics, extrinsics, size, "h", 0)
    params = control_offset(head, control)
    params["pose"][0, 1] = HELD_OUT_YAW
    moved = render_passes(head, params, intrinsics, extrinsics, size, "h", 2)
    crop0, crop1 = refiner.crop(base), refiner.crop(moved)
    skin = crop0.skin * crop1.skin
    rig_change = (crop1.target - crop0.target) * skin
    alone = refiner.invert_frames([base])
    pair = refiner.invert_frames([base, moved])  # as a shot would fit the two frames
    with torch.no_grad():
        start = synthesize(refiner.generator, alone, 1)
        edited = synthesize(refiner.generator, alone + directions.vector(control), 1) - start
        fitted = synthesize(refiner.generator, pair, 1)
    shot_change = (fitted[1:] - fitted[:1]) * skin

    def gain(change: torch.Tensor) -> float:
        return float((change * rig_change).sum() / (rig_change * rig_change).sum())

    def corr(change: torch.Tensor) -> float:
        return float((change * rig_change).sum() / (change.norm() * rig_change.norm()).clamp_min(1e-12))

    off_skin = 1 - crop0.skin
    return {
        "gain": gain(edited * skin),
        "corr": corr(edited * skin),
        "outside": float((edited.abs() * off_skin).sum() / off_skin.sum() / 2),  # [-1, 1] -> [0, 1] units
        "shot_gain": gain(shot_change),
        "shot_corr": corr(shot_change),
    }


def gan_flicker(gans: list[np.ndarray]) -> float:
    """Mean |change| between consecutive generator outputs (sRGB 0..1), over the whole aligned crop."""
    changes = [float(np.abs(gans[i] - gans[i - 1]).mean()) for i in range(1, len(gans))]
    return float(np.mean(changes))


def write_sheet(
    path: Path,
    refiner: Refiner,
    head: rigs.Rig,
    directions: RigDirections,
    controls: list[str],
    frame: FramePasses,
) -> None:
    """Per control: the rig without and with it, then the generator at weights 0, 0.5, 1, 1.5."""
    intrinsics, extrinsics = front_camera(head, SIZE)
    latent = refiner.invert_frames([frame])
    weights = (0.0, 0.5, 1.0, 1.5)
    labels = ["rig", "rig + control", *[f"GAN w={w:g}" for w in weights]]
    sheet = Image.new("RGB", (CELL * len(labels), (CELL + 16) * len(controls) + 16), "white")
    draw = ImageDraw.Draw(sheet)
    for column, label in enumerate(labels):
        draw.text((column * CELL + 4, 2), label, fill="black")
    for row, control in enumerate(controls):
        top = 16 + row * (CELL + 16)
        draw.text((4, top + 2), control, fill="black")
        renders = [
            render_passes(head, rest_params(head), intrinsics, extrinsics, (SIZE, SIZE), "s", 0).beauty,
            render_passes(
                head, control_offset(head, control), intrinsics, extrinsics, (SIZE, SIZE), "s", 0
            ).beauty,
        ]
        cells = [to_image(srgb_from_linear(np.clip(r, 0, 1))) for r in renders]
        with torch.no_grad():
            for weight in weights:
                image = synthesize(refiner.generator, latent + weight * directions.vector(control), 1)[0]
                cells.append(to_image(((image.permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1)))
        for column, cell in enumerate(cells):
            sheet.paste(cell, (column * CELL, top + 16))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def to_image(rgb: np.ndarray) -> Image.Image:
    image = Image.fromarray(np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    return image.resize((CELL, CELL), Image.Resampling.LANCZOS)


if __name__ == "__main__":
    main()
