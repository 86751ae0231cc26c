"""The local engine: the generator and refiner in this process (``rigstyle serve``'s default).

The request-handling core (``serving.core``) reads requests, keeps shots and builds replies; this engine
only refines. :func:`load_core` builds both from a :class:`ServerConfig`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rigs import Rig, RigError, demo_head
from rigs import load as load_rig

from ...checkpoints.io import read_checkpoint
from ...checkpoints.names import FACE_PRIOR_NAME, UNTRAINED_NAME
from ...farm.shot_folder import file_sha256
from ...protocol.messages import MODES, DirectionWeights, FrameWork, ShotRequest
from ...protocol.passes import FramePasses, ParamsRequest, PassError
from ...protocol.saved_state import SavedShotState
from ...protocol.wire import ERR_REFINE_FAILED, ProtocolError
from ...refine.directions import RigDirections, measure_directions
from ...refine.framing import FFHQ, Alignment
from ...refine.latent_edit import LatentEdit
from ...refine.refiner import Previous, RefineConfig, RefineError, Refiner, ShotState
from ...stylegan2 import Discriminator, Generator
from ..core import RequestCore
from ..engine import FrameOutcome, ShotOutcome, WorkEvents, check_face
from ..held_frames import DEFAULT_MAX_BYTES, DEFAULT_MAX_FRAMES, ShotFrames

if TYPE_CHECKING:
    from ...refine.encoder import Encoder

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


class LocalEngine:
    """The refiner in this process: the generator, the refiner and params-only rendering.

    Its shot state is the refiner's :class:`ShotState`. ``refine_*`` run on the server's worker thread,
    ``describe`` and ``check_frame`` on its socket thread.
    """

    def __init__(
        self,
        generator: Generator,
        generator_name: str,
        refine: RefineConfig,
        device: str = "cpu",
        rigs: Mapping[str, Rig] | None = None,
        threads: int | None = None,
        discriminator: Discriminator | None = None,
        encoder: Encoder | None = None,
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
        self.rigs = dict(rigs or {})  # name -> Rig for refine_params; 'demo' is added on first use
        self.directions: dict[tuple[str, str], RigDirections] = {}  # (rig, control) -> measured once
        # torch threads for the worker thread, set there on its first request (see load_engine)
        self._threads = threads
        self._worker_ident: int | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "generator": self.generator_name,
            "generator_id": self.generator_id,
            "untrained": self.untrained,
            "alignment": json.loads(self.alignment.to_json()),
            "checkpoint_path": self.checkpoint_path,
            "resolution": self.resolution,
            "device": str(self.refiner.device),
            "modes": list(MODES),
            "perceptual": self.refiner.perceptual_name,
            "encoder": self.refiner.encoder is not None,
        }

    def check_frame(self, passes: FramePasses) -> None:
        check_face(passes, self.alignment)

    def restore(self, saved: SavedShotState) -> ShotState:
        """A saved shot state as the refiner's; ``bad_field`` when it does not fit this generator (another
        generator id, W+ shape or resolution)."""
        generator = self.refiner.generator
        shape = (int(generator.num_ws), int(generator.w_dim))
        saved.check_fits(self.generator_id, self.generator_name, shape, self.resolution)
        return ShotState(Previous.from_saved(saved, self.refiner.device))

    def save(self, state: object, shot: str) -> SavedShotState | None:
        if not isinstance(state, ShotState) or state.previous is None:
            return None
        return state.previous.to_saved(shot, self.generator_id)

    def refine_frame(self, work: FrameWork, state: object | None, events: WorkEvents) -> FrameOutcome:
        self._use_threads()
        shot = state if isinstance(state, ShotState) else ShotState()
        with _refine_failures():
            passes = work.frame
            if isinstance(passes, ParamsRequest):
                passes = self.render_params(passes)
            refined = self.refiner.refine(passes, shot, work.mode, events.step)  # type: ignore[arg-type]
        return FrameOutcome(refined, shot)

    def refine_shot(
        self, request: ShotRequest, frames: list[FramePasses], state: object | None, events: WorkEvents
    ) -> ShotOutcome:
        self._use_threads()
        shot = state if isinstance(state, ShotState) else ShotState()
        with _refine_failures():
            edit, fields = self.shot_edit(request.directions, len(frames))
            result = self.refiner.refine_shot(
                frames, shot, pti=request.pti, on_step=events.step, on_frame=events.frame, edit=edit
            )
        return ShotOutcome(result.frames, result.metrics, result.frame_metrics, shot, fields)

    def shot_edit(
        self, directions: DirectionWeights | None, frames: int
    ) -> tuple[LatentEdit | None, dict[str, Any]]:
        """The latent edit a ``refine_shot`` asks for, its directions measured on first use (seconds, on
        this generator) and kept; and the reply's ``directions`` field: each control's consistency."""
        if directions is None:
            return None, {}
        weights = directions.matrix(frames)
        rig = self.rig(directions.rig)
        missing = [c for c in directions.controls if (directions.rig, c) not in self.directions]
        if missing:
            measured = measure_directions(self.refiner, rig, missing)
            for control in missing:
                self.directions[(directions.rig, control)] = measured
        found = [self.directions[(directions.rig, c)] for c in directions.controls]
        vectors = torch.stack([d.vector(c) for d, c in zip(found, directions.controls, strict=True)])
        report = {
            c: {"consistency": d.consistency[d.controls.index(c)]}
            for d, c in zip(found, directions.controls, strict=True)
        }
        return LatentEdit.smoothed(vectors, weights), {"directions": report}

    def rig(self, name: str) -> Rig:
        """A rig this backend knows by name (``demo`` is built on first use).

        Raises:
            PassError: an unknown name (``bad_field``).
        """
        if name == DEMO_RIG and DEMO_RIG not in self.rigs:
            self.rigs[DEMO_RIG] = demo_head()
        rig = self.rigs.get(name)
        if rig is None:
            raise PassError(f"rig: unknown rig {name!r}; this backend has {sorted({*self.rigs, DEMO_RIG})}")
        return rig

    def render_params(self, request: ParamsRequest) -> FramePasses:
        """The passes of a params-only request, rendered with pyrender from the named rig."""
        from ...refine.param_render import render_passes  # imports pyrender (EGL) only when first needed

        size = (request.height, request.width)
        rig = self.rig(request.rig)
        return render_passes(
            rig, request.params, request.intrinsics, request.extrinsics, size, request.shot, request.frame,
            world_from_rig=request.world_from_rig,
        )  # fmt: skip

    def _use_threads(self) -> None:
        if self._threads and self._worker_ident != threading.get_ident():
            torch.set_num_threads(self._threads)  # per calling thread: the worker gets the full pool
            self._worker_ident = threading.get_ident()


@contextlib.contextmanager
def _refine_failures() -> Iterator[None]:
    """The refiner's own error (no usable face or skin) as the protocol's ``refine_failed``."""
    try:
        yield
    except RefineError as exc:
        raise ProtocolError(ERR_REFINE_FAILED, str(exc)) from None


def load_engine(config: ServerConfig) -> LocalEngine:
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
    return LocalEngine(
        generator,
        name,
        config.refine,
        device,
        loaded,
        threads,
        discriminator,
        encoder,
        generator_id,
        config.alignment or checkpoint.alignment,
        None if checkpoint.untrained else str(checkpoint.path.resolve()),
    )


def load_core(config: ServerConfig) -> RequestCore:
    """The request-handling core around :func:`load_engine`'s engine, with the config's shot limits."""
    held = ShotFrames(config.max_shot_frames, config.max_held_bytes)
    return RequestCore(load_engine(config), held, config.max_shots)


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
