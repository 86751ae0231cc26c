"""The StyleGAN2 training loop behind ``rigstyle train``.

One :class:`Trainer` owns G, G_ema, D, their Adam optimisers and the run's random generator. A step is:

1. G: a batch from the data source; paired L1 and L1 on 2x/4x/8x average-pooled images against the
   teacher's image for the same z (teacher source), plus the non-saturating logistic loss through D
   (``adv`` > 0); ``mapping.w_avg`` tracks the mean W as in NVlabs.
2. D (``adv`` > 0): logistic loss on real and generated images (both through DiffAugment when set), and
   every ``r1_interval`` steps the R1 penalty on reals, scaled by the interval (lazy regularisation; the
   penalty joins that step's D update rather than a separate one, so Adam keeps its plain settings).
3. G_ema: exponential moving average of G with a half-life of ``ema_kimg`` thousand images (ramped up).

Everything random comes from the run's ``torch.Generator`` (data, augmentation) or torch's global one
(per-pixel noise); both are saved in each snapshot, so N steps + resume + M steps equals N + M steps.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoints.base import TRAINING_KEY
from ..checkpoints.io import read_checkpoint, save_checkpoint
from ..images.png import write_png
from ..refine.framing import Alignment
from ..stylegan2 import Discriminator, Generator
from .augment import diff_augment
from .config import TrainConfig
from .data import Batch, FolderData, TeacherData
from .metrics import paired_psnr
from .snapshot import (
    Snapshot,
    SnapshotError,
    list_snapshots,
    optimizer_tensors,
    restore_optimizer,
    snapshot_name,
    snapshot_step,
    write_snapshot,
)

HELD_OUT_SEED = 0x5EED_0F_7E57  # z for held-out checks: a stream training never draws from
GRID_COLUMNS = 8
GRID_ROWS = 4
PYRAMID_FACTORS = (2, 4, 8)
Data = TeacherData | FolderData


@dataclass
class RunningMeans:
    """Loss terms averaged over a logging interval."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def pop(self) -> dict[str, float]:
        means = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums, self.counts = {}, {}
        return means


class FeatureHints(torch.nn.Module):
    """Learned 1x1 projections from the student's block features to the teacher's hidden activations.

    Distillation hints (FitNets; GAN Compression): every synthesis block gets a dense target, not only
    the last image, which is what makes a generator learn another generator's function in few steps.
    """

    def __init__(self, student_channels: dict[int, int], teacher_channels: dict[int, int]):
        super().__init__()
        self.resolutions = sorted(set(student_channels) & set(teacher_channels))
        self.project = torch.nn.ModuleDict(
            {str(r): torch.nn.Conv2d(student_channels[r], teacher_channels[r], 1) for r in self.resolutions}
        )

    def loss(self, student: dict[int, torch.Tensor], teacher: dict[int, torch.Tensor]) -> torch.Tensor:
        """Mean over resolutions of L1(projection, teacher) relative to the teacher's mean magnitude."""
        terms = []
        for r in self.resolutions:
            target = teacher[r]
            projected = self.project[str(r)](student[r].float())
            terms.append((projected - target).abs().mean() / target.abs().mean().clamp(min=1e-6))
        return torch.stack(terms).mean()


class Trainer:
    """A training run in ``out_dir``; see the module docstring."""

    def __init__(
        self,
        config: TrainConfig,
        data: Data,
        out_dir: Path,
        device: str | torch.device = "cpu",
        load_init: bool = True,  # False when a snapshot will be loaded: the init file is not needed then
    ):
        self.config = config
        self.data = data
        self.out_dir = out_dir
        self.device = torch.device(device)
        self.step = 0
        self.nimg = 0
        self.seconds = 0.0
        self.rng = torch.Generator().manual_seed(config.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.G = Generator(**config.generator)
            self.D = Discriminator(**config.discriminator) if config.adv > 0 else None
        if config.init is not None and load_init:
            self._load_init(config.init)
        torch.manual_seed(config.seed)  # the global generator feeds per-pixel noise in 'random' mode
        self.hints: FeatureHints | None = None
        self._student_features: dict[int, torch.Tensor] = {}
        if config.hints > 0 and isinstance(data, TeacherData):
            synthesis_net = self.G.synthesis
            channels = {
                r: getattr(synthesis_net, f"b{r}").conv1.weight.shape[0]
                for r in synthesis_net.block_resolutions
            }
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed + 1)
                self.hints = FeatureHints(channels, data.teacher.feature_channels).to(self.device)
            for r in self.hints.resolutions:
                getattr(synthesis_net, f"b{r}").register_forward_hook(self._capture(r))
        self.G.to(self.device).train().requires_grad_(True)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.G_ema.synthesis.apply(_drop_hooks)
        mapping = [p for n, p in self.G.named_parameters() if n.startswith("mapping.")]
        synthesis = [p for n, p in self.G.named_parameters() if not n.startswith("mapping.")]
        betas = (config.beta1, config.beta2)
        groups = [
            {"params": synthesis, "lr": config.lr_g},
            {"params": mapping, "lr": config.lr_g * config.mapping_lr_boost},
        ]
        if self.hints is not None:
            groups.append({"params": list(self.hints.parameters()), "lr": config.lr_g})
        self.opt_G = torch.optim.Adam(groups, betas=betas, eps=1e-8)
        self.opt_D: torch.optim.Adam | None = None
        if self.D is not None:
            self.D.to(self.device).train().requires_grad_(True)
            self.opt_D = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=betas, eps=1e-8)
        self._held_out_z = torch.randn(
            [max(config.eval_samples, GRID_COLUMNS * GRID_ROWS), self.G.z_dim],
            generator=torch.Generator().manual_seed(HELD_OUT_SEED),
        )
        self._means = RunningMeans()

    # ---- one step -------------------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        """One G step, one D step (with R1 when due), one EMA update; returns the loss terms."""
        config = self.config
        batch = self.data.batch(config.batch, self.rng)
        z = batch.z if batch.z is not None else torch.randn([config.batch, self.G.z_dim], generator=self.rng)
        z = z.to(self.device)
        terms: dict[str, float] = {}

        ws = self.G.mapping(z)
        with torch.no_grad():
            w_avg = self.G.mapping.w_avg
            w_avg.copy_(ws[:, 0].detach().mean(dim=0).lerp(w_avg, self.G.mapping.w_avg_beta or 0.0))
        fake = self.G.synthesis(ws, noise_mode=config.noise_mode)
        loss_g = fake.new_zeros(())
        if config.l1 > 0 and batch.z is not None:
            l1 = (fake - batch.images).abs().mean()
            loss_g = loss_g + config.l1 * l1
            terms["l1"] = l1.item()
        if config.pyramid > 0 and batch.z is not None:
            pyramid = cast(
                torch.Tensor,
                sum(
                    (F.avg_pool2d(fake, k) - F.avg_pool2d(batch.images, k)).abs().mean()
                    for k in PYRAMID_FACTORS
                ),
            ) / len(PYRAMID_FACTORS)
            loss_g = loss_g + config.pyramid * pyramid
            terms["pyramid"] = pyramid.item()
        if self.hints is not None and batch.features is not None:
            hints = self.hints.loss(self._student_features, batch.features)
            loss_g = loss_g + config.hints * hints
            terms["hints"] = hints.item()
        self._student_features = {}
        if self.D is not None:
            self.D.requires_grad_(False)
            adv_g = F.softplus(-self.D(self._augment(fake))).mean()
            loss_g = loss_g + config.adv * adv_g
            terms["adv_g"] = adv_g.item()
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_G.step()
        terms["loss_g"] = loss_g.item()

        if self.D is not None and self.opt_D is not None:
            terms |= self._discriminator_step(fake.detach(), batch)
        self._update_ema()
        self.step += 1
        self.nimg += config.batch
        return terms

    def _discriminator_step(self, fake: torch.Tensor, batch: Batch) -> dict[str, float]:
        assert self.D is not None and self.opt_D is not None
        config = self.config
        self.D.requires_grad_(True)
        real = batch.images
        fake_logits = self.D(self._augment(fake))
        real_logits = self.D(self._augment(real))
        loss_d = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        terms = {
            "loss_d": loss_d.item(),
            "d_real": real_logits.mean().item(),
            "d_fake": fake_logits.mean().item(),
        }
        if config.r1_gamma > 0 and self.step % config.r1_interval == 0:
            real_r1 = real.detach().requires_grad_(True)
            logits = self.D(self._augment(real_r1))
            (grad,) = torch.autograd.grad(logits.sum(), real_r1, create_graph=True)
            r1 = grad.square().sum(dim=[1, 2, 3]).mean()
            loss_d = loss_d + r1 * (config.r1_gamma / 2) * config.r1_interval
            terms["r1"] = r1.item()
        self.opt_D.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_D.step()
        return terms

    def _capture(self, resolution: int) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: object, output: tuple[torch.Tensor, torch.Tensor]) -> None:
            self._student_features[resolution] = output[0]

        return hook

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        return diff_augment(images, self.config.augment, self.rng) if self.config.augment else images

    @torch.no_grad()
    def _update_ema(self) -> None:
        config = self.config
        ema_nimg = config.ema_kimg * 1000
        if config.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.nimg * config.ema_rampup)
        beta = 0.5 ** (config.batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            b_ema.copy_(b)

    # ---- the run ---------------------------------------------------------------------------------

    def run(
        self,
        report: Callable[[str, dict[str, float | int | str]], None],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        """Train to ``config.steps`` with snapshots; ``report(event, fields)`` gets log and snapshot lines.

        ``should_stop`` is checked between steps: when it turns true a snapshot of the current step is
        written and the run returns (a resume then continues exactly).
        """
        config = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        window_start, window_steps = time.monotonic(), 0
        while self.step < config.steps:
            if should_stop():
                self.save()
                report("stopped", {"step": self.step})
                return
            started = time.monotonic()
            self._means.add(self.train_step())
            self.seconds += time.monotonic() - started
            window_steps += 1
            if self.step % config.log_every == 0 or self.step == config.steps:
                elapsed = time.monotonic() - window_start
                fields: dict[str, float | int | str] = {
                    "step": self.step,
                    "kimg": round(self.nimg / 1000, 3),
                    "sec_per_step": round(elapsed / window_steps, 4),
                    "seconds": round(self.seconds, 1),
                    **{k: round(v, 5) for k, v in self._means.pop().items()},
                }
                self._log(fields)
                report("log", fields)
                window_start, window_steps = time.monotonic(), 0
            if self.step % config.snapshot_every == 0 or self.step == config.steps:
                report("snapshot", self.save())

    def save(self) -> dict[str, float | int | str]:
        """Write the G_ema network file, the sample grid, a metrics line and, last, the snapshot of this step.

        The snapshot comes last: a run killed in between resumes from the previous snapshot and writes this
        step's files again, so every snapshot has its network file.
        """
        name = snapshot_name(self.step)
        state = self.state_tensors()
        network = self.out_dir / f"network-{self.step:06d}.safetensors"
        self.export(network)
        grid = self.out_dir / f"samples-{self.step:06d}.png"
        fields: dict[str, float | int | str] = {
            "step": self.step,
            "snapshot": name,
            "network": network.name,
            "samples": grid.name,
        }
        held_out = self.write_samples(grid)
        if held_out is not None:
            fields["held_out_psnr"] = round(held_out, 3)
        self._log(fields)
        write_snapshot(self.out_dir / name, state, self.config.to_json(), self.step, self.seconds, self.nimg)
        older = [p for p in list_snapshots(self.out_dir) if snapshot_step(p) <= self.step]
        for old in older[: -self.config.keep]:  # never a newer snapshot of another attempt
            old.unlink()
        return fields

    def export(self, path: Path) -> None:
        """G_ema (and D) in the RigStyle checkpoint format, with the run's provenance in its metadata."""
        training = {
            "source": self.config.source,
            "teacher_kind": self.config.teacher_kind,
            "step": self.step,
            "kimg": round(self.nimg / 1000, 3),
            "seconds": round(self.seconds, 1),
            "seed": self.config.seed,
        }
        partial = path.with_name(f".{path.name}.partial")
        alignment = Alignment.from_json(self.config.alignment) if self.config.alignment else None
        metadata = {TRAINING_KEY: json.dumps(training)}
        save_checkpoint(self.G_ema, partial, self.D, metadata=metadata, alignment=alignment)
        partial.replace(path)

    @torch.no_grad()
    def write_samples(self, path: Path) -> float | None:
        """G_ema's images for fixed held-out z (with the teacher's below them); returns held-out PSNR."""
        count = GRID_COLUMNS * GRID_ROWS
        z = self._held_out_z.to(self.device)
        images = [self.G_ema(z[:count])]
        psnr = None
        if isinstance(self.data, TeacherData):
            teacher = torch.cat([self.data.teacher(chunk) for chunk in z.split(256)])
            student = torch.cat([self.G_ema(chunk) for chunk in z.split(256)])
            psnr = paired_psnr(student, teacher).mean().item()
            images.append(teacher[:count])
        rows = [tile_images(batch, GRID_COLUMNS) for batch in images]
        gap = np.ones((4, rows[0].shape[1], 3), dtype=np.float32)
        grid = rows[0] if len(rows) == 1 else np.concatenate([rows[0], gap, rows[1]], axis=0)
        write_png(path, grid)
        return psnr

    def _log(self, fields: dict[str, float | int | str]) -> None:
        with (self.out_dir / "metrics.jsonl").open("a") as handle:
            handle.write(json.dumps(fields) + "\n")

    # ---- state -----------------------------------------------------------------------------------

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors: dict[str, torch.Tensor] = {}
        for prefix, module in (("G", self.G), ("G_ema", self.G_ema), ("D", self.D)):
            if module is not None:
                tensors |= {f"{prefix}.{n}": t for n, t in module.state_dict().items()}
        if self.hints is not None:
            tensors |= {f"hints.{n}": t for n, t in self.hints.state_dict().items()}
        tensors |= optimizer_tensors("opt_G", self.opt_G, self._g_param_names())
        if self.opt_D is not None and self.D is not None:
            tensors |= optimizer_tensors("opt_D", self.opt_D, _param_names(self.D))
        tensors["rng.data"] = self.rng.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        return tensors

    def load_state(self, snapshot: Snapshot) -> None:
        """Continue exactly where ``snapshot`` stopped; metrics logged after it (a killed run's) are dropped.

        Raises:
            SnapshotError: the snapshot lacks tensors or holds ones that do not fit this run.
        """
        try:
            self._load_state(snapshot)
        except (KeyError, RuntimeError, ValueError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise SnapshotError(f"{snapshot.path}: does not fit this run ({reason})") from None
        metrics = self.out_dir / "metrics.jsonl"
        if metrics.is_file():
            lines = metrics.read_text().splitlines()
            kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= self.step]
            metrics.write_text("".join(line + "\n" for line in kept))

    def _load_state(self, snapshot: Snapshot) -> None:
        self.G.load_state_dict(snapshot.section("G"))
        self.G_ema.load_state_dict(snapshot.section("G_ema"))
        if self.hints is not None:
            self.hints.load_state_dict(snapshot.section("hints"))
        restore_optimizer(self.opt_G, snapshot.section("opt_G"), self._g_param_names())
        if self.D is not None and self.opt_D is not None:
            self.D.load_state_dict(snapshot.section("D"))
            restore_optimizer(self.opt_D, snapshot.section("opt_D"), _param_names(self.D))
        self.rng.set_state(snapshot.tensors["rng.data"])
        torch.set_rng_state(snapshot.tensors["rng.torch"])
        if self.device.type == "cuda" and "rng.cuda" in snapshot.tensors:
            torch.cuda.set_rng_state(snapshot.tensors["rng.cuda"], self.device)
        self.step, self.nimg, self.seconds = snapshot.step, snapshot.nimg, snapshot.seconds

    def _g_param_names(self) -> dict[int, str]:
        names = _param_names(self.G)
        if self.hints is not None:
            names |= {id(p): f"hints.{n}" for n, p in self.hints.named_parameters()}
        return names

    def _load_init(self, spec: str) -> None:
        checkpoint = read_checkpoint(spec)
        self.G.load_state_dict(checkpoint.generator.state_dict())
        if self.D is not None and checkpoint.discriminator is not None:
            ignore = {"mbstd_group_size"}  # grouping only: the tensors are the same
            theirs = {k: v for k, v in checkpoint.discriminator.init_kwargs.items() if k not in ignore}
            if theirs == {k: v for k, v in self.D.init_kwargs.items() if k not in ignore}:
                self.D.load_state_dict(checkpoint.discriminator.state_dict())


def _drop_hooks(module: torch.nn.Module) -> None:
    module._forward_hooks.clear()


def _param_names(module: torch.nn.Module) -> dict[int, str]:
    return {id(p): n for n, p in module.named_parameters()}


def tile_images(images: torch.Tensor, columns: int) -> np.ndarray:
    """(N, 3, R, R) in [-1, 1] -> (rows*R, columns*R, 3) in [0, 1]."""
    n, _, r, _ = images.shape
    rows = math.ceil(n / columns)
    padded = torch.ones([rows * columns, 3, r, r])
    padded[:n] = (images.detach().float().cpu().clamp(-1, 1) + 1) / 2
    tiled = padded.view(rows, columns, 3, r, r).permute(0, 3, 1, 4, 2).reshape(rows * r, columns * r, 3)
    return tiled.numpy()
