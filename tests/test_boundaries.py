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
# Folders of neural_backend/ that never import torch, not even lazily: Blender and other DCCs load them.
DCC_FACING_PACKAGES = ("protocol", "client", "images")
# Folders (and single modules) that import no torch when imported; a command may import it later.
TORCH_FREE_AT_IMPORT = (
    *DCC_FACING_PACKAGES,
    "farm",
    "cli",
    "serving",  # the shell, the core and the echo engine; engines/local and engines/ray_engine need torch
    "checkpoints.names",
    "refine.framing",
)
TORCH_ENGINES = ("local", "ray_engine")


def modules_under(name: str) -> list[str]:
    """Dotted names of ``neural_backend.<name>`` and every module below it (a package) or just it."""
    base = ROOT / "neural_backend" / name.replace(".", "/")
    if base.with_suffix(".py").is_file():
        return [f"neural_backend.{name}"]
    found = []
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-2:-1] == ("engines",) and parts[-1] in TORCH_ENGINES:
            continue
        found.append(".".join(parts))
    assert found, f"nothing under {base}"
    return found


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


def test_protocol_client_and_image_packages_never_import_torch() -> None:
    for path in python_files(*(f"neural_backend/{name}" for name in DCC_FACING_PACKAGES)):
        assert "torch" not in imported_roots(path), f"{path} imports torch"


def test_importing_the_torch_free_packages_loads_neither_torch_nor_bpy() -> None:
    modules = ["rigs"] + [m for name in TORCH_FREE_AT_IMPORT for m in modules_under(name)]
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(m for m in ('torch', 'bpy') if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert json.loads(result.stdout) == []


def imported_modules(path: Path) -> set[str]:
    """Full names of the project modules a file imports (relative imports resolved), including lazy ones."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}  # `from pkg import module`
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_no_import_cycles_between_modules() -> None:
    files = python_files("rigs", "neural_backend")
    names = {}
    for path in files:
        parts = path.relative_to(ROOT).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {
        name: {m for m in imported_modules(path) if m in names and m != name and not name.startswith(m + ".")}
        for name, path in names.items()
    }
    # packages' __init__ modules are imported by their children implicitly; only module edges count
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
