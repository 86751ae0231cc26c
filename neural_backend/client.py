"""Blocking Python client for the RigStyle backend. Imports no torch (Blender and other DCCs use it)."""

from __future__ import annotations

import itertools
import time
from typing import Any

import zmq

from .passes import FramePasses, RefinedFrame
from .protocol import DEFAULT_LIMITS, Limits, Message, ProtocolError, decode, encode

DEFAULT_ADDRESS = "tcp://127.0.0.1:7557"


class BackendError(Exception):
    """The backend answered with an error. ``code`` is the protocol's stable error code."""

    def __init__(self, code: str, message: str):
        super().__init__(f"backend error [{code}]: {message}")
        self.code = code
        self.message = message


class BackendTimeout(BackendError):
    """No answer within the client's timeout (the backend is down, stuck or still starting)."""

    def __init__(self, address: str, seconds: float, what: str):
        super().__init__("timeout", f"no answer from {address} to {what} within {seconds:g} s")


class Client:
    """One connection to a backend. Not thread-safe: use one client per thread.

    Args:
        address: ZeroMQ endpoint, e.g. ``tcp://127.0.0.1:7557``.
        timeout: seconds to wait for each answer.
    """

    def __init__(
        self, address: str = DEFAULT_ADDRESS, timeout: float = 120.0, limits: Limits = DEFAULT_LIMITS
    ):
        self.address = address
        self.timeout = timeout
        self.limits = limits
        self._ids = itertools.count(1)
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._socket: zmq.Socket | None = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def health(self, timeout: float | None = None) -> dict[str, Any]:
        """Ask whether the backend is up; returns its status fields (generator, resolution, ...)."""
        return dict(self.request(Message("health"), timeout=timeout).fields)

    def refine_frame(self, passes: FramePasses, timeout: float | None = None) -> RefinedFrame:
        """Send one frame's passes and wait for the refined frame."""
        reply = self.request(passes.to_message(), timeout=timeout)
        try:
            return RefinedFrame.from_message(reply)
        except ProtocolError as exc:
            raise BackendError("bad_reply", f"result for frame {passes.frame}: {exc.message}") from None

    def end_shot(self, shot: str, timeout: float | None = None) -> None:
        """Tell the backend a shot is finished so it can drop the shot's temporal state."""
        self.request(Message("end_shot", fields={"shot": shot}), timeout=timeout)

    def request(self, message: Message, timeout: float | None = None) -> Message:
        """Send ``message`` with a fresh id and return the matching reply; error replies raise."""
        timeout = self.timeout if timeout is None else timeout
        request_id = next(self._ids)
        message = Message(message.type, request_id, message.fields, message.tensors)
        socket = self._connect()
        socket.send_multipart(encode(message), copy=False)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not socket.poll(int(remaining * 1000) + 1):
                # Drop the socket so a late answer cannot be mistaken for the next request's.
                self.close()
                raise BackendTimeout(self.address, timeout, message.type)
            reply = decode(socket.recv_multipart(copy=True), self.limits)
            if reply.id != request_id and not (reply.type == "error" and reply.id == 0):
                continue  # a stale answer to an earlier, abandoned request
            if reply.type == "error":
                raise BackendError(str(reply.fields.get("code")), str(reply.fields.get("message")))
            return reply

    def _connect(self) -> zmq.Socket:
        if self._socket is None:
            socket = self._context.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            socket.connect(self.address)
            self._socket = socket
        return self._socket


def wait_until_healthy(
    address: str, timeout: float, poll: float = 0.5, is_alive=lambda: True
) -> dict[str, Any]:
    """Poll ``health`` until the backend answers or ``timeout`` passes.

    ``is_alive`` lets a caller that started the backend stop waiting as soon as the process died.
    """
    deadline = time.monotonic() + timeout
    with Client(address) as client:
        while True:
            try:
                return client.health(timeout=poll)
            except BackendTimeout:
                if not is_alive():
                    raise BackendError("not_running", f"backend at {address} exited while starting") from None
                if time.monotonic() > deadline:
                    raise
