"""``rigstyle demo``: the whole round trip on the demo head, with the backend as a real subprocess.

Stages: start the backend → Blender job (build scene, render passes, refine over the socket, composite)
→ contact sheet and report. The Blender job runs in its own process (``blender_addon.demo_job``), exactly
as a farm worker or the Blender GUI would talk to the backend. This module imports no torch and no bpy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..checkpoints.names import BUILTIN_NAMES
from ..client.blocking import wait_until_healthy
from ..client.results import BackendError
from ..farm.contact_sheet import write_contact_sheet
from ..farm.shot_folder import file_sha256
from ..protocol.passes import RESULT_METRICS
from ..serving.ports import free_port, port_is_free
from .options import (
    USER_ERROR_EXIT,
    UserError,
    alignment_option,
    checkpoint_option,
    gan_resolution_option,
)

HOST = "127.0.0.1"
BACKEND_START_TIMEOUT = 180.0  # seconds: importing torch and building the generator on a busy machine


class DemoError(Exception):
    """A user-fixable problem (busy port, unusable checkpoint). One line."""


class DemoFailed(Exception):
    """A stage failed; the message names it and the log holding the details."""


@dataclass(frozen=True)
class DemoConfig:
    out: Path  # Output folder.
    frames: int = 16  # Number of frames (1..frames).
    resolution: int = 256  # Square frame size in pixels.
    samples: int = 16  # Cycles samples for the beauty pass.
    checkpoint: str = "builtin-face-prior"  # Checkpoint file or built-in name.
    gan_resolution: int = 64  # Resolution of builtin-untrained.
    alignment: str | None = None  # Alignment JSON overriding the checkpoint's own (None = its own).
    shot_steps: int | None = None  # Joint inversion steps for the shot (None = backend default).
    pti: bool = False  # Pivotal tuning for the shot.
    port: int | None = None  # Backend port; None = pick a free one.


def run_demo(config: DemoConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the demo and return the report (also written to ``out/report.json``).

    Raises:
        DemoError: busy port or unusable checkpoint.
        DemoFailed: the backend or the Blender job failed.
    """
    if config.frames < 1:
        raise DemoError(f"--frames must be at least 1, got {config.frames}")
    if str(config.checkpoint) not in BUILTIN_NAMES and not Path(config.checkpoint).is_file():
        raise DemoError(f"checkpoint {config.checkpoint} does not exist")
    if config.port is not None and not port_is_free(HOST, config.port):
        raise DemoError(f"port {config.port} on {HOST} is busy; choose another --port or leave it out")
    out = config.out.resolve()
    _clear_previous_outputs(out)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    port = config.port or free_port(HOST)
    address = f"tcp://{HOST}:{port}"
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    echo(f"[1/4] starting backend on {address}")
    backend = _start_backend(config, port, logs / "backend.log")
    try:
        health = _wait_for_backend(backend, address, logs / "backend.log")
        seconds["backend_start"] = time.perf_counter() - started
        if health.get("untrained"):
            echo(
                "      NOTE: the backend uses the built-in UNTRAINED generator: its output is not a face. "
                "Leave --checkpoint out (the face prior) or pass your own for real results."
            )
        echo(f"[2/4] Blender: building the demo shot, rendering {config.frames} frames, refining the shot")
        _run_blender_job(config, out, address, logs / "blender.log", echo, backend)
    finally:
        _stop(backend)
    job = json.loads((out / "blender_job.json").read_text())
    seconds.update(job["seconds"])

    echo("[3/4] writing the contact sheet")
    stage = time.perf_counter()
    frames = job["frames"]
    write_contact_sheet(out, frames, out / "contact_sheet.png")
    seconds["contact_sheet"] = time.perf_counter() - stage
    seconds["total"] = time.perf_counter() - started

    echo("[4/4] writing the report")
    report = _report(config, health, job, seconds)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    worst = max(f["skin_loss_final"] / f["skin_loss_init"] for f in report["frames"])
    shot = report["shot"]
    temporal = f", temporal error {shot['temporal_error']:.5f}" if "temporal_error" in shot else ""
    echo(
        f"done in {seconds['total']:.0f} s: {out} (skin PSNR {shot.get('skin_psnr', float('nan')):.1f} dB"
        f"{temporal}, {shot.get('seconds_per_frame', float('nan')):.2f} s/frame refining; worst skin loss "
        f"final/init = {worst:.3f})"
    )
    return report


# What a demo run writes; a rerun removes exactly these first, so no stale frame survives.
OUTPUT_FOLDERS = ("passes", "refined", "gan", "composite", "logs")
OUTPUT_FILES = ("report.json", "contact_sheet.png", "scene.blend", "scene.blend1", "blender_job.json")


def _clear_previous_outputs(out: Path) -> None:
    for name in OUTPUT_FOLDERS:
        shutil.rmtree(out / name, ignore_errors=True)
    for name in OUTPUT_FILES:
        (out / name).unlink(missing_ok=True)


def _start_backend(config: DemoConfig, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "neural_backend", "serve", "--host", HOST, "--port", str(port)]
    command += ["--checkpoint", str(config.checkpoint), "--gan-resolution", str(config.gan_resolution)]
    if config.alignment is not None:
        command += ["--alignment", config.alignment]
    if config.shot_steps:
        command += ["--shot-steps", str(config.shot_steps)]
    if config.pti:
        command += ["--pti"]
    log = log_path.open("wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _wait_for_backend(process: subprocess.Popen[bytes], address: str, log_path: Path) -> dict[str, Any]:
    try:
        return wait_until_healthy(address, BACKEND_START_TIMEOUT, is_alive=lambda: process.poll() is None)
    except BackendError:
        code = process.poll()
        last = _last_line(log_path)
        if code == USER_ERROR_EXIT:
            raise DemoError(last.removeprefix("rigstyle: error: ")) from None
        raise DemoFailed(f"backend did not start (exit code {code}): {last} — see {log_path}") from None


def _run_blender_job(
    config: DemoConfig,
    out: Path,
    address: str,
    log_path: Path,
    echo: Callable[[str], None],
    backend: subprocess.Popen[bytes],
) -> None:
    """Run the Blender side, relaying its progress lines; stop it at once if the backend dies."""
    command = [
        sys.executable, "-m", "blender_addon.demo_job",
        "--out", str(out),
        "--backend", address,
        "--frames", str(config.frames),
        "--resolution", str(config.resolution), str(config.resolution),
        "--samples", str(config.samples),
    ]  # fmt: skip
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
        )
        watcher = threading.Thread(target=_kill_when_exits, args=(backend, process), daemon=True)
        watcher.start()
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if line.startswith("[rigstyle]"):
                echo("      " + line.removeprefix("[rigstyle]").strip())
        code = process.wait()
    if backend.poll() is not None:
        raise DemoFailed(f"backend exited (code {backend.returncode}) during the shot — see logs/backend.log")
    if code != 0:
        raise DemoFailed(f"Blender job failed (exit code {code}): {_last_line(log_path)} — see {log_path}")


def _kill_when_exits(backend: subprocess.Popen[bytes], job: subprocess.Popen[str]) -> None:
    """Stop the Blender job as soon as the backend dies, instead of letting it wait for a timeout."""
    while job.poll() is None:
        if backend.poll() is not None:
            job.kill()
            return
        time.sleep(0.5)


def _stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _report(
    config: DemoConfig, health: dict[str, Any], job: dict[str, Any], seconds: dict[str, float]
) -> dict[str, Any]:
    frames = [
        {"frame": int(frame), **metrics} for frame, metrics in sorted(job["metrics"].items(), key=_frame_key)
    ]
    return {
        "frame_count": len(frames),
        "frames": frames,
        "resolution": job["resolution"],
        "samples": job["samples"],
        "gan_resolution": health["resolution"],
        "checkpoint": {
            "name": health["generator"],
            "path": health.get("checkpoint_path"),
            "sha256": file_sha256(Path(health["checkpoint_path"])) if health.get("checkpoint_path") else None,
            "untrained": bool(health["untrained"]),
            "alignment": health.get("alignment"),
        },
        "seconds": seconds,
        "shot": job.get("shot_metrics", {}),
        "metric_definitions": RESULT_METRICS,
        "outputs": {
            "passes": "passes/",
            "refined": "refined/frame_NNNN.png",
            "gan": "gan/frame_NNNN.png",
            "composite": "composite/frame_NNNN.png",
            "scene": "scene.blend",
            "contact_sheet": "contact_sheet.png",
        },
    }


def _frame_key(item: tuple[str, Any]) -> int:
    return int(item[0])


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--frames", default=16, show_default=True, type=click.IntRange(min=1), help="Frames to render.")
@click.option(
    "--resolution", default=256, show_default=True, type=click.IntRange(64, 4096), help="Frame size."
)
@click.option("--samples", default=16, show_default=True, type=click.IntRange(min=1), help="Cycles samples.")
@checkpoint_option
@gan_resolution_option
@alignment_option
@click.option("--shot-steps", type=click.IntRange(min=1), help="Joint inversion steps for the shot.")
@click.option("--pti", is_flag=True, help="Pivotal tuning of the generator for the shot after the inversion.")
@click.option("--port", type=click.IntRange(1, 65535), help="Backend port (default: a free one).")
def demo(
    out: Path,
    frames: int,
    resolution: int,
    samples: int,
    checkpoint: str,
    gan_resolution: int,
    alignment: Any,
    shot_steps: int | None,
    pti: bool,
    port: int | None,
) -> None:
    """Render the demo head's shot in headless Blender, refine it on a local backend, composite it.

    Writes DIR/passes/, DIR/refined/, DIR/composite/, DIR/scene.blend, DIR/contact_sheet.png and
    DIR/report.json. Starts and stops the backend process itself.

    \b
    Example:
      rigstyle demo --out demo_out --frames 8
    """

    config = DemoConfig(
        out=out,
        frames=frames,
        resolution=resolution,
        samples=samples,
        checkpoint=checkpoint,
        gan_resolution=gan_resolution,
        alignment=alignment.to_json() if alignment is not None else None,
        shot_steps=shot_steps,
        pti=pti,
        port=port,
    )
    try:
        run_demo(config, echo=click.echo)
    except DemoError as exc:
        raise UserError(str(exc)) from None
    except DemoFailed as exc:
        raise click.ClickException(str(exc)) from None
