"""RigStyle's backend: wire protocol and client (no torch), StyleGAN2, refinement and the server.

Importing this package imports no torch; the torch-based modules are imported where they are used.

Python API, mirroring NVlabs' semantics::

    import neural_backend
    G = neural_backend.load_generator("stylegan2-ffhq-1024x1024.pkl", device="cuda")
    img = G(z, None, truncation_psi=0.7, noise_mode="const")  # (N, 3, 1024, 1024) in [-1, 1]
    D = neural_backend.load_discriminator("stylegan2-ffhq-1024x1024.pkl")

Both accept every supported format (RigStyle .safetensors, NVlabs .pkl, rosinality .pt); nothing in the
file is executed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .checkpoints.io import load_discriminator, load_generator

__all__ = ["load_discriminator", "load_generator"]


def __getattr__(name: str) -> Any:
    """Load the torch-based checkpoint API on first use, keeping ``import neural_backend`` torch-free."""
    if name in __all__:
        from .checkpoints import io

        return getattr(io, name)
    raise AttributeError(f"module 'neural_backend' has no attribute {name!r}")
