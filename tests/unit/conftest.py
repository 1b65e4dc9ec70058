"""Helpers for unit tests: real tools are required in CI and skipped elsewhere."""

from __future__ import annotations

import os
import shutil

import pytest


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
