"""CARP speakers: keepalived's VRRPv3 priorities keep CARP's bound; the margins stay tight."""

from __future__ import annotations

import pytest

from mailring.checks.timelines import failback_allowed_s, margin_s
from mailring.errors import InputError
from mailring.speakers import ENV, SPEAKERS, lab_speaker, vrrp_master_down_s, vrrp_priority
from mailring.topology import DEFAULT_TOPOLOGY, load

RING = load(DEFAULT_TOPOLOGY)


@pytest.mark.parametrize("skew", range(2, 241))
def test_vrrp_master_down_time_is_carps_bound_with_advbase_1(skew) -> None:
    assert vrrp_master_down_s(vrrp_priority(skew, 1, owner=False), 1) == pytest.approx(3 + skew / 256)


@pytest.mark.parametrize("advbase", [2, 3, 7])
@pytest.mark.parametrize("skew", [20, 100, 240])
def test_vrrp_rounds_the_skew_to_a_256th_of_advbase(advbase, skew) -> None:
    prio = vrrp_priority(skew, advbase, owner=False)
    assert 1 <= prio <= 254
    assert abs(vrrp_master_down_s(prio, advbase) - (3 * advbase + skew / 256)) <= advbase / 512


def test_the_owner_has_vrrps_owner_priority() -> None:
    assert vrrp_priority(0, 1, owner=True) == 255
    assert vrrp_priority(1, 1, owner=False) == 254  # never ties with the owner


def test_keepalived_margin_is_less_than_one_advbase() -> None:
    """A failover one advbase slower than CARP's bound must fail the crash test."""
    assert margin_s(RING, SPEAKERS["keepalived"]) < RING.advbase
    assert margin_s(RING, SPEAKERS["ucarp"]) > 2 * RING.advbase  # ucarp's tick and libpcap


def test_the_lab_speaker_is_the_flavours_unless_the_environment_picks(monkeypatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert lab_speaker().name == "keepalived"
    monkeypatch.setenv(ENV, "ucarp")
    assert lab_speaker().name == "ucarp"
    monkeypatch.setenv(ENV, "carpd")
    with pytest.raises(InputError, match="keepalived or ucarp"):
        lab_speaker()


def test_failback_allowance_is_carps_bound_unless_one_probe_attempt_is_longer() -> None:
    bound = RING.failover_bound_s(str(RING.vips[0].address), {RING.vips[0].owner})
    assert failback_allowed_s(bound, hz=20, timeout_s=0.5) == bound  # the lab: the bound
    assert failback_allowed_s(bound, hz=2, timeout_s=2.0) == pytest.approx(3.25)  # the VMs
    assert failback_allowed_s(bound, hz=2, timeout_s=2.0) < bound + 0.5
