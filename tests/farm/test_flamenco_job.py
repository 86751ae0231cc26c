"""The Flamenco job type farm/flamenco/rigstyle.js, compiled in real Node.js by flamenco_harness.js.

The harness stands in for Flamenco Manager's job compiler runtime (strict mode, Flamenco's globals only, the
`author` API); no real Manager runs here.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "farm" / "flamenco" / "rigstyle.js"
HARNESS = Path(__file__).with_name("flamenco_harness.js")

GOOD_SETTINGS: dict[str, Any] = {
    "frames": "1-25",
    "chunk_size": 10,
    "shot_dir": "/farm/shots/sh010",
    "backends": "tcp://gpu1:7557  tcp://gpu2:7557",
    "token_file": "/farm/secrets/rigstyle.token",
    "segment": 0,
    "rigstyle_exe": "rigstyle",
    "blendfile": "/farm/scenes/sh010.blend",
}


def node() -> str:
    exe = shutil.which("node")
    if exe is None:
        pytest.fail("Node.js (`node`) is required for the Flamenco job type tests; CI has it")
    return exe


def compile_job(tmp_path: Path, settings: dict[str, Any], script: Path = SCRIPT) -> dict[str, Any]:
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"name": "sh010", "settings": settings}))
    result = subprocess.run(
        [node(), str(HARNESS), str(script), str(job_file)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode in (0, 1), result.stderr
    out = json.loads(result.stdout)
    assert out["ok"] == (result.returncode == 0), out
    return out


def compile_many(tmp_path: Path, settings_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Several jobs in one Node.js run (each in a fresh context), to keep the tests fast."""
    job_file = tmp_path / "jobs.json"
    job_file.write_text(json.dumps([{"name": "sh010", "settings": s} for s in settings_list]))
    result = subprocess.run(
        [node(), str(HARNESS), str(SCRIPT), str(job_file)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    outs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(outs) == len(settings_list)
    return outs


def compiled(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    out = compile_job(tmp_path, {**GOOD_SETTINGS, **overrides})
    assert out["ok"], out["error"]
    return out


def by_stage(tasks: list[dict[str, Any]]) -> tuple[list[dict], dict, list[dict]]:
    passes = [t for t in tasks if t["name"].startswith("passes-")]
    refine = [t for t in tasks if t["name"] == "refine"]
    composite = [t for t in tasks if t["name"].startswith("composite-")]
    assert len(passes) + len(refine) + len(composite) == len(tasks), [t["name"] for t in tasks]
    assert len(refine) == 1
    return passes, refine[0], composite


def farm_call(task: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of bpy.ops.rigstyle.farm(...) in a Blender task, read as Python."""
    (command,) = task["commands"]
    assert command["name"] == "blender-render"
    args = command["parameters"]["args"]
    assert args[:3] == ["--python-exit-code", "1", "--python-expr"]
    module = ast.parse(args[3])
    assert isinstance(module.body[0], ast.Import) and module.body[0].names[0].name == "bpy"
    call = module.body[-1].value  # type: ignore[attr-defined]
    assert ast.unparse(call.func) == "bpy.ops.rigstyle.farm"
    assert not call.args
    return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}


def frames_of(frames: str) -> list[int]:
    first, last = (int(x) for x in re.fullmatch(r"(-?\d+)-(-?\d+)", frames).groups())  # type: ignore[union-attr]
    return list(range(first, last + 1))


CHUNK_CASES = [
    ("1-25", 10, ["1-10", "11-20", "21-25"]),
    ("1..20", 10, ["1-10", "11-20"]),
    ("7", 5, ["7-7"]),
    ("-3-2", 4, ["-3-0", "1-2"]),
    (" 100 - 102 ", 1, ["100-100", "101-101", "102-102"]),
]


@pytest.fixture(scope="module")
def chunk_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    cases = [{**GOOD_SETTINGS, "frames": f, "chunk_size": n} for f, n, _ in CHUNK_CASES]
    return compile_many(tmp_path_factory.mktemp("chunks"), cases)


@pytest.mark.parametrize("case", range(len(CHUNK_CASES)))
def test_passes_cover_every_frame_once_in_chunks(chunk_results: list[dict[str, Any]], case: int) -> None:
    _, chunk_size, expected = CHUNK_CASES[case]
    out = chunk_results[case]
    assert out["ok"], out["error"]
    passes, _, composite = by_stage(out["tasks"])
    for stage, tasks in (("passes", passes), ("composite", composite)):
        calls = [farm_call(t) for t in tasks]
        assert [c["frames"] for c in calls] == expected
        assert [t["name"] for t in tasks] == [f"{stage}-{f}" for f in expected]
        assert all(
            c == {"stage": stage, "frames": c["frames"], "out_dir": "/farm/shots/sh010"} for c in calls
        )
        covered = [f for c in calls for f in frames_of(c["frames"])]
        assert len(covered) == len(set(covered))
        assert all(len(frames_of(c["frames"])) <= chunk_size for c in calls)
        first, last = frames_of(expected[0])[0], frames_of(expected[-1])[-1]
        assert covered == list(range(first, last + 1))


def test_task_graph_and_gpu_routing(tmp_path: Path) -> None:
    tasks = compiled(tmp_path)["tasks"]
    passes, refine, composite = by_stage(tasks)
    assert [t["name"] for t in tasks] == [t["name"] for t in (*passes, refine, *composite)]
    assert all(t["type"] == "blender" and t["dependencies"] == [] for t in passes)
    assert refine["type"] == "rigstyle-refine"
    assert sorted(refine["dependencies"]) == sorted(t["uuid"] for t in passes)
    assert all(t["type"] == "blender" and t["dependencies"] == [refine["uuid"]] for t in composite)
    assert len({t["uuid"] for t in tasks}) == len(tasks)


def test_blender_command_uses_worker_blender(tmp_path: Path) -> None:
    passes, _, _ = by_stage(compiled(tmp_path)["tasks"])
    params = passes[0]["commands"][0]["parameters"]
    assert params["exe"] == "{blender}"
    assert params["exeArgs"] == "{blenderArgs}"
    assert params["argsBefore"] == ["-b"]
    assert params["blendfile"] == "/farm/scenes/sh010.blend"


def test_refine_command_arguments(tmp_path: Path) -> None:
    _, refine, _ = by_stage(compiled(tmp_path, segment=48)["tasks"])
    (command,) = refine["commands"]
    assert command["name"] == "exec"
    assert command["parameters"] == {
        "exe": "rigstyle",
        "args": [
            "refine", "/farm/shots/sh010",
            "--backend", "tcp://gpu1:7557",
            "--backend", "tcp://gpu2:7557",
            "--token-file", "/farm/secrets/rigstyle.token",
            "--segment", "48",
            "--progress", "json",
        ],
    }  # fmt: skip


def test_optional_settings_can_be_left_out(tmp_path: Path) -> None:
    settings = {k: v for k, v in GOOD_SETTINGS.items() if k not in ("token_file", "segment", "rigstyle_exe")}
    settings["backends"] = "ipc:///run/rigstyle.sock"
    _, refine, _ = by_stage(compile_job(tmp_path, settings)["tasks"])
    assert refine["commands"][0]["parameters"] == {
        "exe": "rigstyle",
        "args": [
            "refine",
            "/farm/shots/sh010",
            "--backend",
            "ipc:///run/rigstyle.sock",
            "--progress",
            "json",
        ],
    }


def test_paths_with_quotes_reach_python_intact(tmp_path: Path) -> None:
    odd = 'C:\\farm\\it\'s "sh010"'
    passes, _, _ = by_stage(compiled(tmp_path, shot_dir=odd)["tasks"])
    assert farm_call(passes[0])["out_dir"] == odd


INVALID_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"frames": "10-1"}, ["frames", "ends before it starts"]),
    ({"frames": "1-10,20-30"}, ["frames must be one range"]),
    ({"frames": ""}, ["frames must be one range"]),
    ({"chunk_size": 0}, ["chunk_size", ">= 1"]),
    ({"chunk_size": 2.5}, ["chunk_size"]),
    ({"backends": ""}, ["backends is empty"]),
    ({"backends": "   "}, ["backends is empty"]),
    ({"backends": "gpu1:7557"}, ["gpu1:7557", "tcp://HOST:PORT"]),
    ({"shot_dir": ""}, ["'shot_dir' is required"]),
    ({"blendfile": None}, ["'blendfile' is required"]),
    ({"segment": -1}, ["segment"]),
]


@pytest.fixture(scope="module")
def invalid_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    cases = [{**GOOD_SETTINGS, **overrides} for overrides, _ in INVALID_CASES]
    return compile_many(tmp_path_factory.mktemp("invalid"), cases)


@pytest.mark.parametrize("case", range(len(INVALID_CASES)))
def test_invalid_settings_throw_clear_errors(invalid_results: list[dict[str, Any]], case: int) -> None:
    overrides, words = INVALID_CASES[case]
    out = invalid_results[case]
    assert not out["ok"], overrides
    assert out["error"].startswith("Error: rigstyle: ")
    for word in words:
        assert word in out["error"]
    assert "tasks" not in out


def test_job_type_settings_are_declared_and_used(tmp_path: Path) -> None:
    out = compiled(tmp_path)
    settings = out["jobType"]["settings"]
    keys = [s["key"] for s in settings]
    assert len(keys) == len(set(keys))
    assert set(keys) == set(GOOD_SETTINGS)
    assert all(s["type"] in {"string", "int32", "float", "bool"} for s in settings)
    source = SCRIPT.read_text()
    used = set(re.findall(r"settings\.(\w+)", source)) | set(re.findall(r"settings, \"(\w+)\"", source))
    assert used == set(keys)
    assert out["print"], "compileJob logs a summary through Flamenco's print()"


def test_script_uses_only_flamenco_globals(tmp_path: Path) -> None:
    out = compiled(tmp_path)
    assert out["globals"] == [
        "print", "alert", "frameChunker", "frameCount", "formatTimestampLocal", "shellSplit",
        "author", "path", "process",
    ]  # fmt: skip
    # The harness context really is bare: Node's own globals are not there, so a script using them fails.
    for snippet in ("console.log('x')", "require('fs')", "setTimeout(() => 0, 1)", "Buffer.from('x')"):
        probe = tmp_path / "probe.js"
        probe.write_text(
            f"const JOB_TYPE = {{label: 'p', settings: []}};\nfunction compileJob(job) {{ {snippet}; }}\n"
        )
        bad = compile_job(tmp_path, {}, script=probe)
        assert not bad["ok"] and "ReferenceError" in bad["error"], bad
    # ... and the script is run in strict mode, like Flamenco's goja.Compile(..., strict=true).
    probe = tmp_path / "probe.js"
    probe.write_text(
        "const JOB_TYPE = {label: 'p', settings: []};\nfunction compileJob(job) { undeclared = 1; }\n"
    )
    assert "ReferenceError" in compile_job(tmp_path, {}, script=probe)["error"]


def test_author_api_checks_like_flamenco(tmp_path: Path) -> None:
    probe = tmp_path / "probe.js"
    probe.write_text(
        "const JOB_TYPE = {label: 'p', settings: []};\nfunction compileJob(job) { author.Task(' ', 'x'); }\n"
    )
    assert "author.Task(name, type): name is required" in compile_job(tmp_path, {}, script=probe)["error"]
    probe.write_text("var JOB_TYPE = {label: 'p', settings: []};\n")
    assert "does not define a compileJob(job) function" in compile_job(tmp_path, {}, script=probe)["error"]
