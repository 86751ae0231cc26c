"""Servers for socket tests: in process on an ipc:// endpoint (the echo handler, no torch), or the real
``rigstyle serve`` subprocess."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from synthetic import face_landmarks

from neural_backend.client.blocking import wait_until_healthy
from neural_backend.protocol.passes import FramePasses
from neural_backend.serving.core import RequestCore
from neural_backend.serving.engines.echo import EchoEngine
from neural_backend.serving.ports import free_port
from neural_backend.serving.shell import ServeOptions, Server


@contextlib.contextmanager
def running_server(delay_s: float = 0.0, **options: object) -> Iterator[tuple[Server, str]]:
    folder = tempfile.mkdtemp(prefix="rs-", dir="/tmp")  # ipc paths must stay short
    address = f"ipc://{folder}/backend.sock"
    server = Server(ServeOptions(address=address, **options))  # type: ignore[arg-type]
    thread = threading.Thread(
        target=server.serve_forever, args=(RequestCore(EchoEngine(delay_s)), False), daemon=True
    )
    thread.start()
    try:
        yield server, address
    finally:
        server.stop()
        thread.join(15)
        shutil.rmtree(folder, ignore_errors=True)
    assert not thread.is_alive(), "the server did not stop"


def small_passes(frame: int = 1, shot: str = "s", size: int = 16) -> FramePasses:
    rng = np.random.default_rng(frame)
    return FramePasses(
        shot=shot,
        frame=frame,
        beauty=rng.random((size, size, 3), dtype=np.float32),
        region=np.ones((size, size), np.uint8),
        landmarks2d=face_landmarks(size),
        intrinsics=np.eye(3),
        extrinsics=np.eye(4),
    )


# The plumbing tests' generator: the untrained built-in (fast, any resolution); `rigstyle serve` without
# --checkpoint serves the face prior instead.
UNTRAINED = ("--checkpoint", "builtin-untrained")
# `rigstyle serve` options for a real backend that answers in seconds here: a 32 px untrained generator,
# few steps.
FAST_BACKEND = (
    *UNTRAINED, "--gan-resolution", "32", "--shot-steps", "20", "--preview-steps", "2", "--threads", "1"
)  # fmt: skip


@dataclass
class BackendProcess:
    """A running ``rigstyle serve`` subprocess."""

    process: subprocess.Popen[bytes]
    address: str
    stderr: str = ""  # what it printed to stderr, filled in once it has exited
    killed: bool = False  # the test killed it on purpose (no clean exit expected)

    def kill(self) -> None:
        """Kill it at once (SIGKILL: no drain), as a crash or a lost machine would."""
        self.killed = True
        self.process.kill()
        self.process.wait(timeout=30)


@contextlib.contextmanager
def backend_process(*serve_args: str, token: str | None = None) -> Iterator[BackendProcess]:
    """``rigstyle serve`` as a real subprocess on a free loopback port, healthy before it is yielded.

    On exit it is stopped with SIGTERM and must exit 0 (the graceful drain).
    """
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="rigstyle-serve-")) / "stderr.log"
    command = [sys.executable, "-m", "neural_backend", "serve", "--port", str(port), *serve_args]
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, stderr=stderr, stdin=subprocess.DEVNULL)
    backend = BackendProcess(process, f"tcp://127.0.0.1:{port}")
    try:
        wait_until_healthy(backend.address, timeout=120, is_alive=lambda: process.poll() is None, token=token)
        yield backend
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        backend.stderr = log.read_text(errors="replace")
        shutil.rmtree(log.parent, ignore_errors=True)
    assert process.returncode == 0 or backend.killed, backend.stderr
