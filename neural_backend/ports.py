"""Loopback address checks and free-port helpers (no torch, so the demo orchestrator can use them)."""

from __future__ import annotations

import ipaddress
import socket


class BindError(Exception):
    """An address the server must not or cannot bind."""


def check_bind_address(host: str) -> None:
    """Refuse anything but loopback: the protocol has no authentication yet."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        raise BindError(f"cannot resolve host {host!r}") from None
    # An IPv4/IPv6 sockaddr starts with the address as text; anything else is not a loopback address.
    if not all(isinstance(a, str) and ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise BindError(
            f"refusing to bind {host!r}: only loopback addresses are allowed (no authentication yet)"
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
