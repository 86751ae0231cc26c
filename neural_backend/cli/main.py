"""The ``rigstyle`` command line. User errors print one line and exit with code 2."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..checkpoints.names import BUILTIN_NAMES, FACE_PRIOR_NAME
from .farm import FARM_COMMANDS
from .train import train_command

if TYPE_CHECKING:
    from ..refine.refiner import RefineConfig
    from ..serving.engine import Engine  # commands import what they need: the CLI loads torch only then
    from ..serving.engines.local import ServerConfig
    from ..serving.engines.ray_engine import RayOptions

USER_ERROR_EXIT = 2


class UserError(click.ClickException):
    """A mistake the user can fix (bad option, missing file, busy port). Exit code 2."""

    exit_code = USER_ERROR_EXIT


def _power_of_two(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and (value < 4 or value & (value - 1)):
        raise click.BadParameter(f"{value} is not a power of two ≥ 4", ctx, param)
    return value


class CheckpointSpec(click.ParamType):
    """A checkpoint file that exists, or a built-in generator's name."""

    name = "FILE|NAME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if text in BUILTIN_NAMES:
            return text
        path = Path(text)
        if not path.exists():
            self.fail(f"{text}: no such file (or built-in name: {', '.join(BUILTIN_NAMES)})", param, ctx)
        if path.is_dir():
            self.fail(f"{text} is a folder, not a checkpoint file", param, ctx)
        return text


def _alignment(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    from ..refine.framing import Alignment, AlignmentError

    try:
        return Alignment.from_json(value)
    except AlignmentError as error:
        raise click.BadParameter(str(error), ctx, param) from None


checkpoint_option = click.option(
    "--checkpoint",
    type=CheckpointSpec(),
    default=FACE_PRIOR_NAME,
    show_default=True,
    help="StyleGAN2 checkpoint (.safetensors, NVlabs .pkl, rosinality .pt) or a built-in: builtin-face-prior "
    "(the shipped 64 px face prior) or builtin-untrained (nothing learned; for tests).",
)
gan_resolution_option = click.option(
    "--gan-resolution",
    default=64,
    show_default=True,
    callback=_power_of_two,
    help="Resolution of builtin-untrained (other generators have their own).",
)
alignment_option = click.option(
    "--alignment",
    callback=_alignment,
    help='Override the checkpoint\'s face framing: "ffhq" or JSON '
    '{"name": ..., "scale": ..., "offset": [x, y]}.',
)
steps_first_option = click.option(
    "--steps-first", type=click.IntRange(min=1), help="Inversion steps for a shot's first frame."
)
steps_warm_option = click.option(
    "--steps-warm", type=click.IntRange(min=1), help="Inversion steps for warm-started frames."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rigstyle")
def cli() -> None:
    """RigStyle: keyframed FLAME/SMPL-X rigs rendered in Blender and refined by StyleGAN2.

    \b
    Quick start:
      rigstyle demo --out demo_out        # the whole round trip on the demo head
      rigstyle serve --port 7557          # run the backend for Blender or other DCCs
    """


@cli.command()
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
            refine = _refine_config(steps_first=steps_first, steps_warm=steps_warm, **tuning)
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


def _refine_config(**given: Any) -> RefineConfig:
    """The default refinement settings with those given on the command line (None = default)."""
    from ..refine.refiner import RefineConfig

    given = {name: value for name, value in given.items() if value is not None}
    blend = {name: given.pop(key) for key, name in _BLEND_OPTIONS.items() if key in given}
    defaults = RefineConfig()
    return dataclasses.replace(defaults, blend=dataclasses.replace(defaults.blend, **blend), **given)


_BLEND_OPTIONS = {  # option -> BlendConfig field
    "history": "history",
    "blend_width": "width_px",
    "gan_skin": "gan_skin",
    "surroundings": "surroundings",
}


@cli.command()
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
    from .demo import DemoConfig, DemoError, DemoFailed, run_demo

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


@cli.command("train-encoder")
@checkpoint_option
@gan_resolution_option
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The encoder file to write (.safetensors).",
)
@click.option("--steps", default=2000, show_default=True, type=click.IntRange(min=1), help="Training steps.")
@click.option("--batch", default=8, show_default=True, type=click.IntRange(min=1), help="Samples per step.")
@click.option(
    "--lr",
    default=1e-3,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Adam learning rate.",
)
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Seed of the initialisation and samples."
)
@click.option(
    "--device", default="auto", show_default=True, help="Torch device: auto (CUDA when present), cpu, cuda:N."
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def train_encoder_command(
    checkpoint: str,
    gan_resolution: int,
    out: Path,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    device: str,
    force: bool,
) -> None:
    """Train a feed-forward W+ encoder (image -> latent in one pass) on the generator's own samples.

    Preview mode uses it instead of optimisation. No external data is used: the encoder learns to map the
    generator's images back to their (style-mixed) latents. Progress every 10% of the steps, then the
    held-out latent and image MSE before and after training.

    \b
    Examples:
      rigstyle train-encoder --checkpoint ffhq.safetensors --out ffhq-encoder.safetensors
      rigstyle train-encoder --gan-resolution 32 --steps 200 --out builtin-encoder.safetensors
    """
    if out.suffix.lower() != ".safetensors":
        raise UserError(f"{out}: the encoder is written as safetensors; use a .safetensors name")
    if out.exists() and not force:
        raise UserError(f"{out}: already exists (use --force to overwrite)")
    if not out.parent.is_dir():
        raise UserError(f"{out}: folder {out.parent} does not exist")
    from ..checkpoints.base import CheckpointError
    from ..checkpoints.io import read_checkpoint
    from ..refine.encoder import EncoderError, save_encoder, train_encoder
    from ..serving.engines.local import DeviceError, resolve_device

    try:
        device = resolve_device(device)
        loaded = read_checkpoint(checkpoint, untrained_resolution=gan_resolution)
        if loaded.untrained:
            click.echo("WARNING: training on the built-in UNTRAINED generator.", err=True)
        generator = loaded.generator.to(device).eval()
    except (CheckpointError, DeviceError) as exc:
        raise UserError(str(exc)) from None
    every = max(1, steps // 10)

    def progress(step: int, total: int, loss: float) -> None:
        if step % every == 0 or step == total:
            click.echo(f"step {step}/{total}  loss {loss:.5f}")

    try:
        encoder, metrics = train_encoder(generator, steps, batch, lr, seed, device=device, on_step=progress)
        save_encoder(encoder, out)
    except (EncoderError, OSError) as exc:
        raise UserError(str(exc)) from None
    click.echo(
        f"wrote {out}: held-out latent MSE {metrics['latent_mse_start']:.4f} -> "
        f"{metrics['latent_mse_end']:.4f}, image MSE {metrics['image_mse_start']:.4f} -> "
        f"{metrics['image_mse_end']:.4f}; trained in {metrics['seconds']:.1f} s on {device}"
    )


@cli.group()
def checkpoint() -> None:
    """Inspect and convert StyleGAN2 checkpoints (RigStyle .safetensors, NVlabs .pkl, rosinality .pt).

    Nothing in a checkpoint file is ever executed: pickles are read through an allow-list.
    """


CONVERT_TARGETS = {".safetensors": "rigstyle", ".pt": "rosinality", ".pth": "rosinality"}


@checkpoint.command("inspect")
@click.argument("file", type=CheckpointSpec())
def checkpoint_inspect(file: str) -> None:
    """Print what a checkpoint (or a built-in generator) holds.

    \b
    Examples:
      rigstyle checkpoint inspect stylegan2-ffhq-1024x1024.pkl
      rigstyle checkpoint inspect builtin-face-prior
    """
    from ..checkpoints.base import CheckpointError
    from ..checkpoints.io import read_checkpoint

    try:
        loaded = read_checkpoint(file)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    generator = loaded.generator
    config = generator.init_kwargs
    params = sum(p.numel() for p in generator.parameters())
    if loaded.discriminator is not None:
        d_params = sum(p.numel() for p in loaded.discriminator.parameters())
        discriminator = f"yes ({loaded.discriminator.init_kwargs['architecture']}, {d_params:,} parameters)"
    else:
        discriminator = f"no ({loaded.discriminator_problem})" if loaded.discriminator_problem else "no"
    lines = [
        f"file:           {loaded.path}" + (f" ({loaded.name})" if loaded.name != str(loaded.path) else ""),
        f"kind:           {loaded.kind}"
        + (" (UNTRAINED: its images are not faces)" if loaded.untrained else ""),
        f"alignment:      {loaded.alignment.describe()}",
        f"resolution:     {generator.img_resolution}",
        f"mapping depth:  {generator.mapping.num_layers}",
        f"num_ws:         {generator.num_ws}",
        f"z_dim / w_dim:  {generator.z_dim} / {generator.w_dim}"
        + (f", c_dim {generator.c_dim}" if generator.c_dim else ""),
        f"channels:       base {config['channel_base']}, max {config['channel_max']}",
        f"conv_clamp:     {config['conv_clamp']}, fp16 resolutions: {config['num_fp16_res']}",
        f"parameters:     {params:,}",
        f"discriminator:  {discriminator}",
    ]
    lines += [f"note:           {note}" for note in loaded.notes]
    lines += [f"{key[len('rigstyle_') :] + ':':<16}{value}" for key, value in loaded.metadata]
    click.echo("\n".join(lines))


@checkpoint.command("calibrate")
@click.argument("file", type=CheckpointSpec())
@click.option(
    "--frames", default=4, show_default=True, type=click.IntRange(1, 4), help="Demo-head frames to fit."
)
@click.option(
    "--steps",
    default=30,
    show_default=True,
    type=click.IntRange(min=1),
    help="Inversion steps per frame and candidate.",
)
@click.option("--name", default="calibrated", show_default=True, help="Name of the alignment written.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a RigStyle .safetensors copy with the alignment here (needed for .pkl/.pt and built-ins; "
    "default: update FILE's metadata in place).",
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option("--dry-run", is_flag=True, help="Only print what was found.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch (default: torch's).")
def checkpoint_calibrate(
    file: str,
    frames: int,
    steps: int,
    name: str,
    out: Path | None,
    force: bool,
    dry_run: bool,
    threads: int | None,
) -> None:
    """Estimate how FILE's generator frames faces and store it as the checkpoint's alignment.

    Renders the demo head (pyrender, no Blender) in a few expressions and head turns, and searches the
    crop (the FFHQ square, scaled and moved) in which the generator fits the rendered skin best. Takes a
    few minutes on a CPU for a 64 px generator.

    \b
    Examples:
      rigstyle checkpoint calibrate my-generator.safetensors
      rigstyle checkpoint calibrate ffhq.pkl --out ffhq-calibrated.safetensors
    """
    from ..checkpoints.base import KIND_RIGSTYLE, CheckpointError
    from ..checkpoints.io import read_checkpoint, save_checkpoint, write_alignment
    from ..protocol.passes import PassError
    from ..refine.calibrate import calibrate, demo_frames

    if out is not None and out.exists() and not force:
        raise UserError(f"{out}: already exists (use --force to overwrite)")
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        loaded = read_checkpoint(file)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    if out is None and not dry_run and (loaded.kind != KIND_RIGSTYLE or file in BUILTIN_NAMES):
        raise UserError(f"{file}: a {loaded.kind} file cannot hold metadata; give --out FILE.safetensors")
    click.echo(f"calibrating {loaded.name} ({loaded.generator.img_resolution} px) on {frames} demo frames...")
    try:
        found = calibrate(
            loaded.generator,
            demo_frames(frames),
            steps=steps,
            name=name,
            on_candidate=lambda c: click.echo(f"  {c.alignment.describe()}: skin loss {c.loss:.5f}"),
        )
    except (PassError, ValueError, RuntimeError) as exc:  # no offscreen GL, or frames it cannot fit
        raise UserError(f"calibration failed: {str(exc).strip().splitlines()[0]}") from None
    click.echo(
        f"best: {found.alignment.describe()}, skin loss {found.loss:.5f} (ffhq: {found.ffhq_loss:.5f}; "
        f"{len(found.candidates)} candidates)"
    )
    if dry_run:
        return
    try:
        if out is None:
            write_alignment(Path(file), found.alignment)
            click.echo(f"wrote the alignment into {file}")
        else:
            partial = out.with_name(f".{out.name}.partial")
            try:
                save_checkpoint(
                    loaded.generator,
                    partial,
                    loaded.discriminator,
                    dict(loaded.metadata),
                    alignment=found.alignment,
                )
                partial.replace(out)
            finally:
                partial.unlink(missing_ok=True)
            click.echo(f"wrote {out} with the alignment")
    except (CheckpointError, OSError) as exc:
        raise UserError(str(exc)) from None


@checkpoint.command("convert")
@click.argument("source", type=CheckpointSpec())
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--to",
    "target_format",
    type=click.Choice(["rigstyle", "rosinality"]),
    help="Output format. Default: from TARGET's suffix (.safetensors = rigstyle, .pt/.pth = rosinality).",
)
@click.option("--force", is_flag=True, help="Overwrite TARGET if it exists.")
@click.option(
    "--half", is_flag=True, help="rigstyle: store float16 tensors (half the size; loads as float32)."
)
@click.option("--no-discriminator", is_flag=True, help="Leave the discriminator out.")
@alignment_option
def checkpoint_convert(
    source: str,
    target: Path,
    target_format: str | None,
    force: bool,
    half: bool,
    no_discriminator: bool,
    alignment: Any,
) -> None:
    """Convert SOURCE (any supported format) to TARGET, generator and discriminator alike.

    The result draws bit-identical images for the same latents and noise (with --half: images within
    float16 rounding). A rigstyle TARGET keeps SOURCE's alignment and training metadata; --alignment sets
    another framing.

    \b
    Examples:
      rigstyle checkpoint convert stylegan2-ffhq-1024x1024.pkl ffhq.safetensors
      rigstyle checkpoint convert ffhq.safetensors ffhq-rosinality.pt
      rigstyle checkpoint convert runs/prior/network-020000.safetensors prior.safetensors --half \\
          --alignment '{"name": "face-prior", "scale": 0.75, "offset": [0, 0.017]}'
    """
    from ..checkpoints.base import CheckpointError
    from ..checkpoints.io import read_checkpoint, save_checkpoint
    from ..checkpoints.rosinality import discriminator_problems, save_rosinality

    target_format = target_format or CONVERT_TARGETS.get(target.suffix.lower())
    if target_format is None:
        raise UserError(
            f"{target}: cannot tell the output format from the suffix; use --to rigstyle|rosinality"
        )
    if target.exists() and not force:
        raise UserError(f"{target}: already exists (use --force to overwrite)")
    if target.resolve() == Path(source).resolve():
        raise UserError(f"{target}: is the source file; choose another output path")
    if target_format != "rigstyle" and (half or alignment is not None):
        raise UserError("--half and --alignment need a rigstyle (.safetensors) target")
    partial = target.with_name(f".{target.name}.partial")
    notes: list[str] = []
    try:
        loaded = read_checkpoint(source)
        notes += [*loaded.notes, *([loaded.discriminator_problem] if loaded.discriminator_problem else [])]
        discriminator = None if no_discriminator else loaded.discriminator
        if target_format == "rigstyle":
            save_checkpoint(
                loaded.generator,
                partial,
                discriminator,
                metadata=dict(loaded.metadata),
                alignment=alignment or loaded.alignment,
                half=half,
            )
        else:
            if discriminator is not None and discriminator_problems(discriminator.init_kwargs):
                reasons = "; ".join(discriminator_problems(discriminator.init_kwargs))
                notes.append(f"discriminator not written (rosinality cannot represent it: {reasons})")
                discriminator = None
            save_rosinality(loaded.generator, partial, discriminator)
        partial.replace(target)  # never leaves a half-written TARGET behind
    except (CheckpointError, ValueError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise UserError(str(exc).replace(str(partial), str(target))) from None
    networks = "generator + discriminator" if discriminator is not None else "generator only"
    click.echo(f"wrote {target} ({target_format}, {networks}) from {source} ({loaded.kind})")
    for note in notes:
        click.echo(f"note: {note}")


@cli.group()
def addon() -> None:
    """Package the Blender extension (add-on plus bundled wheels) for Blender 4.2+."""


@addon.command("build")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (created if its parent exists); the zip is OUT/rigstyle-<version>.zip.",
)
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    default=("linux-x64",),
    show_default=True,
    type=click.Choice(
        ["linux-x64", "linux-arm64", "windows-x64", "windows-arm64", "macos-arm64", "macos-x64"]
    ),
    help="Blender platform whose pyzmq/msgpack wheels to bundle; repeat for several. The zip installs only "
    "on the platforms it names.",
)
def addon_build(out: Path, platforms: tuple[str, ...]) -> None:
    """Build the installable extension zip with the wheels it needs (pyzmq, msgpack, RigStyle's own).

    Blender installs the bundled wheels itself, so the add-on never pip-installs at run time and never
    needs torch. Wheels are fetched with pip (pyzmq and msgpack at the versions installed here, CPython
    3.11 builds) and the project's own wheel is built from this source checkout.

    \b
    Examples:
      rigstyle addon build --out dist/
      rigstyle addon build --out dist/ --platform linux-x64 --platform windows-x64 --platform macos-arm64
    Install: Blender > Edit > Preferences > Get Extensions > Install from Disk, or
      blender --command extension install-file -r user_default -e dist/rigstyle-0.1.0.zip
    """
    from .addon import AddonBuildError, build_extension

    try:
        built = build_extension(out, platforms)
    except (AddonBuildError, OSError) as exc:
        raise UserError(str(exc)) from None
    size_mib = built.zip_path.stat().st_size / 2**20
    click.echo(f"wrote {built.zip_path} ({size_mib:.1f} MiB, platforms: {', '.join(built.platforms)})")
    for name in built.wheels:
        click.echo(f"  wheels/{name}")


@cli.group()
def rig() -> None:
    """Inspect rig model files (FLAME, SMPL-X, RigStyle .npz) and turn them into Blender scenes."""


@rig.command("info")
@click.argument("model", type=click.Path(exists=True, path_type=Path))
def rig_info(model: Path) -> None:
    """Print what a rig model file contains.

    \b
    Example:
      rigstyle rig info FLAME2020/generic_model.pkl
    """
    import numpy as np

    import rigs
    from rigs.regions import REGION_NAMES

    try:
        loaded = rigs.load(model)
    except rigs.RigError as exc:
        raise UserError(str(exc)) from None
    counts = np.bincount(loaded.face_regions, minlength=len(REGION_NAMES))
    regions = ", ".join(f"{REGION_NAMES[label]} {count}" for label, count in enumerate(counts) if count)
    lines = [
        f"file:        {model}",
        f"name:        {loaded.name}",
        f"kind:        {loaded.kind}" + (f" ({loaded.gender})" if loaded.gender else ""),
        f"vertices:    {loaded.num_vertices}",
        f"faces:       {len(loaded.faces)}",
        f"joints:      {loaded.num_joints} ({', '.join(loaded.joint_names[:8])}"
        f"{', ...' if loaded.num_joints > 8 else ''})",
        f"shape:       {loaded.num_betas} components",
        f"expression:  {loaded.num_expressions} components",
        f"landmarks:   {loaded.num_landmarks} static, {loaded.num_dynamic_landmarks} dynamic contour",
        f"hands:       {loaded.num_hand_components} PCA components" if loaded.num_hand_components else "",
        f"regions:     {regions} (faces)",
    ]
    click.echo("\n".join(line for line in lines if line))


@rig.command("to-blend")
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The .blend to write."
)
@click.option(
    "--sequence",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Motion to key: AMASS / SMPL-X .npz or FLAME tracker .npz, resampled to the scene's frame rate.",
)
@click.option("--gender", type=click.Choice(["neutral", "male", "female"]), help="Which model of a folder.")
@click.option(
    "--fps", type=click.FloatRange(min=1), help="Scene frame rate (default: the sequence's, else 30)."
)
def rig_to_blend(
    model: Path, out: Path, sequence: Path | None, gender: str | None, fps: float | None
) -> None:
    """Build a rig model in Blender (mesh, armature, shape keys, live correctives) and save it as a .blend.

    \b
    Example:
      rigstyle rig to-blend models/SMPLX_NEUTRAL.npz --sequence walk.npz --out walk.blend
    """
    import subprocess

    command = [sys.executable, "-m", "blender_addon.rig_job", "--model", str(model), "--out", str(out)]
    for flag, value in (("--sequence", sequence), ("--gender", gender), ("--fps", fps)):
        if value is not None:
            command += [flag, str(value)]
    result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    if result.returncode == USER_ERROR_EXIT and errors:
        raise UserError(errors[-1].removeprefix("error: "))
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise click.ClickException(f"Blender failed (exit code {result.returncode}): {last}")
    for line in result.stdout.splitlines():
        if line.startswith("[rigstyle] "):
            click.echo(line.removeprefix("[rigstyle] "))


for _command in (*FARM_COMMANDS, train_command):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every click or user error becomes one line on stderr and exit code 2."""
    try:
        # without standalone mode, click returns the code of a click.exceptions.Exit instead of raising it
        code = cli.main(args=argv, prog_name="rigstyle", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("rigstyle: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"rigstyle: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
