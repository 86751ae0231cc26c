"""rigstyle checkpoint calibrate: the alignment search recovers a known framing; the CLI stores it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from neural_backend.checkpoints.io import read_checkpoint, save_checkpoint
from neural_backend.images.color import srgb_from_linear
from neural_backend.protocol.passes import FramePasses
from neural_backend.refine.alignment import warp_to_crop
from neural_backend.refine.calibrate import alignment_error, calibrate, demo_frames
from neural_backend.refine.framing import FFHQ, Alignment, crop_matrix
from neural_backend.stylegan2 import Generator, SynthesisNetwork
from tests.cli_helpers import run_rigstyle

KNOWN = Alignment("known", 0.85, (0.03, -0.05))


class FramedSynthesis(SynthesisNetwork):
    """A synthesis network that always draws one fixed image: a generator whose framing is known exactly."""

    image: torch.Tensor

    def forward(self, ws: torch.Tensor, **kwargs: object) -> torch.Tensor:  # type: ignore[override]
        return self.image.expand(ws.shape[0], -1, -1, -1) + 0.0 * ws.sum()


def framed_generator(frame: FramePasses, alignment: Alignment, size: int = 64) -> Generator:
    """A generator whose only image is ``frame`` cropped with ``alignment`` (as the refiner crops)."""
    generator = Generator(
        z_dim=8, w_dim=8, img_resolution=size, mapping_layers=1, channel_base=64, channel_max=4
    )
    beauty = torch.from_numpy(frame.beauty).permute(2, 0, 1)[None]
    matrix = crop_matrix(alignment.quad(frame.landmarks2d), size)
    image = warp_to_crop(srgb_from_linear(beauty.clamp(0, 1)) * 2 - 1, matrix, size, True)
    generator.synthesis.__class__ = FramedSynthesis
    generator.synthesis.register_buffer("image", image.float())
    return generator.eval()


@pytest.fixture(scope="module")
def frames() -> list[FramePasses]:
    return demo_frames(2)


def test_calibrate_recovers_a_known_framing(frames: list[FramePasses]) -> None:
    generator = framed_generator(frames[0], KNOWN)
    found = calibrate(generator, frames[:1], steps=1, name="found")
    assert found.alignment.name == "found"
    assert alignment_error(found.alignment, KNOWN) < 0.02, found.alignment
    assert found.loss < 1e-3 < found.ffhq_loss
    assert found.loss == min(c.loss for c in found.candidates)


def test_calibrate_finds_ffhq_for_an_ffhq_framed_generator(frames: list[FramePasses]) -> None:
    found = calibrate(framed_generator(frames[1], FFHQ), frames[1:2], steps=1)
    assert alignment_error(found.alignment, FFHQ) < 0.02, found.alignment


def test_cli_writes_the_alignment_into_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "g.safetensors"
    torch.manual_seed(0)
    save_checkpoint(
        Generator(z_dim=8, w_dim=8, img_resolution=16, mapping_layers=1, channel_base=64, channel_max=4), path
    )
    assert read_checkpoint(path).alignment == FFHQ
    result = run_rigstyle(
        "checkpoint", "calibrate", str(path), "--frames", "1", "--steps", "1", "--name", "mine"
    )
    assert result.returncode == 0, result.stderr
    assert "best: mine" in result.stdout and "wrote the alignment into" in result.stdout
    stored = read_checkpoint(path).alignment
    assert stored.name == "mine" and f"x{stored.scale:.3f}" in result.stdout


def test_cli_refuses_to_write_into_a_builtin_without_out() -> None:
    result = run_rigstyle("checkpoint", "calibrate", "builtin-untrained", "--frames", "1", "--steps", "1")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--out" in result.stderr
