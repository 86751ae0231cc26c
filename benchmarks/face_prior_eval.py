"""How close a generator is to the DCGAN teacher it was distilled from (the built-in face prior's figures).

On held-out z (a stream `rigstyle train` never draws from): paired PSNR against the teacher's image for
the same z; the sliced Wasserstein distance (SWD, Laplacian-pyramid patches, x1e3) to the teacher's
images, next to two baselines measured in the same run: teacher vs teacher on other z (the floor) and the
untrained generator vs teacher (the ceiling); and, when OpenCV (`opencv-python-headless<5`, which ships
Haar cascades) is importable, how often an independent face detector (OpenCV's frontal-face Haar cascade,
images upscaled to 128 px) finds a face in the teacher's samples, the prior's and the untrained one's.
Writes a grid of 64 samples (truncation --truncation) beside 64 teacher samples with --grid.

Usage: ``.venv/bin/python benchmarks/face_prior_eval.py
--teacher training/wheels/gan_face_generate-1.1.1-py3-none-any.whl
[--checkpoint builtin-face-prior] [--samples 1000] [--grid docs/images/face-prior-samples.png]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from neural_backend.checkpoints.io import read_checkpoint  # noqa: E402
from neural_backend.checkpoints.names import UNTRAINED_NAME  # noqa: E402
from neural_backend.images.png import write_png  # noqa: E402
from neural_backend.train.loop import HELD_OUT_SEED, tile_images  # noqa: E402
from neural_backend.train.metrics import paired_psnr, sliced_wasserstein  # noqa: E402
from neural_backend.train.teacher import load_teacher  # noqa: E402

OTHER_SEED = HELD_OUT_SEED + 1  # teacher-vs-teacher baseline


def generate(network: torch.nn.Module, z: torch.Tensor, **kwargs: object) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([network(chunk, **kwargs) for chunk in z.split(250)]).clamp(-1, 1)


def detection_rate(images: torch.Tensor) -> float | None:
    try:
        import cv2
    except ImportError:
        return None
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    up = F.interpolate(images, size=128, mode="bicubic", align_corners=False).clamp(-1, 1)
    pixels = ((up + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    found = 0
    for rgb in pixels:
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        faces = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=4, minSize=(40, 40))
        found += len(faces) > 0
    return found / len(pixels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="gan-face-generate wheel or weights.tar")
    parser.add_argument("--checkpoint", default="builtin-face-prior", help="generator to measure")
    parser.add_argument("--samples", type=int, default=1000, help="held-out z")
    parser.add_argument("--truncation", type=float, default=0.7, help="truncation of the grid's samples")
    parser.add_argument("--grid", type=Path, help="write 64 samples beside 64 teacher samples here")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    teacher = load_teacher("dcgan", args.teacher)
    checkpoint = read_checkpoint(args.checkpoint)
    generator = checkpoint.generator
    untrained = read_checkpoint(UNTRAINED_NAME).generator
    z = torch.randn([args.samples, teacher.z_dim], generator=torch.Generator().manual_seed(HELD_OUT_SEED))
    z_other = torch.randn([args.samples, teacher.z_dim], generator=torch.Generator().manual_seed(OTHER_SEED))
    real = generate(teacher.network, z)
    real_other = generate(teacher.network, z_other)
    fake = generate(generator, z)
    fake_truncated = generate(generator, z, truncation_psi=args.truncation)
    z_untrained = torch.randn(
        [args.samples, untrained.z_dim], generator=torch.Generator().manual_seed(OTHER_SEED)
    )
    noise = generate(untrained, z_untrained)
    psnr = paired_psnr(fake, real)
    print(f"generator: {checkpoint.name} ({sum(p.numel() for p in generator.parameters()):,} parameters)")
    print(f"held-out z: {args.samples}")
    print(f"paired PSNR vs teacher: mean {psnr.mean():.2f} dB, median {psnr.median():.2f} dB")
    rows = [
        ("teacher vs teacher (other z)", real_other),
        (f"{checkpoint.name} psi=1", fake),
        (f"{checkpoint.name} psi={args.truncation}", fake_truncated),
        ("builtin-untrained", noise),
    ]
    print(f"{'SWD x1e3 to the teacher':34s} {'levels 64/32/16':>22s} {'mean':>7s}")
    swd = {}
    for label, images in rows:
        levels = sliced_wasserstein(images, real)
        swd[label] = float(np.mean(levels))
        print(f"{label:34s} {' '.join(f'{v:6.1f}' for v in levels):>22s} {swd[label]:7.1f}")
    floor, ceiling = swd[rows[0][0]], swd[rows[3][0]]
    print(
        f"swd_ratio={(swd[rows[1][0]] - floor) / (ceiling - floor):.3f}  "
        "(0 = as close as the teacher to itself, 1 = untrained)"
    )
    rates = {label: detection_rate(images) for label, images in [("teacher", real), *rows[1:]]}
    if rates["teacher"] is None:
        print("face detection: skipped (pip install 'opencv-python-headless<5' to measure)")
    else:
        for label, rate in rates.items():
            print(f"faces found (OpenCV Haar): {label:30s} {rate:6.1%}")
        print(
            f"detection_ratio={rates[rows[1][0]] / max(rates['teacher'], 1e-9):.3f}  (prior psi=1 / teacher)"
        )
    if args.grid is not None:
        left, right = tile_images(fake_truncated[:64], 8), tile_images(real[:64], 8)
        gap = np.ones((left.shape[0], 8, 3), dtype=np.float32)
        write_png(args.grid, np.concatenate([left, gap, right], axis=1))
        print(f"wrote {args.grid} (left: {checkpoint.name} psi={args.truncation}; right: teacher, same z)")


if __name__ == "__main__":
    main()
