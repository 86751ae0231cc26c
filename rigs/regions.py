"""Region labels per face, shared by the rig, the ``region`` render pass, the wire protocol and the backend.

The values are part of the wire format (``region`` pass: uint8 labels); never renumber them.
"""

from __future__ import annotations

BACKGROUND = 0  # nothing rendered
SKIN = 1  # face skin: kept from the CGI render
EYES = 2  # eyeballs: repainted by the GAN
MOUTH = 3  # mouth interior: repainted by the GAN
HAIR = 4  # hair and scalp: repainted by the GAN
NECK = 5  # neck and body
OTHER = 6  # clothing and anything else

REGION_NAMES: dict[int, str] = {
    BACKGROUND: "background",
    SKIN: "skin",
    EYES: "eyes",
    MOUTH: "mouth",
    HAIR: "hair",
    NECK: "neck",
    OTHER: "other",
}

# Beauty-pass base colour per label (linear RGB), used by Blender's materials and the backend's pyrender
# passes alike; eyes/mouth/hair are what the GAN repaints.
REGION_COLORS: dict[int, tuple[float, float, float]] = {
    SKIN: (0.55, 0.33, 0.24),
    EYES: (0.75, 0.75, 0.72),
    MOUTH: (0.25, 0.05, 0.05),
    HAIR: (0.08, 0.05, 0.03),
    NECK: (0.55, 0.33, 0.24),
    OTHER: (0.3, 0.3, 0.3),
}
