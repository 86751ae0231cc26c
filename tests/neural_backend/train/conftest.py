"""Tiny teachers, wheels and face folders for the ``rigstyle train`` tests (all written per test)."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from neural_backend.train.teacher import DCGAN_WHEEL_MEMBER, DCGANGenerator

TEACHER_NZ = 8
TEACHER_NGF = 4
# A generator and discriminator small enough for a CPU step in milliseconds.
TINY_ARCH = ["--w-dim", "32", "--mapping-layers", "2", "--channel-base", "256", "--channel-max", "16"]


def tiny_dcgan_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A DCGAN-tutorial generator's state (nz 8, ngf 4) with BatchNorm statistics that are not trivial."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = DCGANGenerator(nz=TEACHER_NZ, ngf=TEACHER_NGF)
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return network.state_dict()


@pytest.fixture
def dcgan_state() -> dict[str, torch.Tensor]:
    return tiny_dcgan_state()


@pytest.fixture
def teacher_file(tmp_path: Path) -> Path:
    """A teacher in the layout of the real ``gan_face_generate/weights.tar``: {'netG_state_dict': state}."""
    path = tmp_path / "weights.tar"
    torch.save({"netG_state_dict": tiny_dcgan_state()}, path)
    return path


@pytest.fixture
def teacher_wheel(tmp_path: Path, teacher_file: Path) -> Path:
    """A wheel-shaped zip holding ``teacher_file`` as ``gan_face_generate/weights.tar``."""
    path = tmp_path / "gan_face_generate-1.1.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("gan_face_generate/__init__.py", "")
        wheel.write(teacher_file, DCGAN_WHEEL_MEMBER)
        wheel.writestr(
            "gan_face_generate-1.1.1.dist-info/METADATA", "Name: gan-face-generate\nVersion: 1.1.1\n"
        )
    return path


def write_faces(folder: Path, count: int, size: int, seed: int = 0) -> list[Path]:
    """``count`` random smooth RGB PNGs of ``size`` x ``size`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((size, size), Image.Resampling.BILINEAR)
        path = folder / f"face-{index:03d}.png"
        image.save(path)
        paths.append(path)
    return paths


@pytest.fixture
def faces() -> Callable[..., list[Path]]:
    return write_faces


@pytest.fixture
def tiny_arch() -> list[str]:
    """``rigstyle train`` options for a tiny fresh G and D."""
    return list(TINY_ARCH)
