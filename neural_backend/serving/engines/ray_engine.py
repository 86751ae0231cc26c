"""``rigstyle serve --ray``: the refiner as a Ray Serve deployment behind the unchanged socket protocol.

Two halves:

* :class:`RefinerReplica`, the deployment. Each replica is a Ray actor that loads the generator once
  (``engines.local.load_engine``) and keeps NO shot state: every call brings the frames and the shot's
  :class:`SavedShotState` and returns the refined frames with the shot's new state. Any replica can serve
  any shot, and a shot survives a replica that dies. Only numpy arrays and plain dataclasses cross Ray.
* :class:`RayEngine`, the engine behind the request-handling core in the ``rigstyle serve`` process. The
  socket shell (with several workers) and the core are the same as for the local engine; the core keeps
  each shot's state and held frames, the engine forwards work through a ``DeploymentHandle``.

Batching: ``preview`` frames go through ``@serve.batch``: concurrent preview requests that reach one
replica within ``batch_wait_timeout_s`` are taken together in one replica call. They are refined one after
another inside that call, NOT as one vectorised generator batch: ``Refiner.refine`` optimises one frame
of one shot at a time, with per-shot temporal terms. What batching saves is the per-request hand-over
(one thread hop and one lock for the batch); the GPU still runs one frame at a time.

Back-pressure: ``max_queued_requests`` bounds the requests the handle queues for busy replicas; beyond it
Ray raises ``BackPressureError``, which clients see as the ``busy`` error they already retry on.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from ray import serve

from ...protocol.messages import DirectionWeights, FrameWork, ShotRequest
from ...protocol.passes import FramePasses, ParamsRequest, RefinedFrame
from ...protocol.saved_state import SavedShotState
from ...protocol.wire import ERR_BUSY, ERR_INTERNAL, ERR_REFINE_FAILED, ProtocolError
from ...refine.framing import Alignment
from ...refine.refiner import RefineError, ShotState
from ..engine import Cancelled, FrameOutcome, ShotOutcome, WorkEvents, check_face
from ..held_frames import owned_copy

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator

    from .local import ServerConfig

log = logging.getLogger("rigstyle.ray")
APP_NAME = "rigstyle"
T = TypeVar("T")


@dataclass(frozen=True)
class RayOptions:
    """How the deployment runs (the refinement settings are ``server.ServerConfig``)."""

    replicas: int = 1  # replica actors; each loads the generator once
    gpus_per_replica: float = 0.0  # 0 = CPU replicas; fractions share a GPU
    cpus_per_replica: float = 1.0  # Ray CPU reservation; torch threads = max(1, int(this))
    max_ongoing_requests: int = 4  # requests one replica takes at once (a preview batch needs several)
    max_queued_requests: int = -1  # requests the handle queues for busy replicas; -1 = no limit
    max_batch_size: int = 4  # preview frames per replica call
    batch_wait_timeout_s: float = 0.01  # how long a replica waits to fill a preview batch
    address: str | None = None  # an existing cluster ('auto', 'ray://...'); None = start a local Ray
    num_cpus: int | None = None  # CPUs of a local Ray (None: Ray counts them)
    threads: int | None = None  # torch threads per replica (None: max(1, int(cpus_per_replica)))

    def __post_init__(self) -> None:
        if self.replicas < 1 or self.max_ongoing_requests < 1 or self.max_batch_size < 1:
            raise ValueError("replicas, max_ongoing_requests and max_batch_size must be at least 1")
        if self.gpus_per_replica < 0 or self.cpus_per_replica < 0:
            raise ValueError("gpus_per_replica and cpus_per_replica must be ≥ 0")
        if self.max_queued_requests < -1:
            raise ValueError(f"max_queued_requests: expected -1 or ≥ 0, got {self.max_queued_requests}")

    @property
    def workers(self) -> int:
        """Requests the socket front keeps in flight to Ray: what the replicas take at once plus Ray's
        queue. More wait in the front's own queue (``--queue-size``), so Ray's back-pressure shows only
        when others share the deployment's capacity (several fronts on one cluster)."""
        return self.replicas * self.max_ongoing_requests + max(self.max_queued_requests, 0)


# ---- what crosses Ray (picklable: numpy arrays and plain dataclasses) -----------------------------


@dataclass(frozen=True)
class Failure:
    """A request the replica refused or failed: the protocol error code and its text."""

    code: str
    text: str


@dataclass(frozen=True)
class FrameRequest:
    """One frame to refine: its passes (or the params the replica renders) and the shot's state."""

    passes: FramePasses | ParamsRequest
    state: SavedShotState | None
    mode: str


@dataclass(frozen=True)
class FrameReply:
    frame: RefinedFrame
    state: SavedShotState | None  # the shot's state after this frame
    replica: str
    batch: int  # preview requests refined in the same replica call (1 for final frames)


@dataclass(frozen=True)
class ShotReply:
    frames: list[RefinedFrame]
    metrics: dict[str, float]
    frame_metrics: dict[int, dict[str, float]]
    state: SavedShotState | None  # the shot's state after its last frame
    replica: str
    fields: dict[str, Any] = field(default_factory=dict)  # more reply fields (``directions``)


# ---- the deployment -------------------------------------------------------------------------------


@serve.deployment(name="RefinerReplica")
class RefinerReplica:
    """One replica: the generator and refiner of ``config``, no shot state (see the module docstring)."""

    def __init__(self, config: ServerConfig, threads: int, max_batch_size: int, batch_wait_timeout_s: float):
        import torch

        from .local import load_engine

        torch.set_num_threads(threads)
        self._threads = threads
        self._backend = load_engine(config)
        self._refiner = self._backend.refiner
        self._lock = threading.Lock()  # one refinement at a time; the others wait their turn
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.preview.set_max_batch_size(max_batch_size)  # type: ignore[attr-defined]
        self.preview.set_batch_wait_timeout_s(batch_wait_timeout_s)  # type: ignore[attr-defined]

    def info(self) -> dict[str, Any]:
        """What the front reports in ``health`` / ``hello`` and checks saved states against."""
        generator = self._refiner.generator
        return {
            **{k: v for k, v in self._backend.describe().items() if k not in ("shots", "held_frames")},
            "num_ws": int(generator.num_ws),
            "w_dim": int(generator.w_dim),
            "replica": self.name,
        }

    async def refine_shot(
        self,
        frames: list[FramePasses],
        state: SavedShotState | None,
        pti: bool | None,
        directions: DirectionWeights | None = None,
    ) -> ShotReply | Failure:
        return await asyncio.to_thread(self._guarded, self._shot, frames, state, pti, directions)

    async def refine_frame(self, request: FrameRequest) -> FrameReply | Failure:
        """A final-quality frame: not batched."""
        return await asyncio.to_thread(self._guarded, self._frame, request, 1)

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.01)  # replaced per deployment in __init__
    async def preview(self, requests: list[FrameRequest]) -> list[FrameReply | Failure]:
        """Preview frames that arrived together, refined one after another in one call (not vectorised)."""
        return await asyncio.to_thread(self._batch, requests)

    def _batch(self, requests: list[FrameRequest]) -> list[FrameReply | Failure]:
        return [self._guarded(self._frame, request, len(requests)) for request in requests]

    def _guarded(self, work: Callable[..., T], *args: Any) -> T | Failure:
        import torch

        with self._lock:
            torch.set_num_threads(self._threads)  # per calling thread (OpenMP)
            try:
                return work(*args)
            except ProtocolError as exc:
                return Failure(exc.code, exc.message)
            except RefineError as exc:
                return Failure(ERR_REFINE_FAILED, str(exc))
            except Exception as exc:  # the replica keeps serving; the client learns what happened
                log.exception("replica %s failed", self.name)
                return Failure(ERR_INTERNAL, f"{type(exc).__name__}: {exc}")

    def _restore(self, saved: SavedShotState | None) -> ShotState:
        return self._backend.restore(saved) if saved is not None else ShotState()

    def _saved(self, state: ShotState, shot: str) -> SavedShotState | None:
        if state.previous is None:
            return None
        return state.previous.to_saved(shot, self._backend.generator_id)

    def _shot(
        self,
        frames: list[FramePasses],
        saved: SavedShotState | None,
        pti: bool | None,
        directions: DirectionWeights | None,
    ) -> ShotReply:
        state = self._restore(saved)
        refined: list[RefinedFrame] = []
        edit, fields = self._backend.shot_edit(directions, len(frames))
        result = self._refiner.refine_shot(frames, state, pti=pti, on_frame=refined.append, edit=edit)
        new = self._saved(state, result.shot)
        return ShotReply(refined, result.metrics, result.frame_metrics, new, self.name, fields)

    def _frame(self, request: FrameRequest, batch: int) -> FrameReply:
        passes = request.passes
        if isinstance(passes, ParamsRequest):
            passes = self._backend.render_params(passes)
        state = self._restore(request.state)
        refined = self._refiner.refine(passes, state, request.mode)  # type: ignore[arg-type]
        return FrameReply(refined, self._saved(state, passes.shot), self.name, batch)


def start(config: ServerConfig, options: RayOptions) -> DeploymentHandle:
    """Start (or connect to) Ray, deploy the replicas and wait until they are up."""
    import ray

    if options.address is None:
        ray.init(num_cpus=options.num_cpus, include_dashboard=False, configure_logging=False)
    else:
        ray.init(address=options.address, configure_logging=False)
    serve.start(proxy_location="Disabled")  # no HTTP: the ZeroMQ socket is the front door
    app = RefinerReplica.options(  # type: ignore[attr-defined]
        num_replicas=options.replicas,
        ray_actor_options={"num_cpus": options.cpus_per_replica, "num_gpus": options.gpus_per_replica},
        max_ongoing_requests=options.max_ongoing_requests,
        max_queued_requests=options.max_queued_requests,
    )
    threads = options.threads or max(1, int(options.cpus_per_replica))
    app = app.bind(config, threads, options.max_batch_size, options.batch_wait_timeout_s)
    return serve.run(app, name=APP_NAME, route_prefix=None)


def stop(options: RayOptions) -> None:
    """Remove the deployment; a local Ray started by :func:`start` stops with it."""
    import ray

    try:
        if options.address is None:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)
    finally:
        ray.shutdown()


# ---- the engine in the socket front --------------------------------------------------------------


class RayEngine:
    """The engine that forwards work to the replicas (see the module docstring).

    Its shot state is the shot's :class:`SavedShotState`, sent with each call and returned by the replica;
    the core keeps it and never runs two requests of one shot at once. Frame results of a ``refine_shot``
    go out as events once the replica has returned the whole shot (not as each frame is composited).
    """

    def __init__(self, handle: DeploymentHandle, options: RayOptions, poll_s: float = 0.25):
        self._handle = handle
        self.options = options
        self.info: dict[str, Any] = handle.info.remote().result()
        self.alignment = Alignment.from_json(json.dumps(self.info["alignment"]))
        self._poll_s = poll_s  # how often a waiting request checks for cancel / deadline
        self._served: collections.Counter[str] = collections.Counter()  # requests per replica
        self._batches: collections.Counter[int] = collections.Counter()  # preview batch sizes seen
        self._rejected = 0  # Ray's back-pressure refusals
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        info = {k: v for k, v in self.info.items() if k not in ("replica", "num_ws", "w_dim")}
        with self._lock:
            ray_fields = {
                "replicas": self.options.replicas,
                "gpus_per_replica": self.options.gpus_per_replica,
                "cpus_per_replica": self.options.cpus_per_replica,
                "max_ongoing_requests": self.options.max_ongoing_requests,
                "max_queued_requests": self.options.max_queued_requests,
                "max_batch_size": self.options.max_batch_size,
                "address": self.options.address or "local",
                "served": dict(self._served),
                "preview_batches": {str(size): n for size, n in sorted(self._batches.items())},
                "rejected": self._rejected,
            }
        return {**info, "ray": ray_fields}

    def check_frame(self, passes: FramePasses) -> None:
        check_face(passes, self.alignment)

    def restore(self, saved: SavedShotState) -> SavedShotState:
        info = self.info
        shape = (info["num_ws"], info["w_dim"])
        saved.check_fits(info["generator_id"], info["generator"], shape, info["resolution"])
        return owned_state(saved)

    def save(self, state: object, shot: str) -> SavedShotState | None:
        return state if isinstance(state, SavedShotState) else None

    def refine_frame(self, work: FrameWork, state: object | None, events: WorkEvents) -> FrameOutcome:
        passes = work.frame
        if isinstance(passes, FramePasses):
            passes = owned_copy(passes)  # shared memory is reused after this
        saved = state if isinstance(state, SavedShotState) else None
        method = self._handle.preview if work.mode == "preview" else self._handle.refine_frame
        reply = self._wait(method.remote(FrameRequest(passes, saved, work.mode)), events)
        self._count(reply.replica, reply.batch if work.mode == "preview" else 0)
        return FrameOutcome(reply.frame, reply.state, {"replica": reply.replica, "batch": reply.batch})

    def refine_shot(
        self, request: ShotRequest, frames: list[FramePasses], state: object | None, events: WorkEvents
    ) -> ShotOutcome:
        saved = state if isinstance(state, SavedShotState) else None
        remote = self._handle.refine_shot.remote(frames, saved, request.pti, request.directions)
        reply = self._wait(remote, events)
        self._count(reply.replica)
        for refined in reply.frames:
            events.frame(refined)
        frames_done = [refined.frame for refined in reply.frames]
        fields = {"replica": reply.replica, **reply.fields}
        return ShotOutcome(frames_done, reply.metrics, reply.frame_metrics, reply.state, fields)

    def _wait(self, response: DeploymentResponse | DeploymentResponseGenerator, events: WorkEvents) -> Any:
        """The replica's answer; cancels it when the request is cancelled or passes its deadline."""
        from ray.serve.exceptions import BackPressureError
        from ray.serve.handle import DeploymentResponse

        assert isinstance(response, DeploymentResponse)  # no method here streams
        started = time.monotonic()
        try:
            while True:
                try:
                    reply = response.result(timeout_s=self._poll_s)
                    break
                except TimeoutError:
                    try:
                        events.waiting({"stage": "ray", "waited_s": round(time.monotonic() - started, 3)})
                    except Cancelled:
                        response.cancel()
                        raise
        except BackPressureError as exc:
            with self._lock:
                self._rejected += 1
            raise ProtocolError(
                ERR_BUSY, f"all replicas busy and Ray's queue full ({exc}); retry later"
            ) from None
        if isinstance(reply, Failure):
            raise ProtocolError(reply.code, reply.text)
        return reply

    def _count(self, replica: str, batch: int = 0) -> None:
        with self._lock:
            self._served[replica] += 1
            if batch:
                self._batches[batch] += 1


def owned_state(saved: SavedShotState) -> SavedShotState:
    """A copy whose arrays do not point into a message buffer (shared memory is reused)."""
    return SavedShotState(
        saved.shot, saved.frame, saved.generator, **{name: np.array(a) for name, a in saved.tensors.items()}
    )
