"""A split-brain report quotes the CARP logs of the nodes involved, near the double.

``checks.carplog`` reads the three stamps the speakers write (the Debian guests'
ucarp, the lab's keepalived, FreeBSD's syslog) and picks the lines near a moment;
``HolderWatch.check`` puts them into its CheckError, so a VM flake on a CI machine
whose run folder is out of reach still says what the speakers did. The watch runs
against a stand-in cluster: no lab, no root.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from mailring.checks import CheckError
from mailring.checks.carplog import near, stamp
from mailring.checks.holders import Sample
from mailring.errors import InputError
from mailring.polling.holders import HolderWatch

T0 = datetime(2026, 12, 3, 20, 17, 57).timestamp()  # local time, as the speakers stamp


def test_each_speakers_stamp_is_read_and_a_line_without_one_is_not() -> None:
    assert stamp("2026-12-03T20:17:57.500000: [WARNING] Switching to state: MASTER", 2026) == T0 + 0.5
    assert stamp("Thu Dec  3 20:17:57 2026: (VI_5) Entering MASTER STATE", 2026) == T0
    assert stamp("Dec  3 20:17:57 mail01 kernel: carp: 5@em1: BACKUP -> MASTER", 2026) == T0
    assert stamp("Sending gratuitous ARP on eth0", 2026) is None
    assert stamp("2026-13-03T20:17:57: a month that is not one", 2026) is None


def test_lines_near_the_moment_are_kept_in_order_and_unstamped_ones_follow_their_line() -> None:
    log = "\n".join([
        "2026-12-03T20:17:40.000000: long before",
        "2026-12-03T20:17:55.000000: just before",
        "  a continuation of it",
        "2026-12-03T20:17:58.000000: during",
        "2026-12-03T20:18:10.000000: long after",
    ])
    assert near(log, T0, T0 + 1) == ["2026-12-03T20:17:55.000000: just before", "  a continuation of it",
                                     "2026-12-03T20:17:58.000000: during"]


def test_of_too_many_lines_the_nearest_to_the_double_are_kept() -> None:
    log = "\n".join(f"2026-12-03T20:17:{s:02d}.000000: line {s}" for s in range(52, 60))
    assert [line.split()[-1] for line in near(log, T0, T0, limit=3)] == ["56", "57", "58"]


def test_a_log_stamped_nowhere_near_gives_its_last_lines_and_says_so() -> None:
    log = "\n".join(f"2020-01-01T00:00:{s:02d}: old {s}" for s in range(30))
    lines = near(log, T0, T0, limit=2)
    assert "nothing stamped within 5 s" in lines[0] and [x.split()[-1] for x in lines[1:]] == ["28", "29"]
    assert near("", T0, T0) == []


class Cluster:
    """Enough of a cluster for HolderWatch.check: logs by (node, service)."""
    HOLDER_SAMPLES = 1

    def __init__(self, logs: dict[tuple[str, str], str | Exception]) -> None:
        self.logs = logs

    def log_text(self, node: str, service: str) -> str:
        got = self.logs.get((node, service), InputError(f"no log for {service!r}"))
        if isinstance(got, Exception):
            raise got
        return got


def test_a_split_brain_failure_quotes_the_carp_logs_of_both_holders_near_the_double() -> None:
    cluster = Cluster({
        ("mail01", "carp"): "2026-12-03T20:17:57.100000: [WARNING] Switching to state: MASTER\n"
                            "2026-12-03T20:19:00.000000: [WARNING] much later",
        ("mail03", "carp"): "2026-12-03T20:17:56.900000: [WARNING] Putting MASTER down - preemption",
        ("mail03", "carp-backup"): OSError("ssh: connection reset"),
    })
    watch = HolderWatch(cluster)  # type: ignore[arg-type]
    watch.started = T0 - 10
    watch.samples = [Sample(T0 - 1, {"192.168.56.106": ("mail03",)}),
                     Sample(T0, {"192.168.56.106": ("mail01", "mail03")}),
                     Sample(T0 + 1, {"192.168.56.106": ("mail03",)})]
    with pytest.raises(CheckError) as failed:
        watch.check()
    text = str(failed.value)
    assert text.startswith("split brain: VIP 192.168.56.106 held by mail01 and mail03 at once")
    head = "carp log near 20:17:57:\n    2026-12-03T20:17:5"
    assert f"mail01 {head}7.100000: [WARNING] Switching to state: MASTER" in text
    assert "much later" not in text
    assert f"mail03 {head}6.900000: [WARNING] Putting MASTER down" in text
    assert "mail03 carp-backup log unreadable: ssh: connection reset" in text
    assert "mail01 carp-backup" not in text  # the driver has no such log: left out


def test_a_watch_without_a_double_reads_no_log() -> None:
    watch = HolderWatch(Cluster({}))  # type: ignore[arg-type]
    watch.started = T0
    watch.samples = [Sample(T0, {"192.168.56.106": ("mail03",)})]
    assert watch.check() == [] and watch.carp_logs() == ""


def test_the_logs_of_a_fuzz_step_cover_its_own_doubles_only() -> None:
    """The fuzzer judges each step from its own start: a double of an earlier step, forgiven
    there, is not quoted again."""
    cluster = Cluster({(n, "carp"): f"2026-12-03T20:17:57.000000: {n} took it" for n in ("mail01", "mail02",
                                                                                         "mail03")})
    watch = HolderWatch(cluster)  # type: ignore[arg-type]
    watch.started = T0 - 60
    watch.samples = [Sample(T0 - 30, {"192.168.56.101": ("mail01", "mail02")}),
                     Sample(T0, {"192.168.56.106": ("mail03", "mail02")})]
    quoted = watch.carp_logs(since=T0 - 1)
    assert "mail03 carp log" in quoted and "mail02 carp log" in quoted
    assert "mail01" not in quoted
    assert "mail01 carp log" in watch.carp_logs()  # every sample: the earlier double too
