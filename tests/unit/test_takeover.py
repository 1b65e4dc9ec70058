"""Takeovers judged by the adverts the client heard: probe.py's advert parser, the watch's
lines, and ``mailring.checks.takeover`` against CARP's bound on the pinned topology."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys

import pytest
from probe_servers import PROBE

from mailring import probe
from mailring.adverts import Advert, advert_lines, parse_adverts
from mailring.checks.takeover import addresses_of, crash_sources, takeovers_of
from mailring.client import ProbeError, Tail, probe_request
from mailring.speakers import SPEAKERS
from mailring.topology import load
from tests.unit.pinned import TOPOLOGY

KEEPALIVED, UCARP = SPEAKERS["keepalived"], SPEAKERS["ucarp"]


def ip_packet(src: str, payload: bytes, proto: int = 112, ihl: int = 5) -> bytes:
    options = b"\x01" * (4 * (ihl - 5))  # NOPs
    head = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0xC0, 4 * ihl + len(payload), 0, 0, 255, proto, 0,
                       socket.inet_aton(src), socket.inet_aton("224.0.0.18"))
    return head + options + payload


def test_a_vrrp3_advert_gives_its_source_vhid_and_priority() -> None:
    vrrp = struct.pack("!BBBBHH4s", 0x31, 3, 255, 1, 100, 0, socket.inet_aton("192.168.56.103"))
    assert probe.parse_advert(ip_packet("192.168.56.12", vrrp)) == \
        {"src": "192.168.56.12", "vhid": 3, "version": 3, "prio": 255}


def test_a_carp_advert_behind_ip_options_gives_its_vhid_and_advskew() -> None:
    carp = struct.pack("!BBBBBBH", 0x21, 7, 20, 7, 0, 1, 0) + bytes(28)
    assert probe.parse_advert(ip_packet("192.168.56.14", carp, ihl=6)) == \
        {"src": "192.168.56.14", "vhid": 7, "version": 2, "prio": 20}


@pytest.mark.parametrize("packet", [
    b"",
    ip_packet("192.168.56.12", bytes(8), proto=17),  # not protocol 112
    ip_packet("192.168.56.12", bytes(4)),  # a header cut short
    b"\x60" + bytes(40),  # IPv6
], ids=["empty", "udp", "short", "ipv6"])
def test_anything_but_an_advert_is_none(packet: bytes) -> None:
    assert probe.parse_advert(packet) is None


def test_an_advert_watch_without_its_local_address_is_a_bad_request() -> None:
    res = subprocess.run([sys.executable, PROBE, probe_request({"kind": "adverts"})],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert "'local'" in json.loads(res.stdout)["error"]


def test_the_watch_lines_say_it_listens_and_what_it_heard() -> None:
    lines = [{"listening": True, "t": 1.0},
             {"t": 2.0, "src": "192.168.56.12", "vhid": 3, "version": 3, "prio": 255}]
    out = "".join(json.dumps(x) + "\n" for x in lines)
    assert advert_lines("client01", out, partial=True) == [None, Advert(2.0, "192.168.56.12", 3, 3, 255)]
    assert advert_lines("client01", "", partial=True) == []  # not listening yet
    done = out + json.dumps({"done": True, "attempts": 2}) + "\n"
    assert parse_adverts("client01", done) == [Advert(2.0, "192.168.56.12", 3, 3, 255)]
    with pytest.raises(ProbeError, match="without its done line"):
        parse_adverts("client01", out)


def adverts(src: str, vhid: int, start: float, end: float, advbase: float = 1.0) -> list[Advert]:
    n = int(round((end - start) / advbase))
    return [Advert(start + k * advbase, src, vhid, 3, 255) for k in range(n + 1)]


@pytest.fixture(scope="module")
def topo():
    return load(TOPOLOGY)


def heard_for_crash(topo, gap_s: float) -> tuple[list[Advert], float]:
    """mail02 adverts vhids 3 and 4 until 10.4; mail01 and mail03 take them over ``gap_s`` after."""
    addr = {n: str(topo.node(n).address) for n in ("mail01", "mail02", "mail03")}
    heard = adverts(addr["mail02"], 3, 0.4, 10.4) + adverts(addr["mail02"], 4, 0.1, 10.1)
    heard += adverts(addr["mail01"], 3, 10.4 + gap_s, 20.4) + adverts(addr["mail03"], 4, 10.1 + gap_s, 20.1)
    return sorted(heard, key=lambda a: a.t), 10.5


def test_a_takeover_at_carps_bound_after_the_last_advert_passes(topo) -> None:
    bound = topo.failover_bound_s("192.168.56.103", {"mail02"})
    heard, crash = heard_for_crash(topo, bound + 0.01)
    rows = takeovers_of(heard, topo, "mail02", ["192.168.56.103", "192.168.56.104"], crash, KEEPALIVED)
    assert [(r.vip, r.old, r.new) for r in rows] == \
        [("192.168.56.103", "mail02", "mail01"), ("192.168.56.104", "mail02", "mail03")]
    assert [r.last_old for r in rows] == [10.4, 10.1]
    assert all(r.problem() is None for r in rows), [r.problem() for r in rows]
    assert rows[0].gap_s == pytest.approx(bound + 0.01)


@pytest.mark.parametrize("slow_s, fails", [(1.0, True), (-1.0, True), (0.2, False), (-0.2, False)])
def test_a_takeover_one_advbase_late_or_early_fails_with_keepalived(topo, slow_s: float, fails: bool) -> None:
    bound = topo.failover_bound_s("192.168.56.103", {"mail02"})
    heard, crash = heard_for_crash(topo, bound + slow_s)
    row = takeovers_of(heard, topo, "mail02", ["192.168.56.103"], crash, KEEPALIVED)[0]
    problem = row.problem()
    assert (problem is not None) == fails, problem
    if fails:
        assert "mail01 adverted" in problem and "CARP's bound is 3078 ms" in problem


def test_ucarps_tick_is_allowed_two_advbase_late(topo) -> None:
    bound = topo.failover_bound_s("192.168.56.103", {"mail02"})
    heard, crash = heard_for_crash(topo, bound + 1.9)
    assert takeovers_of(heard, topo, "mail02", ["192.168.56.103"], crash, UCARP)[0].problem() is None
    heard, crash = heard_for_crash(topo, bound + 2.5)
    assert takeovers_of(heard, topo, "mail02", ["192.168.56.103"], crash, UCARP)[0].problem() is not None


def test_a_watch_that_heard_nobody_fails_and_says_why(topo) -> None:
    rows = takeovers_of([], topo, "mail02", ["192.168.56.103"], 10.5, KEEPALIVED)
    assert "heard no advert from mail02 before mail01 took over" in rows[0].problem()
    heard = adverts(str(topo.node("mail02").address), 3, 0.4, 10.4)
    rows = takeovers_of(heard, topo, "mail02", ["192.168.56.103"], 10.5, KEEPALIVED)
    assert "heard no advert from mail01 after mail02 crashed" in rows[0].problem()


def test_a_tail_parses_each_complete_line_once_as_the_output_grows() -> None:
    seen: list[str] = []

    def parse(text: str) -> list[str]:
        seen.append(text)
        return text.splitlines()

    tail = Tail(parse)
    assert tail.update("a\nb") == ["a"]
    assert tail.update("a\nb\nc\n") == ["a", "b", "c"]
    assert tail.update("a\nb\nc\n") == ["a", "b", "c"]
    assert seen == ["a\n", "b\nc\n"]


def test_an_emulated_guest_widens_both_sides(topo) -> None:
    bound = topo.failover_bound_s("192.168.56.103", {"mail02"})
    heard, crash = heard_for_crash(topo, bound + 2.45)  # the VM smoke's 5522 ms
    assert takeovers_of(heard, topo, "mail02", ["192.168.56.103"], crash, UCARP)[0].problem() is not None
    assert takeovers_of(heard, topo, "mail02", ["192.168.56.103"], crash, UCARP, 2.0)[0].problem() is None
    heard, crash = heard_for_crash(topo, bound - 1.0)
    assert takeovers_of(heard, topo, "mail02", ["192.168.56.103"], crash, UCARP, 2.0)[0].problem() is None
    heard, crash = heard_for_crash(topo, bound + 4.5)
    assert takeovers_of(heard, topo, "mail02", ["192.168.56.103"], crash, UCARP, 2.0)[0].problem() is not None


def test_a_crash_is_heard_from_the_owner_and_each_next_owner() -> None:
    topo = load(TOPOLOGY)
    node = topo.mail_nodes[1].name
    sources, owned = crash_sources(topo, node)
    mine = topo.vips_owned_by(node)
    heirs = {topo.expected_owner(str(v.address), {node}) for v in mine}
    assert len(heirs) == 2 and node not in heirs  # the ring: two different neighbours
    assert set(sources) == addresses_of(topo, node).union(*(addresses_of(topo, h) for h in heirs))
    assert owned == {v.vhid: addresses_of(topo, node) for v in mine} and len(owned) == 2
