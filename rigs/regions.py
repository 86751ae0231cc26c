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
