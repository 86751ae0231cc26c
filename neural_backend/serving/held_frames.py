"""Frames uploaded with ``add_frame``, held per shot until a ``refine_shot`` takes them. No torch.

A joint shot refinement needs every frame of the shot before it can start, so clients upload them one
message at a time (each message stays within the size limits) and then ask for the shot. Held frames
are bounded per shot and in total; what does not fit is refused with ``too_large`` and nothing held is
dropped. Frames a failed or cancelled refinement took are put back, so the client can fix the one bad
frame (an ``add_frame`` with the same number replaces it) and ask again; not when the client ended the shot
meanwhile (a cancel is answered at once, before the refinement has stopped and put its frames back).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace

import numpy as np

from ..protocol.passes import FramePasses, PassError
from ..protocol.wire import ERR_TOO_LARGE, ProtocolError

DEFAULT_MAX_FRAMES = 2000  # frames held per shot
DEFAULT_MAX_BYTES = 8 << 30  # bytes held over all shots


def passes_bytes(passes: FramePasses) -> int:
    """Bytes of a frame's arrays."""
    arrays = [passes.beauty, passes.region, passes.landmarks2d, passes.intrinsics, passes.extrinsics]
    return sum(a.nbytes for a in [*arrays, *passes.params.values(), *passes.extra.values()])


def owned_copy(passes: FramePasses) -> FramePasses:
    """The same frame with arrays of its own (a request's tensors may be views of shared memory)."""
    return replace(
        passes,
        beauty=np.array(passes.beauty),
        region=np.array(passes.region),
        landmarks2d=np.array(passes.landmarks2d),
        intrinsics=np.array(passes.intrinsics),
        extrinsics=np.array(passes.extrinsics),
        params={k: np.array(v) for k, v in passes.params.items()},
        extra={k: np.array(v) for k, v in passes.extra.items()},
    )


class ShotFrames:
    """Held frames by shot and frame number. Thread-safe (the socket thread adds, the worker takes)."""

    def __init__(self, max_frames: int = DEFAULT_MAX_FRAMES, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._shots: dict[str, OrderedDict[int, FramePasses]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self._out: dict[str, int] = {}  # shot -> refinements holding its frames taken
        self._ended: set[str] = set()  # shots ended while their frames were taken

    def add(self, passes: FramePasses) -> int:
        """Hold a copy of ``passes`` (replacing a held frame with the same number); returns the shot's count.

        Raises:
            ProtocolError: ``too_large`` when the shot or the server holds too much already.
        """
        passes = owned_copy(passes)
        size = passes_bytes(passes)
        with self._lock:
            frames = self._shots.get(passes.shot, OrderedDict())
            replaced = frames.get(passes.frame)
            freed = passes_bytes(replaced) if replaced is not None else 0
            if replaced is None and len(frames) >= self.max_frames:
                raise ProtocolError(
                    ERR_TOO_LARGE,
                    f"shot {passes.shot!r} already holds {len(frames)} frames (the limit); refine_shot them "
                    "first, or split the shot",
                )
            total = self._bytes - freed + size
            if total > self.max_bytes:
                raise ProtocolError(
                    ERR_TOO_LARGE,
                    f"held frames would take {total / 2**30:.2f} GiB, over the limit of "
                    f"{self.max_bytes / 2**30:.2f} GiB; refine or end other shots first",
                )
            frames[passes.frame] = passes
            self._shots[passes.shot] = frames
            self._bytes += size - freed
            return len(frames)

    def take(self, shot: str) -> list[FramePasses]:
        """Remove and return the shot's held frames in frame order.

        Raises:
            PassError: the shot holds no frames.
        """
        with self._lock:
            frames = self._shots.pop(shot, None)
            if not frames:
                raise PassError(f"shot: {shot!r} holds no frames; send them with add_frame first")
            self._bytes -= sum(passes_bytes(p) for p in frames.values())
            self._out[shot] = self._out.get(shot, 0) + 1
        return [frames[number] for number in sorted(frames)]

    def restore(self, shot: str, frames: list[FramePasses]) -> None:
        """Put frames :meth:`take` returned back (after a failure), unless the shot was dropped meanwhile;
        frames added again meanwhile win."""
        with self._lock:
            if self._back(shot):
                return
            held = self._shots.setdefault(shot, OrderedDict())
            for passes in frames:
                if passes.frame not in held:
                    held[passes.frame] = passes
                    self._bytes += passes_bytes(passes)

    def done(self, shot: str) -> None:
        """The frames :meth:`take` returned were refined and are not coming back."""
        with self._lock:
            self._back(shot)

    def drop(self, shot: str) -> None:
        """Forget the shot's held frames, and those a running refinement took (they are not put back)."""
        with self._lock:
            frames = self._shots.pop(shot, None)
            if frames:
                self._bytes -= sum(passes_bytes(p) for p in frames.values())
            if shot in self._out:
                self._ended.add(shot)

    def _back(self, shot: str) -> bool:
        """Under the lock: one taken set of ``shot`` is back; True if the shot was dropped while out."""
        count = self._out.get(shot, 0) - 1
        ended = shot in self._ended
        if count > 0:
            self._out[shot] = count
        else:
            self._out.pop(shot, None)
            self._ended.discard(shot)
        return ended

    def count(self, shot: str | None = None) -> int:
        """Frames held for ``shot``, or over all shots."""
        with self._lock:
            if shot is not None:
                return len(self._shots.get(shot, ()))
            return sum(len(frames) for frames in self._shots.values())
