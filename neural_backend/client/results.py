"""What the Python client hands back besides messages: its errors, progress events and refined shots.

Error codes are the protocol's (``docs/protocol.md``) plus three of the client's own that never travel:
``timeout``, ``unavailable`` and ``bad_reply``. No torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..protocol.passes import RefinedFrame
from ..protocol.saved_state import SavedShotState


class BackendError(Exception):
    """The backend answered with an error. ``code`` is the protocol's stable error code."""

    def __init__(self, code: str, message: str):
        super().__init__(f"backend error [{code}]: {message}")
        self.code = code
        self.message = message


class BackendTimeout(BackendError):
    """No answer within the client's timeout (the backend is down, stuck or still starting)."""

    def __init__(self, address: str, seconds: float, what: str):
        super().__init__("timeout", f"no answer from {address} to {what} within {seconds:g} s")


class BackendUnavailable(BackendError):
    """The connection dropped while a request was in flight (the backend exited, crashed or restarted)."""

    def __init__(self, address: str, what: str):
        super().__init__(
            "unavailable",
            f"connection to {address} lost while waiting for {what}; the backend exited or restarted "
            "(the next call reconnects)",
        )


class ShotInterrupted(BackendError):
    """A shot stopped at ``frame``; ``completed`` holds the frames refined before it, ``cause`` why."""

    def __init__(self, shot: str, frame: int, completed: list[RefinedFrame], cause: BackendError):
        super().__init__(
            cause.code,
            f"shot {shot!r} stopped at frame {frame} after {len(completed)} frames: {cause.message}",
        )
        self.shot, self.frame, self.completed, self.cause = shot, frame, completed, cause


@dataclass(frozen=True)
class ProgressEvent:
    """A ``progress`` event for a request: ``stage`` is 'queued' (with ``position``) or 'running'."""

    request: int
    stage: str
    fields: dict[str, Any]


OnProgress = Callable[[ProgressEvent], None]
OnResult = Callable[[RefinedFrame], None]
Cancelled = Callable[[], bool]  # polled while waiting; True cancels the request


@dataclass(frozen=True)
class RefinedShot:
    """A jointly refined shot: its frames in order, the shot's metrics and each frame's."""

    frames: list[RefinedFrame]
    metrics: dict[str, float]
    state: SavedShotState | None = None  # the shot's state after its last frame, when asked for
    directions: dict[str, dict[str, float]] = field(default_factory=dict)  # per control: its consistency
