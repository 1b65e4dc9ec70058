"""TLS as a client sees it: HAProxy ends POP3S, IMAPS and HTTPS, Postfix does STARTTLS on submission.

client01 trusts the cluster's CA through its system store only (no CA file
is ever passed): OpenSSL's s_client and Python's default context both verify
the certificate and the names (every DNS name of the zone and every VIP are
in it). A wrong name and a certificate from an untrusted issuer are refused.
"""

from __future__ import annotations

import pytest

from mailring.checks import NotYet
from mailring.client import banner_request
from mailring.polling.wait import eventually

TLS_SERVICES = ("pop3s", "imaps", "https")
VERIFY_FAILED = "CERTIFICATE_VERIFY_FAILED"


def tls_services(topology) -> list:
    return [s for s in topology.services.values() if s.tls]


def dns_name(topology, svc) -> str:
    """The zone's name for a service: its own label if the zone has one (imaps), else its
    protocol's (smtp), else the first name (every name is in the certificate)."""
    names = topology.dns.names
    label = next((n for n in (svc.name, svc.protocol) if n in names), names[0])
    return f"{label}.{topology.dns.zone}"


def s_client(cluster, topology, host: str, port: int, name: str, verify_name: str) -> tuple[int, str]:
    """openssl s_client on client01 with no -CAfile: the system store decides; (rc, output)."""
    res = cluster.run(topology.client.name, ["openssl", "s_client", "-connect", f"{host}:{port}",
                                             "-servername", name, "-verify_hostname", verify_name,
                                             "-verify_return_error", "-brief"], input="", timeout=20)
    return res.rc, res.stdout + res.stderr


def session(client, topology, service: str, host: str, **kw) -> dict:
    svc = topology.services[service]
    user = topology.users[0]
    if svc.protocol == "pop3":
        return client.pop3(host, svc.port, user.address, user.password, tls=True, **kw)
    if svc.protocol == "imap":
        return client.imap(host, svc.port, user.address, user.password, tls=True, **kw)
    return client.http(host, svc.port, tls=True, **kw)


@pytest.mark.parametrize("service", TLS_SERVICES)
def test_handshake_and_login_over_tls_on_every_vip(cluster, client, topology, vip, service):
    res = session(client, topology, service, vip)
    assert res["ok"], f"{service} on {vip}: {res}"
    owner = topology.expected_owner(vip)  # the model, never the cluster's own word
    if topology.services[service].protocol == "http":
        assert res["status"] == 200 and res["body"].strip() == f"webmail {owner}", res
    else:
        assert res["login_ok"] and res["tls_version"] in ("TLSv1.2", "TLSv1.3"), res
        assert owner in res["banner"], f"{service} on {vip} answered by {res['banner']!r}, owner {owner}"


def test_openssl_verifies_from_the_system_store_on_every_vip(cluster, topology, vip):
    for svc in tls_services(topology):
        name = dns_name(topology, svc)
        rc, out = s_client(cluster, topology, vip, svc.port, name, name)
        assert rc == 0 and "Verification: OK" in out, f"{svc.name} on {vip} as {name}: {out}"
        assert f"Verified peername: {name}" in out, out


def test_every_dns_name_verifies_when_connecting_by_name(client, topology):
    """Resolved by client01's resolver, verified by Python's default context against the name."""
    pairs = [(fqdn, svc) for fqdn in topology.dns.fqdns for svc in tls_services(topology)]
    answers = client.each([banner_request(fqdn, svc.port, svc.protocol, tls=True) for fqdn, svc in pairs])
    for (fqdn, svc), res in zip(pairs, answers, strict=True):  # independent sessions, opened at once
        assert res["ok"], f"{svc.name} at {fqdn}: {res}"


def test_a_wrong_name_is_refused(cluster, client, topology, vip):
    wrong = f"not-{topology.dns.names[0]}.{topology.dns.zone}"
    services = tls_services(topology)
    answers = client.each([banner_request(vip, svc.port, svc.protocol, tls=True, tls_name=name)
                           for svc in services for name in (wrong, dns_name(topology, svc))])
    for svc, res, right in zip(services, answers[::2], answers[1::2], strict=True):  # opened at once
        assert not res["ok"] and VERIFY_FAILED in res.get("error", ""), f"{svc.name} as {wrong}: {res}"
        assert "mismatch" in res["error"], res
        assert right["ok"], f"{svc.name} on {vip} refused a name in the certificate: {right}"
    imaps = topology.services["imaps"]
    rc, out = s_client(cluster, topology, vip, imaps.port, wrong, wrong)
    assert rc != 0 and "hostname mismatch" in out, out


def test_a_certificate_from_an_untrusted_issuer_is_refused(cluster, client, topology):
    """An impostor with a self-signed certificate for the right names, on a mail node's own address."""
    node = topology.mail_nodes[-1]
    svc = topology.services["imaps"]
    name = dns_name(topology, svc)
    # the certificate lives in a temporary folder on the node, removed when stop() closes stdin
    script = ('d=$(mktemp -d) || exit 1; '
              'openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 '
              '-subj "/CN=$1" -addext "subjectAltName=DNS:$1,IP:$2" -keyout "$d/k" -out "$d/c" '
              '2>/dev/null || { rm -rf "$d"; exit 1; }; '
              'openssl s_server -quiet -accept "$2:$3" -cert "$d/c" -key "$d/k" </dev/null & p=$!; '
              'cat >/dev/null; kill $p; wait $p; rm -rf "$d"')
    impostor = cluster.start(node.name, ["sh", "-c", script, "sh", name, str(node.address), str(svc.port)])
    try:
        def refused() -> dict:
            res = client.imap(str(node.address), svc.port, topology.users[0].address,
                              topology.users[0].password, tls=True, tls_name=name)
            if VERIFY_FAILED not in res.get("error", ""):
                raise NotYet(f"impostor on {node.address}:{svc.port}: {res}")
            return res

        res = eventually(refused, 15, f"an impostor TLS server on {node.name}")
        assert not res["ok"] and not res.get("login_ok"), res
        assert "self-signed" in res["error"] or "self signed" in res["error"], res
        rc, out = s_client(cluster, topology, str(node.address), svc.port, name, name)
        assert rc != 0 and "self-signed" in out.replace("self signed", "self-signed"), out
    finally:
        impostor.stop()


def test_submission_does_starttls_and_auth_only_after_it(client, topology, vip):
    svc = topology.services["submission"]
    user = topology.users[0]
    login = {"user": user.address, "password": user.password}
    plain = client.smtp(vip, svc.port)
    assert plain["ok"] and "STARTTLS" in plain["features"], plain
    assert not any(f.startswith("AUTH") for f in plain["features"]), f"AUTH offered in clear: {plain}"
    refused = client.smtp(vip, svc.port, login=login)
    assert not refused["ok"] and refused.get("login_ok") is False, f"AUTH in clear accepted: {refused}"
    res = client.smtp(vip, svc.port, starttls=True, login=login, tls_name=dns_name(topology, svc))
    assert res["ok"] and res["starttls_code"] == 220 and res["login_ok"], res
    assert res["tls_version"] in ("TLSv1.2", "TLSv1.3"), res
    assert any(f.startswith("AUTH") for f in res["features"]), res
