"""The refining backend: :class:`Backend` maps ``refine_frame`` messages to results, without I/O.

``serving.Server`` is the socket shell around it (queue, deadlines, cancel, drain, shared memory). Every
request gets exactly one reply: a result, or an ``error`` message with a stable code. Bad input never
stops the server.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rigs import Rig, RigError, demo_head
from rigs import load as load_rig

from ...checkpoints.io import read_checkpoint
from ...checkpoints.names import FACE_PRIOR_NAME, UNTRAINED_NAME
from ...farm.shot_folder import file_sha256
from ...protocol.passes import REFINE_PARAMS, FramePasses, ParamsRequest, PassError, RefinedFrame
from ...protocol.saved_state import SET_SHOT_STATE, SavedShotState
from ...protocol.wire import (
    ADD_FRAME,
    ERR_BAD_FIELD,
    ERR_CANCELLED,
    ERR_INTERNAL,
    ERR_REFINE_FAILED,
    ERR_UNKNOWN_TYPE,
    FRAME_RESULT,
    OK,
    PROGRESS,
    REFINE_FRAME,
    REFINE_SHOT,
    Message,
    ProtocolError,
    error_message,
)
from ...refine.framing import FFHQ, Alignment
from ...refine.refiner import MODES, Previous, RefineConfig, RefineError, Refiner, ShotState, check_face
from ...stylegan2 import Discriminator, Generator
from ..held_frames import DEFAULT_MAX_BYTES, DEFAULT_MAX_FRAMES, ShotFrames

if TYPE_CHECKING:
    from ...refine.encoder import Encoder
    from ...refine.inversion import StepCallback
    from ..shell import Emit

DEMO_RIG = "demo"  # the licence-free demo head, always available to refine_params

log = logging.getLogger("rigstyle.server")


class DeviceError(ValueError):
    """The requested torch device does not exist or cannot be used."""


@dataclass(frozen=True)
class ServerConfig:
    """What the backend refines with (the transport is ``serving.ServeOptions``)."""

    checkpoint: str | Path = FACE_PRIOR_NAME  # Checkpoint file, or builtin-face-prior / builtin-untrained.
    resolution: int = 64  # Resolution of builtin-untrained (other generators have their own).
    alignment: Alignment | None = None  # Overrides the checkpoint's own alignment (None = the checkpoint's).
    refine: RefineConfig = field(default_factory=RefineConfig)  # Inversion settings.
    device: str = "auto"  # Torch device for the generator: 'auto' (CUDA when present), 'cpu', 'cuda:1', ...
    max_shots: int = 256  # shots whose temporal state is kept; the least recently used is dropped
    rigs: tuple[tuple[str, Path], ...] = ()  # (name, model file) rigs that refine_params requests may name
    encoder: Path | None = None  # `rigstyle train-encoder` output for preview mode; None = warm start only
    max_shot_frames: int = DEFAULT_MAX_FRAMES  # frames add_frame may hold per shot
    max_held_bytes: int = DEFAULT_MAX_BYTES  # bytes add_frame may hold over all shots


class Cancelled(Exception):
    """The request was cancelled or passed its deadline while it ran."""


class Backend:
    """Request handling without I/O: the generator, the refiner and per-shot temporal state.

    ``handle`` runs on the server's worker thread; ``describe`` and ``end_shot`` on its socket thread.
    """

    work_types = frozenset({REFINE_FRAME, REFINE_PARAMS, REFINE_SHOT})
    control_types = frozenset({ADD_FRAME, SET_SHOT_STATE})

    def __init__(
        self,
        generator: Generator,
        generator_name: str,
        refine: RefineConfig,
        device: str = "cpu",
        max_shots: int = 256,
        rigs: Mapping[str, Rig] | None = None,
        threads: int | None = None,
        discriminator: Discriminator | None = None,
        encoder: Encoder | None = None,
        held: ShotFrames | None = None,
        generator_id: str | None = None,
        alignment: Alignment = FFHQ,
        checkpoint_path: str | None = None,
    ):
        self.generator_name = generator_name
        # what saved shot states must match: the same weights, wherever the file lies
        self.generator_id = generator_id or f"{generator_name}-{int(generator.img_resolution)}"
        self.untrained = generator_name == UNTRAINED_NAME
        self.alignment = alignment
        self.checkpoint_path = checkpoint_path  # the file the generator came from (None: built in memory)
        self.refiner = Refiner(generator, refine, device, discriminator, encoder, alignment)
        self.resolution = int(generator.img_resolution)
        self.max_shots = max_shots
        self.shots: OrderedDict[str, ShotState] = OrderedDict()
        self.held = held if held is not None else ShotFrames()
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
            "generator_id": self.generator_id,
            "untrained": self.untrained,
            "alignment": json.loads(self.alignment.to_json()),
            "checkpoint_path": self.checkpoint_path,
            "resolution": self.resolution,
            "device": str(self.refiner.device),
            "shots": shots,
            "held_frames": self.held.count(),
            "modes": list(MODES),
            "perceptual": self.refiner.perceptual_name,
            "encoder": self.refiner.encoder is not None,
        }

    def end_shot(self, shot: str) -> None:
        with self._lock:
            self.shots.pop(shot, None)
        self.held.drop(shot)

    def control(self, message: Message) -> Message:
        """``add_frame``: validate the frame (passes and a usable face) and hold it for ``refine_shot``;
        ``set_shot_state``: continue a shot from a state another backend (or an earlier run) saved."""
        if message.type == SET_SHOT_STATE:
            return self._set_state(SavedShotState.from_message(message), message.id)
        return hold_frame(self.held, message)

    def handle(self, message: Message, emit: Emit | None = None) -> Message:
        if self._threads and self._worker_ident != threading.get_ident():
            torch.set_num_threads(self._threads)  # per calling thread: the worker gets the full pool
            self._worker_ident = threading.get_ident()
        if message.type not in self.work_types:
            return error_message(message.id, ERR_UNKNOWN_TYPE, f"unknown message type {message.type!r}")
        send = emit if emit is not None else (lambda event: True)
        try:
            if message.type == REFINE_SHOT:
                return self._refine_shot(message, send)
            mode = message.fields.get("mode", "final")
            if mode not in MODES:
                raise ProtocolError(ERR_BAD_FIELD, f"mode: expected one of {list(MODES)}, got {mode!r}")
            if message.type == REFINE_PARAMS:
                passes = self.render_params(ParamsRequest.from_message(message))
            else:
                passes = FramePasses.from_message(message)
            return self._refine(passes, mode, _step_events(send)).to_message(message.id)
        except ProtocolError as exc:
            return error_message(message.id, exc.code, exc.message)
        except RefineError as exc:
            return error_message(message.id, ERR_REFINE_FAILED, str(exc))
        except Cancelled as exc:
            return error_message(message.id, ERR_CANCELLED, str(exc))
        except Exception as exc:  # the server keeps serving; the client learns what happened
            log.exception("request %s (%s) failed", message.id, message.type)
            return error_message(message.id, ERR_INTERNAL, f"{type(exc).__name__}: {exc}")

    def _refine_shot(self, message: Message, emit: Emit) -> Message:
        """All held frames of the shot, jointly; one ``frame_result`` event per frame, then ``ok``."""
        shot = message.fields.get("shot")
        if not isinstance(shot, str) or not shot:
            raise PassError("shot: expected a non-empty string id")
        pti = message.fields.get("pti")
        if pti is not None and not isinstance(pti, bool):
            raise PassError(f"pti: expected true or false, got {pti!r}")
        return_state = message.fields.get("return_state", False)
        if not isinstance(return_state, bool):
            raise PassError(f"return_state: expected true or false, got {return_state!r}")
        frames = self.held.take(shot)

        def send_frame(refined: RefinedFrame) -> None:
            if not emit(refined.to_message(message.id).replace(type=FRAME_RESULT)):
                raise Cancelled(f"shot {shot!r} was cancelled or passed its deadline")

        state = self._state(shot)
        try:
            result = self.refiner.refine_shot(
                frames, state, pti=pti, on_step=_step_events(emit), on_frame=send_frame
            )
        except BaseException:
            self.held.restore(shot, frames)  # nothing is lost: fix a frame (add_frame again) and retry
            raise
        self.held.done(shot)
        fields: dict[str, Any] = {
            "shot": shot,
            "frames": result.frames,
            "metrics": result.metrics,
            "frame_metrics": [{"frame": frame, **m} for frame, m in result.frame_metrics.items()],
        }
        tensors: dict[str, Any] = {}
        if return_state and state.previous is not None:
            saved = state.previous.to_saved(shot, self.generator_id)
            fields.update(state_frame=saved.frame, generator=saved.generator)
            tensors = saved.tensors
        return Message(OK, message.id, fields, tensors)

    def restore(self, saved: SavedShotState) -> Previous:
        """A saved shot state as the refiner's ``Previous``; :class:`PassError` when it does not fit this
        generator (another generator id, W+ shape or resolution)."""
        generator = self.refiner.generator
        shape = (int(generator.num_ws), int(generator.w_dim))
        saved.check_fits(self.generator_id, self.generator_name, shape, self.resolution)
        return Previous.from_saved(saved, self.refiner.device)

    def _set_state(self, saved: SavedShotState, request_id: int) -> Message:
        self._state(saved.shot).previous = self.restore(saved)
        return Message(OK, request_id, {"shot": saved.shot, "frame": saved.frame})

    def render_params(self, request: ParamsRequest) -> FramePasses:
        """The passes of a params-only request, rendered with pyrender from the named rig."""
        from ...refine.param_render import render_passes  # imports pyrender (EGL) only when first needed

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

    def _refine(self, passes: FramePasses, mode: str, on_step: StepCallback) -> RefinedFrame:
        return self.refiner.refine(passes, self._state(passes.shot), mode, on_step)  # type: ignore[arg-type]

    def _state(self, shot: str) -> ShotState:
        with self._lock:
            state = self.shots.setdefault(shot, ShotState())
            self.shots.move_to_end(shot)
            while len(self.shots) > self.max_shots:
                self.shots.popitem(last=False)
        return state


def hold_frame(held: ShotFrames, message: Message) -> Message:
    """``add_frame``: check the frame (passes and a face the alignment can use), hold it, answer ``ok``."""
    passes = FramePasses.from_message(message)
    try:
        check_face(passes)
    except RefineError as exc:
        raise ProtocolError(ERR_REFINE_FAILED, str(exc)) from None
    count = held.add(passes)
    return Message(OK, message.id, {"shot": passes.shot, "frame": passes.frame, "frames": count})


def _step_events(emit: Emit) -> StepCallback:
    """An optimisation-step callback that sends ``progress`` events and stops a cancelled request."""

    def on_step(phase: str, step: int, steps: int, loss: float) -> None:
        fields = {"stage": "step", "phase": phase, "step": step, "steps": steps, "loss": loss}
        if not emit(Message(PROGRESS, 0, fields)):
            raise Cancelled(f"cancelled or past its deadline at {phase} step {step} of {steps}")

    return on_step


def load_backend(config: ServerConfig) -> Backend:
    """Load the generator named by ``config`` (or build the built-in one).

    Loading runs on the calling (main) thread with one torch thread; the refinements run on the server's
    worker thread with the full pool. Two threads that both use multi-threaded torch on a small machine
    run the worker at half speed (measured: 2.9 s vs 1.2 s per warm 64 px frame on 2 cores).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    checkpoint = read_checkpoint(config.checkpoint, untrained_resolution=config.resolution)
    generator, discriminator, name = checkpoint.generator, checkpoint.discriminator, checkpoint.name
    generator_id = None if checkpoint.untrained else f"sha256:{file_sha256(checkpoint.path)[:16]}"
    if config.alignment is not None and config.alignment != checkpoint.alignment:
        # another framing makes other latents: a saved shot state must not cross it
        base = generator_id or f"{checkpoint.name}-{checkpoint.generator.img_resolution}"
        generator_id = f"{base}@{config.alignment.name}"
    encoder = None
    if config.encoder is not None:
        from ...refine.encoder import load_encoder

        encoder = load_encoder(config.encoder)
    loaded = {}
    for rig_name, path in config.rigs:
        try:
            loaded[rig_name] = load_rig(path)
        except RigError as exc:
            raise RigLoadError(f"--rig {rig_name}: {exc}") from None
    device = resolve_device(config.device)
    held = ShotFrames(config.max_shot_frames, config.max_held_bytes)
    return Backend(
        generator,
        name,
        config.refine,
        device,
        config.max_shots,
        loaded,
        threads,
        discriminator,
        encoder,
        held,
        generator_id,
        config.alignment or checkpoint.alignment,
        None if checkpoint.untrained else str(checkpoint.path.resolve()),
    )


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
