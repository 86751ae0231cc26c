"""``rigstyle train``: train a StyleGAN2 from a teacher generator or fine-tune one on a folder of faces."""

from __future__ import annotations

import math
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click

from ..farm.progress import FORMATS, Progress, _clock_text
from ..train.config import TEACHER_KINDS
from .options import UserError

# Architecture of a fresh generator (per source); `--init` takes the checkpoint's own instead.
DEFAULT_ARCHITECTURE = {"w_dim": 256, "mapping_layers": 4, "channel_base": 4096, "channel_max": 128}
# Loss and schedule defaults per source: paired distillation for a teacher, adversarial with
# DiffAugment for a (small) folder of aligned faces.
SOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "teacher": {
        "l1": 1.0,
        "pyramid": 1.0,
        "hints": 1.0,
        "adv": 0.0,
        "augment": (),
        "noise_mode": "const",
        "ema_kimg": 5.0,
        "mapping_lr_boost": 100.0,
    },
    "folder": {
        "l1": 0.0,
        "pyramid": 0.0,
        "adv": 1.0,
        "augment": ("color", "translation", "cutout"),
        "noise_mode": "random",
        "ema_kimg": 2.0,
        "hints": 0.0,
        "mapping_lr_boost": 1.0,
    },
}


class TrainProgress(Progress):
    """Progress lines for training steps: ``log`` (losses, s/step, ETA) and ``snapshot`` events."""

    def __init__(self, format: str, total: int):
        super().__init__(format)  # type: ignore[arg-type]  # checked by the click.Choice
        self.stage = "train"
        self.total = total

    def report(self, event: str, fields: dict[str, Any]) -> None:
        step = int(fields.get("step", 0))
        if event == "log":
            per_step = float(fields["sec_per_step"])
            eta = per_step * max(0, self.total - step)
            terms = "  ".join(
                f"{k} {v:.4f}"
                for k, v in fields.items()
                if isinstance(v, float) and k not in ("kimg", "sec_per_step", "seconds")
            )
            text = f"step {step}/{self.total}  {terms}  {per_step:.2f} s/step  ETA {_clock_text(eta)}"
            self._emit({"event": "step", "total": self.total, **fields, "eta_s": round(eta, 1)}, text)
        elif event == "snapshot":
            psnr = f", held-out PSNR {fields['held_out_psnr']:.2f} dB" if "held_out_psnr" in fields else ""
            self._emit(
                {"event": "snapshot", **fields}, f"snapshot {fields['snapshot']} ({fields['samples']}){psnr}"
            )
        elif event == "stopped":
            self._emit(
                {"event": "stopped", **fields}, f"stopped at step {step}; --resume continues from here"
            )


def _csv_policies(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    from ..train.augment import POLICIES

    if value is None:
        return None
    policies = tuple(p.strip() for p in value.split(",") if p.strip() and p.strip() != "none")
    unknown = sorted(set(policies) - set(POLICIES))
    if unknown:
        raise click.BadParameter(f"unknown {unknown}; choose from {', '.join(POLICIES)} or none", ctx, param)
    return policies


@click.command("train")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder (snapshots, samples, metrics).",
)
@click.option(
    "--teacher", type=click.Path(path_type=Path), help="Teacher generator: weights file or its wheel (.whl)."
)
@click.option(
    "--teacher-kind",
    default="dcgan",
    show_default=True,
    type=click.Choice(TEACHER_KINDS),
    help="Architecture of --teacher.",
)
@click.option(
    "--data", type=click.Path(path_type=Path), help="Folder of aligned, square face images of one size."
)
@click.option("--init", type=click.Path(path_type=Path), help="Checkpoint to start from (fine-tuning).")
@click.option(
    "--resume",
    type=click.Path(path_type=Path),
    help="Run folder or snapshot file to continue exactly (with --teacher/--data: the same data, moved).",
)
@click.option(
    "--resolution", type=int, help="Image resolution (default: the teacher's, the images' or --init's)."
)
@click.option(
    "--steps", type=click.IntRange(min=1), help="Total steps of the run (on --resume: extend to this)."
)
@click.option("--batch", default=16, show_default=True, type=click.IntRange(min=1), help="Images per step.")
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Seeds initialisation and every random draw."
)
@click.option(
    "--lr",
    default=0.002,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Adam learning rate (G and D).",
)
@click.option(
    "--beta1", default=0.0, show_default=True, type=click.FloatRange(0, 1, max_open=True), help="Adam beta1."
)
@click.option(
    "--mapping-lr-boost",
    type=click.FloatRange(min=0, min_open=True),
    help="Learning-rate factor of the mapping (its layers run at 0.01x; teacher default 100, folder 1).",
)
@click.option("--l1", type=click.FloatRange(min=0), help="Paired L1 weight (teacher; default 1).")
@click.option(
    "--pyramid", type=click.FloatRange(min=0), help="Paired L1 on pooled images (teacher; default 1)."
)
@click.option(
    "--hints", type=click.FloatRange(min=0), help="Teacher-feature hint weight (teacher; default 1)."
)
@click.option(
    "--adv",
    type=click.FloatRange(min=0),
    help="GAN loss weight; 0 = no discriminator (teacher default 0, folder 1).",
)
@click.option("--r1-gamma", default=0.1, show_default=True, type=click.FloatRange(min=0), help="R1 weight.")
@click.option(
    "--augment",
    callback=_csv_policies,
    help="DiffAugment policies before D: color,translation,cutout or none (folder default: all).",
)
@click.option(
    "--w-dim",
    type=click.IntRange(min=1),
    help=f"W dimensionality of a fresh G ({DEFAULT_ARCHITECTURE['w_dim']}).",
)
@click.option(
    "--mapping-layers",
    type=click.IntRange(min=1),
    help=f"Mapping layers of a fresh G ({DEFAULT_ARCHITECTURE['mapping_layers']}).",
)
@click.option(
    "--channel-base",
    type=click.IntRange(min=1),
    help=f"Channel base of a fresh G and D ({DEFAULT_ARCHITECTURE['channel_base']}).",
)
@click.option(
    "--channel-max",
    type=click.IntRange(min=1),
    help=f"Channel max of a fresh G and D ({DEFAULT_ARCHITECTURE['channel_max']}).",
)
@click.option(
    "--snapshot-every",
    default=500,
    show_default=True,
    type=click.IntRange(min=1),
    help="Steps between snapshots.",
)
@click.option(
    "--log-every",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="Steps between progress lines.",
)
@click.option(
    "--keep", default=3, show_default=True, type=click.IntRange(min=1), help="Training snapshots kept."
)
@click.option(
    "--progress",
    "progress_format",
    default="text",
    show_default=True,
    type=click.Choice(FORMATS),
    help="Progress lines for people or JSON lines for tools.",
)
@click.option(
    "--device", default="auto", show_default=True, help="Torch device: auto (CUDA when present), cpu, cuda:N."
)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch (default: torch's).")
@click.pass_context
def train_command(ctx: click.Context, **options: Any) -> None:
    """Train a StyleGAN2 (NVlabs state names) and write snapshots you can resume and checkpoints you can use.

    Sources: --teacher distils a generator (the paired z -> image of the teacher: L1 + pooled L1 + feature
    hints, optionally a GAN term with --adv); --data trains on a folder of aligned faces with the
    non-saturating GAN loss, lazy R1 and DiffAugment. --init starts G from a checkpoint (fine-tuning an
    FFHQ generator on an actor's frames, or a second, adversarial phase of a distillation).

    Every --snapshot-every steps the run folder gets snapshot-NNNNNN.safetensors (networks, optimiser and
    RNG state; --resume continues exactly), network-NNNNNN.safetensors (G_ema, usable as --checkpoint
    anywhere), samples-NNNNNN.png and a line in metrics.jsonl. Ctrl-C or SIGTERM writes a snapshot of the
    current step before stopping.

    \b
    Examples:
      pip download --no-deps gan-face-generate==1.1.1 -d wheels
      rigstyle train --teacher wheels/gan_face_generate-1.1.1-py3-none-any.whl --out runs/prior --steps 20000
      rigstyle train --resume runs/prior --steps 40000
      rigstyle train --data actor_faces/ --init ffhq.pkl --out runs/actor --steps 2000
    """
    import torch

    from ..checkpoints.base import CheckpointError
    from ..serving.engines.local import DeviceError, resolve_device
    from ..train.data import DataError, TeacherData
    from ..train.loop import Trainer
    from ..train.snapshot import SnapshotError, latest_snapshot, list_snapshots, read_snapshot
    from ..train.teacher import TeacherError

    if options["threads"]:
        torch.set_num_threads(options["threads"])
    try:
        device = resolve_device(options["device"])
        if options["resume"] is not None:
            _refuse_settings_on_resume(ctx)
            snapshot = read_snapshot(latest_snapshot(options["resume"]))
            config = _resumed_config(snapshot.config_json, snapshot.step, options)
            out_dir = snapshot.path.parent
            data = _data(config, device)
            if isinstance(data, TeacherData) and data.z_dim != config.generator.get("z_dim"):
                raise UserError(
                    f"{config.teacher}: its z has {data.z_dim} values, the run's generator takes "
                    f"{config.generator.get('z_dim')}; resume with the run's own teacher"
                )
            trainer = Trainer(config, data, out_dir, device, load_init=False)
            trainer.load_state(snapshot)
        else:
            out_dir = options["out"]
            if out_dir is None:
                raise UserError("--out is required (or --resume to continue a run)")
            if list_snapshots(out_dir):
                raise UserError(
                    f"{out_dir}: already holds a training run; use --resume {out_dir} to continue it"
                )
            config = _new_config(options)
            trainer = Trainer(config, _data(config, device), out_dir, device)
            out_dir.mkdir(parents=True, exist_ok=True)
    except (TeacherError, DataError, SnapshotError, CheckpointError, DeviceError) as error:
        raise UserError(str(error)) from None
    except OSError as error:
        raise UserError(f"{error.filename or ''}: {error.strerror or error}") from None

    progress = TrainProgress(options["progress_format"], config.steps)
    progress.note(
        f"{f'resuming at step {trainer.step}' if trainer.step else 'starting'}: {trainer.data.describe()} -> "
        f"{out_dir}; {config.steps} steps of {config.batch} on {device}"
    )
    stop = _StopFlag()
    with stop.installed():
        trainer.run(progress.report, should_stop=stop)
    if stop.signum is not None and trainer.step < config.steps:
        sys.exit(128 + stop.signum)  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM


def _new_config(options: dict[str, Any]) -> Any:
    from ..train.config import TrainConfig
    from ..train.data import check_resolution
    from ..train.teacher import load_teacher

    teacher, data = options["teacher"], options["data"]
    if (teacher is None) == (data is None):
        raise UserError("give exactly one source: --teacher FILE or --data FOLDER")
    source = "teacher" if teacher is not None else "folder"
    defaults = SOURCE_DEFAULTS[source]
    resolution = options["resolution"]
    z_dim = 512
    generator: dict[str, Any]
    init_g = init_d = None
    alignment = None
    if options["init"] is not None:
        from ..checkpoints.io import read_checkpoint

        init = read_checkpoint(options["init"])
        init_g, init_d, alignment = init.generator, init.discriminator, init.alignment
        if resolution is not None and resolution != init_g.img_resolution:
            raise UserError(
                f"--resolution {resolution}: --init {options['init']} makes {init_g.img_resolution}px images"
            )
        resolution = init_g.img_resolution
    if source == "teacher":
        loaded = load_teacher(options["teacher_kind"], teacher)
        if resolution is not None and resolution != loaded.resolution:
            what = f"--init {options['init']}" if init_g is not None else f"--resolution {resolution}"
            raise UserError(f"{what}: the {loaded.kind} teacher makes {loaded.resolution}px images")
        if init_g is not None and init_g.z_dim != loaded.z_dim:
            raise UserError(
                f"--init {options['init']}: z_dim {init_g.z_dim}, the teacher's z has {loaded.z_dim} values"
            )
        resolution, z_dim = loaded.resolution, loaded.z_dim
        alignment = loaded.alignment  # the student learns the teacher's framing, whatever --init had
    if resolution is None:
        from ..train.data import load_image_folder

        resolution = load_image_folder(Path(data), None).shape[-1]
    check_resolution(resolution)
    if init_g is not None:
        generator = dict(init_g.init_kwargs)
    else:
        arch = {k: options[k] if options[k] is not None else v for k, v in DEFAULT_ARCHITECTURE.items()}
        generator = {"z_dim": z_dim, "img_resolution": resolution, **arch}
    if init_d is not None:  # fine-tuning keeps the pretrained discriminator
        discriminator = dict(init_d.init_kwargs)
    else:
        discriminator = {
            "img_resolution": resolution,
            "channel_base": options["channel_base"] or generator.get("channel_base", 4096),
            "channel_max": options["channel_max"] or generator.get("channel_max", 128),
        }
    group = discriminator.get("mbstd_group_size") or 4
    discriminator["mbstd_group_size"] = math.gcd(options["batch"], group)  # groups must divide the batch
    chosen = {k: options[k] if options.get(k) is not None else v for k, v in defaults.items()}
    return TrainConfig(
        source=source,
        resolution=resolution,
        teacher_kind=options["teacher_kind"] if source == "teacher" else None,
        teacher=_absolute(teacher),
        data=_absolute(data),
        init=None if options["init"] is None else _checkpoint_spec(options["init"]),
        alignment=None if alignment is None else alignment.to_json(),
        generator=generator,
        discriminator=discriminator,
        steps=options["steps"] or 10000,
        batch=options["batch"],
        lr_g=options["lr"],
        lr_d=options["lr"],
        beta1=options["beta1"],
        r1_gamma=options["r1_gamma"],
        seed=options["seed"],
        snapshot_every=options["snapshot_every"],
        log_every=options["log_every"],
        keep=options["keep"],
        **chosen,
    )


def _absolute(path: Path | None) -> str | None:
    """Paths are stored absolute so a run resumes from any working directory (--teacher/--data move them)."""
    return None if path is None else str(Path(path).resolve())


def _checkpoint_spec(value: Path) -> str:
    """A built-in generator's name as it is; a file's path made absolute."""
    from ..checkpoints.names import BUILTIN_NAMES

    return str(value) if str(value) in BUILTIN_NAMES else str(Path(value).resolve())


def _resumed_config(config_json: str, done: int, options: dict[str, Any]) -> Any:
    import dataclasses

    from ..train.config import TrainConfig

    try:
        config = TrainConfig.from_json(config_json)
    except (ValueError, TypeError) as error:
        raise UserError(f"snapshot config: {error}") from None
    steps = options["steps"]
    if steps is not None and steps <= done:
        raise UserError(f"--steps {steps}: the snapshot is already at step {done}; give a larger total")
    moved: dict[str, Any] = {}
    for key in ("teacher", "data"):
        if options[key] is not None:
            if getattr(config, key) is None:
                raise UserError(f"--{key}: this run trains from {config.source}, not from a {key}")
            moved[key] = _absolute(options[key])
    return dataclasses.replace(config, **moved, **({"steps": steps} if steps is not None else {}))


def _data(config: Any, device: Any) -> Any:
    from ..train.data import FolderData, TeacherData
    from ..train.teacher import load_teacher

    if config.source == "teacher":
        return TeacherData(load_teacher(config.teacher_kind, config.teacher), device)
    return FolderData(Path(config.data), config.resolution, device, xflip=config.xflip)


# Settings a run keeps for life (they are in its snapshots); --resume refuses them rather than ignore them.
_RUN_SETTINGS = (
    "out", "init", "resolution", "batch", "seed", "lr", "beta1", "mapping_lr_boost", "l1", "pyramid",
    "hints", "adv", "r1_gamma", "augment", "w_dim", "mapping_layers", "channel_base", "channel_max",
    "snapshot_every", "log_every", "keep", "teacher_kind",
)  # fmt: skip


def _refuse_settings_on_resume(ctx: click.Context) -> None:
    given = [
        name
        for name in _RUN_SETTINGS
        if ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)
    ]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise UserError(
            f"{flags}: a resumed run keeps the settings in its snapshot (only --steps, --teacher, --data, "
            "--device, --threads and --progress apply); start a new run with --init for other settings"
        )


class _StopFlag:
    """Set by the first SIGINT or SIGTERM; the loop then snapshots and stops between steps. A second
    signal gets the default handling (stops at once)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        signal.signal(signum, signal.SIG_DFL)

    def installed(self) -> Any:
        import contextlib

        @contextlib.contextmanager
        def scope() -> Any:
            previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)

        return scope()
