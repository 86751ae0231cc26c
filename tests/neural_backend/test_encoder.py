"""The feed-forward W+ encoder: training on the built-in generator, files, compatibility and the CLI.

Everything runs for real on the 32 px built-in (untrained) generator with small step counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from cli_helpers import run_rigstyle
from safetensors.torch import save_file

from neural_backend.checkpoints.io import save_checkpoint
from neural_backend.refine.encoder import (
    METADATA_KEY,
    Encoder,
    EncoderConfig,
    EncoderError,
    check_compatible,
    load_encoder,
    save_encoder,
    train_encoder,
)
from neural_backend.stylegan2 import Generator
from neural_backend.stylegan2.builtin import builtin_generator


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread here: on a busy 2-core machine (tests running side by side), two threads that wait
    for each other made training ~10x slower; one thread is about as fast on an idle one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def generator() -> Generator:
    return builtin_generator(32)


@pytest.fixture(scope="module")
def trained(generator: Generator) -> tuple[Encoder, dict[str, float]]:
    # Latent loss only: on the untrained generator the image loss finds other latents that draw similar
    # images, so with it the latent MSE hardly moves (the default weight is tested below, briefly).
    return train_encoder(generator, steps=120, batch=16, image_weight=0.0, seed=0)


def _held_out(generator: Generator, n: int = 8, seed: int = 123) -> tuple[torch.Tensor, torch.Tensor]:
    """(ws (n, num_ws, w_dim), images (n, 3, R, R)) from a seed that training never uses."""
    z = torch.randn(n, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ws = generator.mapping(z, None, truncation_psi=0.8)
        return ws, generator.synthesis(ws, noise_mode="const")


def _draw(generator: Generator, ws: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return generator.synthesis(ws, noise_mode="const")


def test_untrained_encoder_returns_w_avg_exactly(generator: Generator) -> None:
    encoder = Encoder(EncoderConfig.for_generator(generator), generator.mapping.w_avg).eval()
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        ws = encoder(images)
    assert ws.shape == (3, generator.num_ws, generator.w_dim)
    assert torch.equal(ws, generator.mapping.w_avg.expand(3, generator.num_ws, -1))
    with pytest.raises(ValueError, match=r"images: expected shape \[\*, 3, 32, 32\], got \[3, 3, 16, 16\]"):
        encoder(images[:, :, :16, :16])


def test_config_rejects_bad_values() -> None:
    with pytest.raises(EncoderError, match="resolution: expected a power of two"):
        EncoderConfig(resolution=48, num_ws=8, w_dim=128)
    with pytest.raises(EncoderError, match="w_dim: expected a positive integer"):
        EncoderConfig(resolution=32, num_ws=8, w_dim=0)


def test_training_reduces_held_out_latent_error(
    generator: Generator, trained: tuple[Encoder, dict[str, float]]
) -> None:
    encoder, metrics = trained
    assert not encoder.training
    assert metrics["latent_mse_end"] < 0.85 * metrics["latent_mse_start"]
    assert metrics["image_mse_end"] < 0.6 * metrics["image_mse_start"]
    assert metrics["seconds"] > 0
    # The same on samples of its own, without style mixing: closer latents and closer images than w_avg's.
    ws, images = _held_out(generator)
    with torch.inference_mode():
        encoded = encoder(images)
    w_avg = generator.mapping.w_avg.expand_as(ws)
    assert F.mse_loss(encoded, ws) < 0.85 * F.mse_loss(w_avg, ws)
    assert F.mse_loss(_draw(generator, encoded), images) < 0.6 * F.mse_loss(_draw(generator, w_avg), images)


def test_default_training_improves_images_and_is_deterministic(generator: Generator) -> None:
    flags = [p.requires_grad for p in generator.parameters()]
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    runs = [train_encoder(generator, steps=8, batch=4, seed=seed) for seed in (3, 3, 4)]
    (first, metrics), (second, metrics_again), (other, _) = runs
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters(), strict=True))
    assert {k: v for k, v in metrics.items() if k != "seconds"} == {
        k: v for k, v in metrics_again.items() if k != "seconds"
    }
    assert not torch.equal(first.head.weight, other.head.weight)
    assert metrics["image_mse_end"] < metrics["image_mse_start"]  # the image loss works from the start
    # The generator is left exactly as it was: weights, buffers and requires_grad flags.
    assert [p.requires_grad for p in generator.parameters()] == flags
    assert all(torch.equal(v, before[k]) for k, v in generator.state_dict().items())


def test_training_refuses_conditional_generators() -> None:
    conditional = Generator(z_dim=8, c_dim=4, w_dim=8, img_resolution=8, mapping_layers=1, channel_max=8)
    with pytest.raises(EncoderError, match=r"conditional generators \(c_dim 4\)"):
        train_encoder(conditional, steps=1)


def test_save_load_round_trip(
    tmp_path: Path, generator: Generator, trained: tuple[Encoder, dict[str, float]]
) -> None:
    encoder, _ = trained
    path = tmp_path / "encoder.safetensors"
    save_encoder(encoder, path)
    save_encoder(encoder, path)  # overwrites in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder.safetensors"]  # no temporary left
    loaded = load_encoder(path)
    assert loaded.config == encoder.config == EncoderConfig.for_generator(generator)
    assert not loaded.training
    _, images = _held_out(generator)
    with torch.inference_mode():
        assert torch.equal(loaded(images), encoder(images))
    check_compatible(loaded, generator)


def test_check_compatible_names_the_mismatch(generator: Generator) -> None:
    encoder = Encoder(EncoderConfig.for_generator(generator))
    bigger = Generator(z_dim=8, w_dim=8, img_resolution=64, mapping_layers=1, channel_max=8)
    with pytest.raises(EncoderError, match=r"resolution 32 vs 64, num_ws 8 vs 10, w_dim 128 vs 8"):
        check_compatible(encoder, bigger)
    narrow = Encoder(EncoderConfig(resolution=32, num_ws=8, w_dim=64))
    with pytest.raises(EncoderError, match=r"^encoder does not fit the generator .*: w_dim 64 vs 128$"):
        check_compatible(narrow, generator)


def _write(path: Path, tensors: dict[str, torch.Tensor], config: object) -> Path:
    metadata = {METADATA_KEY: config if isinstance(config, str) else json.dumps(config)}
    save_file(tensors, str(path), metadata=metadata)
    return path


def _good_state(config: EncoderConfig) -> dict[str, torch.Tensor]:
    return {k: v.clone().contiguous() for k, v in Encoder(config).state_dict().items()}


SMALL = EncoderConfig(resolution=8, num_ws=4, w_dim=8, channels=4, max_channels=8)
SMALL_JSON = {"resolution": 8, "num_ws": 4, "w_dim": 8, "channels": 4, "max_channels": 8}


def _bad_files(tmp: Path) -> list[tuple[Path, str]]:
    """(file, expected problem) pairs, one per way an encoder file can be broken."""
    garbage = tmp / "garbage.safetensors"
    garbage.write_bytes(b"this is not a safetensors file at all")
    empty = tmp / "empty.safetensors"
    empty.write_bytes(b"")
    checkpoint = tmp / "generator.safetensors"
    save_checkpoint(
        Generator(z_dim=8, w_dim=8, img_resolution=8, mapping_layers=1, channel_max=8), checkpoint
    )
    state = _good_state(SMALL)
    missing = dict(state)
    del missing["head.bias"]
    misshaped = dict(state, **{"head.bias": torch.zeros(5)})
    extra = dict(state, **{"surprise": torch.zeros(1)})
    integer = dict(state, **{"w_avg": torch.zeros(8, dtype=torch.int64)})
    return [
        (tmp / "absent.safetensors", "no such encoder file"),
        (garbage, "not a readable safetensors file"),
        (empty, "not a readable safetensors file"),
        (checkpoint, f"not a RigStyle encoder \\(no '{METADATA_KEY}' metadata\\)"),
        (_write(tmp / "json.safetensors", state, "{not json"), "invalid encoder config JSON"),
        (_write(tmp / "list.safetensors", state, [1, 2]), "must be a JSON object, got list"),
        (
            _write(tmp / "key.safetensors", state, {**SMALL_JSON, "depth": 3}),
            r"unknown encoder config keys \['depth'\]",
        ),
        (
            _write(tmp / "value.safetensors", state, {**SMALL_JSON, "resolution": 12}),
            "resolution: expected a power",
        ),
        (
            _write(tmp / "type.safetensors", state, {**SMALL_JSON, "w_dim": "8"}),
            "w_dim: expected a positive integer",
        ),
        (_write(tmp / "short.safetensors", state, {"resolution": 8}), "invalid encoder config"),
        (_write(tmp / "missing.safetensors", missing, SMALL_JSON), r"missing tensors head\.bias"),
        (
            _write(tmp / "shape.safetensors", misshaped, SMALL_JSON),
            r"wrong shape: head\.bias \[5\] \(expected \[32\]\)",
        ),
        (_write(tmp / "extra.safetensors", extra, SMALL_JSON), "unexpected tensors surprise"),
        (_write(tmp / "int.safetensors", integer, SMALL_JSON), "not floating point: w_avg"),
    ]


def test_bad_files_raise_encoder_error_naming_the_file(tmp_path: Path) -> None:
    assert load_encoder(_write(tmp_path / "ok.safetensors", _good_state(SMALL), SMALL_JSON)).config == SMALL
    for path, problem in _bad_files(tmp_path):
        with pytest.raises(EncoderError, match=problem) as caught:
            load_encoder(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and "\n" not in message, message


def test_cli_trains_writes_a_loadable_file_and_refuses_to_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as one_thread, for the rigstyle processes
    out = tmp_path / "encoder.safetensors"
    untrained = ("--checkpoint", "builtin-untrained", "--gan-resolution", "32")
    common = ("train-encoder", *untrained, "--device", "cpu", "--out", out)
    result = run_rigstyle(*common, "--steps", "20", "--batch", "4")
    assert result.returncode == 0, result.stderr
    assert "built-in UNTRAINED generator" in result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("step ")] == [
        f"{s}/20" for s in range(2, 21, 2)
    ]
    assert lines[-1].startswith(f"wrote {out}: held-out latent MSE ")
    check_compatible(load_encoder(out), builtin_generator(32))

    refused = run_rigstyle(*common, "--steps", "1")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"rigstyle: error: {out}: already exists (use --force to overwrite)"
    ]

    forced = run_rigstyle(*common, "--steps", "1", "--force")
    assert forced.returncode == 0, forced.stderr
    load_encoder(out)


def test_cli_user_errors_are_one_line(tmp_path: Path) -> None:
    not_a_checkpoint = tmp_path / "junk.pkl"
    not_a_checkpoint.write_bytes(b"junk")
    cases = [
        (("--checkpoint", not_a_checkpoint, "--out", tmp_path / "e.safetensors"), str(not_a_checkpoint)),
        (("--out", tmp_path / "e.pt"), "use a .safetensors name"),
        (("--out", tmp_path / "no" / "e.safetensors"), "does not exist"),
    ]
    for args, needle in cases:
        result = run_rigstyle("train-encoder", *args)
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("rigstyle: error: ") and needle in line, line


def test_cli_help() -> None:
    result = run_rigstyle("train-encoder", "--help")
    assert result.returncode == 0
    for text in (
        "Examples:",
        "rigstyle train-encoder --checkpoint",
        "--out",
        "--steps",
        "--force",
        "[default: 2000",
    ):
        assert text in result.stdout
