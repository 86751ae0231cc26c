"""Settings changed for the length of a ``with`` block and put back afterwards, even when it raises."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

Setting = tuple[
    object, str, object
]  # (owner, attribute, value), e.g. (scene.render, "use_compositing", False)


@contextlib.contextmanager
def temporarily(changes: Sequence[Setting]) -> Iterator[None]:
    """Set every ``owner.attribute = value``; restore the previous values (in reverse order) after."""
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in changes]
    try:
        for owner, name, value in changes:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)
