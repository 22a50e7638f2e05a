"""The committed site broker example (deploy/mosquitto/) gives every account least privilege.

mosquitto runs deploy/mosquitto/mosquitto.conf as committed, with only its file paths, port and
user pointed at this test's files (the test PKI's certificates, a password file made with
`mosquitto_passwd -b`, a free loopback port), and deploy/mosquitto/edge.acl as it is. So a
change to either file that opens a hole fails here.

"Nothing is delivered" is proved without sleeping: mosquitto handles one packet at a time and
writes what it sends a client in order, so once a client has the acknowledgement of a publish
it made after the others' were acknowledged, anything those would have brought it has already
reached its callbacks (`Account.round_trip`; the tests stay far below mosquitto's 20 QoS 1
messages in flight per client, beyond which it would hold messages back).
"""

from __future__ import annotations

import datetime as dt
import getpass
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from paho.mqtt.reasoncodes import ReasonCode

from edge.config import MqttSection
from edge.publish import tls_context
from edge.receive import Receiver
from edge.signing import Signer
from edge.spool import Spool
from tests.integration.conftest import Broker, Pki, _make_ca, _make_server_cert, _mosquitto, _name, _write_key
from tests.integration.helpers import make_read, wait_for
from tests.integration.mqtt_fixtures import make_publisher, stored_ids

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
CONF = DEPLOY / "mosquitto.conf"
ACL = DEPLOY / "edge.acl"
PREFIX = "anpr"  # the ACL's, and mqtt.topic_prefix's default
CAMERAS = ("camA", "camB")  # broker user name = camera id
CONSUMERS = ("backoffice", "stats", "police", "monitor")
NOT_AUTHORIZED = 135
TAKEN = (0, 16)  # success, or "No matching subscribers" (taken, but nobody may read it yet)

# What camera A publishes in the test below: a read on each feed of examples/camera.toml (full
# "reads", pseudonymised "stats", hits-only "hits"), images, and its status.
CAMERA_A_TOPICS = (
    "anpr/camA/reads", "anpr/camA/reads/images/r1/overview", "anpr/camA/stats",
    "anpr/camA/hits", "anpr/camA/hits/images/r1/patch", "anpr/camA/status",
)
# Of those, what each account may read; cameras read nothing, not even their own topics.
MAY_READ = {
    "backoffice": {"anpr/camA/reads", "anpr/camA/reads/images/r1/overview", "anpr/camA/status"},
    "stats": {"anpr/camA/stats"},
    "police": {"anpr/camA/hits", "anpr/camA/hits/images/r1/patch"},
    "monitor": {"anpr/camA/status"},
    "camA": set(),
    "camB": set(),
}


@dataclass(frozen=True)
class SiteBroker:
    broker: Broker
    ca_file: Path  # the CA that signed the broker's certificate: the engine's mqtt.ca_file
    folder: Path  # <user>.password (the engine's password_file), or <user>.crt and .key (option B)

    def password_file(self, user: str) -> Path:
        return self.folder / f"{user}.password"


def render_conf(text: str, values: dict[str, str], enable: tuple[str, ...] = ()) -> str:
    """The committed config with each option in `values` given the test's value, the commented-out
    options in `enable` switched on as written, and every other line kept as it is."""
    lines, seen = [], set()
    for line in text.splitlines():
        if line.startswith("#") and line[1:].split(" ", 1)[0] in enable:
            line = line[1:]
        key = line.split(" ", 1)[0]
        if key in values:
            line = f"{key} {values[key]}"
        if key in values or key in enable:
            seen.add(key)
        lines.append(line)
    missing = sorted((set(values) | set(enable)) - seen)
    assert not missing, f"{CONF}: no {', '.join(missing)} line"
    return "\n".join(lines) + "\n"


def start_site(broker: Broker, passwords: Path, ca_file: Path, server_cert: Path, server_key: Path,
               enable: tuple[str, ...] = ()) -> Broker:
    broker.conf.write_text(render_conf(CONF.read_text(), {
        "password_file": str(passwords),
        "acl_file": str(ACL),
        "persistence_location": f"{broker.folder / 'data'}/",
        "pid_file": str(broker.folder / "mosquitto.pid"),
        "log_dest": f"file {broker.log}",
        "user": getpass.getuser(),
        "listener": f"{broker.port} 127.0.0.1",
        "cafile": str(ca_file),
        "certfile": str(server_cert),
        "keyfile": str(server_key),
    }, enable))
    return broker.start()


@pytest.fixture
def site(broker_factory, pki: Pki, tmp_path: Path) -> SiteBroker:
    """mosquitto running the committed example config and ACL, with TLS from the test PKI and passwords."""
    _, passwd = _mosquitto()  # skips (fails under CI) when mosquitto or mosquitto_passwd is missing
    folder = tmp_path / "site"
    folder.mkdir()
    passwords = folder / "edge.passwd"
    passwords.touch(mode=0o600)
    for user in (*CAMERAS, *CONSUMERS):
        secret = f"{user}-secret"
        (folder / f"{user}.password").write_text(secret + "\n")
        (folder / f"{user}.password").chmod(0o600)
        subprocess.run([passwd, "-b", str(passwords), user, secret], check=True, capture_output=True)
    broker = start_site(broker_factory(start=False), passwords, pki.ca_file, pki.server_cert, pki.server_key)
    return SiteBroker(broker, pki.ca_file, folder)


def make_client_cert(folder: Path, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, cn: str) -> None:
    """<cn>.crt and <cn>.key: a client certificate whose Common Name is the broker user name."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / f"{cn}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(folder / f"{cn}.key", key)


@pytest.fixture
def cert_site(broker_factory, tmp_path: Path) -> SiteBroker:
    """The committed config with its option B (client certificates, CN = user name) switched on."""
    _mosquitto()
    folder = tmp_path / "certs"
    folder.mkdir()
    ca_key, ca_cert = _make_ca(folder, "edge-ca")  # signs the broker's and the clients' certificates
    _make_server_cert(folder, ca_key, ca_cert)
    for user in ("camA", "backoffice"):
        make_client_cert(folder, ca_key, ca_cert, user)
    passwords = folder / "edge.passwd"  # named by the config, not used by this listener
    passwords.touch(mode=0o600)
    broker = start_site(broker_factory(start=False), passwords, folder / "edge-ca.pem", folder / "server.pem",
                        folder / "server.key", enable=("require_certificate", "use_identity_as_username"))
    return SiteBroker(broker, folder / "edge-ca.pem", folder)


# ---- a plain paho client that records what happens to it --------------------------------

def _wait(predicate, what: str) -> None:
    wait_for(predicate, 10, what, interval_s=0.005)  # a deadline for liveness; short polls keep the test quick


@dataclass
class Account:
    """One MQTT 5 connection over TLS, logged in as `user` (None: anonymous)."""

    site: SiteBroker
    user: str | None
    password: str | None = None
    client_id: str = ""
    connack: ReasonCode | None = None
    received: list[str] = field(default_factory=list)
    acks: dict[int, int] = field(default_factory=dict)  # message id -> PUBACK reason code
    disconnects: list[ReasonCode] = field(default_factory=list)
    subacks: set[int] = field(default_factory=set)  # message ids of the SUBSCRIBEs answered
    answered: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        c.tls_set_context(tls_context(self.site.ca_file, None, None))
        if self.user is not None:
            c.username_pw_set(self.user, self.password or f"{self.user}-secret")
        c.on_connect = self._on_connect
        c.on_message = lambda client, userdata, msg: self.received.append(msg.topic)
        c.on_publish = lambda client, userdata, mid, rc, props: self.acks.__setitem__(mid, rc.value)
        c.on_subscribe = lambda client, userdata, mid, reasons, props: self.subacks.add(mid)
        c.on_disconnect = lambda client, userdata, flags, rc, props: self.disconnects.append(rc)
        self.client = c

    def _on_connect(self, client, userdata, flags, reason: ReasonCode, props) -> None:
        self.connack = reason
        if reason.is_failure:
            client.disconnect()  # else paho's loop would retry, and close() wait out its back-off
        self.answered.set()

    def connect(self) -> Account:
        self.client.connect("localhost", self.site.broker.port)
        self.client.loop_start()
        _wait(self.answered.is_set, f"the broker's answer to {self.user!r}'s CONNECT")
        return self

    def ok(self) -> Account:
        assert self.connack is not None and not self.connack.is_failure, f"{self.user} not let in: {self.connack}"
        return self

    def subscribe(self, *filters: str) -> None:
        _, mid = self.client.subscribe([(f, 1) for f in filters])
        _wait(lambda: mid in self.subacks, f"{self.user}'s SUBACK")

    def publish(self, topic: str, retain: bool = False) -> int:
        """Publish at QoS 1 and return the broker's PUBACK reason code (TAKEN, or 135: refused by the ACL)."""
        mid = self.client.publish(topic, b"{}", qos=1, retain=retain).mid
        _wait(lambda: mid in self.acks, f"the PUBACK to {self.user} for {topic}")
        return self.acks[mid]

    def round_trip(self) -> None:
        """After this, every message the broker had for this client before now has been received."""
        self.publish(f"{PREFIX}/{self.user}/ping")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def accounts(site: SiteBroker):
    opened: list[Account] = []

    def login(user: str | None, password: str | None = None, client_id: str = "") -> Account:
        opened.append(Account(site, user, password, client_id).connect())
        return opened[-1]

    yield login
    for a in opened:
        a.close()


# ---- the tests -----------------------------------------------------------------------------

def test_each_account_reads_only_its_feeds_and_publishes_nowhere_but_its_own_camera(accounts) -> None:
    readers = {user: accounts(user).ok() for user in MAY_READ}
    for a in readers.values():
        a.subscribe("#", "$SYS/#")  # asks for everything; "#" alone would not match $SYS topics
    camera = readers["camA"]
    assert all(camera.publish(t) in TAKEN for t in CAMERA_A_TOPICS)
    for user, a in readers.items():
        a.round_trip()
        anpr = {t for t in a.received if not t.startswith("$SYS/")}
        assert anpr == MAY_READ[user], f"{user} read {sorted(anpr)}"
        # Only monitoring sees the broker's own statistics (retained, so they came at subscription).
        assert any(t.startswith("$SYS/") for t in a.received) == (user == "monitor"), f"{user} read $SYS"


def test_a_camera_cannot_publish_as_another_camera(accounts) -> None:
    backoffice = accounts("backoffice").ok()
    backoffice.subscribe(f"{PREFIX}/+/reads/#", f"{PREFIX}/+/status")
    camera_a = accounts("camA").ok()
    for topic in ("anpr/camB/reads", "anpr/camB/reads/images/r1/overview", "anpr/camB/status",
                  "anpr/reads", "other/camA/reads"):
        assert camera_a.publish(topic) == NOT_AUTHORIZED, topic
    assert camera_a.publish("anpr/camA/reads") in TAKEN
    wait_for(lambda: "anpr/camA/reads" in backoffice.received, 10, "camera A's own read at the back office")
    backoffice.round_trip()
    assert backoffice.received == ["anpr/camA/reads"]


def test_a_camera_receives_nothing_it_subscribes_to(accounts) -> None:
    camera_b = accounts("camB").ok()
    assert camera_b.publish("anpr/camB/status", retain=True) in TAKEN  # retained: would come at subscription
    camera_a = accounts("camA").ok()
    camera_a.subscribe("#", "anpr/#", "anpr/camA/#", "anpr/camB/reads", "$SYS/#")
    assert camera_b.publish("anpr/camB/reads") in TAKEN
    assert camera_a.publish("anpr/camA/reads") in TAKEN  # not even its own
    camera_a.round_trip()
    assert camera_a.received == []


def test_consumers_cannot_publish_even_as_a_camera_named_after_themselves(accounts) -> None:
    for user in CONSUMERS:
        a = accounts(user).ok()
        for topic in (f"anpr/{user}/reads", f"anpr/{user}/status", "anpr/camA/reads", "anpr/camA/status"):
            assert a.publish(topic) == NOT_AUTHORIZED, f"{user} may publish on {topic}"


@pytest.mark.parametrize("user, password", [(None, None), ("camA", "not-the-password"), ("intruder", "intruder-secret")])
def test_anonymous_wrong_password_and_unknown_users_are_refused(accounts, user, password) -> None:
    a = accounts(user, password)
    assert a.connack is not None and a.connack.is_failure
    assert a.connack.getName() in ("Not authorized", "Bad user name or password")


def test_one_camera_cannot_push_another_client_off_the_broker(accounts) -> None:
    backoffice = accounts("backoffice", client_id="edge-receive-site").ok()
    camera_a = accounts("camA", client_id="edge-camA").ok()
    # camB's credentials taken from its roadside unit, used under the others' client ids: with
    # use_username_as_clientid the broker keys sessions by user name, so nobody is displaced.
    for victim in (backoffice, camera_a):
        intruder = accounts("camB", client_id=victim.client_id).ok()
        victim.round_trip()
        assert victim.disconnects == [], f"{victim.user} was pushed off by camB using its client id"
        intruder.close()


def engine_delivers_only_its_own_reads(rec: Receiver, login: MqttSection, tmp: Path) -> None:
    """edge.publish logged in as camA delivers camera A's reads to `rec`; the same login configured as
    camera camB has its read refused (135) and kept in the spool.

    One after the other: the broker keys sessions by user name, so two connections as camA at once
    would keep pushing each other off.
    """
    spool = Spool(tmp / "camA", 10**8)
    signer = Signer.generate("camA")
    for i in range(3):
        spool.put(make_read(signer, "camA", i, image_bytes=500))
    ids = [f"camA-{i:06d}" for i in range(3)]
    camera = make_publisher(login, "camA", spool)
    camera.start()
    try:
        assert camera.flush(20)
    finally:
        camera.stop()
    wait_for(lambda: stored_ids(rec) == ids, 10, "camera A's reads at the back office")
    wrong_spool = Spool(tmp / "as-camB", 10**8)
    wrong_spool.put(make_read(Signer.generate("camB"), "camB", 0, image_bytes=500))
    wrong = make_publisher(login, "camB", wrong_spool)
    wrong.start()
    try:
        wait_for(lambda: wrong.status()["mqtt"]["held"] == 1, 10, "the read of camA's login as camera camB held back")
    finally:
        wrong.stop()
    assert wrong_spool.depth() == 1 and stored_ids(rec) == ids


def test_the_engine_with_a_password_delivers_under_the_acl(site: SiteBroker, tmp_path: Path) -> None:
    """mqtt.username = camera id, mqtt.password_file, mqtt.ca_file -> the ACL -> edge.receive as backoffice."""
    rec = Receiver(site.broker.url, tmp_path / "bo", topics=(f"{PREFIX}/+/reads/#", f"{PREFIX}/+/status"),
                   username="backoffice", password_file=site.password_file("backoffice"), ca_file=site.ca_file,
                   reconnect_max_s=0.5)
    rec.start()
    try:
        wait_for(rec.connected.is_set, 10, "the receiver to subscribe")
        login = MqttSection(broker=site.broker.url, username="camA", password_file=site.password_file("camA"),
                            ca_file=site.ca_file)
        engine_delivers_only_its_own_reads(rec, login, tmp_path)
    finally:
        rec.stop()


def test_option_b_client_certificates_name_the_camera(cert_site: SiteBroker, tmp_path: Path) -> None:
    """mqtt.cert_file / key_file with CN = camera id and no password: the same ACL applies; no certificate, no entry."""
    certs = cert_site.folder
    rec = Receiver(cert_site.broker.url, tmp_path / "bo", ca_file=cert_site.ca_file,
                   cert_file=certs / "backoffice.crt", key_file=certs / "backoffice.key", reconnect_max_s=0.5)
    rec.start()
    try:
        wait_for(rec.connected.is_set, 10, "the receiver to subscribe with its certificate")
        login = MqttSection(broker=cert_site.broker.url, ca_file=cert_site.ca_file, cert_file=certs / "camA.crt",
                            key_file=certs / "camA.key")
        engine_delivers_only_its_own_reads(rec, login, tmp_path)
        spool = Spool(tmp_path / "no-cert", 10**8)
        spool.put(make_read(Signer.generate("camA"), "camA", 9, image_bytes=500))
        no_cert = make_publisher(MqttSection(broker=cert_site.broker.url, ca_file=cert_site.ca_file), "camA", spool)
        no_cert.start()
        try:
            wait_for(lambda: no_cert.status()["mqtt"]["last_error"] is not None, 10,
                     "the connection without a certificate to fail")
            assert no_cert.status()["mqtt"]["connects"] == 0 and spool.depth() == 1
            assert "set mqtt.cert_file" in no_cert.status()["mqtt"]["last_error"]  # the fix is named, not only "connection lost"
        finally:
            no_cert.stop()
    finally:
        rec.stop()
