"""A real MQTT broker for the integration tests: Debian's mosquitto on a free loopback port.

Each test gets its own broker (about 50 ms to start) configured like a deployment: TLS
from a test certificate authority made here with `cryptography`, a password file made
with mosquitto_passwd, and an ACL that lets each camera user publish only under its own
topic (`<prefix>/<username>/...`) and the back office read everything.

mosquitto missing: the tests skip with a message on a developer's machine, and fail
when the environment variable CI is set (CI installs it, so there a skip would hide a
broken set-up).
"""

from __future__ import annotations

import datetime as dt
import getpass
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CAMERAS = ("cam1", "cam2", "cam3", "cam4", "cam5", "cam6", "cam7", "cam8")
BACKOFFICE = "backoffice"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(pytest.mark.integration)


def _mosquitto() -> tuple[str, str]:
    broker = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    passwd = shutil.which("mosquitto_passwd")
    if broker and passwd:
        return broker, passwd
    message = "Debian's mosquitto is not installed (apt-get install mosquitto, or scripts/setup.sh)"
    if os.environ.get("CI"):
        pytest.fail(message + ": CI must run the MQTT integration tests")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- test PKI -------------------------------------------------------------------------

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path.chmod(0o600)


def _make_ca(folder: Path, cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    (folder / f"{cn}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _make_server_cert(folder: Path, ca_key, ca_cert) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(folder / "server.key", key)


@dataclass(frozen=True)
class Pki:
    folder: Path
    ca_file: Path  # signed the broker's certificate
    rogue_ca_file: Path  # an unrelated CA: the broker's certificate does not verify against it
    server_cert: Path
    server_key: Path
    passwords: Path  # mosquitto password file
    acl: Path

    def password_file(self, user: str) -> Path:
        return self.folder / f"{user}.password"


def make_pki(folder: Path) -> Pki:
    """A test CA, the broker's certificate and key, a rogue CA, passwords and the ACL, in `folder`."""
    _, passwd = _mosquitto()
    ca_key, ca_cert = _make_ca(folder, "test-ca")
    _make_ca(folder, "rogue-ca")
    _make_server_cert(folder, ca_key, ca_cert)
    passwords = folder / "passwords"
    passwords.touch(mode=0o600)
    for user in (*CAMERAS, BACKOFFICE):
        secret = f"{user}-secret"
        (folder / f"{user}.password").write_text(secret + "\n")
        subprocess.run([passwd, "-b", str(passwords), user, secret], check=True, capture_output=True)
    acl = folder / "acl"
    # The back office reads everything; a camera writes only under <prefix>/<its user name>/.
    acl.write_text(f"user {BACKOFFICE}\ntopic read #\n\npattern readwrite +/%u/#\n")
    return Pki(folder, folder / "test-ca.pem", folder / "rogue-ca.pem", folder / "server.pem", folder / "server.key", passwords, acl)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


# ---- the broker ---------------------------------------------------------------------------

class Broker:
    """One mosquitto process: start, stop (SIGTERM saves its persistent sessions), kill, restart on the same port."""

    def __init__(self, folder: Path, pki: Pki, port: int | None = None) -> None:
        self.binary, _ = _mosquitto()
        self.folder = folder
        self.pki = pki
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.conf = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        (folder / "data").mkdir(exist_ok=True)
        self.conf.write_text(
            "\n".join([
                "per_listener_settings false",
                "allow_anonymous false",
                f"password_file {pki.passwords}",
                f"acl_file {pki.acl}",
                "persistence true",
                f"persistence_location {folder / 'data'}/",
                f"log_dest file {self.log}",
                "log_type error", "log_type warning", "log_type notice", "log_type information",
                f"user {getpass.getuser()}",
                # The default (1000) drops messages queued for an absent back office beyond that.
                "max_queued_messages 1000000",
                f"listener {self.port} 127.0.0.1",
                f"cafile {pki.ca_file}",
                f"certfile {pki.server_cert}",
                f"keyfile {pki.server_key}",
                "tls_version tlsv1.2",
                "",
            ])
        )

    @property
    def url(self) -> str:
        return f"mqtts://localhost:{self.port}"

    def start(self) -> Broker:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited ({self.proc.returncode}): {self.proc.stderr.read().decode()} {self.log_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on port {self.port}: {self.log_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def reload(self) -> None:
        """SIGHUP: mosquitto reads its password file and ACL again."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def broker_factory(pki: Pki, tmp_path: Path):
    brokers: list[Broker] = []

    def make(port: int | None = None, start: bool = True) -> Broker:
        folder = tmp_path / f"broker{len(brokers)}"
        folder.mkdir()
        b = Broker(folder, pki, port)
        brokers.append(b)
        return b.start() if start else b

    yield make
    for b in brokers:
        b.stop(signal.SIGKILL)


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()
