"""The Node.js reference client (examples/node_client) refines a frame against the real backend process, with
each engine (local, echo, Ray)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import UNTRAINED, backend_process
from synthetic import synthetic_face

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "node_client"


def write_bundle(folder: Path) -> dict[str, np.ndarray]:
    passes = synthetic_face(frame=3)
    message = passes.to_message()
    folder.mkdir(parents=True)
    specs = []
    for name, array in message.tensors.items():
        array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        (folder / f"{name}.bin").write_bytes(array.tobytes())
        specs.append(
            {"name": name, "dtype": array.dtype.name, "shape": list(array.shape), "file": f"{name}.bin"}
        )
    bundle = {"shot": passes.shot, "frame": passes.frame, "tensors": specs}
    (folder / "bundle.json").write_text(json.dumps(bundle))
    return dict(message.tensors)


TOKEN = "node-client-test-token-0123456789"


ENGINES = {
    "local": (*UNTRAINED, "--gan-resolution", "16", "--steps-first", "20"),
    "echo": ("--echo",),
    "ray": (*UNTRAINED, "--gan-resolution", "16", "--steps-first", "20", "--ray", "--replicas", "1",
            "--cpus-per-replica", "0.5"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("engine", "token"),
    [("local", None), ("local", TOKEN), ("echo", None), pytest.param("ray", None, marks=pytest.mark.slow)],
    ids=["local", "local-token", "echo", "ray"],
)
def test_node_client_gets_a_refined_frame(tmp_path: Path, engine: str, token: str | None) -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed for the reference client test"
    assert (EXAMPLE / "node_modules" / "zeromq").is_dir(), (
        "run `make install` (it runs npm ci in examples/node_client)"
    )
    if engine == "ray":
        pytest.importorskip("ray.serve")
    tensors = write_bundle(tmp_path / "bundle")
    token_args = ["--token", token] if token else []
    with backend_process(*ENGINES[engine], *token_args, token=token) as backend:
        command = [node, "client.mjs", backend.address, str(tmp_path / "bundle"), str(tmp_path / "out")]
        if token:
            refused = subprocess.run(command, cwd=EXAMPLE, capture_output=True, text=True, timeout=60)
            assert refused.returncode == 3 and "unauthorized" in refused.stderr
            command += ["--token", token]
        result = subprocess.run(
            [*command, "--timeout", "120"], cwd=EXAMPLE, capture_output=True, text=True, timeout=180
        )
    assert result.returncode == 0, result.stderr
    assert "frame 3:" in result.stdout
    reply = json.loads((tmp_path / "out" / "reply.json").read_text())
    assert reply["type"] == "result" and reply["fields"]["frame"] == 3
    specs = {t["name"]: t for t in reply["tensors"]}
    height, width = tensors["beauty"].shape[:2]
    assert specs["image"]["shape"] == [height, width, 3] and specs["image"]["dtype"] == "float32"
    image = np.frombuffer((tmp_path / "out" / "image.bin").read_bytes(), "<f4").reshape(height, width, 3)
    skin = (slice(128, 142), slice(120, 136))  # deep inside the synthetic face's skin: CGI kept exactly
    np.testing.assert_allclose(image[skin], tensors["beauty"][skin], atol=1e-5)
    if engine != "echo":  # the echo engine optimises nothing
        metrics = reply["fields"]["metrics"]
        assert metrics["skin_loss_final"] < metrics["skin_loss_init"]


def test_node_client_reports_a_bundle_that_does_not_match_its_manifest(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node
    write_bundle(tmp_path / "bundle")
    (tmp_path / "bundle" / "beauty.bin").write_bytes(b"\x00" * 12)
    result = subprocess.run(
        [node, "client.mjs", "tcp://127.0.0.1:9", str(tmp_path / "bundle"), str(tmp_path / "out")],
        cwd=EXAMPLE, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1 and "beauty: beauty.bin has 12 bytes" in result.stderr
