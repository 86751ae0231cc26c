"""The echo engine: no generator; a refined frame is its own beauty pass, after a pretend delay. No torch.

``rigstyle serve --echo`` serves it behind the same core as the real engine, so benchmarks, fuzzing and load
tests measure the socket, the queue and the protocol, and every request is checked exactly as the real
backend checks it (the core reads the bodies; :meth:`EchoEngine.check_frame` is the real face check).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from ...protocol.messages import FrameWork, ShotRequest
from ...protocol.passes import FramePasses, ParamsRequest, RefinedFrame
from ...protocol.saved_state import SavedShotState
from ...refine.framing import FFHQ
from ..engine import FrameOutcome, ShotOutcome, WorkEvents, check_face

ECHO_NAME = "echo"


class EchoEngine:
    """``refine_frame``: the beauty pass as ``image`` (and its corner as ``gan``); ``refine_params``: a black
    image of the requested size; ``refine_shot``: each held frame's beauty pass. A shot's state is the
    saved state it was given, kept as is."""

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.handled = 0
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"generator": ECHO_NAME, "untrained": True, "resolution": 0, "device": "none"}

    def check_frame(self, passes: FramePasses) -> None:
        check_face(passes, FFHQ)

    def restore(self, saved: SavedShotState) -> object:
        return saved

    def save(self, state: object, shot: str) -> SavedShotState | None:
        return state if isinstance(state, SavedShotState) else None

    def refine_frame(self, work: FrameWork, state: object | None, events: WorkEvents) -> FrameOutcome:
        frame = work.frame
        if isinstance(frame, ParamsRequest):
            image = np.zeros((frame.height, frame.width, 3), np.float32)
        else:
            self._pretend(1)
            image = frame.beauty
        return FrameOutcome(self._refined(frame.shot, frame.frame, image), state)

    def refine_shot(
        self, request: ShotRequest, frames: list[FramePasses], state: object | None, events: WorkEvents
    ) -> ShotOutcome:
        for passes in frames:
            self._pretend(1)
            events.frame(self._refined(request.shot, passes.frame, passes.beauty))
        metrics = {"frames": float(len(frames)), "seconds": self.delay_s * len(frames)}
        return ShotOutcome([p.frame for p in frames], metrics, {}, state)

    def _pretend(self, frames: int) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            self.handled += frames

    def _refined(self, shot: str, frame: int, image: np.ndarray) -> RefinedFrame:
        return RefinedFrame(shot, frame, image, image[:8, :8], {"seconds": self.delay_s})
