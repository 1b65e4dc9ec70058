"""The FreeBSD dovecot.conf for Dovecot 2.4, read by a real Dovecot 2.4 doveconf.

Debian 12 has Dovecot 2.3 only, so the 2.4 config is checked in a Debian 13
(trixie) chroot made by mmdebstrap with ``dovecot-core`` (Dovecot 2.4.x) from
the Debian registry. The chroot is built once and cached in
``$MAILRING_CACHE`` (default ``/var/cache/mailring``), keyed by its recipe;
later runs only ``chroot ... doveconf -n``. The rendered FreeBSD paths are
mapped into a folder of the chroot, as the 2.3 check maps them into a temp
folder. The test skips only when mmdebstrap cannot reach the registry (or
locally, without root or mmdebstrap); on CI a missing tool fails it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from mailring.errors import InputError
from mailring.render import render
from mailring.topology import load

REPO = Path(__file__).resolve().parents[2]
SUITE = "trixie"
PACKAGES = ("dovecot-core",)
RECIPE = f"mmdebstrap --variant=apt --include={','.join(PACKAGES)} {SUITE}\n"
# mmdebstrap's/apt's words for a registry that cannot be reached
UNREACHABLE = re.compile(r"Could not resolve|Temporary failure resolving|Failed to fetch|"
                         r"Could not connect|Connection (?:refused|timed out)|Network is unreachable")
FREEBSD_PATHS = ("/usr/local/etc/dovecot", "/var/run/dovecot", "/var/db/dovecot", "/var/log",
                 "/var/spool/postfix", "/var/mail/vhosts")


def cache_dir() -> Path:
    return Path(os.environ.get("MAILRING_CACHE", "/var/cache/mailring"))


def build(mmdebstrap: str, dest: Path) -> None:
    """Make the chroot in a sibling folder, then move it in place (no half-built cache)."""
    tmp = dest.with_name(dest.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    res = subprocess.run([mmdebstrap, "--variant=apt", f"--include={','.join(PACKAGES)}", SUITE,
                          str(tmp)], capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        if UNREACHABLE.search(res.stderr + res.stdout):
            pytest.skip(f"the Debian registry cannot be reached, so no {SUITE} chroot with "
                        f"Dovecot 2.4: {UNREACHABLE.search(res.stderr + res.stdout).group(0)}")
        pytest.fail(f"mmdebstrap failed ({res.returncode}):\n{res.stderr[-3000:]}")
    (tmp / ".mailring-recipe").write_text(RECIPE)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


@pytest.fixture
def chroot(need_tool) -> Path:
    """A Debian 13 root with Dovecot 2.4's doveconf, built once and cached."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root; chroot needs it")
        pytest.skip("chroot needs root (CI runs as root)")
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / f"{SUITE}-dovecot"
    with FileLock(str(cache / f"{SUITE}-dovecot.lock"), timeout=1200):
        stamp = dest / ".mailring-recipe"
        if not (stamp.exists() and stamp.read_text() == RECIPE
                and (dest / "usr/bin/doveconf").exists()):
            build(need_tool("mmdebstrap"), dest)
    return dest


@pytest.fixture
def mapped(chroot: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh folder inside the chroot and FreeBSD path -> folder path (as seen in the chroot)."""
    inside = f"/tmp/mailring-{uuid.uuid4().hex[:12]}"
    folder = chroot / inside.lstrip("/")
    mapping = {p: f"{inside}{p}" for p in FREEBSD_PATHS}
    for p in mapping.values():
        (chroot / p.lstrip("/")).mkdir(parents=True)
    try:
        yield folder, mapping
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def doveconf(chroot: Path, mapping: dict[str, str], src: Path) -> subprocess.CompletedProcess[str]:
    """Copy a rendered dovecot.conf (paths mapped) into the chroot; run doveconf -n on it there."""
    text = src.read_text()
    for old, new in mapping.items():
        text = text.replace(old, new)
    conf = chroot / mapping["/usr/local/etc/dovecot"].lstrip("/") / "dovecot.conf"
    conf.write_text(text)
    return subprocess.run(["chroot", str(chroot), "doveconf", "-n", "-c",
                           f"{mapping['/usr/local/etc/dovecot']}/dovecot.conf"],
                          capture_output=True, text=True, timeout=60)


def topology(tmp_path: Path, version: str):
    path = tmp_path / "topology.yaml"
    path.write_text(f"extends: {REPO / 'fixtures' / 'topology.yaml'}\ndovecot_version: {version}\n")
    return load(path)


def test_the_2_4_config_passes_a_real_dovecot_2_4(tmp_path: Path, chroot: Path, mapped) -> None:
    _, mapping = mapped
    topo = topology(tmp_path, '"2.4"')
    assert topo.dovecot_version == "2.4"
    roots = render(topo, "freebsd", tmp_path / "out")
    res = doveconf(chroot, mapping, roots["mail01"] / "usr/local/etc/dovecot/dovecot.conf")
    assert res.returncode == 0 and res.stderr == "", res.stderr
    header = res.stdout.splitlines()[0]
    assert re.match(r"# 2\.4\.\d+", header), header  # a real 2.4 read it
    settings = res.stdout.splitlines()
    for line in ("dovecot_config_version = 2.4.0", "mail_driver = maildir", "mmap_disable = yes",
                 "mail_fsync = always", "mail_nfs_index = yes", "auth_allow_cleartext = yes"):
        assert line in settings, line
    assert "passdb passwd-file {" in settings
    assert f"listen = {topo.node('mail01').address}" in settings
    assert any(ln.strip() == "haproxy = yes" for ln in settings)


def test_the_2_3_config_fails_the_same_check(tmp_path: Path, chroot: Path, mapped) -> None:
    """The check can fail: Dovecot 2.4 refuses the 2.3 template's output."""
    _, mapping = mapped
    roots = render(load(REPO / "fixtures" / "topology.yaml"), "freebsd", tmp_path / "out")
    res = doveconf(chroot, mapping, roots["mail01"] / "usr/local/etc/dovecot/dovecot.conf")
    assert res.returncode != 0 and "dovecot_config_version" in res.stderr, res.stderr


def test_the_topology_picks_the_template_and_the_package(tmp_path: Path) -> None:
    for version, pkg in (("2.3", "dovecot"), ('"2.4"', "dovecot24"), ("2.4", "dovecot24")):
        topo = topology(tmp_path, version)
        roots = render(topo, "freebsd", tmp_path / version.strip('"'))
        conf = (roots["mail02"] / "usr/local/etc/dovecot/dovecot.conf").read_text()
        env = (roots["mail02"] / "usr/local/etc/mailring/node.env").read_text()
        assert ("dovecot_config_version" in conf) == (topo.dovecot_version == "2.4")
        assert f"DOVECOT_SERIES='{topo.dovecot_version}'" in env
        assert re.search(rf"^PACKAGES='.*\b{pkg}\b", env, re.M), env
    assert load(REPO / "fixtures" / "topology.yaml").dovecot_version == "2.3"  # the default


def test_the_debian_lab_refuses_dovecot_2_4(tmp_path: Path) -> None:
    topo = topology(tmp_path, '"2.4"')
    with pytest.raises(InputError, match=r"topology\.yaml: dovecot_version: '2\.4' .* debian"):
        render(topo, "debian", tmp_path / "out")
    assert not (tmp_path / "out" / "mail01").exists()  # nothing half-rendered


def test_a_bad_dovecot_version_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="dovecot_version"):
        topology(tmp_path, '"2.5"')
