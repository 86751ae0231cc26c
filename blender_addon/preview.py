"""Live preview: refine the current frame in the backend's fast preview mode and show it in an Image Editor.

The passes render on the main thread (Blender's renderer lives there); the backend round trip runs on the
worker thread of a :class:`neural_backend.client.preview.PreviewClient`, where the newest request wins (an
older unsent one is dropped, an older one in flight is cancelled). Results are taken on the main thread:

- in the GUI, by :func:`tick`, which a ``bpy.app.timers`` timer runs while a preview is pending or auto
  mode is on; in auto mode it also requests a new preview whenever the frame or a rig parameter changed;
- in background mode, where timers never fire, by :meth:`PreviewSession.wait`, which blocks.

Each request also starts a quick health check (on its own thread): when no backend answers, the request
ends with a ``not_running`` error within seconds instead of waiting out the per-frame timeout. The preview
image is packed, so it is saved with the .blend; Image Editors pinned to another image are left alone.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from neural_backend.client.preview import PreviewClient, PreviewResult
from neural_backend.client.results import BackendError, BackendTimeout
from neural_backend.protocol.passes import RefinedFrame

from .connection import QUICK_CHECK_TIMEOUT, BackendSettings, HealthCheck
from .images import show_rgb
from .names import PREVIEW_IMAGE, RENDER_SETTINGS_PROP
from .render_passes import render_frame_passes
from .rig_builder import RigObjects
from .rig_params import read_params
from .shot import running_job
from .ui import context_rig

TICK_SECONDS = 0.2  # how often the GUI timer looks for results and changes


@dataclass(frozen=True)
class PreviewRequest:
    """A submitted preview: its number (newest wins) and the frame it shows."""

    number: int
    frame: int


class PreviewSession:
    """Preview requests of one Blender session to one backend."""

    def __init__(self, settings: BackendSettings, scale: float = 1.0):
        self.settings = settings
        self.scale = scale  # share of the scene's render size the preview renders at
        self.client = PreviewClient(settings.address, settings.token, settings.frame_timeout)
        self._base = 0  # request numbers of earlier connections (see _reconnect)
        self.requests: list[PreviewRequest] = []
        self.shown: PreviewResult | None = None  # the newest result taken
        self.signature: bytes | None = None  # frame and rig parameters of the newest request
        self.check: HealthCheck | None = None  # the newest request's health check
        self.passes_dir = Path(tempfile.mkdtemp(prefix="rigstyle-preview-"))

    @property
    def pending(self) -> bool:
        """Whether a submitted request has no result taken yet."""
        newest = self.requests[-1].number if self.requests else 0
        return newest > (self.shown.number if self.shown is not None else 0)

    def request(self, scene: bpy.types.Scene, objects: RigObjects) -> PreviewRequest:
        """Render the current frame's passes (at ``scale``) and submit them; returns at once."""
        self.check = HealthCheck(self.settings, timeout=QUICK_CHECK_TIMEOUT)  # runs while the passes render
        frame = scene.frame_current
        saved = scene.render.resolution_percentage
        scene.render.resolution_percentage = max(1, round(saved * self.scale))
        try:
            passes = render_frame_passes(scene, objects, frame, "preview", self.passes_dir, passes=())
        finally:
            scene.render.resolution_percentage = saved
        self.signature = signature(scene, objects)
        request = PreviewRequest(self._base + self.client.submit(passes), frame)
        self.requests.append(request)
        return request

    def take(self) -> PreviewResult | None:
        """The newest result not taken yet, shown in the preview image; None when nothing new arrived.

        When the health check found no backend, the newest request ends with that error at once.
        """
        result = self.client.poll()
        if result is not None:
            result = dataclasses.replace(result, number=result.number + self._base)
        if result is None:
            result = self._unreachable()
            if result is not None:
                self._reconnect()  # the request in flight waits on nobody: drop it with its connection
        if result is None:
            return None
        self.shown = result
        if result.frame is not None:
            show(result.frame)
        return result

    def _reconnect(self) -> None:
        self.client.close(timeout=0.1)  # its worker ends by itself once its request gives up
        self._base = self.requests[-1].number if self.requests else 0
        self.client = PreviewClient(self.settings.address, self.settings.token, self.settings.frame_timeout)

    def _unreachable(self) -> PreviewResult | None:
        """An error result for the newest request when its health check found no backend, else None."""
        health = self.check.result() if self.check is not None else None
        if not self.pending or health is None or health.ok:
            return None
        code = "unavailable" if health.fields else "not_running"  # draining, or nothing answers
        return PreviewResult(self.requests[-1].number, error=BackendError(code, health.summary))

    def wait(self, timeout: float | None = None) -> PreviewResult:
        """Block until the newest request's result arrives (background mode) and show it.

        Raises:
            BackendTimeout: nothing arrived within ``timeout`` (default: the per-frame timeout).
        """
        timeout = self.settings.frame_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while self.pending:
            self.take()
            if not self.pending:
                break
            if time.monotonic() > deadline:
                raise BackendTimeout(self.settings.address, timeout, "the preview")
            time.sleep(0.02)
        assert self.shown is not None
        return self.shown

    def close(self) -> None:
        self.client.close()


def signature(scene: bpy.types.Scene, objects: RigObjects) -> bytes:
    """What a preview depends on that animators change: the frame and the rig's parameters."""
    params = read_params(objects)
    values = [np.asarray([scene.frame_current], np.float32)] + [params[k].ravel() for k in sorted(params)]
    return np.concatenate(values).astype(np.float32).tobytes()


def show(refined: RefinedFrame) -> bpy.types.Image:
    """The refined frame (linear RGB) in the preview image, saved with the .blend and shown in every Image
    Editor not pinned to another image."""
    return show_rgb(PREVIEW_IMAGE, refined.image)


# ---- the session of this Blender instance and the GUI timer --------------------------------------------

_current: list[PreviewSession] = []  # this Blender session's preview session, once made


def current_session() -> PreviewSession | None:
    return _current[0] if _current else None


def session(settings: BackendSettings, scale: float = 1.0) -> PreviewSession:
    """This Blender session's preview session for ``settings`` (a new one when the settings changed)."""
    current = current_session()
    if current is not None and current.settings == settings:
        current.scale = scale
        return current
    close_session()
    _current.append(PreviewSession(settings, scale))
    return _current[0]


def close_session() -> None:
    """Close the preview session (its worker and connection) and stop the GUI timer."""
    for current in _current:
        current.close()
    _current.clear()
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)


def tick(scene: bpy.types.Scene, objects: RigObjects | None, auto: bool) -> PreviewResult | None:
    """One look: take a finished result; in ``auto`` mode, request a preview if the frame or a rig
    parameter changed since the last request. Returns the result taken, if any."""
    current = current_session()
    if current is None:
        return None
    result = current.take()
    if auto and objects is not None and signature(scene, objects) != current.signature:
        current.request(scene, objects)
    return result


def ensure_timer() -> None:
    """Start the GUI timer (it stops itself when nothing is pending and auto mode is off)."""
    if not bpy.app.background and not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=TICK_SECONDS, persistent=True)


def auto_preview(context: bpy.types.Context) -> bool:
    """Whether auto preview follows changes now: on for the scene, and no refined shot rendering (whose
    frames change as it renders them)."""
    return _auto_on(context) and running_job() is None


def _auto_on(context: bpy.types.Context) -> bool:
    settings = getattr(context.scene, RENDER_SETTINGS_PROP, None)
    return bool(settings is not None and settings.preview_auto)


def _timer() -> float | None:
    context = bpy.context
    try:
        result = tick(context.scene, context_rig(context), auto_preview(context))
    except Exception as exc:  # a render that failed must not kill the timer: say so, keep previewing
        context.window_manager.rigstyle_preview_status = f"preview failed: {exc}"
        result = None
    current = current_session()
    if result is not None and result.error is not None and result.error.code == "not_running":
        address = current.settings.address if current is not None else "?"
        context.window_manager.rigstyle_preview_status = f"preview failed: no backend answers at {address}"
    elif result is not None and result.error is not None:
        context.window_manager.rigstyle_preview_status = f"preview failed: {result.error.message}"
    elif result is not None and result.frame is not None:
        context.window_manager.rigstyle_preview_status = f"frame {result.frame.frame} previewed"
    return TICK_SECONDS if _auto_on(context) or (current is not None and current.pending) else None
