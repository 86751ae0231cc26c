"""The message registry: every request type, who answers it, how its body is read and what it replies.

One table (:data:`MESSAGES`) from which the socket shell's dispatch, the request-handling core, the Python
client's typed methods and the spec conformance test all derive. Adding a message type means one entry
here, its body class below (when it has a body), and its handler in the shell or the core.

Kinds:

- ``shell``: answered by the socket shell itself at once (the connection, the queue, shared memory);
- ``control``: answered by the core at once, on the socket thread (held frames, shot state: quick);
- ``work``: queued, then run by an engine on a worker thread; may send events before its one reply.

No torch, no sockets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rigs.expression import ACTION_UNITS, EMOTIONS

from .passes import REFINE_PARAMS, FramePasses, ParamsRequest, PassError
from .saved_state import SET_SHOT_STATE, SavedShotState
from .wire import (
    ADD_FRAME,
    CANCEL,
    END_SHOT,
    ERR_UNKNOWN_TYPE,
    FRAME_RESULT,
    HEALTH,
    HELLO,
    OK,
    PROGRESS,
    READY,
    REFINE_FRAME,
    REFINE_SHOT,
    RELEASE_SHM,
    RESULT,
    Message,
    ProtocolError,
)

SHELL = "shell"
CONTROL = "control"
WORK = "work"
LIST_SHOTS = "list_shots"
MAX_DIRECTION_WEIGHT = 3.0  # |weight| of a latent direction: measured for intensities 0..1
MODES = ("final", "preview")  # refine_frame / refine_params quality; preview is fast and approximate


def shot_id(fields: Any, name: str = "shot") -> str:
    shot = fields.get(name)
    if not isinstance(shot, str) or not shot:
        raise PassError(f"{name}: expected a non-empty string id")
    return shot


def flag(fields: Any, name: str, default: bool | None) -> bool | None:
    value = fields.get(name, default)
    if value is not None and not isinstance(value, bool):
        raise PassError(f"{name}: expected true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class FrameWork:
    """``refine_frame`` (passes) or ``refine_params`` (rig parameters the engine renders), at a ``mode``."""

    frame: FramePasses | ParamsRequest
    mode: str = "final"

    @property
    def shot(self) -> str:
        return self.frame.shot

    @classmethod
    def from_message(cls, message: Message) -> FrameWork:
        mode = message.fields.get("mode", "final")
        if mode not in MODES:
            raise PassError(f"mode: expected one of {list(MODES)}, got {mode!r}")
        if message.type == REFINE_PARAMS:
            return cls(ParamsRequest.from_message(message), mode)
        return cls(FramePasses.from_message(message), mode)


@dataclass(frozen=True)
class DirectionWeights:
    """``refine_shot``'s ``directions``: the latent directions of a rig's expression controls, measured by
    the backend (``refine/directions.py``), added to the shot's latents with one weight per held frame."""

    rig: str  # a rig the backend knows (``demo``, or one given with ``rigstyle serve --rig``)
    weights: dict[str, tuple[float, ...]]  # control (emotion or action unit) -> one weight per frame

    @classmethod
    def from_field(cls, value: Any) -> DirectionWeights:
        if not isinstance(value, dict) or set(value) != {"rig", "weights"}:
            raise PassError('directions: expected {"rig": NAME, "weights": {CONTROL: [weight per frame]}}')
        rig, weights = value["rig"], value["weights"]
        if not isinstance(rig, str) or not rig:
            raise PassError("directions.rig: expected a rig name")
        if not isinstance(weights, dict) or not weights:
            raise PassError("directions.weights: expected at least one control")
        known = (*EMOTIONS, *ACTION_UNITS)
        parsed = {}
        for control, values in weights.items():
            if control not in known:
                raise PassError(f"directions.weights: unknown control {control!r}; known: {', '.join(known)}")
            if not isinstance(values, list) or not all(_is_number(v) for v in values):
                raise PassError(f"directions.weights.{control}: expected a list of numbers, one per frame")
            if not all(math.isfinite(v) and abs(v) <= MAX_DIRECTION_WEIGHT for v in values):
                raise PassError(
                    f"directions.weights.{control}: expected finite weights within ±{MAX_DIRECTION_WEIGHT:g}"
                )
            parsed[control] = tuple(float(v) for v in values)
        return cls(rig, parsed)

    @property
    def controls(self) -> tuple[str, ...]:
        return tuple(self.weights)

    def to_field(self) -> dict[str, Any]:
        return {"rig": self.rig, "weights": {c: list(v) for c, v in self.weights.items()}}

    def matrix(self, frames: int) -> np.ndarray:
        """(frames, controls) weights.

        Raises:
            PassError: a control without one weight per frame.
        """
        for control, values in self.weights.items():
            if len(values) != frames:
                raise PassError(
                    f"directions.weights.{control}: {len(values)} weights for a shot of {frames} held frames"
                )
        return np.array([self.weights[c] for c in self.controls], dtype=np.float64).T.reshape(frames, -1)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class ShotRequest:
    """``refine_shot``: refine the frames held for ``shot`` jointly."""

    shot: str
    pti: bool | None = None  # pivotal tuning: None = the server's setting
    return_state: bool = False  # put the shot's state in the reply (for set_shot_state elsewhere)
    directions: DirectionWeights | None = None  # latent directions weighted per frame (none: no edit)

    @classmethod
    def from_message(cls, message: Message) -> ShotRequest:
        fields = message.fields
        directions = fields.get("directions")
        return cls(
            shot_id(fields),
            flag(fields, "pti", None),
            bool(flag(fields, "return_state", False)),
            None if directions is None else DirectionWeights.from_field(directions),
        )


@dataclass(frozen=True)
class ShotRef:
    """``end_shot``: the shot whose state and held frames go."""

    shot: str

    @classmethod
    def from_message(cls, message: Message) -> ShotRef:
        return cls(shot_id(message.fields))


@dataclass(frozen=True)
class CancelRequest:
    """``cancel``: one of this connection's requests, by id."""

    target: int

    @classmethod
    def from_message(cls, message: Message) -> CancelRequest:
        target = message.fields.get("target")
        if not isinstance(target, int | np.integer) or isinstance(target, bool):
            raise PassError("target: expected the request id to cancel")
        return cls(int(target))


@dataclass(frozen=True)
class ReleaseShm:
    """``release_shm``: a shared-memory segment this client no longer needs."""

    segment: str

    @classmethod
    def from_message(cls, message: Message) -> ReleaseShm:
        segment = message.fields.get("segment")
        if not isinstance(segment, str):
            raise PassError("segment: expected a segment id")
        return cls(segment)


@dataclass(frozen=True)
class MessageSpec:
    """One request type of the protocol."""

    type: str
    kind: str  # SHELL, CONTROL or WORK
    reply: str  # the type of its reply on success (failures reply ``error``)
    summary: str
    body: Callable[[Message], Any] | None = None  # reads and checks the body; raises ProtocolError
    events: tuple[str, ...] = ()  # event types that may come before the reply
    since: int = 1  # the protocol version that added it


MESSAGES: dict[str, MessageSpec] = {
    spec.type: spec
    for spec in (
        MessageSpec(HELLO, SHELL, HELLO, "agree a protocol version; limits, passes, shared memory"),
        MessageSpec(HEALTH, SHELL, HEALTH, "status, queue and generator"),
        MessageSpec(READY, SHELL, READY, "whether work would be accepted now"),
        MessageSpec(CANCEL, SHELL, OK, "cancel a request of this connection", CancelRequest.from_message),
        MessageSpec(RELEASE_SHM, SHELL, OK, "give back a shared-memory segment", ReleaseShm.from_message),
        MessageSpec(ADD_FRAME, CONTROL, OK, "hold one frame for refine_shot", FramePasses.from_message),
        MessageSpec(
            SET_SHOT_STATE, CONTROL, OK, "continue a shot from a saved state", SavedShotState.from_message
        ),
        MessageSpec(END_SHOT, CONTROL, OK, "forget a shot's state and held frames", ShotRef.from_message),
        MessageSpec(LIST_SHOTS, CONTROL, OK, "this connection's shots: held frames, state", since=3),
        MessageSpec(
            REFINE_FRAME, WORK, RESULT, "refine a frame from its passes", FrameWork.from_message, (PROGRESS,)
        ),
        MessageSpec(
            REFINE_PARAMS,
            WORK,
            RESULT,
            "refine one frame the engine renders from rig parameters",
            FrameWork.from_message,
            (PROGRESS,),
            since=2,
        ),
        MessageSpec(
            REFINE_SHOT,
            WORK,
            OK,
            "refine the held frames of a shot jointly",
            ShotRequest.from_message,
            (PROGRESS, FRAME_RESULT),
            since=2,
        ),
    )
}


def types_of(kind: str) -> frozenset[str]:
    return frozenset(name for name, spec in MESSAGES.items() if spec.kind == kind)


def lookup(message: Message) -> MessageSpec:
    """The registry entry of ``message``'s type; ``unknown_type`` (with the request's id) otherwise."""
    spec = MESSAGES.get(message.type)
    if spec is None:
        raise ProtocolError(ERR_UNKNOWN_TYPE, f"unknown message type {message.type!r}", message.id)
    return spec


def read_body(message: Message) -> Any:
    """The request's body as its typed class (None for types without one); errors carry the request id."""
    spec = lookup(message)
    if spec.body is None:
        return None
    try:
        return spec.body(message)
    except ProtocolError as exc:
        exc.request_id = message.id
        raise
