"""What a ``rigstyle train`` run leaves in its folder: snapshots, networks, samples, metrics, progress."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import RIGSTYLE, run_rigstyle
from PIL import Image

from neural_backend.checkpoints.io import read_checkpoint
from neural_backend.train.config import TrainConfig
from neural_backend.train.loop import GRID_COLUMNS, GRID_ROWS, HELD_OUT_SEED
from neural_backend.train.snapshot import read_snapshot
from neural_backend.train.teacher import load_teacher

TINY_ARCH = ["--w-dim", "32", "--mapping-layers", "2", "--channel-base", "256", "--channel-max", "16"]


@dataclass(frozen=True)
class Run:
    teacher: Path
    out: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Three steps of a tiny distillation, a snapshot after each, keeping two, with JSON progress."""
    root = tmp_path_factory.mktemp("teacher-run")
    teacher = root / "weights.tar"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        from neural_backend.train.teacher import DCGANGenerator

        torch.save({"netG_state_dict": DCGANGenerator(nz=8, ngf=4).state_dict()}, teacher)
    out = root / "run"
    result = run_rigstyle(
        "train", "--teacher", teacher, "--out", out, "--steps", "3", "--batch", "2", "--snapshot-every", "1",
        "--keep", "2", "--log-every", "1", "--progress", "json", "--threads", "1", *TINY_ARCH,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return Run(teacher, out, result)


def test_progress_json_lines_have_steps_with_an_eta_and_snapshots(teacher_run: Run) -> None:
    lines = [json.loads(line) for line in teacher_run.result.stdout.splitlines()]
    assert all(line["stage"] == "train" for line in lines)
    events = [line["event"] for line in lines]
    assert events == ["note", "step", "snapshot", "step", "snapshot", "step", "snapshot"]
    steps = [line for line in lines if line["event"] == "step"]
    assert [line["step"] for line in steps] == [1, 2, 3]
    for line in steps:
        assert line["total"] == 3
        assert isinstance(line["eta_s"], float | int) and line["eta_s"] >= 0
        for key in ("l1", "pyramid", "hints", "loss_g", "sec_per_step", "kimg"):
            assert isinstance(line[key], float | int), key
    assert steps[-1]["eta_s"] == 0
    snapshots = [line for line in lines if line["event"] == "snapshot"]
    assert [s["snapshot"] for s in snapshots] == [f"snapshot-00000{i}.safetensors" for i in (1, 2, 3)]
    assert all(isinstance(s["held_out_psnr"], float) for s in snapshots)
    assert "starting" in lines[0]["message"] and str(teacher_run.teacher) in lines[0]["message"]


def test_keep_prunes_old_snapshots_but_every_network_file_stays(teacher_run: Run) -> None:
    names = sorted(p.name for p in teacher_run.out.iterdir())
    assert names == [
        "metrics.jsonl",
        *(f"network-00000{i}.safetensors" for i in (1, 2, 3)),
        *(f"samples-00000{i}.png" for i in (1, 2, 3)),
        "snapshot-000002.safetensors",
        "snapshot-000003.safetensors",
    ]  # and no hidden .partial files: every write was renamed into place


def test_the_snapshot_holds_the_whole_state(teacher_run: Run) -> None:
    snapshot = read_snapshot(teacher_run.out / "snapshot-000003.safetensors")
    assert (snapshot.step, snapshot.nimg) == (3, 6)
    assert snapshot.seconds > 0
    config = TrainConfig.from_json(snapshot.config_json)
    assert (config.source, config.teacher, config.steps, config.batch, config.keep) == (
        "teacher",
        str(teacher_run.teacher),
        3,
        2,
        2,
    )
    assert config.generator["w_dim"] == 32 and config.generator["z_dim"] == 8
    prefixes = {name.split(".")[0] for name in snapshot.tensors}
    assert prefixes == {"G", "G_ema", "hints", "opt_G", "rng"}  # teacher default: adv 0, so no D
    assert {"rng.data", "rng.torch"} <= snapshot.tensors.keys()
    steps = [
        t for name, t in snapshot.tensors.items() if name.startswith("opt_G.") and name.endswith(".step")
    ]
    assert steps and all(float(t) == 3 for t in steps)
    assert not torch.equal(
        snapshot.section("G")["synthesis.b4.const"], snapshot.section("G_ema")["synthesis.b4.const"]
    )


def test_the_network_file_is_a_checkpoint_of_g_ema(teacher_run: Run) -> None:
    snapshot = read_snapshot(teacher_run.out / "snapshot-000003.safetensors")
    checkpoint = read_checkpoint(teacher_run.out / "network-000003.safetensors")
    state = checkpoint.generator.state_dict()
    g_ema = snapshot.section("G_ema")
    assert state.keys() == g_ema.keys()
    for name, tensor in g_ema.items():
        assert torch.equal(state[name], tensor), name
    assert checkpoint.discriminator is None


def test_metrics_jsonl_has_a_line_per_log_and_per_snapshot(teacher_run: Run) -> None:
    lines = [json.loads(line) for line in (teacher_run.out / "metrics.jsonl").read_text().splitlines()]
    logs = [line for line in lines if "loss_g" in line]
    snaps = [line for line in lines if "snapshot" in line]
    assert len(lines) == 6
    assert [line["step"] for line in logs] == [1, 2, 3] and [line["step"] for line in snaps] == [1, 2, 3]
    for line in logs:
        for key in ("l1", "pyramid", "hints"):
            assert line[key] > 0
        assert line["loss_g"] == pytest.approx(line["l1"] + line["pyramid"] + line["hints"], rel=1e-3)
        assert line["kimg"] == pytest.approx(line["step"] * 2 / 1000)
    assert all(line["network"] == f"network-{line['step']:06d}.safetensors" for line in snaps)


def test_samples_show_the_student_above_the_teacher(teacher_run: Run) -> None:
    path = teacher_run.out / "samples-000003.png"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        pixels = np.asarray(image)
    r = 64
    assert pixels.shape == (GRID_ROWS * r + 4 + GRID_ROWS * r, GRID_COLUMNS * r, 3)  # student, gap, teacher
    assert (pixels[GRID_ROWS * r : GRID_ROWS * r + 4] == 255).all()

    z = torch.randn([256, 8], generator=torch.Generator().manual_seed(HELD_OUT_SEED))[
        : GRID_ROWS * GRID_COLUMNS
    ]
    teacher = load_teacher("dcgan", teacher_run.teacher)(z)
    student = read_checkpoint(teacher_run.out / "network-000003.safetensors").generator(z)
    for images, top in ((student, 0), (teacher, GRID_ROWS * r + 4)):
        expected = ((images.clamp(-1, 1) + 1) / 2 * 255).round()  # (32, 3, r, r)
        tiles = torch.from_numpy(pixels[top : top + GRID_ROWS * r].astype(np.float32))
        tiles = tiles.view(GRID_ROWS, r, GRID_COLUMNS, r, 3).permute(0, 2, 4, 1, 3).reshape(-1, 3, r, r)
        assert (tiles - expected).abs().max() <= 1


def test_a_folder_holding_a_run_is_not_overwritten(teacher_run: Run, tmp_path: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in teacher_run.out.iterdir()}
    result = run_rigstyle("train", "--teacher", teacher_run.teacher, "--out", teacher_run.out, "--steps", "1")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rigstyle: error:")
    assert "already holds a training run" in lines[0] and f"--resume {teacher_run.out}" in lines[0]
    assert {p.name: p.stat().st_mtime_ns for p in teacher_run.out.iterdir()} == before


def test_resuming_from_a_network_file_is_refused(teacher_run: Run) -> None:
    network = teacher_run.out / "network-000003.safetensors"
    result = run_rigstyle("train", "--resume", network, "--steps", "4")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rigstyle: error:")
    assert str(network) in lines[0] and "not a training snapshot" in lines[0]


@pytest.mark.slow
def test_sigterm_snapshots_the_current_step_and_resume_continues(tmp_path: Path, teacher_file: Path) -> None:
    out = tmp_path / "run"
    command = [
        RIGSTYLE, "train", "--teacher", str(teacher_file), "--out", str(out), "--steps", "100000",
        "--batch", "2", "--log-every", "1", "--snapshot-every", "100000", "--progress", "json",
        "--threads", "1", *TINY_ARCH,
    ]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if json.loads(line)["event"] == "step":
                process.send_signal(signal.SIGTERM)
                break
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr  # 128 + SIGTERM
    stopped = json.loads(stdout.splitlines()[-1])
    assert stopped["event"] == "stopped"
    step = stopped["step"]
    assert 1 <= step < 100000
    snapshot = read_snapshot(out / f"snapshot-{step:06d}.safetensors")
    assert snapshot.step == step

    resumed = run_rigstyle("train", "--resume", out, "--steps", str(step + 1), "--threads", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at step {step}" in resumed.stdout
    assert read_snapshot(out / f"snapshot-{step + 1:06d}.safetensors").step == step + 1


def test_init_fine_tunes_a_checkpoint_on_a_face_folder(
    teacher_run: Run, tmp_path: Path, faces: Callable[..., list[Path]]
) -> None:
    init = teacher_run.out / "network-000003.safetensors"
    faces(tmp_path / "faces", 2, 64)
    out = tmp_path / "run"
    result = run_rigstyle(
        "train", "--data", tmp_path / "faces", "--init", init, "--out", out, "--steps", "1", "--batch", "2",
        "--lr", "1e-9", "--threads", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    snapshot = read_snapshot(out / "snapshot-000001.safetensors")
    config = TrainConfig.from_json(snapshot.config_json)
    start = read_checkpoint(init).generator
    assert (config.source, config.init, config.adv, config.augment) == (
        "folder",
        str(init),
        1.0,
        ("color", "translation", "cutout"),
    )
    assert config.generator == start.init_kwargs and config.resolution == 64
    trained = snapshot.section("G")
    for name, param in start.named_parameters():
        assert torch.allclose(trained[name], param, atol=1e-6), name  # one step at lr 1e-9 from the init
    assert any(name.startswith("D.") for name in snapshot.tensors)  # a fresh D for the GAN term


def test_a_batch_the_discriminator_cannot_group_is_not_a_traceback(
    tmp_path: Path, faces: Callable[..., list[Path]]
) -> None:
    faces(tmp_path / "faces", 4, 16)
    result = run_rigstyle(
        "train", "--data", tmp_path / "faces", "--out", tmp_path / "run", "--steps", "1", "--batch", "6",
        "--threads", "1", *TINY_ARCH,
    )  # fmt: skip
    assert "Traceback" not in result.stderr
    assert result.returncode in (0, 2)


def test_init_starts_an_adversarial_phase_of_a_distillation(teacher_run: Run, tmp_path: Path) -> None:
    """Phase two of the face prior's recipe: the distilled G_ema, the same teacher, plus the GAN term."""
    init = teacher_run.out / "network-000003.safetensors"
    out = tmp_path / "phase2"
    result = run_rigstyle(
        "train", "--teacher", teacher_run.teacher, "--init", init, "--adv", "0.1", "--out", out,
        "--steps", "2", "--batch", "2", "--threads", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    snapshot = read_snapshot(out / "snapshot-000002.safetensors")
    config = TrainConfig.from_json(snapshot.config_json)
    assert (config.source, config.init, config.adv, config.l1) == ("teacher", str(init.resolve()), 0.1, 1.0)
    assert config.generator == read_checkpoint(init).generator.init_kwargs
    assert any(name.startswith("D.") for name in snapshot.tensors)
    assert "adv_g" in (out / "metrics.jsonl").read_text()


def test_fine_tuning_starts_from_the_checkpoints_discriminator_and_keeps_its_alignment(
    tmp_path: Path, faces: Callable[..., list[Path]]
) -> None:
    from neural_backend.checkpoints.io import save_checkpoint
    from neural_backend.refine.framing import Alignment
    from neural_backend.stylegan2 import Discriminator, Generator

    torch.manual_seed(3)
    generator = Generator(
        z_dim=8, w_dim=8, img_resolution=16, mapping_layers=1, channel_base=64, channel_max=8
    )
    discriminator = Discriminator(img_resolution=16, channel_base=64, channel_max=8, mbstd_group_size=4)
    framing = Alignment("actor", 0.9, (0.0, 0.02))
    init = tmp_path / "init.safetensors"
    save_checkpoint(generator, init, discriminator, alignment=framing)
    faces(tmp_path / "faces", 3, 16)
    out = tmp_path / "run"
    result = run_rigstyle(
        "train", "--data", tmp_path / "faces", "--init", init, "--out", out, "--steps", "1", "--batch", "2",
        "--lr", "1e-9", "--threads", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    snapshot = read_snapshot(out / "snapshot-000001.safetensors")
    trained_d = snapshot.section("D")
    for name, param in discriminator.named_parameters():
        assert torch.allclose(trained_d[name], param, atol=1e-6), name  # the pretrained D, not a fresh one
    assert TrainConfig.from_json(snapshot.config_json).discriminator["mbstd_group_size"] == 2  # fits batch 2
    assert read_checkpoint(out / "network-000001.safetensors").alignment == framing


def test_a_distilled_network_carries_the_teachers_framing(teacher_run: Run) -> None:
    from neural_backend.train.teacher import DIGIFACE_ALIGNMENT

    assert read_checkpoint(teacher_run.out / "network-000003.safetensors").alignment == DIGIFACE_ALIGNMENT
