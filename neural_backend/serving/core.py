"""The one request-handling core: bodies, shots, held frames, errors and replies for every engine. No torch.

The socket shell (``serving.shell``) hands the core the messages of two kinds of the registry
(``protocol.messages``): ``control`` ones, answered at once on the socket thread, and ``work`` ones, run on
a worker thread. The core reads each request's body with the registry's class, checks that the shot
belongs to the connection asking, calls the engine (``serving.engine``) and builds the reply. Every
failure leaves here as one ``error`` reply carrying the request's id, with the code the exception names.

Shots belong to the connection that first used them (``add_frame``, ``refine_*``, ``set_shot_state``):
another connection naming the shot gets ``not_owner``; when a connection goes away its shots go with it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..protocol.messages import (
    CONTROL,
    LIST_SHOTS,
    WORK,
    FrameWork,
    ShotRef,
    ShotRequest,
    lookup,
    read_body,
    types_of,
)
from ..protocol.passes import FramePasses, PassError
from ..protocol.saved_state import SET_SHOT_STATE, SavedShotState
from ..protocol.wire import (
    ADD_FRAME,
    END_SHOT,
    ERR_INTERNAL,
    ERR_NOT_OWNER,
    ERR_UNKNOWN_TYPE,
    OK,
    REFINE_SHOT,
    Message,
    ProtocolError,
    error_message,
)
from .engine import Emit, Engine, WorkEvents
from .held_frames import ShotFrames

log = logging.getLogger("rigstyle.server")
Peer = bytes  # the connection a request came on (the ROUTER routing id); b"" in-process


@dataclass(eq=False)
class Shot:
    """A shot the core knows: who owns it and the engine's state after its last refined frame."""

    owner: Peer
    state: object | None = None


class RequestCore:
    """Everything between the shell and an engine (see the module docstring). Thread-safe."""

    control_types = types_of(CONTROL)
    work_types = types_of(WORK)

    def __init__(self, engine: Engine, held: ShotFrames | None = None, max_shots: int = 256):
        self.engine = engine
        self.held = held if held is not None else ShotFrames()
        self.max_shots = max_shots  # shots kept; the least recently used one without held frames goes
        self._shots: OrderedDict[str, Shot] = OrderedDict()
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            shots = len(self._shots)
        return {**self.engine.describe(), "shots": shots, "held_frames": self.held.count()}

    # ---- control messages (socket thread) ------------------------------------------------------

    def control(self, peer: Peer, message: Message) -> Message:
        """Answer a control message at once; failures raise :class:`ProtocolError` with the request id."""
        try:
            return self._control(peer, message)
        except ProtocolError as exc:
            exc.request_id = message.id
            raise

    def _control(self, peer: Peer, message: Message) -> Message:
        if lookup(message).kind != CONTROL:
            raise ProtocolError(ERR_UNKNOWN_TYPE, f"{message.type!r} is not a control message")
        body = read_body(message)
        if message.type == ADD_FRAME:
            return self._add_frame(peer, body, message.id)
        if message.type == SET_SHOT_STATE:
            return self._set_state(peer, body, message.id)
        if message.type == END_SHOT:
            return self._end_shot(peer, body, message.id)
        if message.type == LIST_SHOTS:
            return Message(OK, message.id, {"shots": self.list_shots(peer)})
        raise AssertionError(f"control message {message.type!r} has no handler")

    def _add_frame(self, peer: Peer, passes: FramePasses, request_id: int) -> Message:
        self._claim(peer, passes.shot)
        self.engine.check_frame(passes)
        count = self.held.add(passes)
        return Message(OK, request_id, {"shot": passes.shot, "frame": passes.frame, "frames": count})

    def _set_state(self, peer: Peer, saved: SavedShotState, request_id: int) -> Message:
        state = self.engine.restore(saved)
        self._claim(peer, saved.shot).state = state
        return Message(OK, request_id, {"shot": saved.shot, "frame": saved.frame})

    def _end_shot(self, peer: Peer, ref: ShotRef, request_id: int) -> Message:
        with self._lock:
            shot = self._shots.get(ref.shot)
            if shot is not None and shot.owner != peer:
                raise _not_owner(ref.shot)
            self._shots.pop(ref.shot, None)
        self.held.drop(ref.shot)
        return Message(OK, request_id, {"shot": ref.shot})

    def list_shots(self, peer: Peer) -> list[dict[str, Any]]:
        """This connection's shots: held frames and whether a state is kept."""
        with self._lock:
            mine = [(name, s.state is not None) for name, s in self._shots.items() if s.owner == peer]
        return [{"shot": name, "held_frames": self.held.count(name), "state": has} for name, has in mine]

    def disconnected(self, peer: Peer) -> list[str]:
        """The connection went away: its shots and held frames go. Returns the shots dropped."""
        with self._lock:
            gone = [name for name, shot in self._shots.items() if shot.owner == peer]
            for name in gone:
                del self._shots[name]
        for name in gone:
            self.held.drop(name)
        return gone

    # ---- work messages (worker thread) ---------------------------------------------------------

    def accept(self, peer: Peer, message: Message) -> Any:
        """Before a work message is queued: its body, read and checked, for a shot of this connection.

        Raises:
            ProtocolError: with the request's id (a bad body, ``not_owner``).
        """
        body = read_body(message)
        try:
            self._claim(peer, body.shot)
        except ProtocolError as exc:
            exc.request_id = message.id
            raise
        return body

    def handle(self, peer: Peer, message: Message, body: Any, emit: Emit) -> Message:
        """Run one accepted work message (``body`` from :meth:`accept`); every outcome is a reply."""
        try:
            shot = self._claim(peer, body.shot)
            events = WorkEvents(message.id, emit)
            if message.type == REFINE_SHOT:
                return self._refine_shot(body, shot, events, message.id)
            return self._refine_frame(body, shot, events, message.id)
        except ProtocolError as exc:
            return error_message(message.id, exc.code, exc.message)
        except Exception as exc:  # the server keeps serving; the client learns what happened
            log.exception("request %s (%s) failed", message.id, message.type)
            return error_message(message.id, ERR_INTERNAL, f"{type(exc).__name__}: {exc}")

    def _refine_frame(self, work: FrameWork, shot: Shot, events: WorkEvents, request_id: int) -> Message:
        outcome = self.engine.refine_frame(work, shot.state, events)
        self._keep(work.shot, shot, outcome.state)
        reply = outcome.frame.to_message(request_id)
        return reply.replace(fields={**reply.fields, **outcome.fields}) if outcome.fields else reply

    def _refine_shot(self, request: ShotRequest, shot: Shot, events: WorkEvents, request_id: int) -> Message:
        frames = self.held.take(request.shot)
        try:
            if request.directions is not None:
                request.directions.matrix(len(frames))  # one weight per held frame, or bad_field
            outcome = self.engine.refine_shot(request, frames, shot.state, events)
        except BaseException:
            self.held.restore(request.shot, frames)  # nothing is lost: fix a frame and retry
            raise
        self.held.done(request.shot)
        self._keep(request.shot, shot, outcome.state)
        fields: dict[str, Any] = {
            "shot": request.shot,
            "frames": outcome.frames,
            "metrics": outcome.metrics,
            "frame_metrics": [{"frame": frame, **m} for frame, m in outcome.frame_metrics.items()],
            **outcome.fields,
        }
        tensors: dict[str, Any] = {}
        saved = self.engine.save(outcome.state, request.shot) if request.return_state else None
        if saved is not None:
            fields.update(state_frame=saved.frame, generator=saved.generator)
            tensors = saved.tensors
        return Message(OK, request_id, fields, tensors)

    # ---- shots ---------------------------------------------------------------------------------

    def _claim(self, peer: Peer, name: str) -> Shot:
        """The shot ``name`` of this connection, made on first use; ``not_owner`` if another's."""
        if not isinstance(name, str) or not name:
            raise PassError("shot: expected a non-empty string id")
        with self._lock:
            shot = self._shots.get(name)
            if shot is None:
                shot = self._shots[name] = Shot(peer)
            elif shot.owner != peer:
                raise _not_owner(name)
            self._shots.move_to_end(name)
            self._evict()
            return shot

    def _keep(self, name: str, shot: Shot, state: object | None) -> None:
        """Store the state a request produced, unless the shot ended (or was replaced) meanwhile."""
        with self._lock:
            if self._shots.get(name) is shot and state is not None:
                shot.state = state

    def _evict(self) -> None:
        """Under the lock: drop the least recently used shots beyond ``max_shots`` that hold no frames."""
        excess = len(self._shots) - self.max_shots
        for name in list(self._shots):
            if excess <= 0:
                return
            if not self.held.count(name):
                del self._shots[name]
                excess -= 1


def _not_owner(shot: str) -> ProtocolError:
    return ProtocolError(
        ERR_NOT_OWNER, f"shot {shot!r} belongs to another connection; shots are per connection"
    )
