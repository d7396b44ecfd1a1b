"""Fail any attempt of this process to reach the network: only local sockets (unix, loopback) may connect.

It guards the Python side (the logger clients); helper processes they start (wandb's service)
are kept offline by their environment.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest


def _local(family: int, address: Any) -> bool:
    if family == socket.AF_UNIX:
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: resolving it would already be a network access
        return False


class NetworkAttempted(AssertionError):
    """The code under test tried to connect to a non-local address."""


@contextlib.contextmanager
def local_sockets_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Refuse non-local connections for the duration; yields the list of refused addresses."""
    refused: list[Any] = []
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded(method: Any) -> Any:
        def attempt(self: socket.socket, address: Any) -> Any:
            if not _local(self.family, address):
                refused.append(address)
                raise NetworkAttempted(f"a test tried to reach {address!r}")
            return method(self, address)

        return attempt

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))
    yield refused
