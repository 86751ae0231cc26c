"""The refining backend: :class:`Backend` maps ``refine_frame`` messages to results, without I/O.

``serving.Server`` is the socket shell around it (queue, deadlines, cancel, drain, shared memory). Every
request gets exactly one reply: a result, or an ``error`` message with a stable code. Bad input never
stops the server.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rigs import Rig, RigError, demo_head
from rigs import load as load_rig

from .builtin_generator import BUILTIN_NAME, builtin_generator
from .checkpoint import load_generator
from .passes import REFINE_PARAMS, FramePasses, ParamsRequest, PassError, RefinedFrame
from .protocol import (
    ERR_INTERNAL,
    ERR_REFINE_FAILED,
    ERR_UNKNOWN_TYPE,
    REFINE_FRAME,
    Message,
    ProtocolError,
    error_message,
)
from .refine import RefineConfig, RefineError, Refiner, ShotState
from .stylegan2 import Generator

DEMO_RIG = "demo"  # the licence-free demo head, always available to refine_params

log = logging.getLogger("rigstyle.server")


class DeviceError(ValueError):
    """The requested torch device does not exist or cannot be used."""


@dataclass(frozen=True)
class ServerConfig:
    """What the backend refines with (the transport is ``serving.ServeOptions``)."""

    checkpoint: Path | None = None  # Generator checkpoint; None = the built-in untrained generator.
    resolution: int = 64  # Resolution of the built-in generator.
    refine: RefineConfig = field(default_factory=RefineConfig)  # Inversion settings.
    device: str = "auto"  # Torch device for the generator: 'auto' (CUDA when present), 'cpu', 'cuda:1', ...
    max_shots: int = 256  # shots whose temporal state is kept; the least recently used is dropped
    rigs: tuple[tuple[str, Path], ...] = ()  # (name, model file) rigs that refine_params requests may name


class Backend:
    """Request handling without I/O: the generator, the refiner and per-shot temporal state.

    ``handle`` runs on the server's worker thread; ``describe`` and ``end_shot`` on its socket thread.
    """

    work_types = frozenset({REFINE_FRAME, REFINE_PARAMS})

    def __init__(
        self,
        generator: Generator,
        generator_name: str,
        refine: RefineConfig,
        device: str = "cpu",
        max_shots: int = 256,
        rigs: Mapping[str, Rig] | None = None,
        threads: int | None = None,
    ):
        self.generator_name = generator_name
        self.untrained = generator_name == BUILTIN_NAME
        self.refiner = Refiner(generator, refine, device)
        self.resolution = int(generator.img_resolution)
        self.max_shots = max_shots
        self.shots: OrderedDict[str, ShotState] = OrderedDict()
        self._lock = threading.Lock()
        self.rigs = dict(rigs or {})  # name -> Rig for refine_params; 'demo' is added on first use
        # torch threads for the worker thread, set there on its first request (see load_backend)
        self._threads = threads
        self._worker_ident: int | None = None

    def describe(self) -> dict[str, Any]:
        with self._lock:
            shots = len(self.shots)
        return {
            "generator": self.generator_name,
            "untrained": self.untrained,
            "resolution": self.resolution,
            "device": str(self.refiner.device),
            "shots": shots,
        }

    def end_shot(self, shot: str) -> None:
        with self._lock:
            self.shots.pop(shot, None)

    def handle(self, message: Message) -> Message:
        if self._threads and self._worker_ident != threading.get_ident():
            torch.set_num_threads(self._threads)  # per calling thread: the worker gets the full pool
            self._worker_ident = threading.get_ident()
        if message.type not in self.work_types:
            return error_message(message.id, ERR_UNKNOWN_TYPE, f"unknown message type {message.type!r}")
        try:
            if message.type == REFINE_PARAMS:
                passes = self._render(ParamsRequest.from_message(message))
            else:
                passes = FramePasses.from_message(message)
            return self._refine(passes).to_message(message.id)
        except ProtocolError as exc:
            return error_message(message.id, exc.code, exc.message)
        except RefineError as exc:
            return error_message(message.id, ERR_REFINE_FAILED, str(exc))
        except Exception as exc:  # the server keeps serving; the client learns what happened
            log.exception("request %s (%s) failed", message.id, message.type)
            return error_message(message.id, ERR_INTERNAL, f"{type(exc).__name__}: {exc}")

    def _render(self, request: ParamsRequest) -> FramePasses:
        """The passes of a params-only request, rendered with pyrender from the named rig."""
        from .param_render import render_passes  # imports pyrender (EGL) only when first needed

        if request.rig == DEMO_RIG and DEMO_RIG not in self.rigs:
            self.rigs[DEMO_RIG] = demo_head()
        rig = self.rigs.get(request.rig)
        if rig is None:
            raise PassError(
                f"rig: unknown rig {request.rig!r}; this backend has {sorted({*self.rigs, DEMO_RIG})}"
            )
        size = (request.height, request.width)
        return render_passes(
            rig, request.params, request.intrinsics, request.extrinsics, size, request.shot, request.frame,
            world_from_rig=request.world_from_rig,
        )  # fmt: skip

    def _refine(self, passes: FramePasses) -> RefinedFrame:
        with self._lock:
            state = self.shots.setdefault(passes.shot, ShotState())
            self.shots.move_to_end(passes.shot)
            while len(self.shots) > self.max_shots:
                self.shots.popitem(last=False)
        return self.refiner.refine(passes, state)


def load_backend(config: ServerConfig) -> Backend:
    """Load the generator named by ``config`` (or build the built-in one).

    Loading runs on the calling (main) thread with one torch thread; the refinements run on the server's
    worker thread with the full pool. Two threads that both use multi-threaded torch on a small machine
    run the worker at half speed (measured: 2.9 s vs 1.2 s per warm 64 px frame on 2 cores).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    if config.checkpoint is None:
        generator, name = builtin_generator(config.resolution), BUILTIN_NAME
    else:
        generator, name = load_generator(config.checkpoint), str(config.checkpoint)
    loaded = {}
    for rig_name, path in config.rigs:
        try:
            loaded[rig_name] = load_rig(path)
        except RigError as exc:
            raise RigLoadError(f"--rig {rig_name}: {exc}") from None
    device = resolve_device(config.device)
    return Backend(generator, name, config.refine, device, config.max_shots, loaded, threads)


class RigLoadError(ValueError):
    """A --rig model file cannot be loaded."""


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a CUDA device is usable, else 'cpu'; anything else must be a valid device."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise DeviceError(f"device {device!r} is not usable here: {str(exc).splitlines()[0]}") from None
    return device
