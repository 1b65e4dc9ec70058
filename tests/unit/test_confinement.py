"""mailring.confinement: each check passes a confined sample and names the leak in a leaking one."""

from __future__ import annotations

from ipaddress import ip_network

from mailring.confinement import bridge_problems, host_problems, node_problems, nsid_names

NET = ip_network("192.168.56.0/24")
LAB = ["mr-x-lan", "mr-x-mail01", "mr-x-client01"]


def link(name: str, *addrs: str, **kw) -> dict:
    info = [{"family": "inet", "local": a.split("/")[0], "prefixlen": int(a.split("/")[1])} for a in addrs]
    return {"ifname": name, "addr_info": info, **kw}


HOST_LINKS = [link("lo", "127.0.0.1/8"), link("eth0", "192.0.2.2/24")]
HOST_ROUTES = [{"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
               {"dst": "192.0.2.0/24", "dev": "eth0"}]


def test_a_host_with_only_its_own_network_is_confined() -> None:
    assert host_problems(NET, HOST_LINKS, HOST_ROUTES, {}, LAB) == []


def test_a_host_address_route_or_veth_into_the_lab_is_named() -> None:
    links = [*HOST_LINKS, link("vh", "192.168.56.250/24"), link("v-mail01", link_netnsid=3)]
    routes = [*HOST_ROUTES, {"dst": "192.168.0.0/16", "dev": "eth1"}]
    problems = host_problems(NET, links, routes, nsid_names([{"nsid": 3, "name": "mr-x-mail01"}]), LAB)
    assert problems == [
        "host: address 192.168.56.250/24 on vh is in the lab network 192.168.56.0/24",
        "host: link v-mail01 has its other end in the lab's namespace mr-x-mail01",
        "host: route 192.168.0.0/16 dev eth1 leads into the lab network 192.168.56.0/24",
    ]


PORTS = {"v-mail01": "mr-x-mail01", "v-client01": "mr-x-client01"}
NSIDS = {0: "mr-x-mail01", 1: "mr-x-client01"}
LAN = [link("lo", "127.0.0.1/8"), link("br0"),
       link("v-mail01", master="br0", link_netnsid=0), link("v-client01", master="br0", link_netnsid=1)]


def test_a_bridge_with_only_node_ports_has_no_uplink() -> None:
    assert bridge_problems("mr-x-lan", "br0", PORTS, LAN, [], NSIDS) == []


def test_an_uplink_an_address_a_route_or_a_stray_port_is_named() -> None:
    links = [LAN[0], link("br0", "192.168.56.1/24"), LAN[2],
             link("v-client01", master="br0", link_netnsid=7), link("uplink0", master="br0")]
    routes = [{"dst": "default", "dev": "uplink0"}]
    assert bridge_problems("mr-x-lan", "br0", PORTS, links, routes, NSIDS) == [
        "mr-x-lan: address 192.168.56.1/24 on br0: the bridge's namespace must have none",
        "mr-x-lan: port v-client01's other end is in this or an unnamed namespace, not in mr-x-client01",
        "mr-x-lan: link uplink0 is neither the bridge br0 nor a node's port (an uplink?)",
        "mr-x-lan: route default dev uplink0: the bridge's namespace must route nothing",
    ]
    assert bridge_problems("mr-x-lan", "br0", PORTS, LAN[:3], [], NSIDS) == [
        "mr-x-lan: port v-client01 of mr-x-client01 is missing"]


def test_a_node_route_off_the_lab_network_or_a_default_route_is_named() -> None:
    own = [{"dst": "192.168.56.0/24", "dev": "eth0"}, {"dst": "224.0.0.0/4", "dev": "eth0"}]
    assert node_problems("mail01", NET, own) == []
    bad = [*own, {"dst": "default", "gateway": "192.168.56.1", "dev": "eth0"},
           {"dst": "10.0.0.0/8", "dev": "eth0"}]
    assert node_problems("mail01", NET, bad) == [
        "mail01: default route via 192.168.56.1: nodes must have none",
        "mail01: route 10.0.0.0/8 dev eth0 leaves the lab network 192.168.56.0/24",
    ]
