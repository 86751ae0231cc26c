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
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from ..protocol.messages import MESSAGES, SHELL, CancelRequest, lookup, read_body, types_of
from ..protocol.passes import EXTRA_PASSES, PARAM_SHAPES, PASS_NAMES
from ..protocol.shm import SegmentTable, host_id, pack
from ..protocol.wire import (
    CANCEL,
    DEFAULT_LIMITS,
    ERR_BAD_FIELD,
    ERR_BAD_MESSAGE,
    ERR_BUSY,
    ERR_CANCELLED,
    ERR_DEADLINE,
    ERR_INTERNAL,
    ERR_UNSUPPORTED_VERSION,
    HEALTH,
    HELLO,
    OK,
    PROGRESS,
    PROTOCOL_VERSION,
    READY,
    REFINE_SHOT,
    RELEASE_SHM,
    SUPPORTED_VERSIONS,
    Limits,
    Message,
    ProtocolError,
    decode,
    encode,
    error_message,
)
from .core import Peer, RequestCore
from .ports import BindError, check_endpoint

log = logging.getLogger("rigstyle.server")
DEFAULT_ADDRESS = "tcp://127.0.0.1:7557"
DEFAULT_SHM_BYTES = 64 << 20


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
    body: Any  # the request's body, read and checked by the core when it was accepted
    deadline: float  # time.monotonic() value
    envelope: tuple[bytes, ...] = ()  # a REQ client's empty delimiter, sent back before each reply
    started: bool = False
    accepted: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple[bytes, int]:
        return self.routing, self.message.id

    @property
    def shot(self) -> str:
        """The shot this request belongs to: requests of one shot never run at the same time."""
        return str(self.body.shot)

    @property
    def events(self) -> bool:
        """Whether the client gets events (``progress``) before the reply: a REQ socket takes one reply."""
        return self.message.progress and not self.envelope


class Server:
    """Binds at construction (so a busy port fails fast, before any model loads) and serves a
    :class:`~.core.RequestCore` until :meth:`stop` (SIGTERM/SIGINT), then drains."""

    def __init__(self, options: ServeOptions):
        check_endpoint(options.address, options.token)
        self.options = options
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._socket = self._bind(options.address)
        # a connection that goes away (closed, killed) has its work cancelled and its shots dropped
        self._monitor = self._socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._peer_fd: dict[Peer, int] = {}  # the file descriptor each client's messages came on
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
        self._core: RequestCore | None = None
        self._shell_handlers = {
            HELLO: self._hello,
            HEALTH: self._health,
            READY: self._ready,
            CANCEL: self._cancel,
            RELEASE_SHM: self._release_shm,
        }
        assert set(self._shell_handlers) == types_of(SHELL), "every shell message of the registry"
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

    def serve_forever(self, core: RequestCore, install_signal_handlers: bool = True) -> None:
        self._core = core
        if install_signal_handlers:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        workers = [
            threading.Thread(target=self._work, args=(core,), name=f"rigstyle-worker-{n}", daemon=True)
            for n in range(self.options.workers)
        ]
        for worker in workers:
            worker.start()
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._wake, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        try:
            while not (
                self._drain_at is not None and (not self._ledger or time.monotonic() > self._drain_at)
            ):
                events = dict(poller.poll(self._poll_ms()))
                if self._wake in events:
                    while self._wake.poll(0):
                        self._wake.recv()
                if self._monitor in events:  # before new messages: a reused descriptor is a new client
                    self._on_monitor()
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
        # Disconnects first: a descriptor in this message may be one a connection just gave up. Its
        # DISCONNECTED event was queued before the new connection existed, so draining here sees it.
        self._on_monitor()
        self._note_peer(routing, frames[1])
        envelope: tuple[bytes, ...] = ()
        payload = frames[1:]
        if len(payload) >= 2 and len(payload[0]) == 0:  # a REQ socket's empty delimiter frame
            envelope, payload = (b"",), payload[1:]
        request_id = 0
        try:
            message = decode(payload, self.options.limits, self._shm_area, self.options.token)
            request_id = message.id
            self._dispatch(routing, message, envelope)
        except ProtocolError as exc:
            error = error_message(exc.request_id or request_id, exc.code, exc.message)
            self._send(routing, error, envelope=envelope)
        except Exception as exc:  # never let one message stop the server
            log.exception("message from %r failed", routing)
            error = error_message(request_id, ERR_INTERNAL, f"{type(exc).__name__}: {exc}")
            self._send(routing, error, envelope=envelope)

    def _note_peer(self, routing: Peer, frame: zmq.Frame) -> None:
        """Remember which connection a client's messages come on; a client id seen on a new connection
        means its old connection is gone (a new socket reusing a routing id gets none of the old work)."""
        try:
            fd = int(frame.get(zmq.SRCFD))
        except (zmq.ZMQError, AttributeError, ValueError):
            return
        if fd < 0:
            return  # inproc: no descriptor
        previous = self._peer_fd.get(routing)
        if previous is not None and previous != fd:
            self._peer_gone(routing, f"client {routing!r} reconnected")
        self._peer_fd[routing] = fd

    def _on_monitor(self) -> None:
        while self._monitor.poll(0):
            frames = self._monitor.recv_multipart()
            event, fd = struct.unpack("=hi", frames[0][:6])
            if event != zmq.EVENT_DISCONNECTED:
                continue
            for peer in [peer for peer, peer_fd in self._peer_fd.items() if peer_fd == fd]:
                self._peer_gone(peer, f"client {peer!r} disconnected")

    def _peer_gone(self, peer: Peer, why: str) -> None:
        """A client's connection went away: cancel its queued and running work (no reply: nobody is there
        to read it) and drop its shots."""
        self._peer_fd.pop(peer, None)
        jobs = [job for job in self._ledger.values() if job.routing == peer]
        for job in jobs:
            self._forget(job)
        dropped = self._core.disconnected(peer) if self._core is not None else []
        if jobs or dropped:
            log.info("%s: cancelled %d request(s), dropped %d shot(s)", why, len(jobs), len(dropped))

    def _shm_area(self, segment_id: str) -> memoryview:
        if self._segments is None:
            raise ProtocolError("shm_unavailable", "this server offers no shared memory")
        return self._segments.request_area(segment_id)

    def _dispatch(self, routing: bytes, message: Message, envelope: tuple[bytes, ...] = ()) -> None:
        assert self._core is not None
        kind = lookup(message).kind
        if kind == SHELL:
            reply = self._shell_handlers[message.type](routing, message)
            self._send(routing, reply, envelope=envelope)
            return
        if kind != "work":
            self._send(routing, self._core.control(routing, message), envelope=envelope)
            return
        if envelope and message.type == REFINE_SHOT:
            raise ProtocolError(
                ERR_BAD_FIELD,
                f"{REFINE_SHOT} answers with several messages, which a REQ socket cannot take; use DEALER",
                message.id,
            )
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
        body = self._core.accept(routing, message)
        limit = self.options.max_deadline_s
        if message.deadline_ms is not None:
            limit = min(limit, message.deadline_ms / 1000)
        job = Job(routing, message, body, time.monotonic() + limit, envelope)
        self._ledger[job.key] = job
        with self._queue_changed:
            self._queue.append(job)
            position = len(self._queue)
            self._queue_changed.notify()
        if job.events:
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
                if job.events:
                    self._send(job.routing, Message(PROGRESS, job.message.id, {"stage": "running"}))
            elif not final:
                if not job.envelope and (reply.type != PROGRESS or job.message.progress):
                    self._send(job.routing, reply)  # events travel as frames: the reply area is the reply's
            else:
                self._answer(job, reply)

    def _answer(self, job: Job, reply: Message) -> None:
        """The one reply of an accepted request; later attempts to answer it are ignored."""
        if self._forget(job):
            self._send(job.routing, reply, job.message.shm, job.envelope)

    def _forget(self, job: Job) -> bool:
        """Take an accepted request off the ledger (and the queue); False if it was already answered.
        A running request then stops at its next step: its events find it gone."""
        if self._ledger.pop(job.key, None) is not job:
            return False
        if not job.started:
            with self._queue_changed:
                try:
                    self._queue.remove(job)
                except ValueError:
                    pass  # the worker took it in the meantime; its result will be dropped
        return True

    def _expire(self, now: float) -> None:
        for job in [job for job in self._ledger.values() if job.deadline <= now]:
            where = "running" if job.started else "queued"
            seconds = job.deadline - job.accepted
            text = f"request {job.message.id} passed its deadline of {seconds:.3g} s ({where})"
            self._answer(job, error_message(job.message.id, ERR_DEADLINE, text))

    def _send(
        self, routing: bytes, reply: Message, shm: str | None = None, envelope: tuple[bytes, ...] = ()
    ) -> None:
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
            self._socket.send_multipart([routing, *envelope, *frames], copy=False)
        except zmq.ZMQError as exc:  # e.g. the peer's queue is full; ROUTER drops rather than blocks
            log.warning("reply %s to %r not sent: %s", reply.id, routing, exc)

    # ---- control messages (loop thread, answered at once) ----------------------------------------

    def _hello(self, routing: bytes, message: Message) -> Message:
        assert self._core is not None
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
        capabilities = ["progress", "cancel", "deadline", "directions"]
        fields: dict[str, Any] = {
            "version": max(common),
            "server": "rigstyle",
            "limits": self.options.limits.to_fields(),
            "queue_size": self.options.queue_size,
            "max_deadline_ms": int(self.options.max_deadline_s * 1000),
            "passes": [*PASS_NAMES, *EXTRA_PASSES],
            "params": list(PARAM_SHAPES),
            "work_types": sorted(self._core.work_types),
            "message_types": sorted(MESSAGES),
            **self._core.describe(),
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
        assert self._core is not None
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
            **self._core.describe(),
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
        request: CancelRequest = read_body(message)
        target = request.target
        job = self._ledger.get((routing, target))
        if job is not None:
            text = f"request {target} cancelled by the client ({'running' if job.started else 'queued'})"
            self._answer(job, error_message(target, ERR_CANCELLED, text))
        return Message(OK, message.id, {"target": target, "found": job is not None})

    def _release_shm(self, routing: bytes, message: Message) -> Message:
        segment = read_body(message).segment
        released = self._segments.release(segment) if self._segments is not None else False
        return Message(OK, message.id, {"segment": segment, "released": released})

    # ---- the worker thread -----------------------------------------------------------------------

    def _work(self, core: RequestCore) -> None:
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
                    self._running_shots[job.shot] += 1
                self._post(wake, job, None, final=False)

                def emit(event: Message, job: Job = job) -> bool:
                    if self._ledger.get(job.key) is not job:
                        return False
                    self._post(wake, job, event.replace(id=job.message.id), final=False)
                    return True

                try:
                    reply = core.handle(job.routing, job.message, job.body, emit)
                except Exception as exc:  # the core answers errors itself; this is the last resort
                    log.exception("request %s failed", job.message.id)
                    reply = error_message(job.message.id, ERR_INTERNAL, f"{type(exc).__name__}: {exc}")
                finally:
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
        self._monitor.close(linger=0)
        self._socket.close(linger=linger_ms)
        self._wake.close(linger=0)
        if self._segments is not None:
            self._segments.close()
