"""The lab's tmpfs is told apart by its place and its source name, from mountinfo's text."""

from __future__ import annotations

from pathlib import Path

from mailring.drivers.lab import labfs
from mailring.drivers.lab.names import LabNames

MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
301 22 0:77 / /work/build/gw0 rw,relatime - tmpfs mr-gw0 rw,mode=755
302 22 0:78 / /work/build/other rw,relatime shared:9 - tmpfs tmpfs rw
303 22 0:79 / /work/build/gw1 rw,relatime - tmpfs mr-gw3 rw
304 22 0:80 / /work/my\\040build/gw1 rw,relatime - tmpfs mr-gw1 rw
"""


def lab(name: str, build: str = "/work/build") -> LabNames:
    return LabNames(name, build=Path(build))


def test_only_the_labs_own_tmpfs_at_its_folder_counts() -> None:
    assert labfs.mounted(lab("gw0"), MOUNTINFO)
    assert not labfs.mounted(lab("gw1"), MOUNTINFO)  # another lab's tmpfs at its folder
    assert not labfs.mounted(lab("other"), MOUNTINFO)  # a tmpfs, not the lab's
    assert not labfs.mounted(lab("gw2"), MOUNTINFO)  # nothing mounted
    assert labfs.mounted(lab("gw1", "/work/my build"), MOUNTINFO)  # escaped space
