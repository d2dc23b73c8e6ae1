"""TLS on ZooKeeper's client port: the cluster's own CA, server certificates, and what a client trusts.

Why: the daemons' digest credential travels as is at every (re)connection, and ZooKeeper's answers
carry leader records and sealed state; on a network other machines share, that must not be in
clear. ZooKeeper (3.5+) serves a ``secureClientPort`` through Netty; kazoo speaks TLS to it.

The trust is the cluster's own: one CA made once (by the playbook's controller, ``make demo``, a
test cluster), a certificate per ZooKeeper server naming the addresses and names clients dial, and
every client (daemon, SDK, CLI, AppWorker) given the CA's certificate. Clients check the server's
certificate and its name against the connect string; ZooKeeper does not ask clients for one
(``ssl.clientAuth=none``): a client proves itself with the digest credential, sent inside TLS.

Made with ``cryptography`` (already a dependency for sealing) rather than the openssl CLI, so the
same code makes them on the controller, in the demo and in tests.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from galaxy.coord._private_file import read_private, write_private
from galaxy.errors import InvalidInput

CA_FIELD = "zookeeper_ca"
CA_FILE = "zookeeper-ca.pem"          # the CA's certificate: public, every client holds it
CA_KEY_FILE = "zookeeper-ca.key"      # the CA's key: the controller only (0600)
SERVER_FILE = "zookeeper-server.pem"  # a server's key and certificate (0600, that server only)
CA_DAYS = 3650
SERVER_DAYS = 825                     # what browsers accept for a leaf; rolled with the playbook


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@dataclass(frozen=True)
class ClusterCA:
    """The CA that signs ZooKeeper servers' certificates: its certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, cluster: str) -> ClusterCA:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder()
                .subject_name(_name(f"galaxy {cluster} zookeeper CA")).issuer_name(_name(f"galaxy {cluster} zookeeper CA"))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        return cls(cert, key)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ClusterCA:
        root = Path(directory)
        cert = x509.load_pem_x509_certificate((root / CA_FILE).read_bytes())
        key = serialization.load_pem_private_key(read_private(root / CA_KEY_FILE, "zookeeper_ca_key",
                                                              "ZooKeeper CA key").encode(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InvalidInput(f"{root / CA_KEY_FILE} is not an EC key", field="zookeeper_ca_key")
        return cls(cert, key)

    @classmethod
    def ensure(cls, directory: str | os.PathLike[str], cluster: str) -> tuple[ClusterCA, bool]:
        """The CA kept in ``directory`` (``zookeeper-ca.pem`` and the 0600 ``zookeeper-ca.key``),
        made there the first time; returns it and whether it was made now. Never replaced: every
        client trusts it."""
        root = Path(directory)
        if (root / CA_FILE).exists() and (root / CA_KEY_FILE).exists():
            return cls.load(root), False
        ca = cls.generate(cluster)
        write_private(root / CA_KEY_FILE, _pem_key(ca.key))
        (root / CA_FILE).write_text(ca.cert_pem)
        return ca, True

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def server_pem(self, names: list[str]) -> str:
        """A server's key and certificate (one PEM, the form ZooKeeper's ``ssl.keyStore.type=PEM``
        reads) valid for ``names``: IP addresses and DNS names, as clients write them in the
        connect string."""
        if not names:
            raise InvalidInput("a server certificate needs at least one address or name", field="names")
        key = ec.generate_private_key(ec.SECP256R1())
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder()
                .subject_name(_name(names[0])).issuer_name(self.cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(self.key, hashes.SHA256()))
        return _pem_key(key) + cert.public_bytes(serialization.Encoding.PEM).decode()


def server_names(pem: str) -> set[str]:
    """The addresses and names a server PEM's certificate is valid for (to tell whether it must be
    made again because the server's addresses changed)."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in alt.get_values_for_type(x509.IPAddress)} | set(alt.get_values_for_type(x509.DNSName))


def check_ca_file(path: str | os.PathLike[str], field: str = CA_FIELD) -> str:
    """``path`` as a string if it holds a PEM certificate; InvalidInput naming ``field`` if not
    (a client with a wrong CA would only fail later, at every connect, with an SSL error)."""
    p = Path(path)
    try:
        x509.load_pem_x509_certificate(p.read_bytes())
    except OSError as err:
        raise InvalidInput(f"cannot read ZooKeeper CA certificate {p}: {err.strerror}", field=field) from None
    except ValueError:
        raise InvalidInput(f"{p} is not a PEM certificate", field=field) from None
    return str(p)


def write_server_tls(directory: str | os.PathLike[str], ca: ClusterCA, names: list[str]) -> Path:
    """Write what one ZooKeeper server needs for TLS into ``directory``: ``zookeeper-ca.pem`` and
    ``zookeeper-server.pem`` (its key and certificate, 0600). Returns the directory."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    (root / CA_FILE).write_text(ca.cert_pem)
    write_private(root / SERVER_FILE, ca.server_pem(names))
    return root


def server_config_lines(tls_dir: str | os.PathLike[str]) -> list[str]:
    """The ``zoo.cfg`` lines that make ZooKeeper serve TLS with the PEMs of ``tls_dir`` (the
    playbook's template writes the same lines)."""
    root = Path(tls_dir)
    return [
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
        f"ssl.keyStore.location={root / SERVER_FILE}",
        "ssl.keyStore.type=PEM",
        f"ssl.trustStore.location={root / CA_FILE}",
        "ssl.trustStore.type=PEM",
        "ssl.clientAuth=none",
    ]


# The Debian jar's manifest names netty-buffer, -common, -handler and -transport but not these two,
# without which a TLS handshake dies in the server (NoClassDefFoundError ByteToMessageDecoder).
NETTY_EXTRA_JARS = ("/usr/share/java/netty-codec.jar", "/usr/share/java/netty-resolver.jar")
