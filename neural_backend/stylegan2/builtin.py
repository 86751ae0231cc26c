"""A small, deterministic, UNTRAINED StyleGAN2 generator for CPU demos and tests.

It has the real StyleGAN2 architecture with NVlabs-style random initialisation and nothing learned: its
images are structured noise, not faces. It exists so that ``make demo`` and the test-suite exercise the
whole pipeline (alignment, inversion, compositing) with no downloads. Anything produced with it must be
labelled with :data:`BUILTIN_NAME`; real results need a trained FFHQ checkpoint.
"""

from __future__ import annotations

import torch

from . import Generator, estimate_w_avg

BUILTIN_NAME = "builtin-untrained"

# Small enough that one inversion step (forward + backward) takes a few milliseconds on a 2-core CPU.
BUILTIN_CONFIG = {
    "z_dim": 128,  # Input latent (Z) dimensionality.
    "w_dim": 128,  # Intermediate latent (W) dimensionality.
    "mapping_layers": 4,  # Fewer mapping layers than FFHQ's 8; the mapping only sets w_avg here.
    "channel_base": 2048,  # Channels at resolution r: min(2048 // r, channel_max) -> 64 at 32, 32 at 64.
    "channel_max": 64,  # Maximum number of channels in any synthesis layer.
}
W_AVG_SAMPLES = 4096  # Number of mapped random z averaged into mapping.w_avg.


def builtin_generator(resolution: int = 64, seed: int = 0) -> Generator:
    """Build the untrained built-in generator.

    Deterministic: the same ``resolution`` and ``seed`` give identical weights on every machine (the
    global torch RNG is left untouched). ``mapping.w_avg`` is the mean of W over random z, as a trained
    generator's tracked average would be, so truncation and cold-start inversion behave sensibly.

    Args:
        resolution: output resolution, a power of two >= 4.
        seed: seed for the random initialisation.

    Returns:
        A :class:`~neural_backend.stylegan2.Generator` in eval mode on the CPU.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = Generator(img_resolution=resolution, **BUILTIN_CONFIG)
    generator.eval()
    with torch.no_grad():
        generator.mapping.w_avg.copy_(estimate_w_avg(generator, W_AVG_SAMPLES, seed))
    return generator
