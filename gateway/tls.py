"""TLS material: self-signed certificates for ``--tls`` and the server's SSL context.

The generated certificate is its own trust anchor: clients are pointed at ``cert.pem`` as their
CA bundle (``--ca-bundle``, ``verify=``, ``--ca-cert``...). It is therefore marked as a CA that
may sign only itself (``pathlen:0``) and carries the extensions strict verifiers (OpenSSL with
X509_STRICT, Go) insist on: critical basic constraints and key usage, subject and authority key
identifiers, and every name clients use in the subject alternative names.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import socket
import ssl
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
#: the longest validity Apple platforms accept for TLS server certificates
VALIDITY_DAYS = 825


class TlsError(Exception):
    """TLS material is missing, unreadable or does not match; the message says which."""


def certificate_hosts(extra: Iterable[str] = ()) -> list[str]:
    """The names a generated certificate covers: loopback, this host's name and ``extra``."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname(), *extra]
    seen: dict[str, None] = {}
    for name in names:
        name = name.strip().strip("[]")
        if name and name.lower() not in (n.lower() for n in seen):
            seen[name] = None
    return list(seen)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def build_self_signed(hosts: Iterable[str]) -> tuple[bytes, bytes]:
    """A fresh EC P-256 key and a self-signed certificate for ``hosts``, both PEM."""
    hosts = list(hosts)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "minimo"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"minimo self-signed ({hosts[0]})"),
        ]
    )
    # Back-dated a little so clients with a slightly slow clock accept it at once.
    now = datetime.now(UTC) - timedelta(hours=1)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed or the file may have pre-existed
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(certs_dir: Path) -> Iterator[None]:
    # Two servers starting at once on one certs dir must not pair one's key with the other's cert.
    with open(certs_dir / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def generate(
    certs_dir: Path, hosts: Iterable[str] = (), *, force: bool = True
) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` (0600) for loopback, this host and ``hosts``.

    With ``force=False`` an existing pair is kept when it names every one of ``hosts``.
    Returns (cert path, key path).
    """
    hosts = list(hosts)
    certs_dir = Path(certs_dir)
    try:
        certs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TlsError(f"cannot create the certificates directory {certs_dir}: {exc}") from exc
    cert_path, key_path = certs_dir / CERT_FILE, certs_dir / KEY_FILE
    with _locked(certs_dir):
        if not force and cert_path.exists() and key_path.exists() and names_all(cert_path, hosts):
            return cert_path, key_path
        cert_pem, key_pem = build_self_signed(certificate_hosts(hosts))
        _write_atomic(key_path, key_pem, 0o600)
        _write_atomic(cert_path, cert_pem, 0o644)
    return cert_path, key_path


def ensure_certificate(certs_dir: Path, hosts: Iterable[str] = ()) -> tuple[Path, Path]:
    """The pair in ``certs_dir``, generated on first use when absent, and again when it does not
    name every one of ``hosts`` (a ``--host`` added since, e.g. a new public name), so clients
    reaching the gateway by that name are not refused. This host's own name is not required:
    a container gets a new one each time it is recreated."""
    return generate(certs_dir, list(hosts), force=False)


def _normal(host: str) -> str:
    host = host.strip().strip("[]").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def names_all(cert_path: Path, hosts: Iterable[str]) -> bool:
    """Whether the certificate at ``cert_path`` names every one of ``hosts``."""
    wanted = {_normal(h) for h in hosts if h.strip()}
    if not wanted:
        return True
    try:
        named = {_normal(n) for n in certificate_names(cert_path)}
    except (ValueError, x509.ExtensionNotFound):
        return True  # not one of ours to judge: keep it, as before
    return wanted <= named


def certificate_names(cert_path: Path) -> list[str]:
    """The DNS names and IP addresses in a certificate's SANs (for messages and tests)."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [*sans.get_values_for_type(x509.DNSName)] + [
        str(ip) for ip in sans.get_values_for_type(x509.IPAddress)
    ]


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """An SSL context serving ``cert_path`` with ``key_path``; TLS 1.2 or newer."""
    for path, what in ((cert_path, "certificate"), (key_path, "private key")):
        if not Path(path).is_file():
            raise TlsError(f"the TLS {what} file {path} does not exist")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert_path), str(key_path))
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(
            f"cannot use {cert_path} with {key_path}: {exc} "
            "(are both PEM, and does the key belong to the certificate?)"
        ) from exc
    return ctx
