"""Import boundaries from shared/DESIGN.md: bpy only in blender_addon/; no torch in rigs/, blender_addon/
or the protocol/client modules that Blender and other DCCs load."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DCC_FACING_MODULES = (
    "protocol",
    "passes",
    "client",
    "client_async",
    "shm",
    "ports",
    "color",
)  # never import torch, not even lazily
TORCH_FREE_AT_IMPORT = (
    *DCC_FACING_MODULES,
    "serving",
    "echo",
    "demo",
    "contact_sheet",
    "cli",
)  # may import it in a command


def imported_roots(path: Path) -> set[str]:
    """Top-level module names imported anywhere in a file (including inside functions)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def python_files(*folders: str) -> list[Path]:
    files = [p for folder in folders for p in (ROOT / folder).rglob("*.py")]
    assert files, f"no Python files under {folders}"
    return files


@pytest.mark.parametrize(
    "path", python_files("rigs", "neural_backend"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_bpy_is_imported_only_in_blender_addon(path: Path) -> None:
    assert not imported_roots(path) & {"bpy", "mathutils", "bmesh"}, f"{path} imports Blender modules"


@pytest.mark.parametrize(
    "path", python_files("rigs", "blender_addon"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_torch_or_smplx_in_rigs_or_blender_addon(path: Path) -> None:
    assert not imported_roots(path) & {"torch", "smplx", "chumpy", "scipy"}, (
        f"{path} imports {imported_roots(path)}"
    )


def test_rigs_imports_only_numpy_and_the_standard_library() -> None:
    allowed = {"numpy", "rigs"} | set(sys.stdlib_module_names)
    for path in python_files("rigs"):
        assert imported_roots(path) <= allowed, f"{path} imports {imported_roots(path) - allowed}"


def test_protocol_and_client_modules_do_not_import_torch_statically() -> None:
    for name in DCC_FACING_MODULES:
        path = ROOT / "neural_backend" / f"{name}.py"
        assert "torch" not in imported_roots(path), f"{path} imports torch"


def test_importing_the_dcc_facing_modules_loads_neither_torch_nor_bpy() -> None:
    modules = ["rigs"] + [f"neural_backend.{name}" for name in TORCH_FREE_AT_IMPORT]
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(m for m in ('torch', 'bpy') if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert json.loads(result.stdout) == []
