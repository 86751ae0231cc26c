from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
from official_files import (
    landmark_arrays,
    write_deca_embedding,
    write_flame,
    write_flame_dynamic_embedding,
    write_flame_static_embedding,
    write_smplx,
)

import rigs
from rigs import RigError, compose_pose, hand_pose_from_pca, pose_parts
from rigs.landmarks import dynamic_landmark_row
from rigs.lbs import rodrigues


def assert_same_rig(a: rigs.Rig, b: rigs.Rig) -> None:
    for field in dataclasses.fields(rigs.Rig):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if field.name == "name":
            continue
        if isinstance(x, np.ndarray):
            assert x.shape == y.shape and np.array_equal(x, y), field.name
        else:
            assert x == y, field.name


def check_error(path, fragment, **kwargs):
    with pytest.raises(RigError) as info:
        rigs.load(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and fragment in message and "\n" not in message, message


@pytest.fixture(scope="module")
def flame_variants(tmp_path_factory):
    root = tmp_path_factory.mktemp("flame")
    return {v: write_flame(root / v, v, seed=2) for v in ("plain", "chumpy", "npz")}


@pytest.fixture(scope="module")
def smplx_variants(tmp_path_factory):
    root = tmp_path_factory.mktemp("smplx")
    return {v: write_smplx(root / v, v, seed=2) for v in ("npz", "plain", "chumpy")}


def test_flame_variants_load_to_the_same_rig(flame_variants):
    loaded = {variant: rigs.load(path) for variant, path in flame_variants.items()}
    rig = loaded["chumpy"]
    assert (rig.kind, rig.gender, rig.num_joints, rig.joint_names[2]) == ("flame", "neutral", 5, "jaw")
    assert (rig.shape_components, rig.expression_components) == (300, 100)
    assert (rig.num_landmarks, rig.num_dynamic_landmarks, rig.dynamic_landmark_chain) == (51, 17, (0,))
    assert rig.num_hand_components == 0 and pose_parts(rig)["neck_pose"] == (1,)
    for other in ("plain", "npz"):
        assert_same_rig(rig, loaded[other])


def test_smplx_variants_load_to_the_same_rig(smplx_variants):
    loaded = {variant: rigs.load(path) for variant, path in smplx_variants.items()}
    rig = loaded["npz"]
    assert (rig.kind, rig.num_joints, rig.joint_names[22], rig.joint_names[54]) == (
        "smplx",
        55,
        "jaw",
        "right_thumb3",
    )
    assert (rig.shape_components, rig.expression_components, rig.num_hand_components) == (300, 100, 45)
    assert rig.dynamic_landmark_chain == (12, 9, 6, 3, 0)
    assert rig.forward(dynamic_landmarks=True).landmarks.shape == (68, 3)
    for other in ("plain", "chumpy"):
        assert_same_rig(rig, loaded[other])


def test_folder_and_gender_pick_the_file_like_smplx(tmp_path):
    write_smplx(tmp_path, "npz", gender="female", seed=1)
    write_smplx(tmp_path, "npz", gender="neutral", seed=2)
    assert rigs.load(tmp_path, gender="female").gender == "female"
    assert rigs.load(tmp_path).name == "SMPL-X neutral (SMPLX_NEUTRAL.npz)"
    check_error(tmp_path, "folder holds none of ['SMPLX_MALE.npz'", gender="male")
    flame = tmp_path / "flame"
    write_flame(flame, "chumpy", name="generic_model.pkl")
    assert rigs.load(flame, kind="flame").gender == "neutral"


def test_truncation_to_fewer_components(smplx_variants):
    rig = rigs.load(smplx_variants["npz"], num_betas=10, num_expressions=20)
    full = rigs.load(smplx_variants["npz"])
    assert (rig.num_betas, rig.num_expressions) == (10, 20)
    np.testing.assert_array_equal(rig.exprdirs, full.exprdirs[:, :, :20])
    check_error(smplx_variants["npz"], "num_betas: the file has 300 components, 301", num_betas=301)


def test_files_with_20_components_split_10_and_10_like_smplx(tmp_path):
    small = rigs.load(write_smplx(tmp_path, "npz", num_components=20))
    assert (small.num_betas, small.num_expressions) == (10, 10)


def test_wrong_kind(flame_variants, smplx_variants):
    check_error(smplx_variants["npz"], "is a SMPL-X model, not FLAME", kind="flame")
    check_error(flame_variants["chumpy"], "is a FLAME model, not SMPL-X", kind="smplx")
    check_error(flame_variants["npz"], "is a FLAME model, not a RigStyle rig file", kind="rigstyle")


def test_wrong_gender_from_the_name_or_the_gender_field(tmp_path):
    named = write_smplx(tmp_path / "a", "npz", gender="male")
    check_error(named, "is a male model, but gender 'female' was asked for", gender="female")
    stated = write_smplx(tmp_path / "b", "npz", gender="female", name="model.npz", gender_field=True)
    check_error(stated, "is a female model, but gender 'neutral' was asked for", gender="neutral")
    assert rigs.load(stated).gender == "female"


@pytest.mark.parametrize("variant", ["chumpy", "npz"])
def test_truncated_model_files(flame_variants, tmp_path, variant):
    path = tmp_path / flame_variants[variant].name
    path.write_bytes(flame_variants[variant].read_bytes()[:-100])
    check_error(path, "truncated or corrupt")


def test_unknown_pickled_class_in_a_model_file(tmp_path):
    path = tmp_path / "FLAME_NEUTRAL.pkl"
    path.write_bytes(b"\x80\x02}q\x00X\x01\x00\x00\x00fcsubprocess\nPopen\n)\x81s.")
    check_error(path, "refusing to unpickle subprocess.Popen in")


def test_landmark_embedding_given_to_load_and_other_models(tmp_path):
    lmk = tmp_path / "flame_static_embedding.pkl"
    write_flame_static_embedding(lmk, landmark_arrays(10, 0))
    check_error(lmk, "is a landmark embedding, not a model")
    smpl = tmp_path / "SMPL_NEUTRAL.npz"
    np.savez(
        smpl, kintree_table=np.zeros((2, 24)), v_template=np.zeros((3, 3)), shapedirs=np.zeros((3, 3, 1))
    )
    check_error(smpl, "is a SMPL model, only FLAME and SMPL-X are supported")


def test_landmark_embedding_formats_agree(tmp_path):
    lmk = landmark_arrays(300, 4)
    write_flame_static_embedding(tmp_path / "static.pkl", lmk)
    write_flame_dynamic_embedding(tmp_path / "dynamic.npy", lmk)
    write_deca_embedding(tmp_path / "landmark_embedding.npy", lmk)
    write_deca_embedding(tmp_path / "landmark_embedding.npz", lmk)
    static = rigs.load_landmark_embedding(tmp_path / "static.pkl")
    smplx_style = static.merged(rigs.load_landmark_embedding(tmp_path / "dynamic.npy"))
    for name in ("landmark_embedding.npy", "landmark_embedding.npz"):
        deca = rigs.load_landmark_embedding(tmp_path / name)
        assert deca.full_faces.shape == (68,) and deca.full_bary.shape == (68, 3)
        for part in ("static_faces", "static_bary", "dynamic_faces", "dynamic_bary"):
            np.testing.assert_array_equal(getattr(deca, part), getattr(smplx_style, part), err_msg=part)
    assert static.dynamic_faces.size == 0 and smplx_style.dynamic_faces.shape == (79, 17)


def test_flame_embedding_found_next_to_the_model_or_given(tmp_path, flame_variants):
    bare = tmp_path / "bare" / "FLAME_NEUTRAL.npz"
    bare.parent.mkdir()
    shutil.copy(flame_variants["npz"], bare)
    assert rigs.load(bare).num_landmarks == 0
    with pytest.raises(RigError, match="no dynamic landmark embedding"):
        rigs.load(bare).forward(dynamic_landmarks=True)
    given = rigs.load(bare, landmarks=flame_variants["npz"].parent / "flame_static_embedding.pkl")
    assert (given.num_landmarks, given.num_dynamic_landmarks) == (51, 0)
    deca = write_flame(tmp_path / "deca", "npz", seed=2, embedding="deca")
    assert_same_rig(rigs.load(deca), rigs.load(flame_variants["npz"]))


def test_official_rig_round_trips_through_the_rigstyle_format(smplx_variants, tmp_path):
    rig = rigs.load(smplx_variants["chumpy"])
    rigs.save(rig, tmp_path / "rig.npz")
    again = rigs.load(tmp_path / "rig.npz")
    assert_same_rig(rig, again)
    assert again.name == rig.name


def test_hand_pca_to_pose():
    rng = np.random.default_rng(0)
    components, mean = rng.normal(size=(45, 45)), rng.normal(size=45)
    coeffs = rng.normal(size=6)
    pose = hand_pose_from_pca(coeffs, components, mean)
    np.testing.assert_allclose(pose.reshape(-1), coeffs @ components[:6] + mean)
    with pytest.raises(RigError, match="at most 45 values"):
        hand_pose_from_pca(np.zeros(46), components)


def test_compose_pose_places_parts_and_checks_them(smplx_variants):
    rig = rigs.load(smplx_variants["npz"])
    pose = compose_pose(rig, {"jaw_pose": [0.1, 0.2, 0.3]}, flat_hand_mean=True)
    assert np.count_nonzero(pose) == 3 and pose[22].tolist() == [0.1, 0.2, 0.3]
    with_mean = compose_pose(rig, {})
    np.testing.assert_array_equal(with_mean[25:40].reshape(-1), rig.hand_mean[0])
    with pytest.raises(RigError, match=r"unknown \['tail_pose'\]"):
        compose_pose(rig, {"tail_pose": np.zeros(3)})
    with pytest.raises(RigError, match="body_pose: expected 63 finite values"):
        compose_pose(rig, {"body_pose": np.zeros(60)})


@pytest.mark.parametrize(
    ("degrees", "row"), [(0.2, 0), (-10.2, 10), (10.2, 49), (-50, 39), (39.4, 78), (60, 78)]
)
def test_dynamic_landmark_rows_by_yaw(degrees, row):
    rotation = rodrigues(np.array([[0.0, np.radians(degrees), 0.0]]))[0]
    assert dynamic_landmark_row(rotation, 79) == row
