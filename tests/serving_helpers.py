"""An in-process server on an ipc:// endpoint for fast socket tests (the echo handler, no torch)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Iterator

import numpy as np

from neural_backend.echo import EchoHandler
from neural_backend.passes import FramePasses
from neural_backend.serving import ServeOptions, Server


@contextlib.contextmanager
def running_server(delay_s: float = 0.0, **options: object) -> Iterator[tuple[Server, str]]:
    folder = tempfile.mkdtemp(prefix="rs-", dir="/tmp")  # ipc paths must stay short
    address = f"ipc://{folder}/backend.sock"
    server = Server(ServeOptions(address=address, **options))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, args=(EchoHandler(delay_s), False), daemon=True)
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
        landmarks2d=np.zeros((68, 2), np.float32),
        intrinsics=np.eye(3),
        extrinsics=np.eye(4),
    )
