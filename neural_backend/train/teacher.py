"""Teacher generators that ``rigstyle train`` distils into a StyleGAN2.

The one named kind so far is ``dcgan``: the PyTorch DCGAN-tutorial generator (z of ``nz`` -> 64x64 RGB in
[-1, 1]; ConvTranspose2d / BatchNorm2d / ReLU, ``ngf`` feature maps), as shipped in the MIT-licensed PyPI
package ``gan-face-generate`` 1.1.1 (``gan_face_generate/weights.tar``, a ``torch.save`` dict whose
``netG_state_dict`` holds the weights; trained on DigiFace-1M). The file is read with
``torch.load(weights_only=True)``, so a pickled callable or any other global is refused and nothing in the
file runs. The teacher path may be the ``weights.tar`` itself or the package's wheel (``.whl``): the file is
then read from inside the zip, so the package is never installed or imported.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..refine.framing import Alignment
from .config import TEACHER_KINDS

DCGAN_STATE_KEY = "netG_state_dict"
DCGAN_WHEEL_MEMBER = "gan_face_generate/weights.tar"
DCGAN_RESOLUTION = 64  # the tutorial architecture: 4 -> 8 -> 16 -> 32 -> 64
# How gan-face-generate's faces are framed (DigiFace-1M crops): measured on the mean of 2,000 teacher images
# (eye centres 0.29 of the side apart at 0.44 of its height, mouth at 0.81) against the FFHQ recipe.
DIGIFACE_ALIGNMENT = Alignment("digiface", 0.75, (0.0, 0.017))
_MAX_TEACHER_BYTES = 1 << 30


class TeacherError(ValueError):
    """A teacher file that cannot be used; the message is one line and names the file."""


class DCGANGenerator(torch.nn.Module):
    """The DCGAN-tutorial generator with its state names (``main.N.*``): z (N, nz) -> (N, nc, 64, 64)."""

    def __init__(
        self,
        nz: int = 100,  # Input latent (z) dimensionality.
        ngf: int = 64,  # Feature maps of the last hidden layer (x2, x4, x8 toward the input).
        nc: int = 3,  # Output colour channels.
    ):
        super().__init__()
        self.nz = nz
        self.nc = nc
        widths = [ngf * 8, ngf * 4, ngf * 2, ngf]
        layers: list[torch.nn.Module] = []
        in_channels = nz
        for idx, out_channels in enumerate(widths):
            stride, padding = (1, 0) if idx == 0 else (2, 1)
            layers += [
                torch.nn.ConvTranspose2d(in_channels, out_channels, 4, stride, padding, bias=False),
                torch.nn.BatchNorm2d(out_channels),
                torch.nn.ReLU(True),
            ]
            in_channels = out_channels
        layers += [torch.nn.ConvTranspose2d(in_channels, nc, 4, 2, 1, bias=False), torch.nn.Tanh()]
        self.main = torch.nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, nz) or (N, nz, 1, 1) -> images (N, nc, 64, 64) in [-1, 1]."""
        return self.with_features(z)[0]

    def with_features(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Images and the hidden activations after each ReLU, keyed by resolution (4, 8, 16, 32)."""
        if z.ndim == 2:
            z = z[:, :, None, None]
        if z.ndim != 4 or z.shape[1:] != (self.nz, 1, 1):
            raise ValueError(f"z: expected shape [N, {self.nz}] or [N, {self.nz}, 1, 1], got {list(z.shape)}")
        features: dict[int, torch.Tensor] = {}
        x = z
        for layer in self.main:
            x = layer(x)
            if isinstance(layer, torch.nn.ReLU):
                features[x.shape[-1]] = x
        return x, features

    @property
    def feature_channels(self) -> dict[int, int]:
        """Channels of the hidden activations by resolution."""
        convs = [m for m in self.main if isinstance(m, torch.nn.ConvTranspose2d)][:-1]
        return {4 * 2**i: conv.out_channels for i, conv in enumerate(convs)}


@dataclass(frozen=True)
class Teacher:
    """A loaded teacher: a frozen generator z (N, z_dim) -> images (N, 3, R, R) in [-1, 1]."""

    kind: str
    path: Path
    network: DCGANGenerator
    z_dim: int
    resolution: int
    alignment: Alignment  # how the teacher frames faces; a student trained on it inherits it

    @torch.no_grad()
    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.network(z)

    @torch.no_grad()
    def with_features(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Images and hidden activations by resolution (distillation hints)."""
        return self.network.with_features(z)

    @property
    def feature_channels(self) -> dict[int, int]:
        return self.network.feature_channels


def load_teacher(kind: str, path: str | Path) -> Teacher:
    """Load a teacher generator of a named ``kind`` from ``path`` (its weights file or its wheel).

    Raises:
        TeacherError: unknown kind, missing or unreadable file, a pickle that holds anything but tensors
            and plain containers, or weights that do not fit the kind's architecture.
    """
    if kind not in TEACHER_KINDS:
        raise TeacherError(f"teacher kind {kind!r}: unknown; known kinds: {', '.join(TEACHER_KINDS)}")
    path = Path(path)
    state = _read_state(path)
    network = _dcgan_from_state(path, state)
    network.eval().requires_grad_(False)
    return Teacher(kind, path, network, network.nz, DCGAN_RESOLUTION, DIGIFACE_ALIGNMENT)


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise TeacherError(f"{path}: no such teacher file")
    if zipfile.is_zipfile(path) and _is_wheel(path):
        with zipfile.ZipFile(path) as wheel:
            info = wheel.getinfo(DCGAN_WHEEL_MEMBER)
            if info.file_size > _MAX_TEACHER_BYTES:
                raise TeacherError(f"{path}: {DCGAN_WHEEL_MEMBER} is {info.file_size} bytes, too large")
            source: io.BytesIO | Path = io.BytesIO(wheel.read(info))
    else:
        source = path
    try:
        loaded = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # garbage makes the weights-only unpickler raise KeyError, IndexError, ...
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        refused = next((line for line in lines if "unsupported global" in line.lower()), None)
        if refused is not None:
            raise TeacherError(f"{path}: refused: the file holds more than tensors ({refused})") from None
        reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        raise TeacherError(f"{path}: not a readable torch.save file ({reason})") from None
    if not isinstance(loaded, dict) or DCGAN_STATE_KEY not in loaded:
        keys = sorted(map(str, loaded)) if isinstance(loaded, dict) else type(loaded).__name__
        raise TeacherError(f"{path}: expected a dict with {DCGAN_STATE_KEY!r}, found {keys}")
    state = loaded[DCGAN_STATE_KEY]
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise TeacherError(f"{path}: {DCGAN_STATE_KEY!r} is not a dict of tensors")
    return state


def _is_wheel(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        return DCGAN_WHEEL_MEMBER in archive.namelist()


def _dcgan_from_state(path: Path, state: dict[str, torch.Tensor]) -> DCGANGenerator:
    first = state.get("main.0.weight")
    last = state.get("main.12.weight")
    if first is None or last is None or first.ndim != 4 or last.ndim != 4:
        raise TeacherError(f"{path}: not a DCGAN generator state (main.0.weight / main.12.weight missing)")
    nz, ngf8 = first.shape[:2]
    network = DCGANGenerator(nz=nz, ngf=ngf8 // 8, nc=last.shape[1])
    expected = network.state_dict()
    wrong = [
        f"{name} {list(state[name].shape)} (expected {list(t.shape)})"
        for name, t in expected.items()
        if name in state and state[name].shape != t.shape
    ]
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if wrong or missing or unexpected:
        problems = "; ".join(
            part
            for part in (
                f"wrong shapes: {', '.join(wrong[:3])}" if wrong else "",
                f"missing: {', '.join(missing[:3])}" if missing else "",
                f"unexpected: {', '.join(unexpected[:3])}" if unexpected else "",
            )
            if part
        )
        raise TeacherError(f"{path}: DCGAN weights do not fit the tutorial architecture ({problems})")
    network.load_state_dict({n: t.float() if t.is_floating_point() else t for n, t in state.items()})
    return network
