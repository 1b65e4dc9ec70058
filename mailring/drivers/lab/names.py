"""Names of everything a lab creates, all derived from the lab's name.

Every namespace is ``mr-<lab>-<node>`` (the bridge's ``mr-<lab>-lan``) and
every folder is ``build/<lab>/...``, so two labs never see each other and a
lab is found and removed by its name alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mailring.errors import InputError

PREFIX = "mr"
REPO = Path(__file__).resolve().parents[3]  # the checkout: PYTHONPATH of what the lab runs
BUILD = REPO / "build"
BRIDGE = "br0"  # the lab's switch, inside the bridge namespace
LAB_NAME = re.compile(r"^(?=.{1,24}$)[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class LabNames:
    lab: str
    build: Path = BUILD

    def __post_init__(self) -> None:
        if not LAB_NAME.match(self.lab):
            raise InputError(f"lab name {self.lab!r}: use up to 24 lower-case letters, digits and "
                             "inner dashes (e.g. mailring, mailring-gw0)")

    @property
    def root(self) -> Path:
        return self.build / self.lab

    @property
    def bundles(self) -> Path:
        return self.root / "debian"

    @property
    def state_file(self) -> Path:
        return self.root / "lab.json"

    @property
    def store(self) -> Path:
        """The shared mail store every mail node mounts (as NFS would be)."""
        return self.root / "mailstore"

    @property
    def tmpfs(self) -> str:
        """The source name of the tmpfs mounted at ``root`` (``labfs``)."""
        return f"{PREFIX}-{self.lab}"

    @property
    def lan(self) -> str:
        return f"{PREFIX}-{self.lab}-lan"

    @property
    def bridge(self) -> str:
        """The bridge every node's port is on (in the ``lan`` namespace)."""
        return BRIDGE

    def netns(self, node: str) -> str:
        return f"{PREFIX}-{self.lab}-{node}"

    def namespaces(self, nodes: Iterable[str], recorded: Iterable[str] = ()) -> list[str]:
        """Every namespace the lab may have made: the bridge's, each node's, and those its
        record names (a lab brought up from another topology had other nodes)."""
        return sorted({self.lan, *(self.netns(n) for n in nodes), *recorded})

    @staticmethod
    def port(node: str) -> str:
        """The node's veth end on the bridge (inside the lab's own namespace)."""
        return f"v-{node}"

    def disk(self, node: str) -> Path:
        """The node's writable layers (etc, var) and its own state, kept across crashes."""
        return self.root / "nodes" / node

    def control(self, node: str) -> Path:
        return self.root / "nodes" / f"{node}.ctl"
