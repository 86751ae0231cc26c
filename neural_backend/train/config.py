"""The training run's settings: one frozen dataclass, stored as JSON in every snapshot."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

SOURCES = ("teacher", "folder")
TEACHER_KINDS = ("dcgan",)  # named teacher architectures (train.teacher builds them)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a run computes (paths are strings so the config is plain JSON)."""

    source: str  # 'teacher' (distil a generator) or 'folder' (images of aligned faces).
    resolution: int  # Image resolution, a power of two >= 8.
    teacher_kind: str | None = None  # Named teacher kind (see train.teacher.TEACHER_KINDS).
    teacher: str | None = None  # Teacher weights file or wheel.
    data: str | None = None  # Folder of aligned R x R face images.
    init: str | None = None  # Checkpoint to start G (and D, when it has one) from; None = fresh networks.
    alignment: str | None = None  # Framing of the data (Alignment JSON) written into exports; None = ffhq.
    generator: dict[str, Any] = field(default_factory=dict)  # Generator kwargs (NVlabs names).
    discriminator: dict[str, Any] = field(default_factory=dict)  # Discriminator kwargs.
    steps: int = 10000  # Total optimisation steps of the run.
    batch: int = 16  # Images per step.
    lr_g: float = 0.002  # Adam learning rate of G.
    lr_d: float = 0.002  # Adam learning rate of D.
    beta1: float = 0.0  # Adam beta1 (NVlabs: 0 for GANs).
    beta2: float = 0.99  # Adam beta2.
    mapping_lr_boost: float = 1.0  # Extra learning-rate factor for the mapping (its layers run at 0.01x).
    l1: float = 0.0  # Weight of the paired L1 term (teacher only).
    pyramid: float = 0.0  # Weight of the paired L1 on 2x, 4x and 8x average-pooled images (teacher only).
    hints: float = 0.0  # Weight of the teacher-feature hints (1x1-projected student block features, teacher).
    adv: float = 1.0  # Weight of the non-saturating logistic GAN term; 0 = no discriminator at all.
    r1_gamma: float = 0.1  # R1 penalty weight on real images.
    r1_interval: int = 16  # Lazy regularisation: R1 every this many steps.
    ema_kimg: float = 5.0  # Half-life of G_ema in thousands of images.
    ema_rampup: float | None = 0.05  # EMA half-life ramp-up as a fraction of images seen; None = none.
    augment: tuple[str, ...] = ()  # DiffAugment policies applied before D.
    xflip: bool = True  # Mirror folder images at random.
    noise_mode: str = "const"  # Per-pixel noise while training: 'const' (teacher) or 'random'.
    seed: int = 0  # Seeds the networks' initialisation and every random draw of the run.
    snapshot_every: int = 500  # Steps between snapshots.
    keep: int = 3  # Training snapshots kept (the newest); every network file is kept.
    log_every: int = 50  # Steps between progress and metrics lines.
    eval_samples: int = 256  # Held-out z for the teacher PSNR at each snapshot.

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        values = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"training config: unknown keys {unknown}")
        values["augment"] = tuple(values.get("augment", ()))
        return cls(**values)

    @property
    def paired(self) -> bool:
        return self.source == "teacher" and (self.l1 > 0 or self.pyramid > 0 or self.hints > 0)
