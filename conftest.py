"""Loads the mailring pytest plugin (options, markers, fixtures)."""

pytest_plugins = ["mailring.pytest_plugin"]
