"""8-bit RGB PNG writing with numpy and zlib only.

Refined frames are written by the CLI, by farm workers and inside Blender (which has no Pillow), and a
shot's manifest compares their checksums: one encoder everywhere gives the same bytes for the same pixels.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode_png(rgb: np.ndarray) -> bytes:
    """(H, W, 3) display-encoded values in [0, 1] → PNG bytes (8-bit RGB, no filtering, zlib level 6)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"expected an (H, W, 3) image, got shape {list(rgb.shape)}")
    height, width = rgb.shape[:2]
    pixels = np.rint(np.clip(np.nan_to_num(rgb), 0.0, 1.0) * 255).astype(np.uint8)
    rows = np.zeros((height, 1 + width * 3), dtype=np.uint8)  # each row: filter type 0, then RGB
    rows[:, 1:] = pixels.reshape(height, width * 3)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, truecolour, no interlace
    return (
        SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + _chunk(b"IEND", b"")
    )


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write ``rgb`` (see :func:`encode_png`) to ``path`` atomically (a reader never sees half a file)."""
    data = encode_png(rgb)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
