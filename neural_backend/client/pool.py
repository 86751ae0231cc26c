"""Several backends for one client: health checks, failover and a per-backend in-flight limit.

A :class:`BackendPool` hands out backend addresses (:meth:`BackendPool.acquire`), at most ``in_flight``
at a time per backend, preferring the backend a shot already uses (its temporal state is there) and then
the least loaded one (this client's requests, then the queue the backend reports in ``health``). Each
acquire checks the backend's health first. A backend that fails (:meth:`BackendPool.fail`) is left alone
for ``retry_after`` seconds, then checked again; a busy one (:meth:`BackendPool.backoff`) for a short
pause. Torch-free: the add-on uses it inside Blender.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .blocking import Client
from .results import BackendError

HEALTH_TIMEOUT = 5.0  # seconds a health check may take before the backend counts as down
RETRY_AFTER = 30.0  # seconds a failed backend is skipped before it is checked again
BUSY_PAUSE = 2.0  # seconds a busy backend is skipped


class NoBackend(BackendError):
    """No backend of the pool can take work; the message lists each one and why."""

    def __init__(self, message: str):
        super().__init__("no_backend", message)


@dataclass
class BackendState:
    """What the pool knows about one backend."""

    address: str
    in_flight: int = 0
    load: int = 0  # requests waiting or running on the backend, from its last health reply
    skip_until: float = 0.0  # clock time before which it is not tried (failed or busy)
    problem: str = ""  # why it was last skipped


class BackendPool:
    """Addresses of backends that run the same generator; see the module docstring.

    Args:
        addresses: backend endpoints, e.g. ``tcp://gpu1:7557``; at least one, no repeats.
        token: the backends' token, when they require one.
        in_flight: requests this client may have on one backend at a time.
        health_timeout, retry_after, busy_pause: seconds, see the module constants.
    """

    def __init__(
        self,
        addresses: Sequence[str],
        token: str | None = None,
        in_flight: int = 1,
        health_timeout: float = HEALTH_TIMEOUT,
        retry_after: float = RETRY_AFTER,
        busy_pause: float = BUSY_PAUSE,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not addresses:
            raise ValueError("a backend pool needs at least one address")
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"backend addresses repeat: {list(addresses)}")
        if in_flight < 1:
            raise ValueError(f"in_flight: expected >= 1, got {in_flight}")
        self.token, self.in_flight = token, in_flight
        self.health_timeout, self.retry_after, self.busy_pause = health_timeout, retry_after, busy_pause
        self.clock = clock
        self.backends = {address: BackendState(address) for address in addresses}
        self._changed = threading.Condition()

    def acquire(
        self,
        prefer: str | None = None,
        wait: float = 0.0,
        cancelled: Callable[[], bool] | None = None,
    ) -> str:
        """A healthy backend with a free slot, counted as one request in flight until :meth:`release`.

        ``prefer``: the backend to use when it qualifies (a shot's current one). While a healthy backend
        has all its slots in use this waits for another thread to release one (so a thread must release
        its slot before it acquires again); ``wait``: seconds to keep trying while every backend is down
        or busy.

        Raises:
            NoBackend: none qualified within ``wait`` (or ``cancelled`` returned True).
        """
        give_up = self.clock() + wait
        while True:
            address = self._try_acquire(prefer)
            if address is not None:
                return address
            if cancelled is not None and cancelled():
                raise NoBackend(self._why_none())
            if not self._full() and self.clock() >= give_up:  # all down or busy: fail (a full one frees up)
                raise NoBackend(self._why_none())
            with self._changed:
                self._changed.wait(timeout=0.5)

    def release(self, address: str) -> None:
        with self._changed:
            state = self.backends[address]
            state.in_flight = max(0, state.in_flight - 1)
            self._changed.notify_all()

    def fail(self, address: str, problem: str) -> None:
        """``address`` failed (down, lost, timed out): skip it for ``retry_after`` seconds."""
        self._skip(address, problem, self.retry_after)

    def backoff(self, address: str, problem: str) -> None:
        """``address`` is busy: skip it for ``busy_pause`` seconds."""
        self._skip(address, problem, self.busy_pause)

    def client(self, address: str, timeout: float) -> Client:
        """A new connection to ``address`` with the pool's token."""
        return Client(address, token=self.token, timeout=timeout)

    # ---- internals -------------------------------------------------------------------------------

    def _try_acquire(self, prefer: str | None) -> str | None:
        tried: set[str] = set()
        while True:
            with self._changed:
                now = self.clock()
                free = [
                    s
                    for s in self.backends.values()
                    if s.in_flight < self.in_flight and s.skip_until <= now and s.address not in tried
                ]
                if not free:
                    return None
                state = min(free, key=lambda s: (s.address != prefer, s.in_flight, s.load))
                state.in_flight += 1  # reserved while its health is checked (outside the lock)
            tried.add(state.address)
            problem = self._check(state)
            if problem is None:
                return state.address
            self.release(state.address)
            self.fail(state.address, problem)

    def _check(self, state: BackendState) -> str | None:
        """None when the backend is healthy (and its load noted), else what is wrong."""
        try:
            with self.client(state.address, self.health_timeout) as client:
                health = client.health(self.health_timeout)
        except BackendError as error:
            return error.message
        if health.get("status") != "ok":
            return f"its status is {health.get('status')!r}"
        queue = health.get("queue", {})
        state.load = int(queue.get("waiting", 0)) + int(queue.get("running", 0))
        return None

    def _full(self) -> bool:
        """Whether a backend that is not skipped has all its slots in use (one will be released)."""
        with self._changed:
            now = self.clock()
            return any(s.in_flight >= self.in_flight and s.skip_until <= now for s in self.backends.values())

    def _skip(self, address: str, problem: str, seconds: float) -> None:
        with self._changed:
            state = self.backends[address]
            state.skip_until = self.clock() + seconds
            state.problem = problem
            self._changed.notify_all()

    def _why_none(self) -> str:
        parts = []
        for state in self.backends.values():
            if state.in_flight >= self.in_flight:
                parts.append(f"{state.address}: {state.in_flight} requests in flight (the limit)")
            else:
                parts.append(f"{state.address}: {state.problem or 'not answering'}")
        return "no backend can take work: " + "; ".join(parts)
