"""The socket shell: one ZeroMQ ROUTER loop plus worker threads around a :class:`Handler`. No torch.

The loop thread owns the socket and the ledger of accepted requests; it answers control messages
(``hello``, ``health``, ``ready``, ``cancel``, ``end_shot``, ``release_shm``) at once, even while a
refinement runs. Work messages go into a bounded queue that one worker thread drains (the refiner is
CPU/GPU-bound and single-stream per process); a handler that forwards work elsewhere (``ray_serve``) may
ask for several workers, which never run two requests of the same shot at once and take each shot's
requests in arrival order. A worker hands each reply back to the loop, which sends
it only if the request is still in the ledger: so every accepted request ends in exactly one reply — a
result or a typed error (``busy``, ``deadline``, ``cancelled``, ...).
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import zmq

from ..protocol.passes import EXTRA_PASSES, PARAM_SHAPES, PASS_NAMES
from ..protocol.shm import SegmentTable, host_id, pack
from ..protocol.wire import (
    CANCEL,
    DEFAULT_LIMITS,
    END_SHOT,
    ERR_BAD_FIELD,
    ERR_BAD_MESSAGE,
    ERR_BUSY,
    ERR_CANCELLED,
    ERR_DEADLINE,
    ERR_INTERNAL,
    ERR_UNKNOWN_TYPE,
    ERR_UNSUPPORTED_VERSION,
    HEALTH,
    HELLO,
    OK,
    PROGRESS,
    PROTOCOL_VERSION,
    READY,
    RELEASE_SHM,
    SUPPORTED_VERSIONS,
    Limits,
    Message,
    ProtocolError,
    decode,
    encode,
    error_message,
)
from .ports import BindError, check_endpoint

log = logging.getLogger("rigstyle.server")
DEFAULT_ADDRESS = "tcp://127.0.0.1:7557"
DEFAULT_SHM_BYTES = 64 << 20


# emit(event): send an event (``progress``, ``frame_result``) for the running request before its reply.
# Returns False once the request no longer wants anything (cancelled, past its deadline): stop then.
Emit = Callable[[Message], bool]


class Handler(Protocol):
    """What the shell serves: the refiner (``server.Backend``) or the transport-only echo handler."""

    work_types: frozenset[str]  # message types that go through the queue to the worker thread
    control_types: frozenset[str]  # handler messages answered at once on the loop thread (add_frame)

    def handle(self, message: Message, emit: Emit) -> Message:
        """Run one work message on the worker thread; return its reply (errors as ``error`` messages)."""
        ...

    def control(self, message: Message) -> Message:
        """Answer one of ``control_types`` at once (loop thread: quick, thread-safe); errors may raise
        :class:`ProtocolError`."""
        ...

    def describe(self) -> dict[str, Any]:
        """Status fields for ``health`` and ``hello`` (called on the loop thread: cheap, thread-safe)."""
        ...

    def end_shot(self, shot: str) -> None:
        """Drop a shot's temporal state (loop thread; thread-safe)."""
        ...


@dataclass(frozen=True)
class ServeOptions:
    address: str = DEFAULT_ADDRESS  # tcp://HOST:PORT or ipc:///path; non-loopback TCP needs a token
    token: str | None = None  # required in every request's 'auth' when set
    queue_size: int = 4  # requests that may wait behind the running one; more are refused with busy
    max_deadline_s: float = 3600.0  # longest a request may wait and run; clients may ask for less
    drain_timeout_s: float = 30.0  # on SIGTERM: how long accepted requests may still take
    shm: bool = True  # offer shared memory to clients on this host
    shm_max_bytes: int = 1 << 30  # largest shared-memory area (each of request and reply) per client
    shm_max_segments: int = 16  # segments kept; the least recently used is evicted beyond this
    limits: Limits = DEFAULT_LIMITS  # message size limits, checked before allocation
    workers: int = 1  # requests run at once (of different shots); >1 only for handlers that forward work

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ValueError(f"queue_size: expected at least 1, got {self.queue_size}")
        if self.workers < 1:
            raise ValueError(f"workers: expected at least 1, got {self.workers}")
        if not self.max_deadline_s > 0 or self.drain_timeout_s < 0:
            raise ValueError("max_deadline_s must be > 0 and drain_timeout_s ≥ 0")


@dataclass(eq=False)
class Job:
    """An accepted work request, from acceptance to its one reply."""

    routing: bytes
    message: Message
    deadline: float  # time.monotonic() value
    started: bool = False
    accepted: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple[bytes, int]:
        return self.routing, self.message.id

    @property
    def shot(self) -> str | None:
        """The shot this request belongs to: requests of one shot never run at the same time."""
        shot = self.message.fields.get("shot")
        return shot if isinstance(shot, str) else None


class Server:
    """Binds at construction (so a busy port fails fast, before any model loads) and serves a
    :class:`Handler` until :meth:`stop` (SIGTERM/SIGINT), then drains."""

    def __init__(self, options: ServeOptions):
        check_endpoint(options.address, options.token)
        self.options = options
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._socket = self._bind(options.address)
        self._wake_address = f"inproc://rigstyle-wake-{id(self)}"
        self._wake = self._context.socket(zmq.PULL)
        self._wake.bind(self._wake_address)
        self._segments = (
            SegmentTable(options.shm_max_segments, options.shm_max_bytes)
            if options.shm and host_id() is not None
            else None
        )
        self._host = host_id()
        self._queue: collections.deque[Job] = collections.deque()
        self._queue_changed = threading.Condition()
        self._running_shots: collections.Counter[str] = collections.Counter()  # under _queue_changed
        # (job, message, final): final=False for "started" (message None) and for events
        self._done: queue.SimpleQueue[tuple[Job, Message | None, bool]] = queue.SimpleQueue()
        self._ledger: dict[tuple[bytes, int], Job] = {}
        self._stopping = False
        self._drain_at: float | None = None
        self._started = time.monotonic()
        self._handler: Handler | None = None
        self.counts: collections.Counter[str] = collections.Counter()  # replies sent, by type/code

    def _bind(self, address: str) -> zmq.Socket:
        socket = self._context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.LINGER, 0)
        # A frame larger than any tensor may be drops the connection inside ZeroMQ, before Python sees it.
        limits = self.options.limits
        socket.setsockopt(zmq.MAXMSGSIZE, max(limits.max_tensor_bytes, limits.max_header_bytes))
        socket.setsockopt(zmq.RCVHWM, 64)
        try:
            socket.bind(address)
        except zmq.ZMQError as exc:
            socket.close()
            if exc.errno == errno.EADDRINUSE:
                raise BindError(f"{address} is busy; choose another --port or --address") from None
            raise BindError(f"cannot bind {address}: {exc}") from None
        if address.startswith("ipc://"):
            os.chmod(address[len("ipc://") :], 0o600)  # only this user may connect
        return socket

    @property
    def address(self) -> str:
        return str(self._socket.getsockopt_string(zmq.LAST_ENDPOINT))

    def stop(self, *_: object) -> None:
        """Stop accepting work and drain: accepted requests get up to ``drain_timeout_s`` to finish."""
        if self._drain_at is None:
            self._drain_at = time.monotonic() + self.options.drain_timeout_s

    # ---- the loop thread -------------------------------------------------------------------------

    def serve_forever(self, handler: Handler, install_signal_handlers: bool = True) -> None:
        self._handler = handler
        if install_signal_handlers:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        workers = [
            threading.Thread(target=self._work, args=(handler,), name=f"rigstyle-worker-{n}", daemon=True)
            for n in range(self.options.workers)
        ]
        for worker in workers:
            worker.start()
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._wake, zmq.POLLIN)
        try:
            while not (
                self._drain_at is not None and (not self._ledger or time.monotonic() > self._drain_at)
            ):
                events = dict(poller.poll(self._poll_ms()))
                if self._wake in events:
                    while self._wake.poll(0):
                        self._wake.recv()
                if self._socket in events:
                    for _ in range(64):  # bounded, so replies and deadlines are not starved
                        try:
                            frames = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._on_frames(frames)
                self._collect_done()
                self._expire(time.monotonic())
        finally:
            self._shutdown(workers)

    def _poll_ms(self) -> int:
        soonest = min((job.deadline for job in self._ledger.values()), default=time.monotonic() + 0.1)
        return max(0, min(100, int((soonest - time.monotonic()) * 1000) + 1))

    def _on_frames(self, frames: list[zmq.Frame]) -> None:
        if len(frames) < 2:
            return  # a ROUTER always prepends the routing id; nothing to answer to
        routing = frames[0].bytes
        try:
            message = decode(frames[1:], self.options.limits, self._shm_area, self.options.token)
            self._dispatch(routing, message)
        except ProtocolError as exc:
            self._send(routing, error_message(exc.request_id, exc.code, exc.message))
        except Exception as exc:  # never let one message stop the server
            log.exception("message from %r failed", routing)
            self._send(routing, error_message(0, ERR_INTERNAL, f"{type(exc).__name__}: {exc}"))

    def _shm_area(self, segment_id: str) -> memoryview:
        if self._segments is None:
            raise ProtocolError("shm_unavailable", "this server offers no shared memory")
        return self._segments.request_area(segment_id)

    def _dispatch(self, routing: bytes, message: Message) -> None:
        assert self._handler is not None
        control = {
            HELLO: self._hello,
            HEALTH: self._health,
            READY: self._ready,
            CANCEL: self._cancel,
            END_SHOT: self._end_shot,
            RELEASE_SHM: self._release_shm,
        }.get(message.type)
        if control is not None:
            self._send(routing, control(routing, message))
            return
        if message.type in self._handler.control_types:
            self._send(routing, self._handler.control(message))
            return
        if message.type not in self._handler.work_types:
            raise ProtocolError(ERR_UNKNOWN_TYPE, f"unknown message type {message.type!r}", message.id)
        if (routing, message.id) in self._ledger:
            raise ProtocolError(ERR_BAD_MESSAGE, f"request id {message.id} is already in flight", message.id)
        if self._drain_at is not None:
            raise ProtocolError(ERR_BUSY, "the server is shutting down", message.id)
        if self._full():
            raise ProtocolError(
                ERR_BUSY,
                f"queue full ({self.options.queue_size} waiting + {self.options.workers} running); "
                "retry later",
                message.id,
            )
        limit = self.options.max_deadline_s
        if message.deadline_ms is not None:
            limit = min(limit, message.deadline_ms / 1000)
        job = Job(routing, message, time.monotonic() + limit)
        self._ledger[job.key] = job
        with self._queue_changed:
            self._queue.append(job)
            position = len(self._queue)
            self._queue_changed.notify()
        if message.progress:
            self._send(routing, Message(PROGRESS, message.id, {"stage": "queued", "position": position}))

    def _full(self) -> bool:
        return len(self._ledger) >= self.options.queue_size + self.options.workers

    def _collect_done(self) -> None:
        while True:
            try:
                job, reply, final = self._done.get_nowait()
            except queue.Empty:
                return
            if self._ledger.get(job.key) is not job:
                continue  # already answered (cancelled or past its deadline): the result is dropped
            if reply is None:  # the worker started it
                if job.message.progress:
                    self._send(job.routing, Message(PROGRESS, job.message.id, {"stage": "running"}))
            elif not final:
                if reply.type != PROGRESS or job.message.progress:
                    self._send(job.routing, reply)  # events travel as frames: the reply area is the reply's
            else:
                self._answer(job, reply)

    def _answer(self, job: Job, reply: Message) -> None:
        """The one reply of an accepted request; later attempts to answer it are ignored."""
        if self._ledger.pop(job.key, None) is not job:
            return
        if not job.started:
            with self._queue_changed:
                try:
                    self._queue.remove(job)
                except ValueError:
                    pass  # the worker took it in the meantime; its result will be dropped
        self._send(job.routing, reply, job.message.shm)

    def _expire(self, now: float) -> None:
        for job in [job for job in self._ledger.values() if job.deadline <= now]:
            where = "running" if job.started else "queued"
            seconds = job.deadline - job.accepted
            text = f"request {job.message.id} passed its deadline of {seconds:.3g} s ({where})"
            self._answer(job, error_message(job.message.id, ERR_DEADLINE, text))

    def _send(self, routing: bytes, reply: Message, shm: str | None = None) -> None:
        offsets = None
        if shm is not None and reply.tensors and self._segments is not None:
            try:
                offsets = pack(self._segments.get(shm).reply, reply.tensors)
                reply = reply.replace(shm=shm)
            except ProtocolError:
                pass  # evicted meanwhile: the reply travels as frames
        try:
            frames = encode(reply, offsets)
        except ProtocolError as exc:
            log.error("reply %s could not be encoded: %s", reply.id, exc.message)
            frames = encode(error_message(reply.id, ERR_INTERNAL, exc.message))
        self.counts[reply.fields.get("code", reply.type) if reply.type == "error" else reply.type] += 1
        try:
            self._socket.send_multipart([routing, *frames], copy=False)
        except zmq.ZMQError as exc:  # e.g. the peer's queue is full; ROUTER drops rather than blocks
            log.warning("reply %s to %r not sent: %s", reply.id, routing, exc)

    # ---- control messages (loop thread, answered at once) ----------------------------------------

    def _hello(self, routing: bytes, message: Message) -> Message:
        assert self._handler is not None
        versions = message.fields.get("versions", [PROTOCOL_VERSION])
        spoken = versions if isinstance(versions, list) else []
        common = {v for v in spoken if isinstance(v, int) and not isinstance(v, bool)} & set(
            SUPPORTED_VERSIONS
        )
        if not common:
            raise ProtocolError(
                ERR_UNSUPPORTED_VERSION,
                f"no protocol version in common: client {versions!r}, server {list(SUPPORTED_VERSIONS)}",
                message.id,
            )
        capabilities = ["progress", "cancel", "deadline"]
        fields: dict[str, Any] = {
            "version": max(common),
            "server": "rigstyle",
            "limits": self.options.limits.to_fields(),
            "queue_size": self.options.queue_size,
            "max_deadline_ms": int(self.options.max_deadline_s * 1000),
            "passes": [*PASS_NAMES, *EXTRA_PASSES],
            "params": list(PARAM_SHAPES),
            "work_types": sorted(self._handler.work_types),
            **self._handler.describe(),
        }
        wants = message.fields.get("capabilities", [])
        same_host = self._host is not None and message.fields.get("host") == self._host
        if isinstance(wants, list) and "shm" in wants and same_host and self._segments is not None:
            size = message.fields.get("shm_bytes", DEFAULT_SHM_BYTES)
            if not isinstance(size, int) or size <= 0:
                raise ProtocolError(ERR_BAD_FIELD, "shm_bytes: expected a positive integer", message.id)
            fields["shm"] = self._segments.create(size).to_fields()
            capabilities.append("shm")
        fields["capabilities"] = capabilities
        return Message(HELLO, message.id, fields)

    def _health(self, routing: bytes, message: Message) -> Message:
        assert self._handler is not None
        running = sum(1 for job in self._ledger.values() if job.started)
        fields = {
            "status": "ok" if self._drain_at is None else "draining",
            "protocol": PROTOCOL_VERSION,
            "queue": {
                "waiting": len(self._ledger) - running,
                "running": running,
                "size": self.options.queue_size,
            },
            "uptime_s": time.monotonic() - self._started,
            "shm_segments": len(self._segments) if self._segments is not None else 0,
            **self._handler.describe(),
        }
        return Message(HEALTH, message.id, fields)

    def _ready(self, routing: bytes, message: Message) -> Message:
        if self._drain_at is not None:
            ready, reason = False, "shutting down"
        elif self._full():
            ready, reason = False, "queue full"
        else:
            ready, reason = True, "accepting work"
        return Message(READY, message.id, {"ready": ready, "reason": reason})

    def _cancel(self, routing: bytes, message: Message) -> Message:
        target = message.fields.get("target")
        if not isinstance(target, int) or isinstance(target, bool):
            raise ProtocolError(ERR_BAD_FIELD, "target: expected the request id to cancel", message.id)
        job = self._ledger.get((routing, target))
        if job is not None:
            text = f"request {target} cancelled by the client ({'running' if job.started else 'queued'})"
            self._answer(job, error_message(target, ERR_CANCELLED, text))
        return Message(OK, message.id, {"target": target, "found": job is not None})

    def _end_shot(self, routing: bytes, message: Message) -> Message:
        assert self._handler is not None
        shot = message.fields.get("shot")
        if not isinstance(shot, str):
            raise ProtocolError(ERR_BAD_FIELD, "shot: expected a string id", message.id)
        self._handler.end_shot(shot)
        return Message(OK, message.id, {"shot": shot})

    def _release_shm(self, routing: bytes, message: Message) -> Message:
        segment = message.fields.get("segment")
        if not isinstance(segment, str):
            raise ProtocolError(ERR_BAD_FIELD, "segment: expected a segment id", message.id)
        released = self._segments.release(segment) if self._segments is not None else False
        return Message(OK, message.id, {"segment": segment, "released": released})

    # ---- the worker thread -----------------------------------------------------------------------

    def _work(self, handler: Handler) -> None:
        wake = self._context.socket(zmq.PUSH)
        wake.connect(self._wake_address)
        try:
            while True:
                with self._queue_changed:
                    while (job := self._next_job()) is None and not self._stopping:
                        self._queue_changed.wait()
                    if self._stopping or job is None:
                        return
                    self._queue.remove(job)
                    job.started = True
                    if job.shot is not None:
                        self._running_shots[job.shot] += 1
                self._post(wake, job, None, final=False)

                def emit(event: Message, job: Job = job) -> bool:
                    if self._ledger.get(job.key) is not job:
                        return False
                    self._post(wake, job, event.replace(id=job.message.id), final=False)
                    return True

                try:
                    reply = handler.handle(job.message, emit)
                except Exception as exc:  # handlers answer errors themselves; this is the last resort
                    log.exception("request %s failed", job.message.id)
                    reply = error_message(job.message.id, ERR_INTERNAL, f"{type(exc).__name__}: {exc}")
                finally:
                    if job.shot is not None:
                        with self._queue_changed:
                            self._running_shots[job.shot] -= 1
                            if not self._running_shots[job.shot]:
                                del self._running_shots[job.shot]
                            self._queue_changed.notify_all()  # the shot's next request may start
                self._post(wake, job, reply, final=True)
        finally:
            wake.close(linger=0)

    def _next_job(self) -> Job | None:
        """The oldest queued request whose shot is not running (call with ``_queue_changed`` held)."""
        if not self._running_shots:
            return self._queue[0] if self._queue else None
        waiting: set[str] = set()  # shots with an older request still queued keep their order
        for job in self._queue:
            if job.shot is None:
                return job
            if job.shot not in self._running_shots and job.shot not in waiting:
                return job
            waiting.add(job.shot)
        return None

    def _post(self, wake: zmq.Socket, job: Job, message: Message | None, final: bool) -> None:
        """Hand a message to the loop thread (the worker must not touch the socket)."""
        self._done.put((job, message, final))
        wake.send(b"")

    def _shutdown(self, workers: list[threading.Thread]) -> None:
        with self._queue_changed:
            self._stopping = True
            self._queue_changed.notify_all()
        for job in list(self._ledger.values()):
            text = f"the server shut down before request {job.message.id} finished"
            self._answer(job, error_message(job.message.id, ERR_CANCELLED, text))
        for worker in workers:
            worker.join(timeout=0.5)  # a refinement still running is abandoned (daemon thread)
        self.close(linger_ms=1000)  # let the last errors leave
        log.info("stopped; replies sent: %s", dict(self.counts))

    def close(self, linger_ms: int = 0) -> None:
        """Close the sockets and unlink the shared-memory segments (also when never served)."""
        self._socket.close(linger=linger_ms)
        self._wake.close(linger=0)
        if self._segments is not None:
            self._segments.close()
