"""The command line with generators by name and alignment templates: ``--checkpoint`` defaults to the shipped
face prior, ``builtin-untrained`` is accepted wherever a checkpoint file is, ``checkpoint inspect`` shows a
generator's alignment and training, ``checkpoint convert --half --alignment`` and one-line errors (exit 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_line_error
from cli_helpers import run_rigstyle as run
from safetensors import safe_open
from serving_helpers import backend_process

from neural_backend.checkpoints.base import ALIGNMENT_KEY, TRAINING_KEY
from neural_backend.checkpoints.io import FACE_PRIOR_PATH, load_generator, read_checkpoint, save_checkpoint
from neural_backend.checkpoints.names import FACE_PRIOR_NAME
from neural_backend.client.blocking import Client
from neural_backend.refine.framing import FFHQ, Alignment
from neural_backend.serving.engines.local import ServerConfig, load_engine
from neural_backend.serving.ports import free_port
from neural_backend.stylegan2 import Generator

CALIBRATED = Alignment("calibrated", 1.25, (0.05, -0.02))


def images(generator: Generator) -> torch.Tensor:
    z = torch.randn(3, generator.z_dim, generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        return generator(z, truncation_psi=0.7, noise_mode="const")


def lines_of(stdout: str) -> dict[str, str]:
    """``key: value`` lines of ``checkpoint inspect`` (the first of each key)."""
    result: dict[str, str] = {}
    for line in stdout.splitlines():
        key, _, value = line.partition(":")
        result.setdefault(key.strip(), value.strip())
    return result


@pytest.mark.parametrize("command", ["serve", "demo", "train-encoder"])
def test_help_shows_the_face_prior_as_the_default_checkpoint(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    text = re.sub(r"-\s+", "-", " ".join(result.stdout.split()))  # click wraps lines after hyphens
    assert "builtin-untrained" in text and "default: builtin-face-prior" in text


def test_inspect_the_face_prior_by_name_shows_its_alignment_and_training() -> None:
    result = run("checkpoint", "inspect", FACE_PRIOR_NAME)
    assert result.returncode == 0, result.stderr
    shown = lines_of(result.stdout)
    loaded = read_checkpoint(FACE_PRIOR_NAME)
    assert shown["file"] == f"{FACE_PRIOR_PATH} ({FACE_PRIOR_NAME})"
    assert shown["kind"] == "rigstyle-safetensors" and "UNTRAINED" not in result.stdout
    assert shown["alignment"] == loaded.alignment.describe()
    assert shown["alignment"].startswith(loaded.alignment.name) and not shown["alignment"].startswith("ffhq")
    assert shown["resolution"] == "64"
    with safe_open(str(FACE_PRIOR_PATH), "pt") as handle:
        training = handle.metadata()[TRAINING_KEY]
    assert shown["training"] == training  # the stored JSON, verbatim


def test_inspect_the_untrained_generator_by_name() -> None:
    result = run("checkpoint", "inspect", "builtin-untrained")
    assert result.returncode == 0, result.stderr
    shown = lines_of(result.stdout)
    assert shown["file"] == "builtin-untrained"
    assert shown["kind"] == "builtin (UNTRAINED: its images are not faces)"
    assert shown["alignment"] == "ffhq (the FFHQ crop recipe)" and "training" not in shown


def test_an_unknown_name_is_a_one_line_error_listing_the_built_in_ones(tmp_path: Path) -> None:
    for command in (
        ("checkpoint", "inspect", "builtin-face"),
        ("serve", "--checkpoint", "builtin-face", "--port", str(free_port())),
        ("demo", "--checkpoint", "builtin-face", "--out", str(tmp_path / "o")),
    ):
        assert_one_line_error(run(*command), "builtin-face", "builtin-face-prior", "builtin-untrained")
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def full_precision_prior(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The face prior stored as float32, with its alignment and training metadata, its weights moved off
    the float16 grid (the shipped values are float16 numbers, which --half would keep exactly)."""
    loaded = read_checkpoint(FACE_PRIOR_NAME)
    with torch.no_grad():
        rng = torch.Generator().manual_seed(1)
        for param in loaded.generator.parameters():
            param.mul_(1 + 1e-3 * torch.randn(param.shape, generator=rng))
    path = tmp_path_factory.mktemp("prior") / "prior-f32.safetensors"
    save_checkpoint(loaded.generator, path, metadata=dict(loaded.metadata), alignment=loaded.alignment)
    return path


def test_convert_half_keeps_the_alignment_and_training_and_halves_the_file(
    tmp_path: Path, full_precision_prior: Path
) -> None:
    target = tmp_path / "prior-f16.safetensors"
    result = run("checkpoint", "convert", full_precision_prior, target, "--half")
    assert result.returncode == 0, result.stderr
    assert f"wrote {target} (rigstyle, generator only)" in result.stdout
    ratio = target.stat().st_size / full_precision_prior.stat().st_size
    assert 0.45 < ratio < 0.55, ratio
    source, converted = read_checkpoint(full_precision_prior), read_checkpoint(target)
    assert converted.alignment == source.alignment == read_checkpoint(FACE_PRIOR_NAME).alignment
    assert converted.alignment != FFHQ
    assert dict(converted.metadata) == dict(source.metadata) and TRAINING_KEY in dict(converted.metadata)
    with safe_open(str(target), "pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} <= {
            torch.float16,
            torch.int64,
            torch.int32,
        }
    expected, drawn = images(source.generator), images(converted.generator)
    assert not torch.equal(drawn, expected)  # rounded ...
    assert (drawn - expected).abs().max() < 2e-2  # ... within float16 precision


def test_convert_alignment_overrides_the_source_s_and_ffhq_removes_it(
    tmp_path: Path, full_precision_prior: Path
) -> None:
    framed = tmp_path / "framed.safetensors"
    result = run(
        "checkpoint", "convert", full_precision_prior, framed, "--half", "--alignment", CALIBRATED.to_json()
    )
    assert result.returncode == 0, result.stderr
    assert read_checkpoint(framed).alignment == CALIBRATED
    with safe_open(str(framed), "pt") as handle:
        assert Alignment.from_json(handle.metadata()[ALIGNMENT_KEY]) == CALIBRATED
    difference = images(load_generator(framed)) - images(load_generator(full_precision_prior))
    assert difference.abs().max() < 2e-2  # the same weights, float16-rounded

    plain = tmp_path / "plain.safetensors"
    result = run("checkpoint", "convert", framed, plain, "--alignment", "ffhq")
    assert result.returncode == 0, result.stderr
    assert read_checkpoint(plain).alignment == FFHQ
    with safe_open(str(plain), "pt") as handle:
        assert ALIGNMENT_KEY not in handle.metadata()


def test_convert_no_discriminator_leaves_it_out(tmp_path: Path) -> None:
    from neural_backend.stylegan2 import Discriminator
    from neural_backend.stylegan2.builtin import builtin_generator

    source, target = tmp_path / "g_d.safetensors", tmp_path / "g.safetensors"
    save_checkpoint(
        builtin_generator(16), source, Discriminator(img_resolution=16, channel_base=256, channel_max=16)
    )
    result = run("checkpoint", "convert", source, target, "--no-discriminator")
    assert result.returncode == 0, result.stderr
    assert "(rigstyle, generator only)" in result.stdout
    assert read_checkpoint(source).discriminator is not None and read_checkpoint(target).discriminator is None


@pytest.mark.parametrize("option", [("--half",), ("--alignment", "ffhq")])
def test_half_or_alignment_to_a_rosinality_target_is_a_one_line_error(
    tmp_path: Path, full_precision_prior: Path, option: tuple[str, ...]
) -> None:
    target = tmp_path / "prior.pt"
    assert_one_line_error(run("checkpoint", "convert", full_precision_prior, target, *option), "rigstyle")
    assert not target.exists() and not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("face-prior", ["--alignment", "not JSON"]),
        ('{"name": "x", "zoom": 2}', ["--alignment", "unknown keys", "zoom"]),
        ('{"name": "x", "scale": 9}', ["--alignment", "scale", "outside"]),
        ('{"name": "x", "offset": [0, 3]}', ["--alignment", "offset"]),
    ],
)
def test_a_bad_alignment_is_a_one_line_error(value: str, words: list[str], tmp_path: Path) -> None:
    assert_one_line_error(run("serve", "--alignment", value, "--port", str(free_port())), *words)
    assert_one_line_error(run("demo", "--alignment", value, "--out", str(tmp_path / "o")), *words)
    assert not (tmp_path / "o").exists()


def test_the_server_config_defaults_to_the_face_prior_and_alignment_overrides_the_checkpoint_s() -> None:
    assert ServerConfig().checkpoint == FACE_PRIOR_NAME and ServerConfig().alignment is None
    prior = read_checkpoint(FACE_PRIOR_NAME).alignment
    health = load_engine(ServerConfig()).describe()
    assert health["generator"] == FACE_PRIOR_NAME and health["untrained"] is False
    assert health["alignment"] == json.loads(prior.to_json())
    assert health["checkpoint_path"] == str(FACE_PRIOR_PATH.resolve())
    assert load_engine(ServerConfig(alignment=CALIBRATED)).describe()["alignment"] == json.loads(
        CALIBRATED.to_json()
    )
    untrained = load_engine(ServerConfig(checkpoint="builtin-untrained", resolution=16, alignment=CALIBRATED))
    info = untrained.describe()
    assert info["untrained"] is True and info["resolution"] == 16 and info["checkpoint_path"] is None
    assert info["alignment"] == json.loads(CALIBRATED.to_json())
    assert untrained.refiner.alignment == CALIBRATED


@pytest.mark.slow
def test_serve_without_a_checkpoint_serves_the_face_prior() -> None:
    prior = read_checkpoint(FACE_PRIOR_NAME).alignment
    with backend_process("--threads", "1") as backend, Client(backend.address, timeout=30) as client:
        health = client.health()
    assert health["generator"] == FACE_PRIOR_NAME and health["untrained"] is False
    assert health["resolution"] == 64
    assert health["alignment"] == {"name": prior.name, "scale": prior.scale, "offset": list(prior.offset)}
    assert health["checkpoint_path"] == str(FACE_PRIOR_PATH.resolve())
    assert health["generator_id"].startswith("sha256:")
    assert "UNTRAINED" not in backend.stderr
    assert f"(generator: {FACE_PRIOR_NAME}," in backend.stderr
