"""Loopback address checks and free-port helpers (no torch, so the demo orchestrator can use them)."""

from __future__ import annotations

import ipaddress
import socket


class BindError(Exception):
    """An address the server must not or cannot bind."""


MIN_TOKEN_LENGTH = 16


def check_endpoint(address: str, token: str | None = None) -> None:
    """Refuse a ZeroMQ endpoint the server must not bind: non-loopback TCP without a token.

    ``ipc://`` endpoints are local by nature (the server makes the socket file owner-only).

    Raises:
        BindError: naming the endpoint and why.
    """
    if address.startswith("ipc://"):
        if len(address) <= len("ipc://"):
            raise BindError(f"ipc endpoint {address!r} names no path")
        return
    if not address.startswith("tcp://") or ":" not in address[len("tcp://") :]:
        raise BindError(f"unsupported endpoint {address!r}: use tcp://HOST:PORT or ipc:///path")
    host = address[len("tcp://") :].rsplit(":", 1)[0].strip("[]")
    check_bind_address(host, token)


def check_bind_address(host: str, token: str | None = None) -> None:
    """Refuse a non-loopback host unless a token of at least 16 characters authenticates every request."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise BindError(f"the token must be at least {MIN_TOKEN_LENGTH} characters long")
    if host == "*":
        host = "0.0.0.0"
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        raise BindError(f"cannot resolve host {host!r}") from None
    # An IPv4/IPv6 sockaddr starts with the address as text; anything else is not a loopback address.
    loopback = all(
        isinstance(a, str) and ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses
    )
    if not loopback and token is None:
        raise BindError(
            f"refusing to bind {host!r} without a token: only loopback addresses may be bound without "
            "one; set --token or RIGSTYLE_TOKEN"
        )


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
