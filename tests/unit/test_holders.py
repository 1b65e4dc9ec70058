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
        f"VIP {A} held by mail01 and mail02 and mail05 at once in 2 of 4 samples, from +1.50 s to +3.50 s"
        " (a handover between mail01 and mail05 was forgiven from +0.00 s to +3.00 s)",
        f"VIP {B} held by mail01 and mail05 at once in 1 of 4 samples, from +2.00 s to +2.00 s"]


def test_a_late_takeover_is_forgiven_for_its_grace_after_the_new_holder_is_first_seen() -> None:
    # the owner's CARP came back 10 s after the heal (a VM's systemd restarting ucarp)
    h = Handover(10.0, A, frozenset({"mail01", "mail05"}), 3.0, to="mail05", grace_s=3.0)
    samples = [Sample(11.0, {A: ("mail01",)}),
               Sample(20.0, {A: ("mail01", "mail05")}),  # the takeover: forgiven
               Sample(22.5, {A: ("mail01", "mail05")}),  # the old holder not yet let go: forgiven
               Sample(23.5, {A: ("mail01", "mail05")}),  # past the grace: split brain
               Sample(24.0, {A: ("mail05",)})]
    assert double_holders(samples, since=10.0, allowed=[h]) == [
        f"VIP {A} held by mail01 and mail05 at once in 1 of 5 samples, from +13.50 s to +13.50 s"
        " (a handover between mail01 and mail05 was forgiven from +0.00 s to +13.00 s,"
        " mail05 first seen with it at +10.00 s)"]
    assert double_holders(samples[:3], since=10.0, allowed=[h]) == []


def test_the_grace_counts_from_the_first_sample_with_the_new_holder_not_the_last() -> None:
    # the new holder took the VIP at once and dropped it; a double 8 s later is no handover
    h = Handover(10.0, A, frozenset({"mail01", "mail05"}), 3.0, to="mail05", grace_s=3.0)
    samples = [Sample(10.5, {A: ("mail05",)}), Sample(11.0, {A: ("mail01",)}),
               Sample(18.5, {A: ("mail01", "mail05")})]
    assert double_holders(samples, since=10.0, allowed=[h])[0].startswith(
        f"VIP {A} held by mail01 and mail05 at once in 1 of 3 samples, from +8.50 s")


def test_healing_a_node_hands_its_own_vips_back_from_their_first_backups() -> None:
    topo = load(DEFAULT_TOPOLOGY)
    hs = handovers(topo, 5.0, {"mail01"}, set())
    assert {(h.vip, h.nodes) for h in hs} == {("192.168.56.101", frozenset({"mail05", "mail01"})),
                                              ("192.168.56.102", frozenset({"mail02", "mail01"}))}
    assert all(h.window_s == 3 * topo.advbase and h.t == 5.0 for h in hs)
    assert {h.to for h in hs} == {"mail01"}
    assert all(h.grace_s == 3 * topo.advbase for h in hs)


def test_a_drivers_late_adverts_lengthen_only_the_grace_after_the_takeover() -> None:
    topo = load(DEFAULT_TOPOLOGY)
    hs = handovers(topo, 5.0, {"mail01"}, set(), done=7.0, late_s=2.0)
    assert all(h.window_s == 2.0 + 3 * topo.advbase and h.grace_s == 3 * topo.advbase + 2.0 for h in hs)
