"""``rigstyle serve``: the backend on a socket, with the local, Ray or echo engine."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .options import (
    UserError,
    alignment_option,
    checkpoint_option,
    gan_resolution_option,
    refine_config,
    steps_first_option,
    steps_warm_option,
)

if TYPE_CHECKING:
    from ..serving.engine import Engine  # commands import what they need: the CLI loads torch only then
    from ..serving.engines.local import ServerConfig
    from ..serving.engines.ray_engine import RayOptions


@click.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind (non-loopback needs --token)."
)
@click.option("--port", default=7557, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option(
    "--address", help="Full ZeroMQ endpoint instead of --host/--port, e.g. ipc:///tmp/rigstyle.sock."
)
@click.option(
    "--token",
    envvar="RIGSTYLE_TOKEN",
    help="Secret every request must carry (≥ 16 characters; required off loopback).",
)
@click.option(
    "--queue-size", default=4, show_default=True, type=click.IntRange(min=1), help="Requests that may wait."
)
@click.option(
    "--max-deadline",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Seconds a request may wait and run (clients may ask for less).",
)
@click.option(
    "--drain-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds accepted requests may still take after SIGTERM.",
)
@click.option("--no-shm", is_flag=True, help="Do not offer shared memory to clients on this host.")
@click.option("--echo", is_flag=True, help="Serve the transport-only echo handler (no generator; for tests).")
@click.option(
    "--echo-delay",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds of pretend work per frame in --echo mode.",
)
@checkpoint_option
@gan_resolution_option
@alignment_option
@steps_first_option
@steps_warm_option
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch (default: torch's).")
@click.option(
    "--device", default="auto", show_default=True, help="Torch device: auto (CUDA when present), cpu, cuda:N."
)
@click.option(
    "--rig",
    "rig_models",
    multiple=True,
    callback=lambda ctx, param, values: [_named_model(ctx, param, v) for v in values],
    metavar="NAME=MODEL",
    help="A rig that params-only requests (refine_params) may name; repeatable. 'demo' is built in.",
)
@click.option("--shot-steps", type=click.IntRange(min=1), help="Joint inversion steps per refine_shot.")
@click.option("--preview-steps", type=click.IntRange(min=0), help="Steps of a preview-mode frame.")
@click.option(
    "--pti/--no-pti", default=None, help="Pivotal tuning per shot after the inversion (default: off)."
)
@click.option("--pti-steps", type=click.IntRange(min=1), help="Pivotal-tuning steps per shot.")
@click.option(
    "--pti-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Save each shot's tuned generator here as SHOT.safetensors (default: dropped after the shot).",
)
@click.option(
    "--perceptual",
    type=click.Choice(["auto", "lpips", "vgg", "discriminator", "ms-ssim", "none"]),
    help="Perceptual loss on the skin. auto: LPIPS/VGG with weights given, else the checkpoint's "
    "discriminator, else MS-SSIM.",
)
@click.option(
    "--vgg-weights",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="torchvision VGG16 state dict (vgg16-*.pth) for the vgg/lpips perceptual loss.",
)
@click.option(
    "--lpips-weights",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="LPIPS linear-layer weights (lpips/weights/v0.1/vgg.pth); needs --vgg-weights.",
)
@click.option(
    "--history",
    type=click.FloatRange(0, 1),
    help="Temporal reprojection: share of the previous refined frame warped by the motion pass (0 = off).",
)
@click.option("--blend-width", type=click.FloatRange(min=0), help="Skin-mask feather width in pixels.")
@click.option("--gan-skin", type=click.FloatRange(0, 1), help="0 keeps the CGI skin, 1 uses the generator's.")
@click.option(
    "--surroundings",
    type=click.FloatRange(0, 1),
    help="How far past the rig's silhouette the generator paints, in crop sides (1 = the whole crop).",
)
@click.option(
    "--encoder",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Encoder from `rigstyle train-encoder` for preview mode's first frame.",
)
@click.option(
    "--max-shot-frames",
    default=2000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Frames held per shot.",
)
@click.option(
    "--max-held-gb",
    default=8.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="GiB of held frames.",
)
@click.option("--ray", "use_ray", is_flag=True, help="Refine on Ray Serve replicas (needs the 'ray' extra).")
@click.option(
    "--replicas", type=click.IntRange(min=1), help="--ray: replicas (default: one per GPU, 1 without CUDA)."
)
@click.option(
    "--gpus-per-replica",
    type=click.FloatRange(min=0),
    help="--ray: GPUs per replica, fractions share one (default: 1 with CUDA, else 0).",
)
@click.option(
    "--cpus-per-replica", default=1.0, show_default=True, type=click.FloatRange(min=0), help="--ray: CPUs."
)
@click.option(
    "--max-ongoing-requests",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="--ray: requests one replica takes at once (preview batches form from these).",
)
@click.option(
    "--max-queued-requests",
    default=-1,
    show_default=True,
    type=click.IntRange(min=-1),
    help="--ray: requests queued for busy replicas before clients get 'busy' (-1: no limit).",
)
@click.option(
    "--max-batch-size", default=4, show_default=True, type=click.IntRange(min=1), help="--ray: preview batch."
)
@click.option(
    "--ray-address", help="--ray: an existing cluster ('auto', 'ray://HOST:10001'); default: a local Ray."
)
def serve(
    host: str,
    port: int,
    address: str | None,
    token: str | None,
    queue_size: int,
    max_deadline: float,
    drain_timeout: float,
    no_shm: bool,
    echo: bool,
    echo_delay: float,
    checkpoint: str,
    gan_resolution: int,
    alignment: Any,
    steps_first: int | None,
    steps_warm: int | None,
    threads: int | None,
    device: str,
    rig_models: list[tuple[str, Path]],
    encoder: Path | None,
    max_shot_frames: int,
    max_held_gb: float,
    use_ray: bool,
    replicas: int | None,
    gpus_per_replica: float | None,
    cpus_per_replica: float,
    max_ongoing_requests: int,
    max_queued_requests: int,
    max_batch_size: int,
    ray_address: str | None,
    **tuning: Any,
) -> None:
    """Run the refinement backend on a local socket until SIGTERM or Ctrl-C (then drain and exit 0).

    \b
    Examples:
      rigstyle serve --port 7557 --checkpoint ffhq.safetensors
      rigstyle serve --checkpoint ffhq.pkl --pti --pti-dir tuned/ --encoder ffhq-encoder.safetensors
      rigstyle serve --address ipc:///tmp/rigstyle.sock
      RIGSTYLE_TOKEN=$(openssl rand -hex 16) rigstyle serve --host 0.0.0.0
      rigstyle serve --ray --replicas 4 --gpus-per-replica 0.5 --max-queued-requests 16
    """
    from ..serving.core import RequestCore
    from ..serving.engines.local import ServerConfig
    from ..serving.held_frames import ShotFrames
    from ..serving.ports import BindError
    from ..serving.shell import ServeOptions, Server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ray_options = (
        _ray_options(
            replicas, gpus_per_replica, cpus_per_replica, max_ongoing_requests, max_queued_requests,
            max_batch_size, ray_address, threads,
        )
        if use_ray and not echo
        else None
    )  # fmt: skip
    options = ServeOptions(
        address=address or f"tcp://{host}:{port}",
        token=token or None,
        queue_size=queue_size,
        max_deadline_s=max_deadline,
        drain_timeout_s=drain_timeout,
        shm=not no_shm,
        workers=ray_options.workers if ray_options is not None else 1,
    )
    try:
        server = Server(options)
    except BindError as exc:
        raise UserError(str(exc)) from None
    held = ShotFrames(max_shot_frames, int(max_held_gb * 2**30))
    engine: Engine
    if echo:
        from ..serving.engines.echo import EchoEngine

        engine = EchoEngine(echo_delay)
        click.echo("WARNING: --echo: serving the transport-only echo engine, nothing is refined.", err=True)
    else:
        try:
            refine = refine_config(steps_first=steps_first, steps_warm=steps_warm, **tuning)
            config = ServerConfig(
                checkpoint=checkpoint,
                resolution=gan_resolution,
                alignment=alignment,
                refine=refine,
                device=device,
                rigs=tuple(rig_models),
                encoder=encoder,
                max_shot_frames=max_shot_frames,
                max_held_bytes=int(max_held_gb * 2**30),
            )
            engine = _start_ray(config, ray_options) if ray_options else _load_engine(config, threads)
        except BaseException:
            server.close()  # open sockets would keep the process from exiting
            raise
    core = RequestCore(engine, held, ServerConfig.max_shots)
    description = core.describe()
    click.echo(
        f"rigstyle serve: listening on {server.address} "
        f"(generator: {description['generator']}, device: {description['device']})",
        err=True,
    )
    try:
        server.serve_forever(core)
    finally:
        if ray_options is not None:
            from ..serving.engines.ray_engine import stop

            stop(ray_options)


def _ray_options(
    replicas: int | None,
    gpus_per_replica: float | None,
    cpus_per_replica: float,
    max_ongoing_requests: int,
    max_queued_requests: int,
    max_batch_size: int,
    address: str | None,
    threads: int | None,
) -> RayOptions:
    try:
        from ..serving.engines.ray_engine import RayOptions
    except ImportError as exc:
        raise UserError(f"--ray needs Ray Serve: pip install 'rigstyle[ray]' ({exc})") from None
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus_per_replica is None:
        gpus_per_replica = 1.0 if gpus else 0.0
    if replicas is None:
        replicas = max(1, int(gpus / gpus_per_replica)) if gpus and gpus_per_replica else 1
    return RayOptions(
        replicas=replicas,
        gpus_per_replica=gpus_per_replica,
        cpus_per_replica=cpus_per_replica,
        max_ongoing_requests=max_ongoing_requests,
        max_queued_requests=max_queued_requests,
        max_batch_size=max_batch_size,
        address=address,
        threads=threads,
    )


def _start_ray(config: ServerConfig, options: RayOptions) -> Engine:
    from ..serving.engines.ray_engine import RayEngine, start, stop

    click.echo(f"rigstyle serve: starting {options.replicas} Ray Serve replica(s)...", err=True)
    try:
        engine = RayEngine(start(config, options), options)
    except BaseException:
        stop(options)
        raise
    if engine.info.get("untrained"):
        click.echo("WARNING: serving the built-in UNTRAINED generator: its images are not faces.", err=True)
    return engine


def _load_engine(config: ServerConfig, threads: int | None) -> Engine:
    from ..checkpoints.base import CheckpointError
    from ..refine.encoder import EncoderError
    from ..refine.losses import PerceptualError
    from ..serving.engines.local import DeviceError, RigLoadError, load_engine

    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        engine = load_engine(config)
    except (CheckpointError, DeviceError, RigLoadError, EncoderError, PerceptualError) as exc:
        raise UserError(str(exc)) from None
    if engine.untrained:
        click.echo("WARNING: serving the built-in UNTRAINED generator: its images are not faces.", err=True)
    return engine


def _named_model(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, Path]:
    """``NAME=MODEL`` -> (name, existing path)."""
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise click.BadParameter(f"{value!r} is not NAME=MODEL", ctx, param)
    if not Path(path).exists():
        raise click.BadParameter(f"{path} does not exist", ctx, param)
    return name, Path(path)
