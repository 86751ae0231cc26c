"""Add-on preferences: the backend's address and token, the per-frame timeout, the command that starts a
local backend, and the backend's status with Check / Start / Stop buttons (here and in the render panel).

Health checks run on a worker thread (:class:`blender_addon.connection.HealthCheck`), so the UI never waits
on the socket. Their results are taken on the main thread: by the drawing of the status, and by a timer
that redraws it while a check runs (in the GUI); in background mode, where timers never fire, the Check
operator blocks for its result.
"""

from __future__ import annotations

from collections.abc import Callable

import bpy

from neural_backend.client.blocking import DEFAULT_ADDRESS

from .connection import (
    DEFAULT_COMMAND,
    HEALTH_TIMEOUT,
    START_SECONDS,
    STOP_SECONDS,
    BackendSettings,
    Health,
    HealthCheck,
    LocalBackend,
    addon_package,
    backend_settings,
    start_local_backend,
)

REDRAW_SECONDS = 0.25  # how often the GUI timer looks for a finished check
_status = {"health": "not checked"}  # the last health summary, shown in the preferences and the panel
_checks: list[HealthCheck] = []  # the health check in progress (at most one)
_last: list[Health] = []  # the last health taken (at most one)
_local: list[LocalBackend] = []  # backends this session started (the newest last)

iface_ = bpy.app.translations.pgettext_iface  # translated UI text with values filled in after


def refresh_health(
    settings: BackendSettings,
    status: str = "checking",
    until_healthy: float = 0.0,
    backend: LocalBackend | None = None,
    after: Callable[[], object] | None = None,
) -> HealthCheck:
    """Start a health check off the main thread and return it at once (a check in progress is dropped);
    the status says ``status`` until its result arrives. The rest: see :class:`HealthCheck`."""
    for check in _checks:
        check.stop()
    check = HealthCheck(settings, until_healthy=until_healthy, backend=backend, after=after)
    _checks[:] = [check]
    _status["health"] = status
    if not bpy.app.background and not bpy.app.timers.is_registered(_redraw_timer):
        bpy.app.timers.register(_redraw_timer, first_interval=REDRAW_SECONDS, persistent=True)
    return check


def take_health() -> Health | None:
    """Take a finished check's result into the status (main thread); the last health taken, if any."""
    if _checks and _checks[0].done:
        health = _checks.pop().result()
        assert health is not None
        _last[:] = [health]
        _status["health"] = health.summary
    return _last[0] if _last else None


def pending_check() -> HealthCheck | None:
    """The health check in progress whose result is not taken yet, if any."""
    return _checks[0] if _checks else None


def checking() -> bool:
    """Whether a health check is in progress."""
    return bool(_checks) and not _checks[0].done


def health_summary() -> str:
    take_health()
    return _status["health"]


def local_backend() -> LocalBackend | None:
    return _local[-1] if _local else None


def redraw_sidebars(preferences: bool = False) -> None:
    """Redraw the 3D views' sidebars, where the RigStyle panels are (not the views themselves), and the
    Preferences when ``preferences``."""
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES" and preferences:
                area.tag_redraw()
            elif area.type == "VIEW_3D":
                for region in area.regions:
                    if region.type == "UI":
                        region.tag_redraw()


def _redraw_timer() -> float | None:
    """GUI: redraw the status while a check runs, and once more when its result is taken."""
    take_health()
    redraw_sidebars(preferences=True)
    return REDRAW_SECONDS if _checks else None


def _connection_changed(prefs: bpy.types.AddonPreferences, context: bpy.types.Context) -> None:
    """The GUI's status follows a new address or token (scripts and background runs check themselves)."""
    if not bpy.app.background:
        refresh_health(backend_settings(context))


class RIGSTYLE_AP_preferences(bpy.types.AddonPreferences):
    """RigStyle backend connection settings"""

    bl_idname = addon_package()

    address: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Address",
        description="ZeroMQ address of the RigStyle backend, e.g. tcp://127.0.0.1:7557",
        default=DEFAULT_ADDRESS,
        update=_connection_changed,
    )
    token: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Token",
        description="The backend's token, when it was started with one",
        subtype="PASSWORD",
        update=_connection_changed,
    )
    frame_timeout: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Timeout per Frame",
        description="Seconds to wait for the backend per frame before giving up",
        default=120.0,
        min=1.0,
        soft_max=3600.0,
        subtype="TIME_ABSOLUTE",
        unit="TIME_ABSOLUTE",
    )
    backend_command: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Backend Command",
        description="Command that starts a local backend; {address} is replaced by the address",
        default=DEFAULT_COMMAND,
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "address")
        layout.prop(self, "token")
        layout.prop(self, "frame_timeout")
        layout.prop(self, "backend_command")
        draw_health(layout)


def draw_health(layout: bpy.types.UILayout) -> None:
    """The backend's status with Check, Start and Stop buttons, then its address, generator, device and
    queue (preferences and the RigStyle render panel)."""
    if not _last and not _checks and not bpy.app.background:  # first shown: ask once by itself
        refresh_health(backend_settings())
    health = take_health()
    column = layout.column(align=True)
    row = column.row(align=True)
    summary = health_summary()
    ok = health is not None and health.ok and not checking()
    icon = "SORTTIME" if checking() else "CHECKMARK" if ok else "ERROR"
    text = iface_("Backend: {status}").format(status=iface_("ok") if ok else summary)
    row.label(text=text, icon=icon, translate=False)
    row.operator(RIGSTYLE_OT_check_backend.bl_idname, text="", icon="FILE_REFRESH")
    row.operator(RIGSTYLE_OT_start_backend.bl_idname, text="", icon="PLAY")
    row.operator(RIGSTYLE_OT_stop_backend.bl_idname, text="", icon="SNAP_FACE")
    if ok:
        assert health is not None
        for line in health.details():
            column.label(text=line, translate=False)
    local = local_backend()
    if local is not None:
        state = iface_("running") if local.running() else iface_("stopped")
        text = iface_("Local backend: {state} (log: {log})").format(state=state, log=local.log)
        column.label(text=text, translate=False)


class RIGSTYLE_OT_check_backend(bpy.types.Operator):
    """Ask the backend for its health and show the answer"""

    bl_idname = "rigstyle.check_backend"
    bl_label = "Check RigStyle Backend"

    def execute(self, context: bpy.types.Context) -> set[str]:
        check = refresh_health(backend_settings(context))
        if not bpy.app.background:  # the status shows the answer when it arrives
            return {"FINISHED"}
        check.result(wait=HEALTH_TIMEOUT + 5.0)  # no timer takes it in background mode
        health = take_health()
        assert health is not None
        self.report({"INFO"} if health.ok else {"WARNING"}, f"RigStyle backend {health.summary}")
        return {"FINISHED"} if health.ok else {"CANCELLED"}


class RIGSTYLE_OT_start_backend(bpy.types.Operator):
    """Start a local RigStyle backend with the command in the preferences"""

    bl_idname = "rigstyle.start_backend"
    bl_label = "Start Local RigStyle Backend"

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = backend_settings(context)
        running = local_backend()
        if running is not None and running.running():
            self.report({"INFO"}, f"A local backend is already running (log: {running.log})")
            return {"CANCELLED"}
        try:
            backend = start_local_backend(settings)
        except (OSError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        _local.append(backend)
        waiting = f"starting, waiting for it at {settings.address}"
        refresh_health(settings, waiting, until_healthy=START_SECONDS, backend=backend)  # the status follows
        self.report({"INFO"}, f"Started `{' '.join(backend.command)}` (log: {backend.log})")
        return {"FINISHED"}


class RIGSTYLE_OT_stop_backend(bpy.types.Operator):
    """Stop the local RigStyle backend this Blender session started"""

    bl_idname = "rigstyle.stop_backend"
    bl_label = "Stop Local RigStyle Backend"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        local = local_backend()
        if local is None or not local.running():
            cls.poll_message_set("No local backend started from this Blender session is running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        local = local_backend()
        assert local is not None
        local.stop()
        refresh_health(backend_settings(context), "stopping", after=lambda: local.wait(STOP_SECONDS))
        self.report({"INFO"}, f"Stopping the local backend (log: {local.log})")
        return {"FINISHED"}


classes = (
    RIGSTYLE_AP_preferences,
    RIGSTYLE_OT_check_backend,
    RIGSTYLE_OT_start_backend,
    RIGSTYLE_OT_stop_backend,
)


def stop_local_backends() -> None:
    """Terminate the backends this session started (on unregister)."""
    for backend in _local:
        backend.stop()
    _local.clear()


def uninstall() -> None:
    for check in _checks:
        check.stop()
    _checks.clear()
    _last.clear()
    _status["health"] = "not checked"
    if bpy.app.timers.is_registered(_redraw_timer):
        bpy.app.timers.unregister(_redraw_timer)
    stop_local_backends()
