"""Contact sheet of a shot folder: a column per frame; rows render, region mask, GAN output, composite."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

ROWS = (  # (label, path inside the shot folder with {frame:04d})
    ("render", "passes/beauty_{frame:04d}.png"),
    ("region mask", "passes/region_{frame:04d}.png"),
    ("GAN output", "gan/frame_{frame:04d}.png"),
    ("composite", "composite/frame_{frame:04d}.png"),
)
CELL = 160  # pixels per cell side
LABEL_WIDTH = 110
MAX_COLUMNS = 8


def pick_columns(frames: Sequence[int], count: int = MAX_COLUMNS) -> list[int]:
    """At most ``count`` frames, evenly spread and including the first and the last."""
    frames = sorted(frames)
    if len(frames) <= count:
        return frames
    step = (len(frames) - 1) / (count - 1)
    return [frames[round(i * step)] for i in range(count)]


def write_contact_sheet(shot_dir: Path, frames: Sequence[int], path: Path) -> None:
    """Write the sheet to ``path``.

    Raises:
        FileNotFoundError: naming the first missing image.
    """
    columns = pick_columns(frames)
    sheet = Image.new("RGB", (LABEL_WIDTH + CELL * len(columns), CELL * len(ROWS) + 20), "white")
    draw = ImageDraw.Draw(sheet)
    for column, frame in enumerate(columns):
        draw.text((LABEL_WIDTH + column * CELL + 4, 4), f"frame {frame}", fill="black")
    for row, (label, pattern) in enumerate(ROWS):
        top = 20 + row * CELL
        draw.text((6, top + CELL // 2), label, fill="black")
        for column, frame in enumerate(columns):
            image_path = shot_dir / pattern.format(frame=frame)
            with Image.open(image_path) as image:
                cell = _fit(image.convert("RGB"), CELL - 4, nearest=row == 1)
                left = LABEL_WIDTH + column * CELL + (CELL - cell.width) // 2
                sheet.paste(cell, (left, top + (CELL - cell.height) // 2))
    sheet.save(path)


def _fit(image: Image.Image, side: int, nearest: bool) -> Image.Image:
    """Scale up or down so the longer side is ``side``; label images keep hard edges."""
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.NEAREST if nearest else Image.Resampling.BICUBIC)
