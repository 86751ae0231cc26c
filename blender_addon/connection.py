"""Where the backend is and how to reach it: settings from the add-on preferences, health, a local backend.

Headless scripts that import the add-on's modules without enabling it get the defaults (or pass their own
:class:`BackendSettings`). A :class:`HealthCheck` asks on a worker thread, so the UI never waits on the
socket; its result is taken on the main thread.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy

from neural_backend.client.blocking import DEFAULT_ADDRESS, Client
from neural_backend.client.results import BackendError

DEFAULT_COMMAND = "rigstyle serve --address {address}"
HEALTH_TIMEOUT = 3.0  # seconds a health check waits
QUICK_CHECK_TIMEOUT = 2.0  # seconds the check before a shot or a preview waits: fail fast when none answers
START_SECONDS = 180.0  # seconds a started local backend may take to answer (loading a generator)
STOP_SECONDS = 30.0  # seconds a stopping local backend may take to drain and exit
POLL_SECONDS = 0.5  # pause between health checks while waiting for a starting backend


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
    """The outcome of a health check: ``ok``, a one-line summary, the backend's ``health`` fields (empty
    when it did not answer) and the address asked."""

    ok: bool
    summary: str
    fields: dict[str, Any]
    address: str = ""

    def details(self) -> list[str]:
        """Lines for the UI: the address, then what the backend serves (generator, trained or not,
        checkpoint file, resolution, device) and its queue."""
        lines = [self.address]
        fields = self.fields
        if not fields:
            return lines
        trained = "untrained" if fields.get("untrained") else "trained"
        path = fields.get("checkpoint_path")
        source = Path(str(path)).name if path else "built in"
        lines.append(f"{fields.get('generator', '?')} ({trained}, {source})")
        lines.append(f"{fields.get('resolution', '?')} px on {fields.get('device', '?')}")
        queue = fields.get("queue", {})
        size = queue.get("size")
        lines.append(
            f"queue: {queue.get('running', 0)} running, {queue.get('waiting', 0)} waiting"
            + (f" (room for {size})" if size else "")
        )
        return lines


def check_health(settings: BackendSettings, timeout: float = HEALTH_TIMEOUT) -> Health:
    """Ask the backend for its health (blocks up to ``timeout`` seconds)."""
    try:
        with settings.client(timeout) as client:
            fields = client.health(timeout)
    except BackendError as exc:
        return Health(False, f"not reachable at {settings.address} ({exc.code})", {}, settings.address)
    generator = fields.get("generator", "?")
    resolution = fields.get("resolution", "?")
    status, queue = fields.get("status", "?"), fields.get("queue", {})
    summary = (
        f"{status}: {generator} at {resolution} px, {queue.get('running', 0)} running, "
        f"{queue.get('waiting', 0)} waiting ({settings.address})"
    )
    return Health(status == "ok", summary, fields, settings.address)


class HealthCheck:
    """A health check on a worker thread: the constructor returns at once, :meth:`result` takes the outcome.

    Args:
        settings: the backend to ask.
        timeout: seconds one check waits for an answer.
        until_healthy: keep asking for up to this many seconds until the backend answers ``ok`` (after
            starting a local backend); 0: ask once.
        backend: the local backend being started: stop asking when its process exits.
        after: run on the worker before asking (e.g. wait for a stopping backend to exit).
    """

    def __init__(
        self,
        settings: BackendSettings,
        timeout: float = HEALTH_TIMEOUT,
        until_healthy: float = 0.0,
        backend: LocalBackend | None = None,
        after: Callable[[], object] | None = None,
    ):
        self.settings = settings
        self._health: Health | None = None
        self._done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(timeout, until_healthy, backend, after),
            name="rigstyle-health",
            daemon=True,
        )
        self._thread.start()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def result(self, wait: float = 0.0) -> Health | None:
        """The outcome, or None while the check runs; ``wait``: seconds to block for it (background mode,
        where no timer takes it)."""
        if wait > 0:
            self._done.wait(wait)
        return self._health if self._done.is_set() else None

    def stop(self) -> None:
        """Stop asking again (a check in flight still ends within its timeout)."""
        self._stop.set()

    def _run(
        self,
        timeout: float,
        until_healthy: float,
        backend: LocalBackend | None,
        after: Callable[[], object] | None,
    ) -> None:
        if after is not None:
            after()
        deadline = time.monotonic() + until_healthy
        while True:
            health = check_health(self.settings, timeout)
            if health.ok or self._stop.is_set() or time.monotonic() >= deadline:
                break
            if backend is not None and not backend.running():
                summary = f"the local backend exited (code {backend.process.returncode}); log: {backend.log}"
                health = Health(False, summary, {}, self.settings.address)
                break
            self._stop.wait(POLL_SECONDS)
        self._health = health
        self._done.set()


@dataclass
class LocalBackend:
    """A backend process this Blender session started."""

    process: subprocess.Popen[bytes]
    command: list[str]
    log: Path

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Ask it to stop (SIGTERM: it drains its queue, then exits); returns at once."""
        if self.running():
            self.process.terminate()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the process to exit; whether it has."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


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
