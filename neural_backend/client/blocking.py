"""Blocking Python client for the RigStyle backend. Imports no torch (Blender and other DCCs use it).

One :class:`Client` is one connection; it is not thread-safe (use one per thread, or
:class:`neural_backend.client.preview.PreviewClient` for non-blocking previews). After a timeout, a lost
connection or a server restart it starts a fresh socket on the next call, so it reconnects by itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from ..protocol.messages import LIST_SHOTS, MESSAGES, DirectionWeights
from ..protocol.passes import FramePasses, ParamsRequest, RefinedFrame
from ..protocol.saved_state import SavedShotState
from ..protocol.shm import Segment, SegmentInfo, host_id, layout, pack
from ..protocol.wire import (
    ADD_FRAME,
    CANCEL,
    DEFAULT_LIMITS,
    END_SHOT,
    ERR_BUSY,
    ERR_SHM_UNAVAILABLE,
    ERROR,
    FRAME_RESULT,
    HEALTH,
    HELLO,
    PROGRESS,
    READY,
    REFINE_SHOT,
    RELEASE_SHM,
    SUPPORTED_VERSIONS,
    Limits,
    Message,
    ProtocolError,
    decode,
    encode,
)
from .results import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    Cancelled,
    OnProgress,
    OnResult,
    ProgressEvent,
    RefinedShot,
    ShotInterrupted,
)

DEFAULT_ADDRESS = "tcp://127.0.0.1:7557"
DEFAULT_SHM_BYTES = 64 << 20


class Client:
    """One connection to a backend.

    Args:
        address: ZeroMQ endpoint, e.g. ``tcp://127.0.0.1:7557`` or ``ipc:///tmp/rigstyle.sock``.
        token: the server's token, when it requires one.
        timeout: seconds to wait for each answer; also sent as the request's deadline.
        limits: size limits for replies.
        shm: use shared memory when the server is on this host and offers it (negotiated in ``hello``).
        shm_bytes: size of the shared-memory request area to ask for; larger tensors travel as frames.
        borrow_replies: hand out reply tensors that arrived in shared memory as **read-only views of the
            reply area** instead of copies (no copy, no page faults: the fast path). A borrowed array is
            valid only until this client's next request: the server writes the next reply into the same
            memory, so the array's contents then change under it. Copy (``np.array(a)``) what you keep.
            Default False: every reply tensor is the caller's own array. See docs/protocol.md section 4.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        token: str | None = None,
        timeout: float = 120.0,
        *,
        limits: Limits = DEFAULT_LIMITS,
        shm: bool = True,
        shm_bytes: int = DEFAULT_SHM_BYTES,
        borrow_replies: bool = False,
    ):
        self.address = address
        self.token = token
        self.timeout = timeout
        self.limits = limits
        self.use_shm = shm and host_id() is not None and _is_local(address)
        self.shm_bytes = shm_bytes
        self.borrow_replies = borrow_replies
        self.session: dict[str, Any] | None = None  # the server's hello reply, once exchanged
        self._segment: Segment | None = None
        self._next_id = 1  # ids increase for the client's lifetime, across reconnects
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._stash: dict[int, Message] = {}  # replies that arrived while waiting for another request

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the shared-memory segment (best effort) and close the socket."""
        if self._segment is not None and self._socket is not None:
            try:
                self.request(
                    Message(RELEASE_SHM, fields={"segment": self._segment.info.segment}), timeout=0.5
                )
            except BackendError:
                pass
        self._reset()

    # ---- operations ------------------------------------------------------------------------------

    def hello(self, timeout: float | None = None) -> dict[str, Any]:
        """Negotiate version and capabilities (and shared memory); returns the server's hello fields."""
        fields: dict[str, Any] = {"versions": list(SUPPORTED_VERSIONS), "client": "rigstyle-python"}
        if self.use_shm:
            fields.update(capabilities=["shm"], host=host_id(), shm_bytes=self.shm_bytes)
        reply = self.request(Message(HELLO, fields=fields), timeout=timeout)
        self.session = dict(reply.fields)
        grant = reply.fields.get("shm")
        if grant is not None:
            try:
                self._segment = Segment(SegmentInfo.from_fields(grant), create=False)
            except (OSError, ValueError, KeyError, TypeError):
                self._segment = None  # e.g. another container's /dev/shm: plain frames it is
        return self.session

    def health(self, timeout: float | None = None) -> dict[str, Any]:
        """Liveness: the backend's status fields (status, generator, resolution, queue, ...)."""
        return dict(self.request(Message(HEALTH), timeout=timeout).fields)

    def ready(self, timeout: float | None = None) -> bool:
        """Readiness: whether the backend accepts work now (not draining, queue not full)."""
        return bool(self.request(Message(READY), timeout=timeout).fields.get("ready"))

    def refine_frame(
        self,
        passes: FramePasses,
        timeout: float | None = None,
        on_progress: OnProgress | None = None,
        mode: str = "final",
    ) -> RefinedFrame:
        """Send one frame's passes and wait for the refined frame (``mode``: 'final' or 'preview').

        Raises:
            BackendError: with the server's code (``busy``, ``deadline``, ``bad_field``, ...),
                :class:`BackendTimeout` or :class:`BackendUnavailable`.
        """
        message = with_mode(passes.to_message(), mode)
        return _refined(self.request(message, timeout=timeout, on_progress=on_progress))

    def refine_params(
        self, request: ParamsRequest, timeout: float | None = None, on_progress: OnProgress | None = None
    ) -> RefinedFrame:
        """Send only rig parameters and a camera; the backend renders the passes (pyrender) and refines.

        Raises:
            BackendError: as :meth:`refine_frame`; ``bad_field`` names an unknown rig.
        """
        return _refined(self.request(request.to_message(), timeout=timeout, on_progress=on_progress))

    def add_frame(self, passes: FramePasses, timeout: float | None = None) -> int:
        """Upload one frame of a shot for :meth:`refine_shot`; returns the frames the shot now holds.

        Raises:
            BackendError: ``bad_field`` / ``refine_failed`` name what is wrong with the frame,
                ``too_large`` when the backend holds too many frames.
        """
        message = passes.to_message().replace(type=ADD_FRAME)
        return int(self.request(message, timeout=timeout).fields.get("frames", 0))

    def refine_shot(
        self,
        frames: Iterable[FramePasses],
        timeout: float | None = None,
        on_result: OnResult | None = None,
        on_progress: OnProgress | None = None,
        pti: bool | None = None,
        end_shot: bool = True,
        directions: DirectionWeights | None = None,
    ) -> RefinedShot:
        """Refine a shot jointly (final quality): upload every frame, then one ``refine_shot`` request.

        Refined frames stream to ``on_result`` as the backend composites them; optimisation progress goes
        to ``on_progress`` (stage 'step', with phase, step, steps and loss).

        Args:
            frames: the shot's frames (one shot, frame order).
            timeout: seconds for the whole refinement (default: the client's timeout per frame).
            on_result: receives each refined frame.
            on_progress: receives progress events.
            pti: pivotal tuning for this shot (None: the backend's default).
            end_shot: drop the shot's state on the backend afterwards.
            directions: latent directions of the rig's expression controls, weighted per frame (the
                backend measures each on first use; ``RefinedShot.directions`` reports their consistency).

        Raises:
            BackendError: the backend refused a frame (nothing is refined; its held frames stay, so
                sending the fixed frame again with :meth:`add_frame` and retrying works) or the shot.
        """
        frames = list(frames)
        if not frames:
            raise ValueError("refine_shot: no frames")
        for passes in frames:
            self.add_frame(passes)
        timeout = self.timeout * len(frames) if timeout is None else timeout
        return self.refine_held_shot(
            frames[0].shot, timeout, on_result, on_progress, pti, end_shot, directions=directions
        )

    def refine_held_shot(
        self,
        shot: str,
        timeout: float | None = None,
        on_result: OnResult | None = None,
        on_progress: OnProgress | None = None,
        pti: bool | None = None,
        end_shot: bool = True,
        cancelled: Cancelled | None = None,
        return_state: bool = False,
        directions: DirectionWeights | None = None,
    ) -> RefinedShot:
        """Refine the frames already sent with :meth:`add_frame` (see :meth:`refine_shot`).

        For a caller that uploads each frame as soon as it is rendered, then asks for the shot.
        ``cancelled`` is polled while waiting; once it returns True the request is cancelled and this
        raises ``BackendError`` with code ``cancelled`` (the shot's frames stay held on the backend).
        ``return_state``: also return the shot's state after its last frame (``RefinedShot.state``), which
        :meth:`set_shot_state` gives to any backend running the same generator.
        """
        fields: dict[str, Any] = {"shot": shot}
        if pti is not None:
            fields["pti"] = pti
        if return_state:
            fields["return_state"] = True
        if directions is not None:
            fields["directions"] = directions.to_field()
        refined: list[RefinedFrame] = []

        def collect(frame: RefinedFrame) -> None:
            refined.append(frame)
            if on_result is not None:
                on_result(frame)

        reply = self.request(Message(REFINE_SHOT, fields=fields), timeout, on_progress, collect, cancelled)
        if end_shot:
            self.end_shot(shot)
        metrics = {str(k): float(v) for k, v in dict(reply.fields.get("metrics", {})).items()}
        state = None
        if return_state and "state_frame" in reply.fields:
            try:
                state = SavedShotState.from_message(reply)
            except ProtocolError as exc:
                raise BackendError("bad_reply", f"the shot state in the reply is malformed: {exc}") from None
        report = reply.fields.get("directions", {})
        return RefinedShot(frames=refined, metrics=metrics, state=state, directions=report)

    def stream_shot(
        self,
        frames: Iterable[FramePasses],
        timeout: float | None = None,
        on_result: OnResult | None = None,
        on_progress: OnProgress | None = None,
        end_shot: bool = True,
    ) -> list[RefinedFrame]:
        """Refine a shot frame by frame (each warm-starts from the previous one), streaming each result
        to ``on_result``; a ``busy`` frame is retried until ``timeout`` (per frame) passes.

        Raises:
            ShotInterrupted: a frame failed; ``completed`` holds the refined frames before it, so a caller
                can resume with the rest once the backend is back.
        """
        timeout = self.timeout if timeout is None else timeout
        done: list[RefinedFrame] = []
        shot = None
        for passes in frames:
            shot = passes.shot
            try:
                refined = self._refine_retrying_busy(passes, timeout, on_progress)
            except BackendError as exc:
                raise ShotInterrupted(passes.shot, passes.frame, done, exc) from exc
            done.append(refined)
            if on_result is not None:
                on_result(refined)
        if end_shot and shot is not None:
            self.end_shot(shot, timeout=timeout)
        return done

    def cancel(self, request_id: int, timeout: float | None = None) -> bool:
        """Cancel one of this connection's requests; True if the server still had it."""
        reply = self.request(Message(CANCEL, fields={"target": request_id}), timeout=timeout)
        return bool(reply.fields.get("found"))

    def set_shot_state(self, state: SavedShotState, timeout: float | None = None) -> None:
        """Continue ``state.shot`` from a saved state (:meth:`refine_held_shot`, this or another backend)."""
        self.request(state.to_message(), timeout)

    def end_shot(self, shot: str, timeout: float | None = None) -> None:
        """Tell the backend a shot is finished so it can drop the shot's temporal state."""
        self.request(Message(END_SHOT, fields={"shot": shot}), timeout=timeout)

    def list_shots(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """This connection's shots on the backend: ``{shot, held_frames, state}`` each (protocol 3)."""
        return list(self.request(Message(LIST_SHOTS), timeout=timeout).fields.get("shots", []))

    def request_arrays(
        self, specs: dict[str, tuple[tuple[int, ...], Any]], timeout: float | None = None
    ) -> dict[str, np.ndarray]:
        """Writable arrays (name -> shape, dtype) inside the shared request area, for a caller that renders
        straight into them: a request whose tensors are these arrays, **in this order**, sends them without
        copying. Those that do not fit (or all, without shared memory) are left out: allocate them yourself.

        The arrays are shared with the server: do not write them while a request is in flight, and expect
        any request carrying other tensors to overwrite them. After a reconnect (new segment) they are
        merely copied like any other array.
        """
        self._connect()
        if self.use_shm and self.session is None:
            self.hello(timeout)
        return {} if self._segment is None else layout(self._segment.request, specs)

    # ---- request machinery -----------------------------------------------------------------------

    def request(
        self,
        message: Message,
        timeout: float | None = None,
        on_progress: OnProgress | None = None,
        on_result: OnResult | None = None,
        cancelled: Cancelled | None = None,
    ) -> Message:
        """Send ``message`` with a fresh id and return the matching reply; error replies raise.

        ``frame_result`` events for it (``refine_shot``) go to ``on_result``. ``cancelled`` is polled
        every 50 ms while waiting: once it returns True, a ``cancel`` for the request is sent (once) and the
        server's ``cancelled`` error reply raises as usual."""
        timeout = self.timeout if timeout is None else timeout
        if on_progress is not None:
            message = message.replace(progress=True)
        expected = MESSAGES[message.type].reply if message.type in MESSAGES else None
        for attempt in range(2):
            request_id = self.send(message, timeout)
            tick = None if cancelled is None else self._canceller(request_id, cancelled)
            try:
                reply = self.wait(request_id, timeout, on_progress, tick, on_result)
                if expected is not None and reply.type != expected:
                    raise BackendError(
                        "bad_reply", f"{message.type} was answered with {reply.type!r}, not {expected!r}"
                    )
                return reply
            except BackendError as exc:
                if exc.code != ERR_SHM_UNAVAILABLE or attempt:
                    raise
                self._drop_segment()  # the server evicted or lost it: hello again, or use frames
        raise AssertionError("unreachable")

    def send(self, message: Message, timeout: float | None = None) -> int:
        """Send ``message`` with a fresh id (and the token and deadline); returns the id."""
        timeout = self.timeout if timeout is None else timeout
        if self._socket is not None and self._disconnected():
            self._reset()  # a drop noticed since the last request: start this one on a fresh connection
        socket = self._connect()
        if message.tensors and self.use_shm and self.session is None:
            self.hello(timeout)
        request_id = self._next_id
        self._next_id += 1
        message = message.replace(id=request_id, auth=self.token, deadline_ms=int(timeout * 1000))
        offsets = None
        if message.tensors and self._segment is not None:
            offsets = pack(self._segment.request, message.tensors)
            message = message.replace(shm=self._segment.info.segment)
        socket.send_multipart(encode(message, offsets), copy=False)
        return request_id

    def wait(
        self,
        request_id: int,
        timeout: float | None = None,
        on_progress: OnProgress | None = None,
        tick: Callable[[], None] | None = None,
        on_result: OnResult | None = None,
    ) -> Message:
        """Wait for the reply to ``request_id``; ``tick`` runs every 50 ms while waiting.

        Raises:
            BackendError: the reply is an error; BackendTimeout / BackendUnavailable.
        """
        timeout = self.timeout if timeout is None else timeout
        socket, monitor = self._connect(), self._monitor
        deadline = time.monotonic() + timeout
        what = f"request {request_id}"
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        while request_id not in self._stash:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._reset()  # a late answer must not be mistaken for the next request's
                raise BackendTimeout(self.address, timeout, what)
            wait_ms = int(min(remaining, 0.05 if tick else remaining) * 1000) + 1
            events = dict(poller.poll(wait_ms))
            if monitor in events and self._disconnected():
                self._reset()
                raise BackendUnavailable(self.address, what)
            if socket in events:
                self._receive(socket, request_id, on_progress, on_result)
            if tick is not None:
                tick()
        reply = self._stash.pop(request_id)
        if reply.type == ERROR:
            raise BackendError(str(reply.fields.get("code")), str(reply.fields.get("message")))
        return reply

    def _receive(
        self,
        socket: zmq.Socket,
        request_id: int,
        on_progress: OnProgress | None,
        on_result: OnResult | None = None,
    ) -> None:
        try:
            reply = decode(socket.recv_multipart(copy=False), self.limits, self._reply_area)
        except ProtocolError as exc:
            raise BackendError("bad_reply", exc.message) from None
        if reply.shm is not None:  # the reply area is reused by the next reply: copy out, or lend views
            reply = reply.replace(tensors={k: self._take(v) for k, v in reply.tensors.items()})
        if reply.type == PROGRESS:
            if reply.id == request_id and on_progress is not None:
                fields = dict(reply.fields)
                on_progress(ProgressEvent(reply.id, str(fields.get("stage")), fields))
            return
        if reply.type == FRAME_RESULT:
            if reply.id == request_id and on_result is not None:
                on_result(_refined(reply))
            return
        if reply.type == ERROR and reply.id == 0:
            self._stash[request_id] = reply  # the server could not read our header at all
        elif 0 < reply.id < self._next_id:  # one of ours (a reply to an id we never sent is dropped)
            self._stash[reply.id] = reply
            while len(self._stash) > 64:  # answers nobody waits for any more
                self._stash.pop(next(iter(self._stash)))

    def _take(self, array: np.ndarray) -> np.ndarray:
        """A reply tensor decoded from the reply area (framed ones too, which are harmless to lend): a
        copy, or with ``borrow_replies`` the view itself, made read-only (valid until the next request)."""
        if not self.borrow_replies:
            return np.array(array)
        array.flags.writeable = False
        return array

    def _canceller(self, request_id: int, cancelled: Cancelled) -> Callable[[], None]:
        """A ``wait`` tick that sends one ``cancel`` for ``request_id`` once ``cancelled()`` is True."""
        sent = False

        def tick() -> None:
            nonlocal sent
            if not sent and cancelled():
                sent = True
                self.send(Message(CANCEL, fields={"target": request_id}))

        return tick

    def _reply_area(self, segment_id: str) -> memoryview:
        if self._segment is None or segment_id != self._segment.info.segment:
            raise ProtocolError(ERR_SHM_UNAVAILABLE, "reply names a shared-memory segment we do not hold")
        return self._segment.reply

    def _refine_retrying_busy(
        self, passes: FramePasses, timeout: float, on_progress: OnProgress | None
    ) -> RefinedFrame:
        deadline = time.monotonic() + timeout
        pause = 0.02
        while True:
            try:
                return self.refine_frame(passes, max(0.001, deadline - time.monotonic()), on_progress)
            except BackendError as exc:
                if exc.code != ERR_BUSY or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def _connect(self) -> zmq.Socket:
        if self._socket is None:
            socket = self._context.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            self._monitor = socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            socket.connect(self.address)
            self._socket = socket
        elif self._disconnected():
            self._reset()  # the backend went away while we were idle: start clean (and hello again)
            return self._connect()
        return self._socket

    def _disconnected(self) -> bool:
        """Drain the monitor; True if the connection dropped since the last look."""
        dropped = False
        assert self._monitor is not None
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            dropped = dropped or event["event"] == zmq.EVENT_DISCONNECTED
        return dropped

    def _drop_segment(self) -> None:
        self._segment = None
        self.session = None

    def _reset(self) -> None:
        if self._socket is not None:
            self._socket.disable_monitor()
            if self._monitor is not None:
                self._monitor.close(linger=0)
            self._socket.close(linger=0)
        self._socket = self._monitor = None
        self._stash.clear()
        self._drop_segment()


def _is_local(address: str) -> bool:
    return address.startswith(("ipc://", "tcp://127.", "tcp://localhost:", "tcp://[::1]:"))


def with_mode(message: Message, mode: str) -> Message:
    """A ``refine_frame`` message asking for ``mode`` ('final' is the default and travels as no field)."""
    return message if mode == "final" else message.replace(fields={**message.fields, "mode": mode})


def _refined(reply: Message) -> RefinedFrame:
    """The refined frame a ``result`` reply carries; a malformed result is a ``bad_reply`` error."""
    try:
        return RefinedFrame.from_message(reply)
    except ProtocolError as exc:
        frame = reply.fields.get("frame")
        raise BackendError("bad_reply", f"result for frame {frame}: {exc.message}") from None


def wait_until_healthy(
    address: str,
    timeout: float,
    poll: float = 0.5,
    is_alive: Callable[[], bool] = lambda: True,
    token: str | None = None,
) -> dict[str, Any]:
    """Poll ``health`` until the backend answers or ``timeout`` passes.

    ``is_alive`` lets a caller that started the backend stop waiting as soon as the process died.
    """
    deadline = time.monotonic() + timeout
    with Client(address, token, shm=False) as client:
        while True:
            try:
                return client.health(timeout=poll)
            except (BackendTimeout, BackendUnavailable):
                time.sleep(0.05)  # a backend that is exiting drops the connection: give it time to go
                if not is_alive():
                    raise BackendError("not_running", f"backend at {address} exited while starting") from None
                if time.monotonic() > deadline:
                    raise
