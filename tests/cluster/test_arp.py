"""No split brain on the wire: every VIP answers ARP from exactly one MAC, its owner's."""

from __future__ import annotations

import pytest

from mailring.polling.convergence import converge


@pytest.mark.lab_only("reads ARP replies with iputils arping from client01")
def test_every_vip_answers_arp_from_its_owner_only(cluster, topology):
    client = topology.client.name
    converge(cluster, failed=set())
    vips = [str(v.address) for v in topology.vips]
    route = cluster.run(client, ["ip", "-o", "route", "get", vips[0]]).stdout
    dev = route.split("dev ")[1].split()[0]
    # all VIPs at once: two requests each, every reply counted (a second MAC = two holders)
    script = " ".join(f"(arping -c 2 -w 3 -I {dev} {vip} | sed 's/^/{vip} /') &" for vip in vips)
    res = cluster.run(client, ["sh", "-c", f"{script} wait"], timeout=30)
    macs: dict[str, set[str]] = {vip: set() for vip in vips}
    for line in res.stdout.splitlines():
        vip, _, rest = line.partition(" ")
        if "reply from" in rest.lower():
            macs[vip].add(rest.split("[")[1].split("]")[0].lower())
    for vip in topology.vips:
        owner = topology.expected_owner(vip)
        mac = cluster.run(owner, ["cat", f"/sys/class/net/{dev}/address"]).stdout.strip().lower()
        seen = macs[str(vip.address)]
        assert seen, f"no ARP reply for VIP {vip.address} ({res.stdout[-300:]} {res.stderr[-300:]})"
        assert seen == {mac}, f"VIP {vip.address}: ARP replies from {sorted(seen)}, owner {owner} is {mac}"
