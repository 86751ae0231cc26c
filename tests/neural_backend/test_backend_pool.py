"""The backend pool against real ``rigstyle serve`` processes: preference, the in-flight limit, a dead
address skipped and named, failover, and a failed backend skipped for ``retry_after`` (on an injected
clock) and checked again after it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from serving_helpers import backend_process

from neural_backend.client.pool import BackendPool, NoBackend
from neural_backend.serving.ports import free_port


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[str, str]]:
    """Two real backends (the echo handler: the pool only needs their health)."""
    with backend_process("--echo") as one, backend_process("--echo") as other:
        yield one.address, other.address


@pytest.fixture
def dead() -> str:
    """An address with nothing listening."""
    return f"tcp://127.0.0.1:{free_port()}"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_acquire_prefers_the_given_backend(backends: tuple[str, str]) -> None:
    one, other = backends
    pool = BackendPool([one, other])
    for preferred in (other, one, other):
        address = pool.acquire(prefer=preferred)
        assert address == preferred
        pool.release(address)
    first = pool.acquire(prefer=one)
    second = pool.acquire(prefer=one)  # the preferred one is at its limit: the other one
    assert (first, second) == (one, other)
    assert pool.backends[one].in_flight == pool.backends[other].in_flight == 1


def cancelled() -> bool:
    """For an acquire that would wait for a slot: give up at once."""
    return True


def test_the_in_flight_limit(backends: tuple[str, str]) -> None:
    one, _ = backends
    pool = BackendPool([one], in_flight=1)
    assert pool.acquire() == one
    with pytest.raises(NoBackend) as full:
        pool.acquire(wait=0, cancelled=cancelled)  # a full backend is waited for: give up instead
    assert full.value.code == "no_backend"
    assert one in full.value.message and "1 requests in flight (the limit)" in full.value.message
    pool.release(one)
    assert pool.acquire() == one

    two = BackendPool([one], in_flight=2)
    assert [two.acquire(), two.acquire()] == [one, one]
    with pytest.raises(NoBackend, match="2 requests in flight"):
        two.acquire(cancelled=cancelled)
    two.release(one)
    assert two.acquire() == one


def test_a_waiting_acquire_gets_the_slot_a_release_frees(backends: tuple[str, str]) -> None:
    one, _ = backends
    pool = BackendPool([one])
    assert pool.acquire() == one
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire(wait=60)))
    waiter.start()
    pool.release(one)
    waiter.join(60)
    assert got == [one]
    with pytest.raises(NoBackend):
        pool.acquire(wait=60, cancelled=cancelled)  # gives up at once when cancelled


def test_a_dead_address_is_skipped_and_named(backends: tuple[str, str], dead: str) -> None:
    one, _ = backends
    alone = BackendPool([dead], health_timeout=1.0)
    with pytest.raises(NoBackend) as none:
        alone.acquire()
    assert dead in none.value.message and "no answer" in none.value.message
    assert alone.backends[dead].in_flight == 0  # its reservation was given back

    pool = BackendPool([dead, one], health_timeout=1.0)
    assert pool.acquire(prefer=dead) == one  # failover
    with pytest.raises(NoBackend) as neither:
        pool.acquire(prefer=dead, cancelled=cancelled)
    message = neither.value.message
    assert f"{dead}: no answer" in message and f"{one}: 1 requests in flight" in message


def test_a_failed_backend_is_skipped_for_retry_after_then_checked_again(
    backends: tuple[str, str], dead: str
) -> None:
    one, other = backends
    clock = Clock()
    pool = BackendPool([one, other], retry_after=30.0, busy_pause=2.0, clock=clock)
    pool.fail(one, "connection lost")
    assert pool.acquire(prefer=one) == other
    pool.release(other)
    pool.fail(other, "timed out")
    with pytest.raises(NoBackend) as both:
        pool.acquire(prefer=one)
    assert f"{one}: connection lost" in both.value.message and f"{other}: timed out" in both.value.message

    clock.now += 29.5
    with pytest.raises(NoBackend):
        pool.acquire(prefer=one)
    clock.now += 0.5  # retry_after has passed: both are checked again, and healthy
    assert pool.acquire(prefer=one) == one
    assert pool.acquire(prefer=one) == other

    busy = BackendPool([one], busy_pause=2.0, clock=clock)
    busy.backoff(one, "busy: queue full")
    with pytest.raises(NoBackend, match="queue full"):
        busy.acquire()
    clock.now += 2.0
    assert busy.acquire() == one

    # a dead backend checked again after retry_after fails its health check and is skipped again
    mixed = BackendPool([dead, one], retry_after=30.0, health_timeout=1.0, clock=clock)
    mixed.fail(dead, "connection lost")
    assert mixed.acquire(prefer=dead) == one
    mixed.release(one)
    assert mixed.backends[dead].problem == "connection lost"
    clock.now += 30.0
    assert mixed.acquire(prefer=dead) == one
    state = mixed.backends[dead]
    assert "no answer" in state.problem and state.skip_until == clock.now + 30.0


def test_bad_pools_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BackendPool([])
    with pytest.raises(ValueError, match="repeat"):
        BackendPool(["tcp://a:1", "tcp://a:1"])
    with pytest.raises(ValueError, match="in_flight"):
        BackendPool(["tcp://a:1"], in_flight=0)
