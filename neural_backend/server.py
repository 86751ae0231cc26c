"""The backend server: a ZeroMQ ROUTER socket around :class:`Backend`, which maps messages to replies.

``Backend.handle`` holds all the behaviour and does no I/O; ``Server`` only moves frames. Every request
gets exactly one reply: a result, or an ``error`` message with a stable code. Bad input never stops the
server.
"""

from __future__ import annotations

import errno
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import zmq

from .builtin_generator import BUILTIN_NAME, builtin_generator
from .checkpoint import load_generator
from .passes import REFINE_FRAME, FramePasses, PassError
from .ports import BindError, check_bind_address
from .protocol import (
    DEFAULT_LIMITS,
    ERR_INTERNAL,
    ERR_UNKNOWN_TYPE,
    PROTOCOL_VERSION,
    Limits,
    Message,
    ProtocolError,
    decode,
    encode,
    error_message,
)
from .refine import RefineConfig, RefineError, Refiner, ShotState
from .stylegan2 import Generator

log = logging.getLogger("rigstyle.server")


class DeviceError(ValueError):
    """The requested torch device does not exist or cannot be used."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"  # Loopback only: the protocol has no authentication yet.
    port: int = 7557  # TCP port to bind.
    checkpoint: Path | None = None  # Generator checkpoint; None = the built-in untrained generator.
    resolution: int = 64  # Resolution of the built-in generator.
    refine: RefineConfig = field(default_factory=RefineConfig)  # Inversion settings.
    device: str = "auto"  # Torch device for the generator: 'auto' (CUDA when present), 'cpu', 'cuda:1', ...
    limits: Limits = DEFAULT_LIMITS  # Message size limits, checked before allocation.

    @property
    def address(self) -> str:
        return f"tcp://{self.host}:{self.port}"


class Backend:
    """Request handling without I/O: the generator, the refiner and per-shot temporal state."""

    def __init__(self, generator: Generator, generator_name: str, refine: RefineConfig, device: str = "cpu"):
        self.generator_name = generator_name
        self.untrained = generator_name == BUILTIN_NAME
        self.refiner = Refiner(generator, refine, device)
        self.resolution = int(generator.img_resolution)
        self.shots: dict[str, ShotState] = {}

    def handle(self, message: Message) -> Message:
        handler = {
            "health": self._health,
            REFINE_FRAME: self._refine_frame,
            "end_shot": self._end_shot,
        }.get(message.type)
        if handler is None:
            return error_message(message.id, ERR_UNKNOWN_TYPE, f"unknown message type {message.type!r}")
        try:
            return handler(message)
        except ProtocolError as exc:
            return error_message(message.id, exc.code, exc.message)
        except RefineError as exc:
            return error_message(message.id, "refine_failed", str(exc))
        except Exception as exc:  # the server keeps serving; the client learns what happened
            log.exception("request %s (%s) failed", message.id, message.type)
            return error_message(message.id, ERR_INTERNAL, f"{type(exc).__name__}: {exc}")

    def _health(self, message: Message) -> Message:
        fields = {
            "status": "ok",
            "protocol": PROTOCOL_VERSION,
            "generator": self.generator_name,
            "untrained": self.untrained,
            "resolution": self.resolution,
            "device": str(self.refiner.device),
            "shots": len(self.shots),
        }
        return Message("health", message.id, fields)

    def _refine_frame(self, message: Message) -> Message:
        passes = FramePasses.from_message(message)
        state = self.shots.setdefault(passes.shot, ShotState())
        return self.refiner.refine(passes, state).to_message(message.id)

    def _end_shot(self, message: Message) -> Message:
        shot = message.fields.get("shot")
        if not isinstance(shot, str):
            raise PassError("shot: expected a string id")
        self.shots.pop(shot, None)
        return Message("ok", message.id, {"shot": shot})


def load_backend(config: ServerConfig) -> Backend:
    """Load the generator named by ``config`` (or build the built-in one)."""
    if config.checkpoint is None:
        generator, name = builtin_generator(config.resolution), BUILTIN_NAME
    else:
        generator, name = load_generator(config.checkpoint), str(config.checkpoint)
    return Backend(generator, name, config.refine, resolve_device(config.device))


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a CUDA device is usable, else 'cpu'; anything else must be a valid device."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise DeviceError(f"device {device!r} is not usable here: {str(exc).splitlines()[0]}") from None
    return device


class Server:
    """Binds the socket at construction (so a busy port fails fast, before any model loads) and serves
    a :class:`Backend` until stopped (SIGTERM/SIGINT or :meth:`stop`)."""

    def __init__(self, config: ServerConfig):
        check_bind_address(config.host)
        self.config = config
        self._stop = False
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            self._socket.bind(config.address)
        except zmq.ZMQError as exc:
            self._socket.close()
            if exc.errno == errno.EADDRINUSE:
                raise BindError(
                    f"port {config.port} on {config.host} is busy; choose another --port"
                ) from None
            raise BindError(f"cannot bind {config.address}: {exc}") from None

    def stop(self, *_: object) -> None:
        self._stop = True

    def serve_forever(self, backend: Backend, install_signal_handlers: bool = True) -> None:
        if install_signal_handlers:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        try:
            while not self._stop:
                if self._socket.poll(200):
                    self._serve_one(backend, self._socket.recv_multipart(copy=True))
        finally:
            self._socket.close(linger=0)

    def _serve_one(self, backend: Backend, frames: list[bytes]) -> None:
        if len(frames) < 2:
            return  # a ROUTER always prepends the routing id; nothing to answer to
        routing, body = frames[0], frames[1:]
        started = time.perf_counter()
        try:
            request = decode(body, self.config.limits)
        except ProtocolError as exc:
            reply = error_message(exc.request_id, exc.code, exc.message)
        else:
            reply = backend.handle(request)
        self._socket.send_multipart([routing, *encode(reply)], copy=False)
        log.info("%s -> %s in %.2f s", reply.id, reply.type, time.perf_counter() - started)
