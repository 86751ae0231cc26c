"""The error type of the ``rigs`` package and the shape check used at its public boundaries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class RigError(ValueError):
    """A rig, rig file or rig parameter is malformed; the message names the field and what was expected."""


def assert_shape(name: str, array: np.ndarray, expected: Sequence[int | None]) -> None:
    """Raise :class:`RigError` unless ``array`` has ``expected`` shape (``None`` matches any size).

    Args:
        name: field or parameter name used in the message.
        array: the array to check.
        expected: expected shape, e.g. ``[None, 3]``.

    Raises:
        RigError: e.g. ``"pose: expected shape [5, 3], got [4, 3]"``.
    """
    shape = tuple(np.shape(array))
    ok = len(shape) == len(expected) and all(
        e is None or e == s for e, s in zip(expected, shape, strict=True)
    )
    if not ok:
        wanted = ", ".join("*" if e is None else str(e) for e in expected)
        got = ", ".join(str(s) for s in shape)
        raise RigError(f"{name}: expected shape [{wanted}], got [{got}]")
