"""The demo head at each emotion of ``rigs.expression`` (intensity 1), beside its neutral face: the picture in
docs/expressions.md. Renders with pyrender (offscreen, EGL), no Blender.

    PYOPENGL_PLATFORM=egl .venv/bin/python examples/expression_sheet.py [--out docs/images/expressions.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import rigs
from neural_backend.images.color import srgb_from_linear
from neural_backend.refine.param_render import front_camera, render_passes
from rigs.expression import EMOTIONS, emotion_offset

SIZE = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images/expressions.png"))
    args = parser.parse_args()
    head = rigs.demo_head()
    intrinsics, extrinsics = front_camera(head, SIZE)
    rest = {"expression": np.zeros(head.num_expressions), "pose": np.zeros((head.num_joints, 3))}
    cells = [("neutral", rest)] + [(name, emotion_offset(head, name, 1.0).apply(rest)) for name in EMOTIONS]
    columns = 4
    rows = -(-len(cells) // columns)
    sheet = Image.new("RGB", (SIZE * columns, (SIZE + 24) * rows), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (label, params) in enumerate(cells):
        passes = render_passes(head, params, intrinsics, extrinsics, (SIZE, SIZE), "sheet", index)
        rgb = np.clip(srgb_from_linear(passes.beauty), 0.0, 1.0)
        left, top = (index % columns) * SIZE, (index // columns) * (SIZE + 24)
        sheet.paste(Image.fromarray(np.rint(rgb * 255).astype(np.uint8)), (left, top + 24))
        draw.text((left + 6, top + 6), label, fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out} ({len(cells)} faces)")


if __name__ == "__main__":
    main()
