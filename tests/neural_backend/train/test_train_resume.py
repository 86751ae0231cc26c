"""N steps, a snapshot, ``--resume`` and M more steps equal N + M steps straight, bit for bit."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from cli_helpers import run_rigstyle
from safetensors.torch import load_file

from neural_backend.train.config import TrainConfig
from neural_backend.train.data import FolderData
from neural_backend.train.loop import Trainer
from neural_backend.train.snapshot import read_snapshot

TINY_ARCH = ["--w-dim", "32", "--mapping-layers", "2", "--channel-base", "256", "--channel-max", "16"]


def assert_same_tensors(a: Path, b: Path) -> None:
    left, right = load_file(str(a)), load_file(str(b))
    assert left.keys() == right.keys()
    different = [name for name in left if not torch.equal(left[name], right[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:5]}"


def losses(run: Path) -> dict[int, dict[str, float]]:
    """The loss terms of each logged step (timings dropped)."""
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    timing = {"sec_per_step", "seconds", "kimg", "step"}
    return {
        line["step"]: {k: v for k, v in line.items() if k not in timing} for line in lines if "loss_g" in line
    }


@pytest.mark.slow
def test_cli_resume_is_bit_identical_to_a_straight_run(tmp_path: Path, teacher_file: Path) -> None:
    common = [
        "--batch", "2", "--seed", "3", "--snapshot-every", "3", "--log-every", "1", "--threads", "1",
        "--adv", "0.1", "--augment", "color,translation,cutout", *TINY_ARCH,
    ]  # fmt: skip
    interrupted, straight = tmp_path / "interrupted", tmp_path / "straight"
    first = run_rigstyle("train", "--teacher", teacher_file, "--out", interrupted, "--steps", "3", *common)
    assert first.returncode == 0, first.stderr
    resumed = run_rigstyle("train", "--resume", interrupted, "--steps", "6", "--threads", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at step 3" in resumed.stdout
    whole = run_rigstyle("train", "--teacher", teacher_file, "--out", straight, "--steps", "6", *common)
    assert whole.returncode == 0, whole.stderr

    for name in ("snapshot-000006.safetensors", "network-000006.safetensors", "snapshot-000003.safetensors"):
        assert_same_tensors(interrupted / name, straight / name)
    snapshot = read_snapshot(straight / "snapshot-000006.safetensors")
    assert {"D", "opt_D", "hints"} <= {name.split(".")[0] for name in snapshot.tensors}
    assert losses(interrupted) == losses(straight)
    assert set(losses(straight)) == {1, 2, 3, 4, 5, 6}


@pytest.fixture
def isolated_rng() -> Iterator[None]:
    """The trainer seeds torch's global generator; give it back as it was."""
    with torch.random.fork_rng(devices=[]):
        yield


def _folder_config(data: Path, steps: int) -> TrainConfig:
    return TrainConfig(
        source="folder",
        resolution=16,
        data=str(data),
        generator={"z_dim": 16, "w_dim": 32, "img_resolution": 16, "mapping_layers": 2, "channel_base": 256,
                   "channel_max": 16},
        discriminator={"img_resolution": 16, "channel_base": 256, "channel_max": 16},
        steps=steps,
        batch=4,
        adv=1.0,
        r1_gamma=1.0,
        r1_interval=2,
        augment=("color", "translation", "cutout"),
        noise_mode="random",
        ema_kimg=0.01,
        seed=5,
        snapshot_every=3,
        log_every=1,
        keep=5,
        eval_samples=4,
    )  # fmt: skip


def _trainer(config: TrainConfig, out: Path) -> Trainer:
    return Trainer(config, FolderData(Path(config.data or ""), config.resolution, torch.device("cpu")), out)


def test_trainer_resume_with_adversarial_r1_and_augmentation_is_bit_identical(
    tmp_path: Path, faces: Callable[..., list[Path]], isolated_rng: None
) -> None:
    faces(tmp_path / "faces", 6, 16)
    config = _folder_config(tmp_path / "faces", steps=6)

    straight = _trainer(config, tmp_path / "straight")
    terms = [straight.train_step() for _ in range(6)]
    assert ["r1" in t for t in terms] == [True, False, True, False, True, False]  # lazy R1 every 2 steps
    assert all({"adv_g", "loss_d", "d_real", "d_fake"} <= t.keys() for t in terms)
    (tmp_path / "straight").mkdir()
    straight.save()

    first = _trainer(dataclasses.replace(config, steps=3), tmp_path / "interrupted")
    first.run(lambda event, fields: None)
    assert first.step == 3
    snapshot = read_snapshot(tmp_path / "interrupted" / "snapshot-000003.safetensors")
    second = _trainer(config, tmp_path / "interrupted")
    second.load_state(snapshot)
    assert (second.step, second.nimg) == (3, 12)
    resumed_terms: list[dict[str, float | int | str]] = []
    second.run(lambda event, fields: resumed_terms.append(fields) if event == "log" else None)

    assert [t["loss_d"] for t in resumed_terms] == [round(t["loss_d"], 5) for t in terms[3:]]
    for name in ("snapshot-000006.safetensors", "network-000006.safetensors"):
        assert_same_tensors(tmp_path / "interrupted" / name, tmp_path / "straight" / name)
    tensors = read_snapshot(tmp_path / "straight" / "snapshot-000006.safetensors").tensors
    assert {"D", "opt_D", "rng"} <= {name.split(".")[0] for name in tensors}
    assert any(name.startswith("opt_D.") and name.endswith(".exp_avg") for name in tensors)


@pytest.mark.parametrize("forget", ["data-rng", "torch-rng", "optimizer-D"])
def test_the_comparison_notices_a_resume_that_forgets_state(
    tmp_path: Path, faces: Callable[..., list[Path]], isolated_rng: None, forget: str
) -> None:
    """Control: the bit-identical check above fails when any part of the state is not restored."""
    faces(tmp_path / "faces", 6, 16)
    config = _folder_config(tmp_path / "faces", steps=4)
    straight = _trainer(config, tmp_path / "straight")
    for _ in range(4):
        straight.train_step()

    first = _trainer(dataclasses.replace(config, steps=2, snapshot_every=2), tmp_path / "interrupted")
    first.run(lambda event, fields: None)
    second = _trainer(config, tmp_path / "interrupted")
    second.load_state(read_snapshot(tmp_path / "interrupted" / "snapshot-000002.safetensors"))
    if forget == "data-rng":
        second.rng.manual_seed(123)
    elif forget == "torch-rng":
        torch.manual_seed(123)
    else:
        assert second.opt_D is not None
        second.opt_D.state.clear()
    for _ in range(2):
        second.train_step()
    after = second.state_tensors()
    expected = straight.state_tensors()
    assert any(not torch.equal(after[name], expected[name]) for name in expected if name.startswith("G."))


def test_a_run_started_with_relative_paths_resumes_from_anywhere(tmp_path: Path, teacher_file: Path) -> None:
    import subprocess

    from cli_helpers import RIGSTYLE

    started = subprocess.run(
        [RIGSTYLE, "train", "--teacher", teacher_file.name, "--out", "run", "--steps", "1", "--batch", "2",
         "--threads", "1", *TINY_ARCH],
        cwd=teacher_file.parent, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = subprocess.run(
        [RIGSTYLE, "train", "--resume", str(teacher_file.parent / "run"), "--steps", "2", "--threads", "1"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert resumed.returncode == 0, resumed.stderr
