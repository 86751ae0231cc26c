"""What an engine is: the small interface behind the request-handling core (``serving.core``). No torch.

An engine only does the work: refine a frame, refine a shot's frames, check that a frame has a usable face,
and turn a shot's state to and from its saved form. It does not read messages, build replies, map errors
to codes or keep shots: the core does all of that once, for every engine (local torch, Ray, echo).

Errors: an engine raises :class:`~neural_backend.protocol.wire.ProtocolError` with a code for anything the
client should learn (``refine_failed``, ``bad_field``, ``busy``, :class:`Cancelled`); any other exception
becomes ``internal``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..protocol.messages import FrameWork, ShotRequest
from ..protocol.passes import FramePasses, RefinedFrame
from ..protocol.saved_state import SavedShotState
from ..protocol.wire import ERR_CANCELLED, ERR_REFINE_FAILED, FRAME_RESULT, PROGRESS, Message, ProtocolError
from ..refine.framing import Alignment, AlignmentError, face_quad

# emit(event): send an event (``progress``, ``frame_result``) for the running request before its reply.
# Returns False once the request no longer wants anything (cancelled, past its deadline, client gone).
Emit = Callable[[Message], bool]


class Cancelled(ProtocolError):
    """The request was cancelled, passed its deadline or lost its client while it ran."""

    def __init__(self, text: str):
        super().__init__(ERR_CANCELLED, text)


class WorkEvents:
    """How a running engine call reports progress and learns that nobody wants it any more.

    Each method sends one event and raises :class:`Cancelled` when the request is gone, so an engine stops
    at its next step.
    """

    def __init__(self, request_id: int, emit: Emit):
        self.request_id = request_id
        self._emit = emit

    def step(self, phase: str, step: int, steps: int, loss: float) -> None:
        """One optimisation step (a ``progress`` event with ``stage: step``)."""
        fields = {"stage": "step", "phase": phase, "step": step, "steps": steps, "loss": loss}
        self._send(Message(PROGRESS, self.request_id, fields), f"at {phase} step {step} of {steps}")

    def frame(self, refined: RefinedFrame) -> None:
        """One refined frame of a shot (a ``frame_result`` event)."""
        message = refined.to_message(self.request_id).replace(type=FRAME_RESULT)
        self._send(message, f"after frame {refined.frame} of shot {refined.shot!r}")

    def waiting(self, fields: dict[str, Any]) -> None:
        """The engine is waiting for capacity elsewhere (a ``progress`` event with these fields)."""
        self._send(Message(PROGRESS, self.request_id, fields), "while it waited")

    def _send(self, message: Message, where: str) -> None:
        if not self._emit(message):
            raise Cancelled(f"request {self.request_id} was cancelled or passed its deadline {where}")


@dataclass(frozen=True)
class FrameOutcome:
    """A refined frame and the shot's state after it."""

    frame: RefinedFrame
    state: object | None  # the engine's shot state (opaque to the core)
    fields: dict[str, Any] = field(default_factory=dict)  # extra reply fields (e.g. the Ray replica)


@dataclass(frozen=True)
class ShotOutcome:
    """A refined shot (its frames went out as events) and the shot's state after its last frame."""

    frames: list[int]
    metrics: dict[str, float]
    frame_metrics: dict[int, dict[str, float]]
    state: object | None
    fields: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    """The work behind the core. ``describe`` and ``check_frame`` run on the socket thread (quick,
    thread-safe); the rest on a worker thread, never two calls for one shot at once."""

    def describe(self) -> dict[str, Any]:
        """Generator fields for ``hello`` and ``health`` (``generator``, ``generator_id``, ...)."""
        ...

    def check_frame(self, passes: FramePasses) -> None:
        """Raise ``refine_failed`` when the frame has no face this engine's generator can align."""
        ...

    def restore(self, saved: SavedShotState) -> object:
        """A saved shot state as this engine's state; ``bad_field`` when it does not fit the generator."""
        ...

    def save(self, state: object, shot: str) -> SavedShotState | None:
        """The engine's shot state in its saved form (None when there is none yet)."""
        ...

    def refine_frame(self, work: FrameWork, state: object | None, events: WorkEvents) -> FrameOutcome: ...

    def refine_shot(
        self, request: ShotRequest, frames: list[FramePasses], state: object | None, events: WorkEvents
    ) -> ShotOutcome:
        """Refine ``frames`` (in frame order) jointly, sending each through ``events.frame``."""
        ...


def check_face(passes: FramePasses, alignment: Alignment) -> None:
    """``refine_failed`` unless the frame's landmarks are a face in iBUG-68 order that ``alignment`` can crop
    (the same check the refiner makes, so every engine refuses the same frames at ``add_frame``)."""
    try:
        face_quad(passes.landmarks2d, alignment)
    except AlignmentError as error:
        where = f"shot {passes.shot!r} frame {passes.frame}"
        raise ProtocolError(ERR_REFINE_FAILED, f"{where}: {error}") from None
