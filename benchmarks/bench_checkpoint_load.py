"""Time to load a 1024x1024 config-f StyleGAN2 checkpoint (synthetic weights, real structure) on the CPU.

For each format RigStyle reads -- its own .safetensors, an NVlabs network pickle holding G, D and G_ema (as
NVIDIA's FFHQ file does), and a converted rosinality .pt with g_ema, d and latent_avg -- the file is written
once, then loaded with ``neural_backend.load_generator``. The baseline is reading the same file's bytes
into memory in the same process, so the ratio load/read shows the cost above raw I/O. The acceptance
target is a generator load of at most 3 s.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

# tests/ holds shared fixtures; the repository root goes first so that tests/neural_backend/ (a plain
# directory) cannot shadow the neural_backend package.
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]

from nvlabs_files import write_nvlabs_pkl  # noqa: E402

import neural_backend  # noqa: E402
from neural_backend.checkpoints.io import save_checkpoint  # noqa: E402
from neural_backend.checkpoints.rosinality import save_rosinality  # noqa: E402
from neural_backend.stylegan2 import Discriminator, Generator  # noqa: E402

TARGET_SECONDS = 3.0


def _best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    generator = Generator(img_resolution=1024, conv_clamp=256, num_fp16_res=4).eval()
    discriminator = Discriminator(img_resolution=1024, conv_clamp=256, num_fp16_res=4).eval()
    print(
        f"config-f 1024px: G {sum(p.numel() for p in generator.parameters()):,} parameters, "
        f"D {sum(p.numel() for p in discriminator.parameters()):,}"
    )
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "rigstyle .safetensors (G + D)": Path(tmp) / "ffhq.safetensors",
            "NVlabs .pkl (G, D, G_ema)": Path(tmp) / "ffhq.pkl",
            "rosinality .pt (g_ema, d)": Path(tmp) / "ffhq.pt",
        }
        writers = iter(
            [
                lambda path: save_checkpoint(generator, path, discriminator),
                lambda path: write_nvlabs_pkl(path, generator, discriminator, separate_g=True),
                lambda path: save_rosinality(generator, path, discriminator),
            ]
        )
        for name, path in files.items():
            next(writers)(path)
            read = _best_of(3, path.read_bytes)
            load = _best_of(3, lambda path=path: neural_backend.load_generator(path))
            verdict = "PASS" if load <= TARGET_SECONDS else "FAIL"
            failed |= load > TARGET_SECONDS
            size = path.stat().st_size / 2**20
            print(
                f"{name:32s} {size:6.0f} MiB  load_generator {load:5.2f} s  read bytes {read:5.2f} s  "
                f"ratio load/read = {load / read:5.1f}  {verdict} load <= {TARGET_SECONDS:.0f} s"
            )
            path.unlink()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
