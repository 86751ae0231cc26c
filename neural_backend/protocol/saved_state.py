"""A shot's temporal state as plain arrays, so a shot can move between backends and survive a restart.

What one frame of a shot hands to the next (the refiner's ``Previous``: its latent, the generator's output,
the alignment, the region labels and the composite) travels in the ``ok`` reply of a ``refine_shot`` that
asked for it (``return_state``), goes back into any backend with ``set_shot_state``, and is kept next to
the shot's frames on disk (:meth:`SavedShotState.save`). Numpy only (no torch): clients import it.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .passes import PassError, check_array, check_frame
from .wire import Message

SET_SHOT_STATE = "set_shot_state"

# name -> (shape with None for any size, dtype); the refiner's tensors without their batch dimensions
STATE_TENSORS: dict[str, tuple[list[int | None], str]] = {
    "latent": ([None, None], "float32"),  # W+ (num_ws, w_dim)
    "gan": ([3, None, None], "float32"),  # the generator's aligned output, [-1, 1]
    "region": ([None, None], "float32"),  # (H, W) labels
    "composite": ([3, None, None], "float32"),  # the refined frame, linear RGB
    "quad": ([4, 2], "float64"),  # the (smoothed) alignment quad
    "matrix": ([3, 3], "float64"),  # crop -> frame
}


@dataclass(frozen=True)
class SavedShotState:
    """The last refined frame of ``shot`` as the next frame needs it (see the module docstring).

    ``generator`` names the generator that made it: a backend running another one refuses it, since a
    latent means nothing to a different generator.
    """

    shot: str
    frame: int
    generator: str
    latent: np.ndarray
    gan: np.ndarray
    region: np.ndarray
    composite: np.ndarray
    quad: np.ndarray
    matrix: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.shot, str) or not self.shot:
            raise PassError("shot: expected a non-empty string id")
        object.__setattr__(self, "frame", check_frame(self.frame))
        if not isinstance(self.generator, str) or not self.generator:
            raise PassError("generator: expected the name of the generator that made the state")
        for name, (shape, dtype) in STATE_TENSORS.items():
            object.__setattr__(self, name, check_array(name, getattr(self, name), shape, dtype))
        height, width = self.region.shape
        if self.composite.shape[1:] != (height, width):
            raise PassError(
                f"composite: expected [3, {height}, {width}] like region, got {list(self.composite.shape)}"
            )
        if self.gan.shape[1] != self.gan.shape[2]:
            raise PassError(f"gan: expected a square image, got {list(self.gan.shape)}")

    def check_fits(
        self, generator_id: str, generator_name: str, latent_shape: Sequence[int], resolution: int
    ) -> None:
        """Raise :class:`PassError` unless this state can continue on a generator with this id, W+ shape
        ``(num_ws, w_dim)`` and output resolution (``generator_name`` is for the message)."""
        if self.generator != generator_id:
            raise PassError(
                f"generator: the state of shot {self.shot!r} was made by generator {self.generator!r}; "
                f"this backend runs {generator_id!r} ({generator_name})"
            )
        latent, size = list(self.latent.shape), self.gan.shape[-1]
        if latent != list(latent_shape) or size != resolution:
            raise PassError(
                f"the saved state of shot {self.shot!r} has latent {latent} at {size} px; this generator "
                f"needs {list(latent_shape)} at {resolution} px"
            )

    @property
    def tensors(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in STATE_TENSORS}

    def to_message(self, request_id: int = 0) -> Message:
        """The ``set_shot_state`` request that gives this state to a backend."""
        fields = {"shot": self.shot, "frame": self.frame, "generator": self.generator}
        return Message(SET_SHOT_STATE, request_id, fields, self.tensors)

    @classmethod
    def from_message(cls, message: Message) -> SavedShotState:
        """From a ``set_shot_state`` request or a ``refine_shot`` reply (its ``state_frame`` field)."""
        fields = message.fields
        frame = fields.get("frame") if message.type == SET_SHOT_STATE else fields.get("state_frame")
        unknown = set(message.tensors) - set(STATE_TENSORS)
        if unknown:
            raise PassError(f"unknown tensors {sorted(unknown)}; a shot state has {sorted(STATE_TENSORS)}")
        return cls(
            shot=fields.get("shot"),  # type: ignore[arg-type]
            frame=frame,  # type: ignore[arg-type]
            generator=fields.get("generator"),  # type: ignore[arg-type]
            **{name: message.tensors.get(name) for name in STATE_TENSORS},  # type: ignore[arg-type]
        )

    def save(self, path: Path) -> None:
        """Write to ``path`` (an ``.npz``) atomically: a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        with open(partial, "wb") as handle:
            np.savez(
                handle,
                shot=np.array(self.shot),
                frame=np.array(self.frame),
                generator=np.array(self.generator),
                **self.tensors,
            )
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> SavedShotState:
        """Read a file written by :meth:`save`.

        Raises:
            PassError: the file is not a saved shot state (names the file and what is wrong).
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                values = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # empty, truncated, damaged
            raise PassError(f"{path}: not a saved shot state ({exc})") from None
        missing = {"shot", "frame", "generator", *STATE_TENSORS} - set(values)
        if missing:
            raise PassError(f"{path}: not a saved shot state (missing {sorted(missing)})")
        try:
            return cls(
                shot=str(values["shot"]),
                frame=int(values["frame"]),
                generator=str(values["generator"]),
                **{name: values[name] for name in STATE_TENSORS},
            )
        except PassError as exc:
            raise PassError(f"{path}: {exc}") from None
