"""Add-on preferences: the backend's address and token, the per-frame timeout, the command that starts a
local backend, and a health indicator with Check / Start buttons."""

from __future__ import annotations

import bpy

from neural_backend.client.blocking import DEFAULT_ADDRESS

from .connection import (
    DEFAULT_COMMAND,
    LocalBackend,
    addon_package,
    backend_settings,
    check_health,
    start_local_backend,
)

_status = {"health": "not checked"}  # the last health summary, shown in the preferences and the panel
_local: list[LocalBackend] = []  # backends this session started (the newest last)


def health_summary() -> str:
    return _status["health"]


def local_backend() -> LocalBackend | None:
    return _local[-1] if _local else None


class RIGSTYLE_AP_preferences(bpy.types.AddonPreferences):
    """RigStyle backend connection settings"""

    bl_idname = addon_package()

    address: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Address",
        description="ZeroMQ address of the RigStyle backend, e.g. tcp://127.0.0.1:7557",
        default=DEFAULT_ADDRESS,
    )
    token: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Token", description="The backend's token, when it was started with one", subtype="PASSWORD"
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
    """The health line with Check and Start buttons (preferences and the RigStyle panel)."""
    row = layout.row(align=True)
    ok = health_summary().startswith("ok")
    row.label(text=f"Backend: {health_summary()}", icon="CHECKMARK" if ok else "ERROR")
    row.operator(RIGSTYLE_OT_check_backend.bl_idname, text="", icon="FILE_REFRESH")
    row.operator(RIGSTYLE_OT_start_backend.bl_idname, text="", icon="PLAY")


class RIGSTYLE_OT_check_backend(bpy.types.Operator):
    """Ask the backend for its health and show the answer"""

    bl_idname = "rigstyle.check_backend"
    bl_label = "Check RigStyle Backend"

    def execute(self, context: bpy.types.Context) -> set[str]:
        health = check_health(backend_settings(context))
        _status["health"] = health.summary
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
        _status["health"] = "starting"
        self.report({"INFO"}, f"Started `{' '.join(backend.command)}` (log: {backend.log}); check its health")
        return {"FINISHED"}


classes = (RIGSTYLE_AP_preferences, RIGSTYLE_OT_check_backend, RIGSTYLE_OT_start_backend)


def stop_local_backends() -> None:
    """Terminate the backends this session started (on unregister)."""
    for backend in _local:
        if backend.running():
            backend.process.terminate()
    _local.clear()


def uninstall() -> None:
    stop_local_backends()
