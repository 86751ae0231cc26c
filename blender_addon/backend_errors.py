"""What a backend failure means to the person in Blender, and what to do about it."""

from __future__ import annotations

from neural_backend.client.results import BackendError
from neural_backend.protocol.wire import (
    ERR_BAD_FIELD,
    ERR_BUSY,
    ERR_CANCELLED,
    ERR_DEADLINE,
    ERR_REFINE_FAILED,
    ERR_TOO_LARGE,
    ERR_UNAUTHORIZED,
)

START_HINT = (
    "start one (RigStyle add-on preferences: Start Local Backend, or `rigstyle serve` in a terminal) "
    "or fix the address in the preferences"
)

CANCELLED_MESSAGE = "Cancelled; the compositor was left as it was."


class ShotError(Exception):
    """A shot render stopped; the message says what happened and what to do. ``code`` is the backend's
    error code (or 'cancelled', 'blender')."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def explain(error: BackendError, address: str, frame: int | None = None) -> ShotError:
    """A :class:`ShotError` for ``error`` from the backend at ``address``, about ``frame`` if given."""
    code, detail = error.code, error.message
    where = f"frame {frame}" if frame is not None else "the shot"
    if code in ("not_running", "no_backend"):
        message = f"No RigStyle backend answers at {address}: {START_HINT}."
    elif code == "timeout":
        message = (
            f"The backend at {address} did not answer in time for {where} ({detail}). It may be stuck or "
            "overloaded: check its log, raise the timeout in the preferences, then render again."
        )
    elif code == "unavailable":
        message = (
            f"The backend at {address} went away during {where}. Restart it ({START_HINT}), "
            "then render again."
        )
    elif code == ERR_BUSY:
        message = (
            f"The backend at {address} is busy ({detail}). Wait until its other jobs finish, or use another "
            "backend, then render again."
        )
    elif code in (ERR_REFINE_FAILED, ERR_BAD_FIELD):
        message = (
            f"The backend rejected {where}: {detail}. Check that the whole face is in the camera's view "
            "in that frame, then render again."
        )
    elif code == ERR_TOO_LARGE:
        message = (
            f"{where.capitalize()} exceeds the backend's limits ({detail}). Render a shorter frame range or "
            "restart the backend with larger --max-shot-frames / --max-held-gb."
        )
    elif code == ERR_UNAUTHORIZED:
        message = f"The backend at {address} refused the token ({detail}): set it in the preferences."
    elif code == ERR_DEADLINE:
        message = f"{where.capitalize()} ran past its deadline ({detail}): raise the timeout (preferences)."
    elif code == ERR_CANCELLED:
        message = CANCELLED_MESSAGE
    else:
        message = f"The backend failed {where}: [{code}] {detail}."
    return ShotError(code, message)
