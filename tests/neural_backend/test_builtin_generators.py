"""Generators by name: ``builtin-face-prior`` (the shipped 64 px StyleGAN2 face prior, stored as float16)
and ``builtin-untrained`` (the untrained generator the plumbing tests use).

The shipped prior may be an early training snapshot, so nothing here judges face quality: the tests check
what the name gives (shapes, eval mode, determinism, a learned ``w_avg``, its alignment and metadata), and
compare with the packaged file itself rather than with numbers copied from it.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

import neural_backend
from neural_backend.checkpoints.base import (
    ALIGNMENT_KEY,
    CONFIG_KEY,
    KIND_BUILTIN,
    KIND_RIGSTYLE,
    TRAINING_KEY,
    CheckpointError,
)
from neural_backend.checkpoints.io import FACE_PRIOR_PATH, load_generator, read_checkpoint, save_checkpoint
from neural_backend.checkpoints.names import BUILTIN_NAMES, FACE_PRIOR_NAME, UNTRAINED_NAME
from neural_backend.refine.framing import FFHQ, Alignment
from neural_backend.stylegan2 import Generator
from neural_backend.stylegan2.builtin import builtin_generator


def file_metadata() -> dict[str, str]:
    with safe_open(str(FACE_PRIOR_PATH), "pt") as handle:
        return dict(handle.metadata())


def images(generator: Generator, psi: float = 1.0, seed: int = 5, count: int = 3) -> torch.Tensor:
    z = torch.randn(count, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        return generator(z, truncation_psi=psi, noise_mode="const")


@pytest.fixture(scope="module")
def prior() -> Generator:
    return load_generator(FACE_PRIOR_NAME)


def test_the_names() -> None:
    assert BUILTIN_NAMES == ("builtin-face-prior", "builtin-untrained")
    assert FACE_PRIOR_PATH.is_file() and FACE_PRIOR_PATH.parent.name == "weights"


def test_the_face_prior_by_name_is_a_64px_generator_in_eval_mode(prior: Generator) -> None:
    config = json.loads(file_metadata()[CONFIG_KEY])
    assert prior.init_kwargs == config
    assert prior.img_resolution == 64 and not prior.training
    assert all(not m.training for m in prior.modules())
    drawn = images(prior)
    assert drawn.shape == (3, 3, 64, 64) and drawn.dtype == torch.float32
    assert torch.isfinite(drawn).all()
    assert all(p.dtype == torch.float32 for p in prior.parameters()), "float16 storage loads as float32"


def test_the_face_prior_draws_the_same_images_every_time(prior: Generator) -> None:
    first = images(prior)
    assert torch.equal(first, images(prior))
    assert torch.equal(first, images(load_generator(FACE_PRIOR_NAME)))
    assert not torch.equal(first[0], first[1]), "different latents draw different images"


def test_the_face_prior_has_a_learned_w_avg_and_truncation_pulls_toward_it(prior: Generator) -> None:
    w_avg = prior.mapping.w_avg
    assert w_avg.shape == (prior.w_dim,) and torch.isfinite(w_avg).all()
    assert w_avg.abs().max() > 1e-3, "w_avg was tracked in training, not left at zero"
    at_average = images(prior, psi=0.0)
    assert torch.allclose(at_average, at_average[:1].expand_as(at_average), atol=1e-6), (
        "psi 0: every z is w_avg"
    )
    full, half = images(prior, psi=1.0), images(prior, psi=0.5)
    spread = lambda x: (x - x.mean(dim=0, keepdim=True)).pow(2).mean()  # noqa: E731
    assert spread(half) < spread(full)
    assert not torch.equal(half, full)


def test_the_face_prior_s_checkpoint_fields_match_the_packaged_file() -> None:
    loaded = read_checkpoint(FACE_PRIOR_NAME)
    metadata = file_metadata()
    assert loaded.name == FACE_PRIOR_NAME and loaded.path == FACE_PRIOR_PATH
    assert loaded.kind == KIND_RIGSTYLE and loaded.untrained is False
    assert ALIGNMENT_KEY in metadata
    assert loaded.alignment == Alignment.from_json(metadata[ALIGNMENT_KEY])
    assert loaded.alignment != FFHQ and loaded.alignment.name != "ffhq"
    assert dict(loaded.metadata) == {
        k: v
        for k, v in metadata.items()
        if k.startswith("rigstyle_") and k not in (CONFIG_KEY, ALIGNMENT_KEY)
    }
    assert TRAINING_KEY in dict(loaded.metadata), "the shipped prior says how it was trained"
    json.loads(dict(loaded.metadata)[TRAINING_KEY])
    with safe_open(str(FACE_PRIOR_PATH), "pt") as handle:  # shipped as float16: half the size
        assert all(handle.get_tensor(k).dtype != torch.float32 for k in handle.keys())


def test_the_face_prior_by_path_is_the_same_generator_named_by_its_path(prior: Generator) -> None:
    by_path = read_checkpoint(FACE_PRIOR_PATH)
    assert by_path.name == str(FACE_PRIOR_PATH)
    assert by_path.alignment == read_checkpoint(FACE_PRIOR_NAME).alignment
    assert torch.equal(images(by_path.generator), images(prior))


def test_the_package_api_loads_by_name(prior: Generator) -> None:
    assert torch.equal(images(neural_backend.load_generator(FACE_PRIOR_NAME)), images(prior))


@pytest.mark.parametrize("resolution", [16, 64])
def test_the_untrained_generator_by_name(resolution: int) -> None:
    loaded = read_checkpoint(UNTRAINED_NAME, untrained_resolution=resolution)
    assert loaded.name == UNTRAINED_NAME and loaded.kind == KIND_BUILTIN and loaded.untrained is True
    assert loaded.alignment == FFHQ and loaded.discriminator is None and loaded.metadata == ()
    generator = loaded.generator
    assert generator.img_resolution == resolution and not generator.training
    expected = builtin_generator(resolution)
    assert generator.init_kwargs == expected.init_kwargs
    drawn = images(generator)
    assert drawn.shape == (3, 3, resolution, resolution)
    assert torch.equal(drawn, images(expected)) and torch.equal(drawn, images(generator))
    assert torch.equal(generator.mapping.w_avg, expected.mapping.w_avg)


def test_load_generator_by_name_sizes_the_untrained_generator() -> None:
    assert load_generator(UNTRAINED_NAME).img_resolution == 64  # the default
    small = load_generator(UNTRAINED_NAME, untrained_resolution=16)
    assert small.img_resolution == 16 and not small.training
    assert torch.equal(images(small), images(builtin_generator(16)))


def test_untrained_resolution_does_not_resize_the_face_prior(prior: Generator) -> None:
    assert read_checkpoint(FACE_PRIOR_NAME, untrained_resolution=16).generator.img_resolution == 64


def test_a_name_that_is_not_built_in_is_a_missing_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CheckpointError, match="builtin-face-prior-v2: no such checkpoint file"):
        read_checkpoint("builtin-face-prior-v2")


def test_saved_alignment_and_metadata_round_trip_and_ffhq_is_not_stored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    generator = builtin_generator(16)
    framed, plain = tmp_path / "framed.safetensors", tmp_path / "plain.safetensors"
    alignment = Alignment("calibrated", 1.2, (0.05, -0.1))
    save_checkpoint(generator, framed, metadata={TRAINING_KEY: '{"step": 7}'}, alignment=alignment)
    save_checkpoint(generator, plain, alignment=FFHQ)
    loaded = read_checkpoint(framed)
    assert loaded.alignment == alignment and dict(loaded.metadata) == {TRAINING_KEY: '{"step": 7}'}
    assert loaded.untrained is False and loaded.name == str(framed)
    with safe_open(str(plain), "pt") as handle:
        assert ALIGNMENT_KEY not in handle.metadata()
    assert read_checkpoint(plain).alignment == FFHQ


def test_a_bad_stored_alignment_is_a_one_line_error_naming_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.safetensors"
    save_checkpoint(builtin_generator(16), path, metadata={ALIGNMENT_KEY: '{"name": "x", "scale": 99}'})
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and ALIGNMENT_KEY in message and "\n" not in message


def test_half_storage_halves_the_file_and_draws_within_float16_rounding(tmp_path) -> None:  # type: ignore[no-untyped-def]
    generator = builtin_generator(32)
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    save_checkpoint(generator, full)
    save_checkpoint(generator, half, half=True)
    ratio = half.stat().st_size / full.stat().st_size
    assert 0.45 < ratio < 0.55, ratio
    loaded = load_generator(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    difference = (images(loaded) - images(generator)).abs().max()
    assert 0 < difference < 2e-2, difference
