"""double_holders() names every VIP two nodes held in one sample, with when."""

from __future__ import annotations

from mailring.checks.holders import Handover, Sample, double_holders, handovers
from mailring.topology import DEFAULT_TOPOLOGY, load

A, B = "192.168.56.101", "192.168.56.102"


def test_one_holder_per_vip_in_every_sample_is_clean() -> None:
    samples = [Sample(10.0 + i, {A: ("mail01",), B: ()}) for i in range(5)]
    assert double_holders(samples) == []


def test_a_single_sample_with_two_holders_is_named_with_its_time() -> None:
    samples = [Sample(10.0, {A: ("mail01",)}), Sample(10.5, {A: ("mail01", "mail05")}),
               Sample(11.0, {A: ("mail05",)})]
    assert double_holders(samples, since=10.0) == [
        f"VIP {A} held by mail01 and mail05 at once in 1 of 3 samples, from +0.50 s to +0.50 s"]


def test_every_vip_with_a_double_is_listed() -> None:
    samples = [Sample(0.0, {A: ("mail01", "mail02"), B: ("mail01",)}),
               Sample(1.0, {A: ("mail01", "mail03"), B: ("mail02", "mail01")})]
    lines = double_holders(samples)
    assert lines[0].startswith(f"VIP {A} held by mail01 and mail02 and mail03 at once in 2 of 2")
    assert lines[1].startswith(f"VIP {B} held by mail01 and mail02 at once in 1 of 2 samples, from +1.00")


def test_a_handover_forgives_only_its_vip_its_two_nodes_and_its_window() -> None:
    h = Handover(10.0, A, frozenset({"mail01", "mail05"}), 3.0)
    samples = [Sample(11.0, {A: ("mail01", "mail05")}),  # the owner taking its VIP back: forgiven
               Sample(11.5, {A: ("mail01", "mail02")}),  # another node: split brain
               Sample(12.0, {B: ("mail01", "mail05")}),  # another VIP: split brain
               Sample(13.5, {A: ("mail01", "mail05")})]  # after the window: split brain
    lines = double_holders(samples, since=10.0, allowed=[h])
    assert lines == [
        f"VIP {A} held by mail01 and mail02 and mail05 at once in 2 of 4 samples, from +1.50 s to +3.50 s",
        f"VIP {B} held by mail01 and mail05 at once in 1 of 4 samples, from +2.00 s to +2.00 s"]


def test_healing_a_node_hands_its_own_vips_back_from_their_first_backups() -> None:
    topo = load(DEFAULT_TOPOLOGY)
    hs = handovers(topo, 5.0, {"mail01"}, set())
    assert {(h.vip, h.nodes) for h in hs} == {("192.168.56.101", frozenset({"mail05", "mail01"})),
                                              ("192.168.56.102", frozenset({"mail02", "mail01"}))}
    assert all(h.window_s == 3 * topo.advbase and h.t == 5.0 for h in hs)
