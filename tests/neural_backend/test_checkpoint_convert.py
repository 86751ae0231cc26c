"""``rigstyle checkpoint convert|inspect`` on real files, and the package-level Python API.

The networks have rosinality's real channel layout (512 channels up to 32x32) at 8x8, so that every format
can hold them: NVlabs pickle -> rosinality .pt -> RigStyle .safetensors must draw the same image.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from cli_helpers import run_rigstyle
from nvlabs_files import write_nvlabs_pkl

import neural_backend
from neural_backend.checkpoints.io import save_checkpoint
from neural_backend.stylegan2 import Discriminator, Generator


def _rigstyle(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_rigstyle("checkpoint", *args)


@pytest.fixture(scope="module")
def networks() -> tuple[Generator, Discriminator]:
    torch.manual_seed(11)
    generator = Generator(z_dim=64, w_dim=64, img_resolution=8, mapping_layers=2, num_fp16_res=2).eval()
    discriminator = Discriminator(img_resolution=8, num_fp16_res=2).eval()
    with torch.no_grad():  # make noise and w_avg matter
        for name, param in generator.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.3)
        generator.mapping.w_avg.normal_()
    return generator, discriminator


@pytest.fixture(scope="module")
def nvlabs_pkl(tmp_path_factory: pytest.TempPathFactory, networks: tuple[Generator, Discriminator]) -> Path:
    generator, discriminator = networks
    return write_nvlabs_pkl(
        tmp_path_factory.mktemp("nv") / "network-snapshot-000100.pkl", generator, discriminator
    )


def _images(generator: Generator) -> torch.Tensor:
    z = torch.randn(3, generator.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        return generator(z, truncation_psi=0.7, noise_mode="const")


def _scores(discriminator: Discriminator) -> torch.Tensor:
    images = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        return discriminator(images)


def test_nvlabs_to_rosinality_to_rigstyle_draws_the_same_image(
    tmp_path: Path, nvlabs_pkl: Path, networks: tuple[Generator, Discriminator]
) -> None:
    generator, discriminator = networks
    pt, ours = tmp_path / "ffhq.pt", tmp_path / "ffhq.safetensors"
    first = _rigstyle("convert", nvlabs_pkl, pt)
    assert first.returncode == 0, first.stderr
    assert (
        f"wrote {pt} (rosinality, generator + discriminator) from {nvlabs_pkl} (nvlabs-pkl)" in first.stdout
    )
    second = _rigstyle("convert", pt, ours)
    assert second.returncode == 0, second.stderr
    assert (
        "(rigstyle, generator + discriminator) from" in second.stdout and "(rosinality-pt)" in second.stdout
    )

    expected_images, expected_scores = _images(generator), _scores(discriminator)
    for path in (nvlabs_pkl, pt, ours):
        assert torch.equal(_images(neural_backend.load_generator(path)), expected_images), path
        assert torch.equal(_scores(neural_backend.load_discriminator(path)), expected_scores), path
    loaded = neural_backend.load_generator(ours)
    assert loaded.init_kwargs == generator.init_kwargs  # conv_clamp / num_fp16_res survive the .pt


def test_inspect_a_rosinality_file(
    tmp_path: Path, nvlabs_pkl: Path, networks: tuple[Generator, Discriminator]
) -> None:
    pt = tmp_path / "g.pt"
    assert _rigstyle("convert", nvlabs_pkl, pt).returncode == 0
    result = _rigstyle("inspect", pt)
    assert result.returncode == 0, result.stderr
    generator = networks[0]
    params = sum(p.numel() for p in generator.parameters())
    for line in (
        "kind:           rosinality-pt",
        "resolution:     8",
        "mapping depth:  2",
        f"num_ws:         {generator.num_ws}",
        f"parameters:     {params:,}",
        "discriminator:  yes (resnet,",
    ):
        assert line in result.stdout, result.stdout


def test_convert_never_overwrites_or_leaves_half_files(tmp_path: Path, nvlabs_pkl: Path) -> None:
    target = tmp_path / "out.safetensors"
    target.write_bytes(b"precious")
    refused = _rigstyle("convert", nvlabs_pkl, target)
    assert refused.returncode == 2 and "already exists (use --force" in refused.stderr
    assert target.read_bytes() == b"precious"
    forced = _rigstyle("convert", "--force", nvlabs_pkl, target)
    assert forced.returncode == 0, forced.stderr
    assert neural_backend.load_generator(target).img_resolution == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.safetensors"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("model.onnx",), "cannot tell the output format from the suffix; use --to"),
        (("--to", "rosinality", "bad.pt"), "not a StyleGAN2 checkpoint"),
    ],
)
def test_convert_errors_are_one_line(
    tmp_path: Path, nvlabs_pkl: Path, args: tuple[str, ...], message: str
) -> None:
    source = nvlabs_pkl
    if "bad.pt" in args:
        source = tmp_path / "garbage.bin"
        source.write_bytes(b"not a checkpoint")
    *options, name = args
    result = _rigstyle("convert", *options, source, tmp_path / name)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / name).exists()


def test_a_discriminator_rosinality_cannot_hold_is_left_out_with_a_note(
    tmp_path: Path, networks: tuple[Generator, Discriminator]
) -> None:
    torch.manual_seed(3)
    skip_d = Discriminator(img_resolution=8, architecture="skip").eval()
    source = tmp_path / "skip-d.safetensors"
    save_checkpoint(networks[0], source, skip_d)
    result = _rigstyle("convert", source, tmp_path / "g.pt")
    assert result.returncode == 0, result.stderr
    assert "(rosinality, generator only)" in result.stdout
    assert "note: discriminator not written (rosinality cannot represent it:" in result.stdout
    assert torch.equal(_images(neural_backend.load_generator(tmp_path / "g.pt")), _images(networks[0]))


def test_python_api_mirrors_nvlabs(nvlabs_pkl: Path) -> None:
    G = neural_backend.load_generator(nvlabs_pkl, device="cpu")
    assert (G.z_dim, G.w_dim, G.num_ws, G.img_resolution) == (64, 64, 4, 8)
    assert not G.training
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ws = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
        assert ws.shape == (2, G.num_ws, G.w_dim)
        assert torch.allclose(ws[:, 2], G.mapping(z, None)[:, 2])  # beyond the cutoff: untruncated
        img = G.synthesis(ws, noise_mode="const")
        assert img.shape == (2, 3, 8, 8) and img.dtype == torch.float32
        assert torch.equal(G(z, None, truncation_psi=0.5, truncation_cutoff=2, noise_mode="const"), img)
        assert not torch.equal(G.synthesis(ws, noise_mode="random"), img)
    D = neural_backend.load_discriminator(nvlabs_pkl)
    with torch.inference_mode():
        assert D(img.repeat(2, 1, 1, 1), None).shape == (4, 1)
