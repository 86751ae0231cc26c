"""Add-on preferences in real Blender: the settings reach the connection, the health check asks a real
backend, and Start Local Backend starts a real ``rigstyle serve`` that disabling the add-on stops."""

from __future__ import annotations

import addon_utils
import bpy
import pytest
from serving_helpers import BackendProcess

from blender_addon import preferences
from blender_addon.connection import BackendSettings, backend_settings
from neural_backend.client.blocking import wait_until_healthy
from neural_backend.serving.ports import free_port

pytestmark = [pytest.mark.blender, pytest.mark.slow]


def test_settings_come_from_the_preferences_and_default_without_the_addon(
    addon: bpy.types.AddonPreferences,
) -> None:
    # Start Local Backend serves the default generator (the shipped face prior): no --checkpoint pinned.
    assert addon.backend_command == "rigstyle serve --address {address}"
    addon.address, addon.token, addon.frame_timeout = " tcp://10.0.0.5:7600 ", "s3cret-token-123456", 30.0
    assert backend_settings() == BackendSettings("tcp://10.0.0.5:7600", "s3cret-token-123456", 30.0)
    addon_utils.disable("blender_addon", default_set=True)
    assert backend_settings() == BackendSettings()  # headless scripts without the add-on enabled


def test_health_check_reports_a_live_and_a_missing_backend(
    backend: BackendProcess, addon: bpy.types.AddonPreferences
) -> None:
    addon.address = backend.address
    assert bpy.ops.rigstyle.check_backend() == {"FINISHED"}
    assert preferences.health_summary().startswith("ok: builtin-untrained at 32 px")
    addon.address = f"tcp://127.0.0.1:{free_port()}"
    assert bpy.ops.rigstyle.check_backend() == {"CANCELLED"}
    assert preferences.health_summary().startswith("not reachable at tcp://127.0.0.1:")


def test_start_local_backend_runs_the_command_and_disabling_stops_it(
    addon: bpy.types.AddonPreferences,
) -> None:
    addon.address = f"tcp://127.0.0.1:{free_port()}"
    addon.backend_command = "rigstyle serve --address {address} --echo"
    assert bpy.ops.rigstyle.start_backend() == {"FINISHED"}
    local = preferences.local_backend()
    assert local is not None and local.command[-3:] == ["--address", addon.address, "--echo"]
    health = wait_until_healthy(addon.address, timeout=60, is_alive=local.running)
    assert health["status"] == "ok"
    assert bpy.ops.rigstyle.start_backend() == {"CANCELLED"}, "one local backend at a time"
    addon_utils.disable("blender_addon", default_set=True)
    assert local.process.wait(timeout=30) is not None and not local.running()


def test_a_backend_command_that_cannot_start_is_reported(addon: bpy.types.AddonPreferences) -> None:
    addon.backend_command = "/nonexistent/rigstyle-server --address {address}"
    with pytest.raises(RuntimeError, match="cannot start the backend command '/nonexistent/rigstyle-server'"):
        bpy.ops.rigstyle.start_backend()
    addon.backend_command = "rigstyle serve 'unclosed"
    with pytest.raises(RuntimeError, match="backend command .*No closing quotation"):
        bpy.ops.rigstyle.start_backend()
