"""Where the backend is and how to reach it: settings from the add-on preferences, health, a local backend.

Headless scripts that import the add-on's modules without enabling it get the defaults (or pass their own
:class:`BackendSettings`).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy

from neural_backend.client.blocking import DEFAULT_ADDRESS, Client
from neural_backend.client.results import BackendError

DEFAULT_COMMAND = "rigstyle serve --address {address}"
HEALTH_TIMEOUT = 3.0  # seconds a health check waits


@dataclass(frozen=True)
class BackendSettings:
    """How to reach the backend: ZeroMQ address, token (None: the server needs none), seconds to wait per
    frame, and the command that starts a local backend (``{address}`` is replaced by the address)."""

    address: str = DEFAULT_ADDRESS
    token: str | None = None
    frame_timeout: float = 120.0
    command: str = DEFAULT_COMMAND

    def client(self, timeout: float | None = None) -> Client:
        return Client(self.address, self.token, self.frame_timeout if timeout is None else timeout)


def addon_package() -> str:
    """The add-on's package: ``blender_addon`` in development, ``bl_ext.<repo>.rigstyle`` when installed."""
    return __package__ or __name__.rpartition(".")[0]


def backend_settings(context: bpy.types.Context | None = None) -> BackendSettings:
    """The settings in the add-on preferences, or the defaults when the add-on is not enabled."""
    context = context or bpy.context
    addon = context.preferences.addons.get(addon_package())
    if addon is None or addon.preferences is None:
        return BackendSettings()
    prefs = addon.preferences
    return BackendSettings(
        address=prefs.address.strip(),
        token=prefs.token or None,
        frame_timeout=prefs.frame_timeout,
        command=prefs.backend_command,
    )


@dataclass(frozen=True)
class Health:
    """The outcome of a health check: ``ok``, and a one-line summary for the UI."""

    ok: bool
    summary: str
    fields: dict[str, Any]


def check_health(settings: BackendSettings, timeout: float = HEALTH_TIMEOUT) -> Health:
    """Ask the backend for its health (blocks up to ``timeout`` seconds)."""
    try:
        with settings.client(timeout) as client:
            fields = client.health(timeout)
    except BackendError as exc:
        return Health(False, f"not reachable at {settings.address} ({exc.code})", {})
    generator = fields.get("generator", "?")
    resolution = fields.get("resolution", "?")
    status, queue = fields.get("status", "?"), fields.get("queue", {})
    summary = (
        f"{status}: {generator} at {resolution} px, {queue.get('running', 0)} running, "
        f"{queue.get('waiting', 0)} waiting ({settings.address})"
    )
    return Health(status == "ok", summary, fields)


@dataclass
class LocalBackend:
    """A backend process this Blender session started."""

    process: subprocess.Popen[bytes]
    command: list[str]
    log: Path

    def running(self) -> bool:
        return self.process.poll() is None


def start_local_backend(settings: BackendSettings) -> LocalBackend:
    """Start ``settings.command`` (``{address}`` filled in) as a detached process logging to a temp file.

    A bare ``rigstyle`` runs this Python's ``neural_backend`` when no ``rigstyle`` executable is on PATH.

    Raises:
        ValueError: the command is empty or cannot be parsed.
        OSError: the program cannot be started (the message names it).
    """
    try:
        command = shlex.split(settings.command.replace("{address}", settings.address))
    except ValueError as exc:
        raise ValueError(f"backend command {settings.command!r}: {exc}") from None
    if not command:
        raise ValueError("the backend command is empty; set it in the RigStyle preferences")
    if command[0] == "rigstyle" and shutil.which("rigstyle") is None:
        command = [sys.executable, "-m", "neural_backend", *command[1:]]
    log = Path(tempfile.mkdtemp(prefix="rigstyle-backend-")) / "backend.log"
    with log.open("wb") as out:
        try:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise OSError(f"cannot start the backend command {command[0]!r}: {exc.strerror}") from None
    return LocalBackend(process, command, log)
