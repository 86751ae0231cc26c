"""Encode + decode of one frame's pass bundle vs a plain memory copy of the same bytes (the baseline).

Prints the time per bundle for both and the ratio protocol/copy; sizes from ``--size`` (square frames).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from neural_backend.protocol.passes import FramePasses
from neural_backend.protocol.wire import decode, encode


def best_of(function, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    passes = FramePasses(
        shot="bench",
        frame=1,
        beauty=rng.random((args.size, args.size, 3), dtype=np.float32),
        region=rng.integers(0, 7, (args.size, args.size)).astype(np.uint8),
        landmarks2d=rng.random((68, 2)).astype(np.float32),
        intrinsics=np.eye(3),
        extrinsics=np.eye(4),
    )
    message = passes.to_message()
    arrays = list(message.tensors.values())
    nbytes = sum(a.nbytes for a in arrays)

    def protocol() -> None:
        FramePasses.from_message(decode(encode(message)))

    def copy() -> None:
        for array in arrays:
            np.frombuffer(array.tobytes(), dtype=array.dtype)

    ours, baseline = best_of(protocol, args.repeats), best_of(copy, args.repeats)
    print(f"bundle {nbytes / 1e6:.1f} MB ({args.size}x{args.size})")
    print(f"copy baseline   {baseline * 1e3:8.2f} ms")
    print(f"encode+decode   {ours * 1e3:8.2f} ms")
    print(f"ratio protocol/copy = {ours / baseline:.2f}")


if __name__ == "__main__":
    main()
