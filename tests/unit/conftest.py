"""Helpers for unit tests: real tools are required in CI and skipped elsewhere; the probe's
throwaway servers (``serve``) and a port that refuses (``refused_port``)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Iterator

import pytest
from probe_servers import Handler, Server  # tests/unit is on sys.path (pytest's rootdir import)


@pytest.fixture
def need_tool():
    """need_tool(name) -> path of a system tool (skip locally, fail on CI when missing)."""
    return find_tool


def find_tool(name: str) -> str:
    """Path of a system tool; skip if absent, but fail under CI where setup installs it."""
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing on CI: scripts/setup.sh must install it")
        pytest.skip(f"{name} is not installed (scripts/setup.sh installs it)")
    return path


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Server]]:
    servers: list[Server] = []

    def start(handler: Handler) -> Server:
        servers.append(Server(handler))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port that is bound but never listens: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]
