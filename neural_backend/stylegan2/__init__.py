"""StyleGAN2 generator in pure PyTorch, state-dict compatible with NVlabs stylegan2-ada-pytorch ``G_ema``.

Modules: ``ops`` (upfirdn2d, resampling and modulated convolution, bias + activation), ``layers`` (dense,
convolution, synthesis and toRGB layers), ``mapping``, ``synthesis``, ``generator`` and ``discriminator``.
"""

from .discriminator import Discriminator
from .generator import Generator, estimate_w_avg
from .layers import NOISE_MODES
from .mapping import MappingNetwork
from .ops import assert_shape
from .synthesis import SynthesisNetwork

__all__ = [
    "NOISE_MODES",
    "Discriminator",
    "Generator",
    "MappingNetwork",
    "SynthesisNetwork",
    "assert_shape",
    "estimate_w_avg",
]
