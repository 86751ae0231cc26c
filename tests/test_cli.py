"""The ``rigstyle`` console script: help, and one-line user errors with exit code 2."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error
from cli_helpers import run_rigstyle as run

from neural_backend.serving.ports import free_port

UNTRAINED = ("--checkpoint", "builtin-untrained")  # error tests need no trained generator


@pytest.mark.parametrize("command", [[], ["demo"], ["serve"]])
def test_help_explains_each_command(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: rigstyle")
    assert ("Example" if command else "Quick start") in result.stdout


def test_zero_frames_is_a_one_line_error(tmp_path: Path) -> None:
    assert_one_line_error(run("demo", "--out", str(tmp_path / "o"), "--frames", "0"), "--frames")
    assert not (tmp_path / "o").exists()


def test_missing_checkpoint_is_a_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    assert_one_line_error(
        run("demo", "--out", str(tmp_path / "o"), "--checkpoint", str(missing)), str(missing)
    )


def test_busy_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        assert_one_line_error(run("demo", "--out", str(tmp_path / "o"), "--port", port), "busy", port)


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_unreadable_checkpoint_is_a_one_line_error(tmp_path: Path, command: str) -> None:
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"this is not a checkpoint")
    where = ["--out", str(tmp_path / "o")] if command == "demo" else ["--port", str(free_port())]
    assert_one_line_error(run(command, "--checkpoint", str(bogus), *where), str(bogus))


def test_an_unknown_device_is_a_one_line_error() -> None:
    assert_one_line_error(
        run("serve", *UNTRAINED, "--device", "cuda:7", "--port", str(free_port())), "cuda:7"
    )


def test_rig_info_describes_a_rig_file(tmp_path: Path) -> None:
    import rigs

    path = tmp_path / "head.npz"
    rigs.save(rigs.demo_head(), path)
    result = run("rig", "info", str(path))
    assert result.returncode == 0, result.stderr
    assert "vertices:    4902" in result.stdout and "joints:      5 (root, neck, jaw" in result.stdout
    assert "landmarks:   68 static" in result.stdout


@pytest.mark.parametrize("variant", ["chumpy", "npz"])
def test_rig_info_reads_official_flame_files(tmp_path: Path, variant: str) -> None:
    from official_files import write_flame

    path = write_flame(tmp_path / "flame", variant=variant)
    result = run("rig", "info", str(path))
    assert result.returncode == 0, result.stderr
    assert "kind:        flame" in result.stdout and "joints:      5" in result.stdout
    assert "17 dynamic contour" in result.stdout


def test_rig_info_on_a_bad_file_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.pkl"
    bad.write_bytes(b"\x80\x04junk")
    assert_one_line_error(run("rig", "info", str(bad)), str(bad))


def test_serve_options_set_the_refinement_config() -> None:
    from neural_backend.cli.options import refine_config

    config = refine_config(
        steps_first=None, steps_warm=7, shot_steps=9, pti=True, history=0.25, blend_width=2.5, gan_skin=1.0
    )
    assert (config.steps_warm, config.shot_steps, config.pti) == (7, 9, True)
    assert (config.blend.history, config.blend.width_px, config.blend.gan_skin) == (0.25, 2.5, 1.0)
    assert config.steps_first == type(config)().steps_first  # not given: the default


def test_serve_refuses_lpips_weights_without_vgg_weights(tmp_path: Path) -> None:
    lpips = tmp_path / "vgg.pth"
    lpips.write_bytes(b"not used")
    weights = ("--lpips-weights", str(lpips))
    result = run("serve", *UNTRAINED, "--gan-resolution", "16", *weights, "--port", str(free_port()))
    assert_one_line_error(result, "vgg")


@pytest.mark.parametrize("command", ["render", "passes", "refine", "composite"])
def test_farm_commands_have_help(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0 and result.stdout.startswith(f"Usage: rigstyle {command}")


def test_farm_command_line_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    scene = tmp_path / "shot.blend"
    scene.write_bytes(b"")
    out = ("--out", str(tmp_path / "shot"))
    assert_one_line_error(run("passes", str(scene), "--frames", "9-3", *out), "--frames", "ends before")
    not_a_program = tmp_path / "blender"
    not_a_program.write_text("")
    result = run("passes", str(scene), "--frames", "1-2", *out, "--blender", str(not_a_program))
    assert_one_line_error(result, "cannot run", "Permission denied")
    folder = tmp_path / "empty"
    folder.mkdir()
    both = ("--backend", "tcp://127.0.0.1:9", "--backend", "tcp://127.0.0.1:9")
    assert_one_line_error(run("refine", str(folder), *both), "given twice")
