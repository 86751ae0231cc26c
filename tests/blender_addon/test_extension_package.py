"""``rigstyle addon build``: the extension zip, and that the real ``bpy`` installs and runs it.

The zip is built once by the real CLI (pip fetches pyzmq/msgpack wheels; the package index or pip's cache
must be reachable). The install runs in a fresh interpreter that sees only Blender (``bpy``) and numpy —
which Blender bundles — so zmq, msgpack, rigs and neural_backend can only come from the extension's
bundled wheels, exactly as in a real Blender without this project's virtual environment.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from cli_helpers import run_rigstyle
from PIL import Image
from serving_helpers import BackendProcess

from neural_backend.cli.addon import PLATFORM_TAGS, addon_build

pytestmark = [pytest.mark.blender, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])

# Runs in a fresh interpreter without site-packages: argv = zip, folder holding only bpy and numpy.
INSTALL_SCRIPT = """
import importlib, json, sys, zipfile
sys.path.append(sys.argv[2])
import bpy

result = bpy.ops.extensions.package_install_files(
    filepath=sys.argv[1], repo="user_default", enable_on_install=True
)
module = "bl_ext.user_default.rigstyle"
names = [n[:-3] for n in zipfile.ZipFile(sys.argv[1]).namelist() if "/" not in n and n.endswith(".py")]
for name in names:  # every module of the add-on imports (no torch, no missing dependency)
    importlib.import_module(module if name == "__init__" else f"{module}.{name}")

import msgpack, zmq
import neural_backend.client.blocking, rigs

context = zmq.Context()
context.term()
before = set(bpy.data.objects)
demo = bpy.ops.rigstyle.add_demo_head()
print(json.dumps({
    "install": sorted(result),
    "enabled": module in bpy.context.preferences.addons,
    "addon_file": sys.modules[module].__file__,
    "files": {m.__name__: m.__file__ for m in (zmq, msgpack, rigs, neural_backend.client.blocking)},
    "msgpack": msgpack.unpackb(msgpack.packb({"frame": 3})),
    "demo": sorted(demo),
    "new_objects": sorted(o.name for o in set(bpy.data.objects) - before),
    "torch_loaded": "torch" in sys.modules,
    "operators": sorted(dir(bpy.ops.rigstyle)),
    "panels": sorted(n for n in dir(bpy.types) if n.startswith("RIGSTYLE_PT_")),
}))
"""


OPERATORS = (  # what an animator finds in the menus and panels, by operator name
    "add_demo_head", "reset_params", "randomize_params", "apply_expression_preset", "apply_hand_preset",
    "transfer_emotion", "preference_start", "preference_answer", "preference_apply", "import_rig",
    "import_take", "export_take", "render_shot", "preview",
)  # fmt: skip
PANELS = ("RIGSTYLE_PT_rig", "RIGSTYLE_PT_rig_presets", "RIGSTYLE_PT_rig_hands", "RIGSTYLE_PT_preference")


# Acceptance: argv = zip, folder with only bpy and numpy, backend address, output folder. The installed
# extension builds the demo rig and renders a refined shot headless, then reports what it finds.
RENDER_SCRIPT = """
import importlib, json, sys
sys.path.append(sys.argv[2])
import bpy

bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default", enable_on_install=True)
module = "bl_ext.user_default.rigstyle"
bpy.context.preferences.addons[module].preferences.address = sys.argv[3]
for obj in list(bpy.data.objects):  # the factory startup's cube, camera and light
    bpy.data.objects.remove(obj)

import rigs
animation, compositor, scene_setup, ui = (
    importlib.import_module(f"{module}.{name}") for name in ("animation", "compositor", "scene_setup", "ui")
)
scene = bpy.context.scene
assert bpy.ops.rigstyle.add_demo_head() == {"FINISHED"}
objects = ui.context_rig(bpy.context)
scene_setup.configure_render(scene, 96, 96, 1)
scene_setup.add_camera_and_lights(scene, rigs.demo_head(), objects)
scene.frame_start, scene.frame_end = 1, 3
animation.keyframe_demo_animation(objects, 1, 3)
scene.render.filepath = sys.argv[4] + "/"
result = bpy.ops.rigstyle.render_shot(shot="installed")
tree = scene.compositing_node_group if hasattr(scene, "compositing_node_group") else scene.node_tree
print(json.dumps({
    "result": sorted(result),
    "wired": compositor.is_wired(scene),
    "switch": compositor.refined_switch(scene),
    "nodes": sorted(n.bl_idname for n in tree.nodes),
    "images": sorted(n.image.filepath for n in tree.nodes if n.bl_idname == "CompositorNodeImage"),
    "output": scene.render.filepath,
}))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("addon") / "dist"
    result = run_rigstyle("addon", "build", "--out", out)
    assert result.returncode == 0, result.stderr
    zip_path = out / f"rigstyle-{PYPROJECT['version']}.zip"
    assert str(zip_path) in result.stdout
    assert [p.name for p in out.iterdir()] == [zip_path.name]  # no partial file left behind
    return zip_path


def read_manifest(zip_path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(zip_path) as archive:
        return tomllib.loads(archive.read("blender_manifest.toml").decode())


def test_zip_layout_and_manifest(built: Path) -> None:
    manifest = read_manifest(built)
    names = zipfile.ZipFile(built).namelist()
    addon_files = sorted(
        p.relative_to(ROOT / "blender_addon").as_posix()
        for p in (ROOT / "blender_addon").rglob("*.py")
        if "__pycache__" not in p.parts
    )
    assert "__init__.py" in names and "blender_manifest.toml" in names
    assert sorted(n for n in names if n.endswith(".py")) == addon_files
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert (manifest["id"], manifest["version"]) == (PYPROJECT["name"], PYPROJECT["version"])
    assert manifest["schema_version"] == "1.0.0" and manifest["type"] == "add-on"
    assert manifest["platforms"] == ["linux-x64"]
    assert set(manifest["permissions"]) == {"network", "files"}

    wheels = manifest["wheels"]
    assert isinstance(wheels, list)
    assert sorted(w.removeprefix("./") for w in wheels) == sorted(n for n in names if n.startswith("wheels/"))
    by_project = {Path(w).name.split("-")[0].lower(): Path(w).name for w in wheels}
    assert set(by_project) == {"pyzmq", "msgpack", "rigstyle"}
    for project in ("pyzmq", "msgpack"):  # pinned to what the tests run against
        assert by_project[project].split("-")[1] == metadata.version(project)
        assert "-cp311-cp311-" in by_project[project] and "x86_64" in by_project[project]
    assert by_project["rigstyle"] == f"rigstyle-{PYPROJECT['version']}-py3-none-any.whl"


def test_source_manifest_matches_pyproject() -> None:
    """Blender also loads blender_addon/ as a folder extension in development: keep its manifest in sync."""
    manifest = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    assert (manifest["id"], manifest["version"]) == (PYPROJECT["name"], PYPROJECT["version"])


def test_cli_platform_choices_match_the_builder() -> None:
    option = next(p for p in addon_build.params if p.name == "platforms")
    assert isinstance(option.type, click.Choice)
    assert list(option.type.choices) == list(PLATFORM_TAGS)


def run_in_clean_blender(script: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter that sees only bpy and numpy (argv[2] is their folder), with
    Blender's user resources in ``tmp_path/blender_user``; returns the JSON of its last output line."""
    only_blender = tmp_path / "only_blender"  # bpy and numpy, nothing else of the virtual environment
    only_blender.mkdir()
    for name in ("bpy", "numpy", "numpy.libs"):
        if (SITE_PACKAGES / name).exists():
            (only_blender / name).symlink_to(SITE_PACKAGES / name)
    resources = tmp_path / "blender_user"
    env = {"BLENDER_USER_RESOURCES": str(resources), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script, args[0], str(only_blender), *args[1:]],
        capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_installs_and_runs_in_blender_from_its_own_wheels(built: Path, tmp_path: Path) -> None:
    report = run_in_clean_blender(INSTALL_SCRIPT, tmp_path, str(built))
    resources = tmp_path / "blender_user"

    extension = resources / "extensions"
    assert report["install"] == ["FINISHED"] and report["enabled"]
    assert Path(report["addon_file"]) == extension / "user_default" / "rigstyle" / "__init__.py"
    bundled = extension / ".local" / "lib" / "python3.11" / "site-packages"
    for module, file in report["files"].items():
        assert Path(file).is_relative_to(bundled), f"{module} imported from {file}, not the bundled wheels"
    assert report["msgpack"] == {"frame": 3}
    assert report["demo"] == ["FINISHED"]
    assert {"RigStyle Demo Head Mesh", "RigStyle Demo Head Armature"} <= set(report["new_objects"])
    assert not report["torch_loaded"]
    assert set(OPERATORS) <= set(report["operators"]), set(OPERATORS) - set(report["operators"])
    assert set(PANELS) <= set(report["panels"]), set(PANELS) - set(report["panels"])


def test_installed_extension_renders_a_refined_shot_into_the_compositor(
    built: Path, backend: BackendProcess, tmp_path: Path
) -> None:
    """The acceptance path: the built zip installed and enabled in a clean Blender, the demo rig built,
    Render Refined Shot run headless against a real backend process."""
    render = tmp_path / "render"
    report = run_in_clean_blender(RENDER_SCRIPT, tmp_path, str(built), backend.address, str(render))
    assert report["result"] == ["FINISHED"]
    assert report["wired"] and report["switch"] is True
    nodes = report["nodes"]
    assert nodes.count("CompositorNodeImage") == 2 and "CompositorNodeSwitch" in nodes
    assert "CompositorNodeRLayers" not in nodes, "compositing reads the sequences, it does not re-render"
    shot = render / "rigstyle_installed"
    assert sorted(Path(p).name for p in report["images"]) == ["beauty_0001.exr", "frame_0001.png"]
    assert report["output"] == f"{render}/", "the scene's own output path is restored"
    for frame in (1, 2, 3):
        composite = np.asarray(Image.open(shot / "composite" / f"frame_{frame:04d}.png").convert("RGB"))
        refined = np.asarray(Image.open(shot / "refined" / f"frame_{frame:04d}.png").convert("RGB"))
        assert composite.shape == (96, 96, 3)
        assert np.abs(composite.astype(int) - refined.astype(int)).max() <= 1
        assert np.load(shot / "passes" / f"frame_{frame:04d}.npz")["motion"].shape == (96, 96, 2)


def test_missing_output_parent_is_a_user_error(tmp_path: Path) -> None:
    result = run_rigstyle("addon", "build", "--out", tmp_path / "missing" / "dist")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr
