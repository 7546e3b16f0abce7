"""Party identities: one key pair per role, certificates pinned by the other parties.

Every role of a session (``data-owner``, ``model-owner``, ``helper-K``, ``dealer``) has its own
EC P-256 key and a self-signed X.509 certificate.  Certificates are public: each organisation
hands its certificate to the others out of band (or compares the SHA-256 fingerprints that
``smt identity show`` prints).  A party trusts exactly the certificates it was configured with,
one per role: a peer is accepted for a role only if it proves possession of the key of *that*
role's certificate in a TLS 1.3 handshake (mpc/transport.py).  There is no certificate
authority, so no third party can issue an identity; renewing a key means handing out the new
certificate.

On disk (``smt identity create --role R --dir DIR``): ``DIR/R.key`` (PKCS#8 PEM, mode 0600,
created exclusively) and ``DIR/R.crt``.  A party's identity directory holds its own key and the
certificates of every role it talks to.  The embedded default (mpc/launcher.py) makes throwaway
identities per session and hands each party its key over a pipe; no key touches the disk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mpc.errors import ConfigurationError


def role_of_rank(rank: int, parties: int) -> str:
    """The role name of ``rank`` in a session of ``parties`` computing parties plus the dealer."""
    if rank == 0:
        return "data-owner"
    if rank == 1:
        return "model-owner"
    if rank == parties:
        return "dealer"
    if 2 <= rank < parties:
        return f"helper-{rank}"
    raise ConfigurationError(f"rank {rank} does not exist with {parties} computing parties (0..{parties})")


def session_roles(parties: int) -> list[str]:
    return [role_of_rank(r, parties) for r in range(parties + 1)]


def fingerprint(cert_pem: bytes | str) -> str:
    """``sha256:<hex>`` of the certificate's DER encoding (what ``openssl x509 -fingerprint`` shows)."""
    pem = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def der_fingerprint(der: bytes) -> str:
    return "sha256:" + hashlib.sha256(der).hexdigest()


@dataclass(frozen=True, kw_only=True)
class Identity:
    """This party's role, private key and certificate (PEM), and the pinned certificates of its peers."""

    role: str
    key_pem: str = field(repr=False)
    cert_pem: str
    peers: dict[str, str]  # role -> certificate PEM

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert_pem)

    def peer_fingerprint(self, role: str) -> str:
        return fingerprint(self.peer_cert(role))

    def peer_cert(self, role: str) -> str:
        try:
            return self.peers[role]
        except KeyError:
            raise ConfigurationError(
                f"no certificate configured for role {role!r}; add {role}.crt (from that party's "
                f"`smt identity create`) to this party's identity directory"
            ) from None

    def to_params(self) -> dict:
        return {"role": self.role, "key": self.key_pem, "cert": self.cert_pem, "peers": dict(self.peers)}

    @classmethod
    def from_params(cls, d: dict) -> Identity:
        try:
            return cls(role=d["role"], key_pem=d["key"], cert_pem=d["cert"], peers=dict(d["peers"]))
        except (KeyError, TypeError) as err:
            raise ConfigurationError(f"malformed identity parameters (missing {err})") from None


def generate(role: str, *, days: int = 365) -> tuple[str, str]:
    """A new EC P-256 key and self-signed certificate for ``role``: (key PEM, certificate PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())  # OpenSSL's CSPRNG
    # a unique subject per key: a service trusts several certificates of one role (its data
    # owners), and OpenSSL finds a self-signed trust anchor by its subject name
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"smt {role} {secrets.token_hex(8)}"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role)])  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"urn:smt:role:{role}")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()  # fmt: skip
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def throwaway(roles: list[str]) -> dict[str, Identity]:
    """Fresh identities for one session (the embedded default): each role pins all the others."""
    made = {role: generate(role, days=2) for role in roles}
    certs = {role: cert for role, (_, cert) in made.items()}
    return {role: Identity(role=role, key_pem=key, cert_pem=certs[role], peers=certs) for role, (key, _) in made.items()}


def create(role: str, directory: Path, *, days: int = 365) -> str:
    """Write ``directory/role.key`` (0600, never overwritten) and ``role.crt``; return the fingerprint."""
    directory.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = directory / f"{role}.key", directory / f"{role}.crt"
    key_pem, cert_pem = generate(role, days=days)
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(f"{key_path} exists; remove it first to replace {role}'s identity") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(key_pem)
    cert_path.write_text(cert_pem)
    return fingerprint(cert_pem)


def load(role: str, directory: Path) -> Identity:
    """This party's identity from ``directory``: its own ``role.key`` and every ``*.crt`` there."""
    directory = Path(directory)
    key_path = directory / f"{role}.key"
    if not key_path.is_file():
        raise ConfigurationError(f"no private key {key_path}; create it with `smt identity create --role {role} --dir {directory}`")
    if key_path.stat().st_mode & 0o077:
        raise ConfigurationError(f"{key_path} is readable by others; run `chmod 600 {key_path}`")
    peers = {p.stem: p.read_text() for p in sorted(directory.glob("*.crt"))}
    if role not in peers:
        raise ConfigurationError(f"no certificate {directory / (role + '.crt')} beside the key")
    return Identity(role=role, key_pem=key_path.read_text(), cert_pem=peers[role], peers=peers)
