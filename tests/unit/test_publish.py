"""The MQTT link's pieces that need no broker: addresses, messages a person reads, inline imagery, safe file names."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import pytest

from edge.config import MqttSection
from edge.errors import ConfigError
from edge.publish import BrokerAddress, Publisher, describe_connect_error, inline_images, read_password, tls_context
from edge.receive import ReadStore
from edge.record import image_entry, to_json_line
from edge.signing import Signer, verify_record
from edge.spool import Spool


@pytest.mark.parametrize(
    ("url", "host", "port", "tls"),
    [("mqtt://broker.local", "broker.local", 1883, False), ("mqtts://10.0.0.5", "10.0.0.5", 8883, True), ("mqtts://h:9000", "h", 9000, True)],
)
def test_broker_address(url: str, host: str, port: int, tls: bool) -> None:
    addr = BrokerAddress.parse(url)
    assert (addr.host, addr.port, addr.tls) == (host, port, tls)


def test_bad_broker_url_is_named() -> None:
    with pytest.raises(ConfigError, match="http://x"):
        BrokerAddress.parse("http://x")


def test_publisher_needs_a_broker(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mqtt.broker"):
        Publisher(MqttSection(), "cam1", Spool(tmp_path, 1000))


def test_connect_errors_say_what_to_check() -> None:
    addr = BrokerAddress.parse("mqtts://broker.example:8883")
    refused = describe_connect_error(ConnectionRefusedError(111, "Connection refused"), addr, None)
    assert "mqtts://broker.example:8883 is not there" in refused
    unknown = describe_connect_error(socket.gaierror(-2, "Name or service not known"), addr, None)
    assert "'broker.example' not found" in unknown
    err = ssl.SSLCertVerificationError(1, "certificate verify failed")
    err.verify_message = "unable to get local issuer certificate"
    bad_cert = describe_connect_error(err, addr, Path("/etc/edge/ca.pem"))
    assert "does not verify (unable to get local issuer certificate)" in bad_cert and "/etc/edge/ca.pem" in bad_cert


def test_password_is_the_first_line_and_a_missing_file_is_named(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text("s3cret\nignored\n")
    assert read_password(f) == "s3cret"
    with pytest.raises(ConfigError, match=str(tmp_path / "nope")):
        read_password(tmp_path / "nope")


def test_missing_ca_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mqtt.ca_file .*missing.pem"):
        tls_context(tmp_path / "missing.pem", None, None)


def test_tls_context_refuses_anything_older_than_tls_1_2() -> None:
    assert tls_context(None, None, None).minimum_version == ssl.TLSVersion.TLSv1_2


def test_inline_imagery_rides_outside_the_signature() -> None:
    signer = Signer.generate("cam1")
    images = {"patch": b"\xff\xd8\xffpatch", "overview": b"\xff\xd8\xffoverview"}
    record = signer.sign({"read_id": "r1", "camera_id": "cam1", "images": {k: image_entry(v, 1, 1) for k, v in images.items()}})
    payload = json.loads(inline_images(to_json_line(record).encode(), images))
    assert set(payload["image_data"]) == {"patch", "overview"}
    assert verify_record(payload, images) == []  # adding image_data did not break the signature


def test_receiver_refuses_file_names_from_topics_that_escape_its_folder(tmp_path: Path) -> None:
    store = ReadStore(tmp_path)
    for read_id, kind in (("..", "x"), ("r1", "../../etc/passwd"), ("a/b", "patch"), ("r1", ".hidden")):
        with pytest.raises(ValueError, match="unsafe"):
            store.add_image(read_id, kind, b"data")
    store.close()


def test_receiver_that_cannot_store_acknowledges_nothing_and_reconnects(tmp_path: Path, monkeypatch) -> None:
    """A full disk in the back office: no crash, no acknowledgement, the broker keeps the read for later."""
    from types import SimpleNamespace

    from edge.receive import Receiver

    receiver = Receiver("mqtt://127.0.0.1:1", tmp_path)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(receiver.store, "add_image", disk_full)
    client = SimpleNamespace(disconnected=False)
    client.disconnect = lambda: setattr(client, "disconnected", True)
    image = SimpleNamespace(topic="anpr/cam1/reads/images/r1/patch", payload=b"\xff\xd8\xff", mid=7, qos=1)
    receiver._on_message(client, None, image)
    assert receiver._to_ack == [] and client.disconnected
    assert "No space left on device" in receiver.last_error
    receiver.store.close()


def test_a_stop_ends_the_wait_for_acknowledgements_at_once(tmp_path: Path) -> None:
    """SIGTERM during `edge run --once`'s last wait for a broker that is down was ignored for up to
    --flush-timeout (60 s by default): the read stays spooled, the process ends now."""
    import threading
    import time

    from edge.types import OutboundRead, utc_now

    spool = Spool(tmp_path, 1_000_000)
    spool.put(OutboundRead("r1", "reads", b"{}", {}, utc_now()))
    publisher = Publisher(MqttSection(broker="mqtt://127.0.0.1:1"), "cam1", spool, reconnect_min_s=0.05, reconnect_max_s=0.1)
    publisher.start()
    stop = threading.Event()
    try:
        threading.Timer(0.3, stop.set).start()
        t0 = time.monotonic()
        assert publisher.flush(30.0, stop) is False
        assert time.monotonic() - t0 < 5.0
        assert spool.depth() == 1  # kept for the next start
    finally:
        publisher.stop()
        spool.close()
