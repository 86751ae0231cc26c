"""Build the installable Blender extension zip (``rigstyle addon build``).

The zip follows Blender's extension layout (4.2+): ``blender_manifest.toml`` at the root next to the
add-on's ``__init__.py`` and modules (the contents of ``blender_addon/``), and ``wheels/*.whl`` listed in
the manifest's ``wheels``. Blender installs those wheels into the extension repository's own
site-packages, so the add-on never pip-installs anything at run time. Bundled wheels:

- pyzmq and msgpack, pinned to the versions installed next to this module (the ones the tests use), as
  CPython 3.11 binary wheels (Blender 4.2 to 5.0 embed Python 3.11) for every requested platform;
- this project's own pure-Python wheel (``rigs``, ``neural_backend``), built from the source checkout
  without its dependencies: Blender never needs torch; the add-on only imports ``rigs`` and the
  torch-free protocol/client modules of ``neural_backend``.

No bpy and no torch here: the build runs in any Python with pip and setuptools.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import click

from .options import UserError

# Blender platform name → the pip ``--platform`` tag asked for. pip also accepts every older tag of the
# same family (manylinux_2_28 takes manylinux2014 wheels; macosx_11_0 takes 10.x and universal2 wheels).
# glibc 2.28 and macOS 11 are the oldest systems Blender 4.2+ runs on.
PLATFORM_TAGS = {
    "linux-x64": "manylinux_2_28_x86_64",
    "linux-arm64": "manylinux_2_28_aarch64",
    "windows-x64": "win_amd64",
    "windows-arm64": "win_arm64",
    "macos-arm64": "macosx_11_0_arm64",
    "macos-x64": "macosx_11_0_x86_64",
}
DEFAULT_PLATFORMS = ("linux-x64",)
BLENDER_PYTHON = "3.11"  # the CPython that Blender 4.2 to 5.0 embed; wheels must be cp311
BINARY_DEPENDENCIES = ("pyzmq", "msgpack")  # what the add-on imports besides the project's own packages
SOURCE_TREES = ("rigs", "neural_backend", "blender_addon")  # what pyproject.toml packages
SOURCE_FILES = ("pyproject.toml", "README.md")
MANIFEST = "blender_manifest.toml"
ADDON_DIR = "blender_addon"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*")


class AddonBuildError(Exception):
    """The extension cannot be built (no source checkout, pip failed, bad manifest)."""


@dataclass(frozen=True)
class AddonBuild:
    """What ``build_extension`` wrote."""

    zip_path: Path  # DIR/rigstyle-<version>.zip
    version: str  # the project version (pyproject.toml), also the manifest's
    wheels: tuple[str, ...]  # wheel file names under wheels/ in the zip
    platforms: tuple[str, ...]  # Blender platform names in the manifest


def source_root() -> Path:
    """The project checkout this module lives in (the folder holding ``pyproject.toml``).

    Raises:
        AddonBuildError: this module was installed from a wheel, so there is no source tree to package.
    """
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / ADDON_DIR / MANIFEST).is_file():
        raise AddonBuildError(
            f"{root}: not a RigStyle source checkout (no pyproject.toml and {ADDON_DIR}/{MANIFEST}); "
            "build the extension from a clone of the repository"
        )
    return root


def build_extension(
    out_dir: Path,
    platforms: Sequence[str] = DEFAULT_PLATFORMS,  # Blender platform names, keys of PLATFORM_TAGS
    root: Path | None = None,  # source checkout; default: the one this module lives in
) -> AddonBuild:
    """Write ``out_dir/rigstyle-<version>.zip``, an extension installable with Blender's "Install from Disk".

    The zip is written to a temporary file and renamed, so a failed build never leaves a partial zip.

    Args:
        out_dir: existing or creatable folder whose parent exists.
        platforms: which platforms' binary wheels to bundle (one wheel per dependency and platform).
        root: the source checkout to package.

    Returns:
        The zip path, version, bundled wheel names and platforms.

    Raises:
        AddonBuildError: unknown platform, missing output parent, pip failure, bad manifest.
    """
    unknown = sorted(set(platforms) - set(PLATFORM_TAGS))
    if unknown or not platforms:
        raise AddonBuildError(
            f"unknown platform {', '.join(unknown) or '(none given)'}; choose from {', '.join(PLATFORM_TAGS)}"
        )
    platforms = tuple(dict.fromkeys(platforms))
    root = root or source_root()
    if not out_dir.parent.is_dir():
        raise AddonBuildError(f"{out_dir}: parent folder {out_dir.parent} does not exist")
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    manifest = _read_manifest(root / ADDON_DIR / MANIFEST)

    with tempfile.TemporaryDirectory(prefix="rigstyle-addon-") as tmp:
        wheel_dir = Path(tmp) / "wheels"
        for platform in platforms:
            _download_binary_wheels(wheel_dir, PLATFORM_TAGS[platform])
        _build_own_wheel(root, Path(tmp) / "src", wheel_dir)
        wheels = tuple(sorted(path.name for path in wheel_dir.glob("*.whl")))
        manifest |= {
            "version": version,
            "platforms": list(platforms),
            "wheels": [f"./wheels/{name}" for name in wheels],
        }
        zip_path = out_dir / f"{manifest['id']}-{version}.zip"
        partial = out_dir / f".{zip_path.name}.partial"
        out_dir.mkdir(exist_ok=True)
        try:
            _write_zip(partial, Path(tmp) / "src" / ADDON_DIR, _manifest_text(manifest), wheel_dir)
            os.replace(partial, zip_path)
        finally:
            partial.unlink(missing_ok=True)
    return AddonBuild(zip_path, version, wheels, platforms)


def _read_manifest(path: Path) -> dict[str, object]:
    try:
        manifest = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise AddonBuildError(f"{path}: {exc}") from None
    if "id" not in manifest:
        raise AddonBuildError(f"{path}: no 'id'")
    return manifest


def _run_pip(args: list[str]) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit code {result.returncode}"
        raise AddonBuildError(f"pip {args[0]} failed: {reason}")


def _download_binary_wheels(wheel_dir: Path, platform_tag: str) -> None:
    """pyzmq and msgpack at the installed versions, cp311 binary wheels for one platform."""
    pins = [f"{name}=={metadata.version(name)}" for name in BINARY_DEPENDENCIES]
    _run_pip(
        [
            "download",
            "--only-binary=:all:",
            "--no-deps",
            "--python-version",
            BLENDER_PYTHON,
            "--implementation",
            "cp",
            "--platform",
            platform_tag,
            "-d",
            str(wheel_dir),
            *pins,
        ]  # fmt: skip
    )


def _build_own_wheel(root: Path, staging: Path, wheel_dir: Path) -> None:
    """The project's pure-Python wheel without dependencies, built from a copy of the source tree.

    Building from a copy keeps setuptools' ``build/`` and ``*.egg-info`` out of the checkout.
    """
    for name in SOURCE_TREES:
        shutil.copytree(root / name, staging / name, ignore=IGNORED)
    for name in SOURCE_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, staging / name)
    _run_pip(
        ["wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir", str(staging), "-w", str(wheel_dir)]
    )


def _write_zip(path: Path, addon_dir: Path, manifest_text: str, wheel_dir: Path) -> None:
    """The zip: the built manifest and the add-on's files (a cleaned copy) at the root, wheels/ beside."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, manifest_text)
        for file in sorted(addon_dir.rglob("*")):
            relative = file.relative_to(addon_dir)
            if file.is_file() and relative.as_posix() != MANIFEST:
                archive.write(file, relative.as_posix())
        for wheel in sorted(wheel_dir.glob("*.whl")):
            # Wheels are already compressed; storing them keeps the build fast.
            archive.write(wheel, f"wheels/{wheel.name}", compress_type=zipfile.ZIP_STORED)


def _manifest_text(manifest: dict[str, object]) -> str:
    """TOML for a flat manifest: strings, lists of strings and tables of strings (tables last)."""
    lines = ["# Written by `rigstyle addon build` from blender_addon/blender_manifest.toml.", ""]
    tables: list[str] = []
    for key, value in manifest.items():
        if isinstance(value, dict):
            tables += ["", f"[{key}]", *(f"{k} = {_toml_value(v)}" for k, v in value.items())]
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines + tables) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        if len(value) <= 1:
            return "[" + ", ".join(map(_toml_value, value)) + "]"
        return "[\n" + "".join(f"    {_toml_value(item)},\n" for item in value) + "]"
    raise AddonBuildError(f"manifest value {value!r}: only strings and lists of strings are supported")


@click.group()
def addon() -> None:
    """Package the Blender extension (add-on plus bundled wheels) for Blender 4.2+."""


@addon.command("build")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (created if its parent exists); the zip is OUT/rigstyle-<version>.zip.",
)
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    default=("linux-x64",),
    show_default=True,
    type=click.Choice(
        ["linux-x64", "linux-arm64", "windows-x64", "windows-arm64", "macos-arm64", "macos-x64"]
    ),
    help="Blender platform whose pyzmq/msgpack wheels to bundle; repeat for several. The zip installs only "
    "on the platforms it names.",
)
def addon_build(out: Path, platforms: tuple[str, ...]) -> None:
    """Build the installable extension zip with the wheels it needs (pyzmq, msgpack, RigStyle's own).

    Blender installs the bundled wheels itself, so the add-on never pip-installs at run time and never
    needs torch. Wheels are fetched with pip (pyzmq and msgpack at the versions installed here, CPython
    3.11 builds) and the project's own wheel is built from this source checkout.

    \b
    Examples:
      rigstyle addon build --out dist/
      rigstyle addon build --out dist/ --platform linux-x64 --platform windows-x64 --platform macos-arm64
    Install: Blender > Edit > Preferences > Get Extensions > Install from Disk, or
      blender --command extension install-file -r user_default -e dist/rigstyle-0.1.0.zip
    """

    try:
        built = build_extension(out, platforms)
    except (AddonBuildError, OSError) as exc:
        raise UserError(str(exc)) from None
    size_mib = built.zip_path.stat().st_size / 2**20
    click.echo(f"wrote {built.zip_path} ({size_mib:.1f} MiB, platforms: {', '.join(built.platforms)})")
    for name in built.wheels:
        click.echo(f"  wheels/{name}")
