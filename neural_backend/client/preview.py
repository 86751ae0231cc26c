"""Non-blocking preview client: newest request wins. Imports no torch.

``submit`` returns at once; a worker thread sends only the newest submission (older unsent ones are
dropped, an older one in flight is cancelled), and the result arrives through :meth:`poll` (for Blender:
call it from a timer on the main thread; never touch bpy from the callback) or ``on_result`` (called on
the worker thread).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..protocol.passes import FramePasses, RefinedFrame
from ..protocol.wire import ERR_CANCELLED
from .blocking import DEFAULT_ADDRESS, Client, with_mode
from .results import BackendError


@dataclass(frozen=True)
class PreviewResult:
    """The outcome of preview submission ``number`` (1, 2, ...): a frame, or the error it ended with."""

    number: int
    frame: RefinedFrame | None = None
    error: BackendError | None = None


class PreviewClient:
    """A worker thread around a :class:`Client`; submissions are numbered and the newest wins."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        token: str | None = None,
        timeout: float = 60.0,
        on_result: Callable[[PreviewResult], None] | None = None,
        mode: str = "preview",
    ):
        self._client = Client(address, token, timeout)
        self.mode = mode  # 'preview' (fast: few steps or the encoder) or 'final'

        self._on_result = on_result
        self._lock = threading.Condition()
        self._pending: tuple[int, FramePasses] | None = None
        self._latest: PreviewResult | None = None
        self._submitted = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="rigstyle-preview", daemon=True)
        self._thread.start()

    def submit(self, passes: FramePasses) -> int:
        """Queue ``passes`` as the newest preview request; returns its number."""
        with self._lock:
            self._submitted += 1
            self._pending = (self._submitted, passes)
            self._lock.notify()
            return self._submitted

    def poll(self) -> PreviewResult | None:
        """The newest finished result not yet taken, or None."""
        with self._lock:
            latest, self._latest = self._latest, None
            return latest

    def close(self, timeout: float = 2.0) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(timeout)

    def __enter__(self) -> PreviewClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    while self._pending is None and not self._closed:
                        self._lock.wait()
                    if self._closed:
                        return
                    assert self._pending is not None
                    number, passes = self._pending
                    self._pending = None
                self._deliver(self._refine(number, passes))
        finally:
            self._client.close()

    def _refine(self, number: int, passes: FramePasses) -> PreviewResult | None:
        def superseded() -> bool:  # a newer submission (or closing) cancels this one
            return self._pending is not None or self._closed

        try:
            reply = self._client.request(with_mode(passes.to_message(), self.mode), cancelled=superseded)
            return PreviewResult(number, frame=RefinedFrame.from_message(reply))
        except BackendError as exc:
            if exc.code == ERR_CANCELLED and superseded():
                return None  # superseded: nobody wants it
            return PreviewResult(number, error=exc)

    def _deliver(self, result: PreviewResult | None) -> None:
        if result is None:
            return
        with self._lock:
            if self._pending is not None:
                return  # a newer request is waiting: this one is stale
            self._latest = result
        if self._on_result is not None:
            self._on_result(result)
