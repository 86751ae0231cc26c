"""Per-frame progress with an ETA: lines for people (``text``) or one JSON object per line (``json``).

JSON lines, for farm managers (each has ``event`` and ``stage``; times in seconds)::

    {"event": "start", "stage": "refine", "total": 10, "skipped": 4}
    {"event": "frame", "stage": "refine", "frame": 1003, "done": 3, "total": 10, "elapsed_s": 9, "eta_s": 21}
    {"event": "note", "stage": "refine", "message": "backend tcp://gpu1:7557 failed ...; moving the shot"}
    {"event": "finish", "stage": "refine", "done": 10, "total": 10, "elapsed_s": 30.4}
    {"event": "error", "stage": "refine", "message": "frame 1007: ...", "frame": 1007}

With several shots on one stream (``rigstyle refine DIR DIR ...``) each line also has ``"shot"``.
``total`` counts the frames this run does (frames already finished are ``skipped``); the ETA is the mean time
per frame so far times the frames left. Numpy-free and torch-free: the add-on uses it inside Blender.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, Literal, TextIO

Format = Literal["text", "json"]
FORMATS: tuple[Format, ...] = ("text", "json")


class Progress:
    """Reports one stage at a time; see the module docstring for the lines it writes."""

    def __init__(
        self,
        format: Format = "text",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        shot: str | None = None,
    ):
        if format not in FORMATS:
            raise ValueError(f"progress format: expected one of {list(FORMATS)}, got {format!r}")
        self.format = format
        self.stream = stream
        self.clock = clock
        self.shot = shot  # named in every line when several shots report to one stream
        self.stage = ""
        self.total = self.done = 0
        self._started = clock()

    def start(self, stage: str, total: int, skipped: int = 0) -> None:
        self.stage, self.total, self.done = stage, total, 0
        self._started = self.clock()
        text = f"{total} frame{'s' * (total != 1)} to do"
        if skipped:
            text += f", {skipped} already finished (the manifest says so; --overwrite redoes them)"
        self._emit({"event": "start", "total": total, "skipped": skipped}, text)

    def frame(self, frame: int) -> None:
        """``frame`` is finished."""
        self.done += 1
        elapsed = self.clock() - self._started
        eta = elapsed / self.done * max(0, self.total - self.done)
        fields = {"frame": frame, "done": self.done, "total": self.total}
        text = f"frame {frame} done ({self.done}/{self.total}), ETA {_clock_text(eta)}"
        self._emit({"event": "frame", **fields, "elapsed_s": round(elapsed, 3), "eta_s": round(eta, 3)}, text)

    def note(self, message: str) -> None:
        self._emit({"event": "note", "message": message}, message)

    def finish(self) -> None:
        elapsed = self.clock() - self._started
        fields = {"done": self.done, "total": self.total, "elapsed_s": round(elapsed, 3)}
        frames = f"{self.done} frame{'s' * (self.done != 1)}"
        self._emit({"event": "finish", **fields}, f"finished {frames} in {_clock_text(elapsed)}")

    def error(self, message: str, frame: int | None = None) -> None:
        fields: dict[str, Any] = {"event": "error", "message": message}
        if frame is not None:
            fields["frame"] = frame
        self._emit(fields, f"FAILED: {message}")

    def _emit(self, fields: dict[str, Any], text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        shot = {"shot": self.shot} if self.shot else {}
        if self.format == "json":
            line = json.dumps({"event": fields.pop("event"), **shot, "stage": self.stage, **fields})
        else:
            line = f"[{self.shot} {self.stage}] {text}" if self.shot else f"[{self.stage}] {text}"
        stream.write(line + "\n")
        stream.flush()


def _clock_text(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
