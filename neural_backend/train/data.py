"""Where training images come from: a teacher generator (paired z -> image) or a folder of aligned faces.

Both give a :class:`Batch` per step from the trainer's own ``torch.Generator``, so a resumed run draws the
same batches as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .teacher import Teacher

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class DataError(ValueError):
    """Training data that cannot be used; the message is one line and names the file or folder."""


@dataclass(frozen=True)
class Batch:
    """One step's real images (N, 3, R, R) in [-1, 1], and the z that made them when a teacher did."""

    images: torch.Tensor
    z: torch.Tensor | None = None
    features: dict[int, torch.Tensor] | None = None  # the teacher's hidden activations by resolution


class TeacherData:
    """Endless paired data: fresh z ~ N(0, I) each step and the teacher's image for each z."""

    def __init__(self, teacher: Teacher, device: torch.device):
        teacher.network.to(device)
        self.teacher = teacher
        self.device = device
        self.resolution = teacher.resolution
        self.z_dim = teacher.z_dim

    def batch(self, size: int, rng: torch.Generator) -> Batch:
        z = torch.randn([size, self.z_dim], generator=rng).to(self.device)
        images, features = self.teacher.with_features(z)
        return Batch(images, z, features)

    def describe(self) -> str:
        return f"teacher {self.teacher.kind} {self.teacher.path}"


class FolderData:
    """Aligned face images of one size, all held in memory (face sets for fine-tuning are small)."""

    def __init__(self, folder: Path, resolution: int | None, device: torch.device, xflip: bool = True):
        self.folder = folder
        self.device = device
        self.xflip = xflip
        self.images = load_image_folder(folder, resolution)
        self.resolution = self.images.shape[-1]

    def batch(self, size: int, rng: torch.Generator) -> Batch:
        index = torch.randint(0, self.images.shape[0], [size], generator=rng)
        images = self.images[index]
        if self.xflip:
            flip = torch.rand([size], generator=rng) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(3), images)
        return Batch(images.to(self.device))

    def describe(self) -> str:
        return f"{self.images.shape[0]} images in {self.folder}"


def load_image_folder(folder: Path, resolution: int | None) -> torch.Tensor:
    """Every image in ``folder`` (sorted by name) as (N, 3, R, R) float32 in [-1, 1].

    Raises:
        DataError: no such folder, no images, an unreadable image, an image that is not R x R (R from
            ``resolution`` or else the first image), or an R that is not a power of two >= 8.
    """
    if not folder.is_dir():
        raise DataError(f"{folder}: no such data folder")
    files = sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")  # macOS ._x.png
    )
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in the data folder")
    images = []
    for path in files:
        try:
            with Image.open(path) as image:
                rgb = np.asarray(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
            raise DataError(f"{path}: not a readable image ({error})") from None
        height, width = rgb.shape[:2]
        if resolution is None:
            resolution = check_resolution(width, f"{path}: image width")
        if (width, height) != (resolution, resolution):
            raise DataError(
                f"{path}: image is {width}x{height}, expected {resolution}x{resolution} like the others "
                "(align and crop the face set to one square size first)"
            )
        images.append(torch.from_numpy(rgb.copy()))
    stacked = torch.stack(images).permute(0, 3, 1, 2).float()
    return stacked / 127.5 - 1.0


def check_resolution(value: int, what: str = "resolution") -> int:
    """``value`` if it is a power of two >= 8, else a :class:`DataError` naming ``what``."""
    if value < 8 or value & (value - 1):
        raise DataError(
            f"{what} {value} is not a power of two >= 8 (StyleGAN2 resolutions are 8, 16, ... 1024)"
        )
    return value
