"""The topology file: validation messages, and the CARP ownership model."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from mailring.cli.main import main
from mailring.errors import TopologyError
from mailring.topology import DEFAULT_TOPOLOGY, load, validate
from tests.unit.pinned import TOPOLOGY as PINNED

FIXTURES = PINNED.parent  # the pinned copies: these tests assert their addresses
RING = load(PINNED)
MAIL = [n.name for n in RING.mail_nodes]


def write(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(PINNED.read_text())
    edit(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_fixture_is_the_articles_cluster() -> None:
    assert validate(DEFAULT_TOPOLOGY) == []
    assert len(RING.nodes) == 6 and len(RING.mail_nodes) == 5
    assert RING.client.name == "client01"
    assert len(RING.vips) == 10 and len({v.vhid for v in RING.vips}) == 10
    assert all(len(RING.vips_owned_by(n)) == 2 for n in MAIL)
    assert len(RING.dns.names) == 8 and RING.dns.ttl == 900
    assert all(len(RING.dns.records[n]) == 10 for n in RING.dns.names)
    assert RING.users[0].address == "alice@ring.test"


BROKEN = [
    (lambda d: d["vips"][1].update(vhid=1), "vips[1].vhid", "already used by vips[0]"),
    (lambda d: d["nodes"]["mail02"].update(address="192.168.56.11"), "nodes.mail02.address",
     "already used"),
    (lambda d: d["nodes"]["mail02"].update(address="10.9.9.9"), "nodes.mail02.address",
     "not a host address in network"),
    (lambda d: d["vips"][0].update(address="192.168.57.5"), "vips[0].address", "not a host address"),
    (lambda d: d["vips"][0].update(owner="mail09"), "vips[0].owner", "is not a node"),
    (lambda d: d["vips"][0].pop("owner"), "vips[0].owner", "Field required"),
    (lambda d: d["vips"][3].update(backups={}), "vips[3].backups", "no backup"),
    (lambda d: d["vips"][3]["backups"].update(mail04=20), "vips[3].backups.mail04", "ties with mail03"),
    (lambda d: d["services"].update(smtps={"port": 465, "protocol": "smtp", "daemon": "postfix"}),
     "services.smtps", "Input should be"),
    (lambda d: d["services"]["imap"].update(port=70000), "services.imap.port", "less than or equal"),
    (lambda d: d["services"]["pop3s"].update(port=25), "services.pop3s.port", "already used"),
    (lambda d: d["dns"]["names"].append({"extra": []}), "dns.names[8].extra", "no VIP"),
    (lambda d: d["nodes"]["mail01"].update(adress="x"), "nodes.mail01.adress", "remove it"),
    (lambda d: d["users"][0].update(address="alice@elsewhere.test"), "users[0].address",
     "mail domain"),
]


@pytest.mark.parametrize(("edit", "field", "words"), BROKEN, ids=[b[1] for b in BROKEN])
def test_broken_topology_is_one_line_naming_file_and_field(tmp_path, capsys, edit, field, words):
    path = write(tmp_path, edit)
    errors = validate(path)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{path}: {field}: "), errors[0]
    assert words in errors[0]
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0]
    with pytest.raises(TopologyError):
        load(path)


def test_missing_and_unparsable_files_are_one_line(tmp_path) -> None:
    assert "file not found" in validate(tmp_path / "nope.yaml")[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [\n")
    assert "not valid YAML" in validate(bad)[0]


def test_validate_prints_summary(capsys) -> None:
    assert main(["validate", str(DEFAULT_TOPOLOGY)]) == 0
    out = capsys.readouterr().out
    assert "6 nodes" in out and "10 VIPs" in out and "8 DNS names" in out
    assert "mail05 (20)" in out  # the first VIP's left neighbour backs it


# -- the ownership model -------------------------------------------------------
failed_sets = st.sets(st.sampled_from(MAIL))


@given(failed_sets)
def test_live_owners_keep_their_vips_and_dead_nodes_hold_none(failed) -> None:
    owners = RING.expected_owners(failed)
    for vip in RING.vips:
        owner = owners[str(vip.address)]
        if vip.owner not in failed:
            assert owner == vip.owner
        assert owner not in failed
        if len(failed) < len(MAIL):
            assert owner is not None  # every candidate backs every VIP here


@given(failed_sets.filter(lambda f: len(f) < len(MAIL)))
def test_no_live_node_holds_more_than_its_share_plus_one(failed) -> None:
    load_ = RING.load(failed)
    assert sum(load_.values()) == len(RING.vips)
    assert max(load_.values()) <= RING.load_bound(len(load_))


def test_load_bound_holds_for_every_failure_set_exhaustively() -> None:
    for k in range(len(MAIL)):
        for failed in itertools.combinations(MAIL, k):
            load_ = RING.load(failed)
            assert max(load_.values()) <= RING.load_bound(len(load_)), (failed, load_)


@pytest.mark.parametrize("dead", MAIL)
def test_single_failure_splits_the_two_vips_between_both_neighbours(dead) -> None:
    i = MAIL.index(dead)
    left, right = MAIL[i - 1], MAIL[(i + 1) % len(MAIL)]
    first, second = RING.vips_owned_by(dead)
    assert RING.expected_owner(first, {dead}) == left
    assert RING.expected_owner(second, {dead}) == right
    moved = {str(v.address) for v in (first, second)}
    for vip, owner in RING.expected_owners({dead}).items():
        if vip not in moved:
            assert owner == RING.vip(vip).owner


def test_all_candidates_down_means_nobody() -> None:
    assert RING.expected_owner(RING.vips[0], set(MAIL)) is None


def test_failover_bound_is_three_advbase_plus_the_new_owners_skew() -> None:
    vip = RING.vips[0]
    assert RING.failover_bound_s(vip, {vip.owner}) == pytest.approx(3 * RING.advbase + 20 / 256)


def test_the_first_design_piles_a_crash_chain_onto_one_node() -> None:
    domino = load(FIXTURES / "topology-domino.yaml")
    assert len(domino.vips) == len(domino.mail_nodes)
    load_ = domino.load({"mail01", "mail02", "mail03"})
    assert load_["mail04"] == 4 and load_["mail05"] == 1
    assert max(load_.values()) > domino.load_bound(len(load_)) - 1  # above its fair share
    assert max(RING.load({"mail01", "mail02", "mail03"}).values()) == 5  # the ring: 5 and 5


def test_generated_ring_of_five_is_the_fixture_and_larger_rings_validate(tmp_path) -> None:
    from mailring.topology.generate import write_ring

    five = load(write_ring(5, tmp_path / "r5.yaml"))
    shipped = load(DEFAULT_TOPOLOGY)  # the generator starts from the shipped file, wherever its network
    assert [(v.address, v.owner, v.backups) for v in five.vips] == \
        [(v.address, v.owner, v.backups) for v in shipped.vips]
    twenty = write_ring(20, tmp_path / "r20.yaml")
    assert validate(twenty) == []
    big = load(twenty)
    for dead in ("mail01", "mail07"):
        first, second = big.vips_owned_by(dead)
        assert big.expected_owner(first, {dead}) != big.expected_owner(second, {dead})
    # 16 times the checkers and servers: every check interval 16 times as long
    h, h5 = big.haproxy, five.haproxy
    assert (h.check_interval_ms, h.fast_ms, h.down_ms, h.backup_ms) == (
        16 * h5.check_interval_ms, 16 * h5.fast_ms, 16 * h5.down_ms, 16 * h5.backup_ms)


# -- extends: and aliases --------------------------------------------------------
def test_noproxy_fixture_is_the_first_design_with_proxy_off() -> None:
    noproxy = load(FIXTURES / "topology-noproxy.yaml")
    domino = load(FIXTURES / "topology-domino.yaml")
    assert RING.proxy_protocol and domino.proxy_protocol and not noproxy.proxy_protocol
    assert noproxy.nodes == RING.nodes and noproxy.vips == domino.vips
    assert noproxy.services == RING.services and noproxy.users == RING.users
    assert noproxy.dns == domino.dns  # the names of topology.yaml, on the first design's VIPs


def test_extends_merges_mappings_and_replaces_the_rest(tmp_path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {PINNED}\nhaproxy: {{fall: 3}}\n"
                     "nodes: {client01: {role: client, address: 192.168.56.99}}\n")
    topo = load(child)
    assert topo.haproxy.fall == 3 and topo.haproxy.rise == RING.haproxy.rise  # merged key by key
    # nested mappings merge too: client01 keeps its aliases, only its address changes
    assert str(topo.client.address) == "192.168.56.99" and topo.client.aliases == RING.client.aliases
    assert len(topo.mail_nodes) == len(RING.mail_nodes)


def test_extends_problems_are_one_line(tmp_path) -> None:
    missing = tmp_path / "a.yaml"
    missing.write_text("extends: nope.yaml\n")
    assert validate(missing) == [f"{missing}: extends: {tmp_path / 'nope.yaml'} not found; "
                                 "name an existing topology file"]
    loop = tmp_path / "b.yaml"
    loop.write_text("extends: b.yaml\n")
    assert "extends this file again" in validate(loop)[0]


def test_the_client_has_a_second_source_address() -> None:
    assert RING.client.aliases and RING.client.aliases[0] in RING.network


@pytest.mark.parametrize(("alias", "words"), [
    ("192.168.56.101", "already used by vips[0].address"),
    ("192.168.56.100", "already used by nodes.client01.address"),
    ("10.1.1.1", "not a host address in network"),
])
def test_a_bad_alias_names_the_alias(tmp_path, alias, words) -> None:
    path = write(tmp_path, lambda d: d["nodes"]["client01"].update(aliases=[alias]))
    errors = validate(path)
    assert len(errors) == 1 and errors[0].startswith(f"{path}: nodes.client01.aliases[0]: "), errors
    assert words in errors[0]


@pytest.mark.parametrize(("net", "words"), [
    ("192.168.56.0/24", "holds the cluster's own 192.168.56.101 (vips[0])"),
    ("192.168.56.11/32", "holds the cluster's own 192.168.56.11 (nodes.mail01)"),
    ("192.168.56.100/24", "not a valid IPv4 network"),
])
def test_a_customer_network_holding_the_cluster_is_refused(tmp_path, net, words) -> None:
    path = write(tmp_path, lambda d: d.update(customer_networks=[net]))
    errors = validate(path)
    assert len(errors) == 1 and errors[0].startswith(f"{path}: customer_networks[0]: "), errors
    assert words in errors[0], errors


def test_customers_are_told_apart_from_strangers() -> None:
    assert RING.is_customer(RING.client.address)
    assert RING.client.aliases and not any(RING.is_customer(a) for a in RING.client.aliases)
    assert not any(RING.is_customer(n.address) for n in RING.mail_nodes)


def test_check_timing_follows_haproxys_three_intervals() -> None:
    from mailring.topology.model import HaproxyTuning

    h = HaproxyTuning(check_interval_ms=1000, fall=2, rise=3, check_timeout_ms=2000,
                      fast_interval_ms=250, down_interval_ms=500)
    assert h.down_within_s() == 1.25  # the next check within inter, one more at fastinter
    assert h.down_within_s(hung=True) == 5.25  # and each of the two waits out the timeout
    assert h.up_within_s() == 1.0  # the next check within downinter, two more at fastinter
    plain = HaproxyTuning(check_interval_ms=500, fall=2, rise=2)
    assert (plain.fast_ms, plain.down_ms, plain.backup_ms) == (500, 500, 500)  # HAProxy's defaults: inter
    assert plain.down_within_s() == plain.up_within_s() == plain.all_down_within_s() == 1.0


def test_backups_are_checked_at_their_own_interval_and_every_haproxy_waits_for_the_slower() -> None:
    from mailring.topology.model import HaproxyTuning

    h = HaproxyTuning(check_interval_ms=1000, fall=2, rise=2, check_timeout_ms=2000,
                      fast_interval_ms=250, down_interval_ms=500, backup_interval_ms=3000)
    assert h.down_within_s() == 1.25  # the node's own HAProxy
    assert h.down_within_s(backup=True) == 3.25  # another node's, where it is a backup
    assert h.all_down_within_s() == 3.25 and h.all_down_within_s(hung=True) == 7.25
    assert h.up_within_s() == 0.75  # a DOWN server is checked at downinter, backup or not
    quick = HaproxyTuning(check_interval_ms=2000, fall=2, rise=2, backup_interval_ms=500)
    assert quick.all_down_within_s() == quick.down_within_s() == 4.0  # the slower of the two
