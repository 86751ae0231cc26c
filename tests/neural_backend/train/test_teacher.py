"""The DCGAN teacher: architecture, hidden features, reading from weights.tar or the wheel, refusals."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
from hostile_pickles import PAYLOADS, save_hostile_teacher

from neural_backend.train.teacher import TeacherError, load_teacher


def test_with_features_gives_the_hidden_activations_at_4_8_16_32(teacher_file: Path) -> None:
    teacher = load_teacher("dcgan", teacher_file)
    assert (teacher.z_dim, teacher.resolution) == (8, 64)
    assert teacher.feature_channels == {4: 32, 8: 16, 16: 8, 32: 4}
    z = torch.randn([3, 8], generator=torch.Generator().manual_seed(0))
    images, features = teacher.with_features(z)
    assert images.shape == (3, 3, 64, 64)
    assert images.abs().max() <= 1.0 and images.std() > 0
    assert sorted(features) == [4, 8, 16, 32]
    for resolution, channels in teacher.feature_channels.items():
        assert features[resolution].shape == (3, channels, resolution, resolution)
        assert features[resolution].min() >= 0  # taken after each ReLU
    assert torch.equal(teacher(z), images)
    assert torch.equal(teacher(z[:, :, None, None]), images)  # (N, nz, 1, 1) is accepted too


def test_the_teacher_is_frozen_and_in_eval_mode(teacher_file: Path) -> None:
    teacher = load_teacher("dcgan", teacher_file)
    assert not teacher.network.training
    assert not any(p.requires_grad for p in teacher.network.parameters())
    z = torch.randn([2, 8], generator=torch.Generator().manual_seed(1))
    # eval-mode BatchNorm: an image does not depend on the rest of its batch
    assert torch.allclose(teacher(z)[:1], teacher(z[:1]), atol=1e-6)


def test_the_loaded_weights_are_the_files(teacher_file: Path) -> None:
    saved = torch.load(teacher_file, weights_only=True)["netG_state_dict"]
    loaded = load_teacher("dcgan", teacher_file).network.state_dict()
    assert saved.keys() == loaded.keys()
    for name, tensor in saved.items():
        assert torch.equal(loaded[name], tensor), name


def test_a_wrong_z_shape_is_refused(teacher_file: Path) -> None:
    with pytest.raises(ValueError, match=r"\[N, 8\]"):
        load_teacher("dcgan", teacher_file).network(torch.zeros([2, 9]))


def test_loading_from_the_wheel_equals_loading_from_the_tar(teacher_file: Path, teacher_wheel: Path) -> None:
    from_tar = load_teacher("dcgan", teacher_file)
    from_wheel = load_teacher("dcgan", teacher_wheel)
    assert from_wheel.path == teacher_wheel
    tar_state, wheel_state = from_tar.network.state_dict(), from_wheel.network.state_dict()
    assert tar_state.keys() == wheel_state.keys()
    for name in tar_state:
        assert torch.equal(tar_state[name], wheel_state[name]), name
    z = torch.randn([4, 8], generator=torch.Generator().manual_seed(2))
    assert torch.equal(from_tar(z), from_wheel(z))


def test_an_unknown_kind_is_refused(teacher_file: Path) -> None:
    with pytest.raises(TeacherError, match="unknown; known kinds: dcgan"):
        load_teacher("biggan", teacher_file)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_pickled_callable_is_refused_and_never_runs(
    tmp_path: Path, dcgan_state: dict[str, torch.Tensor], payload: str
) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "weights.tar"
    save_hostile_teacher(path, dcgan_state, payload, marker)
    with pytest.raises(TeacherError) as caught:
        load_teacher("dcgan", path)
    message = str(caught.value)
    assert message.startswith(f"{path}: refused: the file holds more than tensors")
    assert "\n" not in message
    assert ("PlainObject" if payload == "instance" else "system") in message  # names the refused global
    assert not marker.exists()


def test_a_callable_inside_the_wheel_is_refused_too(
    tmp_path: Path, dcgan_state: dict[str, torch.Tensor]
) -> None:
    marker = tmp_path / "ran"
    inner = tmp_path / "inner.tar"
    save_hostile_teacher(inner, dcgan_state, "reduce", marker)
    wheel = tmp_path / "gan_face_generate-1.1.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(inner, "gan_face_generate/weights.tar")
    with pytest.raises(TeacherError, match="refused"):
        load_teacher("dcgan", wheel)
    assert not marker.exists()


def _write(path: Path, content: object) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    return path


@pytest.mark.parametrize(
    ("content", "words"),
    [
        pytest.param(
            b"\x00garbage, not a torch.save file" * 20,
            "not a readable torch.save file",
        ),
        (b"just some text\n", "not a readable torch.save file"),
        (b"", "not a readable torch.save file"),
        ({"generator": {}}, "expected a dict with 'netG_state_dict', found ['generator']"),
        ([1, 2, 3], "expected a dict with 'netG_state_dict', found list"),
        ({"netG_state_dict": [1, 2]}, "'netG_state_dict' is not a dict of tensors"),
        ({"netG_state_dict": {"main.0.weight": 1.0}}, "'netG_state_dict' is not a dict of tensors"),
        ({"netG_state_dict": {"fc.weight": torch.zeros(2, 2)}}, "not a DCGAN generator state"),
    ],
    ids=["garbage", "text", "empty", "no-key", "list", "state-list", "state-float", "other-network"],
)
def test_unusable_files_are_one_line_errors_naming_the_file(
    tmp_path: Path, content: object, words: str
) -> None:
    path = _write(tmp_path / "weights.tar", content)
    with pytest.raises(TeacherError) as caught:
        load_teacher("dcgan", path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert words in message


def test_wrong_shapes_are_named(tmp_path: Path, dcgan_state: dict[str, torch.Tensor]) -> None:
    state = dict(dcgan_state)
    state["main.1.weight"] = torch.ones(5)
    path = _write(tmp_path / "weights.tar", {"netG_state_dict": state})
    with pytest.raises(TeacherError, match=r"wrong shapes: main\.1\.weight \[5\] \(expected \[32\]\)"):
        load_teacher("dcgan", path)


def test_missing_and_unexpected_weights_are_named(
    tmp_path: Path, dcgan_state: dict[str, torch.Tensor]
) -> None:
    state = dict(dcgan_state)
    del state["main.4.weight"]
    state["main.99.weight"] = torch.ones(1)
    path = _write(tmp_path / "weights.tar", {"netG_state_dict": state})
    with pytest.raises(TeacherError, match=r"missing: main\.4\.weight; unexpected: main\.99\.weight"):
        load_teacher("dcgan", path)


def test_missing_file_and_a_wheel_without_the_weights(tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="no such teacher file"):
        load_teacher("dcgan", tmp_path / "nope.tar")
    wheel = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("other/__init__.py", "")
    with pytest.raises(TeacherError, match=f"^{wheel}: "):
        load_teacher("dcgan", wheel)
