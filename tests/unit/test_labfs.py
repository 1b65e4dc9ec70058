"""The lab's tmpfs is told apart by its place and its source name, from mountinfo's text."""

from __future__ import annotations

from pathlib import Path

from mailring.drivers.lab import labfs

MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
301 22 0:77 / /work/build/gw0 rw,relatime - tmpfs mr-gw0 rw,mode=755
302 22 0:78 / /work/build/other rw,relatime shared:9 - tmpfs tmpfs rw
303 22 0:79 / /work/my\\040build/gw1 rw,relatime - tmpfs mr-gw1 rw
"""


def test_only_the_labs_own_tmpfs_at_its_folder_counts() -> None:
    assert labfs.mounted(Path("/work/build/gw0"), "gw0", MOUNTINFO)
    assert not labfs.mounted(Path("/work/build/gw0"), "gw1", MOUNTINFO)  # another lab's name
    assert not labfs.mounted(Path("/work/build/other"), "other", MOUNTINFO)  # a tmpfs, not ours
    assert not labfs.mounted(Path("/work/build/gw2"), "gw2", MOUNTINFO)  # nothing mounted
    assert labfs.mounted(Path("/work/my build/gw1"), "gw1", MOUNTINFO)  # escaped space
