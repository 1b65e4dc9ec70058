"""The cluster's TLS material, made at render time with the ``cryptography`` package.

One private CA per rendered cluster and one server certificate that every
node presents (any node may serve any VIP): its names are every DNS name of
the zone plus every VIP address. The CA goes into the client's trust store.
Material is reused while it still matches the topology's names.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailring.topology import Topology


@dataclass(frozen=True)
class Tls:
    ca_cert: str  # PEM
    server_cert: str  # PEM
    server_key: str  # PEM

    @property
    def server_pem(self) -> str:
        """Certificate + key in one file, as HAProxy's ``crt`` wants it."""
        return self.server_cert + self.server_key


def _names(topo: Topology) -> tuple[list[str], list[str]]:
    dns = sorted({*topo.dns.fqdns, *(f"{n.name}.{topo.domain}" for n in topo.mail_nodes)})
    ips = sorted({str(v.address) for v in topo.vips} | {str(n.address) for n in topo.mail_nodes})
    return dns, ips


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def make_tls(topo: Topology, now: dt.datetime | None = None) -> Tls:
    now = now or dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=365)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mailring {topo.name} test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    dns, ips = _names(topo)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mail.{topo.domain}")]))
        .issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(n) for n in dns] + [x509.IPAddress(IPv4Address(i)) for i in ips]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Tls(ca.public_bytes(pem).decode(), cert.public_bytes(pem).decode(), _key_pem(key))


def ensure_tls(topo: Topology, folder: Path) -> Tls:
    """Load the cluster's TLS material from ``folder``, or make it when absent or stale."""
    stamp = json.dumps(_names(topo))
    files = {n: folder / n for n in ("ca.pem", "server.crt", "server.key", "names.json")}
    if all(p.exists() for p in files.values()) and files["names.json"].read_text() == stamp:
        return Tls(files["ca.pem"].read_text(), files["server.crt"].read_text(),
                   files["server.key"].read_text())
    tls = make_tls(topo)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("ca.pem", tls.ca_cert), ("server.crt", tls.server_cert),
                       ("server.key", tls.server_key), ("names.json", stamp)):
        (folder / name).write_text(text)
    (folder / "server.key").chmod(0o600)
    return tls
