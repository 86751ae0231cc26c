"""A transport-only handler: validates requests like the refiner does and echoes the tensors back.

``rigstyle serve --echo`` serves it, so benchmarks, fuzzing and load tests measure the socket, the queue
and the protocol rather than the GAN. No torch.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ...protocol.passes import REFINE_PARAMS, FramePasses, ParamsRequest, PassError
from ...protocol.saved_state import SET_SHOT_STATE, SavedShotState
from ...protocol.wire import (
    ADD_FRAME,
    ERR_CANCELLED,
    ERR_INTERNAL,
    FRAME_RESULT,
    OK,
    REFINE_FRAME,
    REFINE_SHOT,
    RESULT,
    Message,
    ProtocolError,
    error_message,
)
from ..held_frames import ShotFrames

if TYPE_CHECKING:
    from ..shell import Emit

ECHO_NAME = "echo"


class EchoHandler:
    """Answers ``refine_frame`` with a ``result`` whose ``image`` is the beauty pass (and every other
    request tensor echoed under its own name), after ``delay_s`` of pretend work; ``refine_params`` (which
    the echo mode does not render) with a black ``image`` of the requested size; ``refine_shot`` with one
    ``frame_result`` per frame held by ``add_frame`` (its beauty pass), then ``ok``; ``set_shot_state``
    with ``ok`` once the state is well-formed (it keeps nothing)."""

    work_types = frozenset({REFINE_FRAME, REFINE_PARAMS, REFINE_SHOT})
    control_types = frozenset({ADD_FRAME, SET_SHOT_STATE})

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self._shots: set[str] = set()
        self._lock = threading.Lock()
        self.held = ShotFrames()
        self.handled = 0

    def describe(self) -> dict[str, Any]:
        with self._lock:
            shots = len(self._shots)
        return {
            "generator": ECHO_NAME,
            "untrained": True,
            "resolution": 0,
            "device": "none",
            "shots": shots,
            "held_frames": self.held.count(),
        }

    def end_shot(self, shot: str) -> None:
        with self._lock:
            self._shots.discard(shot)
        self.held.drop(shot)

    def control(self, message: Message) -> Message:
        """``add_frame`` holds the frame; ``set_shot_state`` checks the state and accepts it."""
        if message.type == SET_SHOT_STATE:
            state = SavedShotState.from_message(message)
            with self._lock:
                self._shots.add(state.shot)
            return Message(OK, message.id, {"shot": state.shot, "frame": state.frame})
        passes = FramePasses.from_message(message)
        count = self.held.add(passes)
        return Message(OK, message.id, {"shot": passes.shot, "frame": passes.frame, "frames": count})

    def handle(self, message: Message, emit: Emit) -> Message:
        if message.type == REFINE_PARAMS:
            return self._echo_params(message)
        if message.type == REFINE_SHOT:
            return self._echo_shot(message, emit)
        try:
            passes = FramePasses.from_message(message)
        except ProtocolError as exc:
            return error_message(message.id, exc.code, exc.message)
        except Exception as exc:  # the handler must answer, whatever arrives
            return error_message(message.id, ERR_INTERNAL, f"{type(exc).__name__}: {exc}")
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            self._shots.add(passes.shot)
            self.handled += 1
        tensors = {"image": passes.beauty, "gan": passes.beauty[:8, :8]}
        tensors.update((name, array) for name, array in message.tensors.items() if name != "beauty")
        fields = {"shot": passes.shot, "frame": passes.frame, "metrics": {"seconds": self.delay_s}}
        return Message(RESULT, message.id, fields, tensors)

    def _echo_params(self, message: Message) -> Message:
        try:
            request = ParamsRequest.from_message(message)
        except ProtocolError as exc:
            return error_message(message.id, exc.code, exc.message)
        image = np.zeros((request.height, request.width, 3), np.float32)
        fields = {"shot": request.shot, "frame": request.frame, "metrics": {"seconds": 0.0}}
        return Message(RESULT, message.id, fields, {"image": image, "gan": image[:8, :8]})

    def _echo_shot(self, message: Message, emit: Emit) -> Message:
        shot = message.fields.get("shot")
        try:
            if not isinstance(shot, str) or not shot:
                raise PassError("shot: expected a non-empty string id")
            frames = self.held.take(shot)
        except ProtocolError as exc:
            return error_message(message.id, exc.code, exc.message)
        for passes in frames:
            if self.delay_s:
                time.sleep(self.delay_s)
            fields = {"shot": shot, "frame": passes.frame, "metrics": {"seconds": self.delay_s}}
            tensors = {"image": passes.beauty, "gan": passes.beauty[:8, :8]}
            if not emit(Message(FRAME_RESULT, message.id, fields, tensors)):
                self.held.restore(shot, frames)
                return error_message(message.id, ERR_CANCELLED, f"shot {shot!r} cancelled")
        self.held.done(shot)
        with self._lock:
            self._shots.add(shot)
            self.handled += len(frames)
        metrics = {"frames": float(len(frames)), "seconds": self.delay_s * len(frames)}
        fields = {"shot": shot, "frames": [p.frame for p in frames], "metrics": metrics, "frame_metrics": []}
        return Message(OK, message.id, fields)
