"""Errors a person understands, while the unit keeps spooling; once fixed, every read arrives exactly once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edge.signing import Signer
from edge.spool import Spool
from tests.integration.helpers import make_read, wait_for
from tests.integration.mqtt_fixtures import make_publisher, mqtt_cfg, start_receiver, stored_ids


def _spool_reads(spool: Spool, camera: str, n: int) -> list[str]:
    signer = Signer.generate(camera)
    for i in range(n):
        spool.put(make_read(signer, camera, i, image_bytes=500))
    return [f"{camera}-{i:06d}" for i in range(n)]


def test_wrong_password_is_named_and_a_corrected_password_file_is_picked_up(broker, pki, tmp_path: Path, caplog) -> None:
    rec = start_receiver(broker, pki, tmp_path / "bo", "pw")
    password = tmp_path / "cam1.password"
    password.write_text("not-the-password\n")
    spool = Spool(tmp_path / "spool", 10**8)
    ids = _spool_reads(spool, "cam1", 10)
    pub = make_publisher(mqtt_cfg(broker, pki, "cam1", "pw", password_file=password), "cam1", spool)
    caplog.set_level(logging.ERROR, logger="edge.publish")
    pub.start()
    try:
        wait_for(lambda: "refused the connection" in caplog.text, 10, "the refused-connection error")
        assert "Not authorized (reason code 135)" in caplog.text or "Bad user name or password (reason code 134)" in caplog.text
        assert "user 'cam1'" in caplog.text and str(password) in caplog.text
        assert "not-the-password" not in caplog.text  # never the secret itself
        assert spool.depth() == 10
        password.write_text("cam1-secret\n")  # the file is read again at each attempt: no restart needed
        assert pub.flush(30)
        wait_for(lambda: stored_ids(rec) == ids, 10, "every read at the receiver")
    finally:
        pub.stop()
        rec.stop()


@pytest.mark.parametrize("qos", [1, 2])  # QoS 2: the refusal comes in PUBREC, which paho alone ignores
def test_topic_refused_by_the_acl_keeps_the_reads_and_names_the_reason_code(broker, pki, tmp_path: Path, caplog, qos) -> None:
    rec = start_receiver(broker, pki, tmp_path / "bo", "acl")
    spool = Spool(tmp_path / "spool", 10**8)
    ids = _spool_reads(spool, "cam2", 10)
    # Misconfigured: logs in as cam2 but publishes as camera cam3, which the ACL does not allow.
    wrong = make_publisher(mqtt_cfg(broker, pki, "cam2", "acl", qos=qos), "cam3", spool)
    caplog.set_level(logging.ERROR, logger="edge.publish")
    wrong.start()
    try:
        wait_for(lambda: "refused to take feed" in caplog.text, 10, "the refused-topic error")
        assert "Not authorized (reason code 135)" in caplog.text and "ACL" in caplog.text
        wait_for(lambda: wrong.status()["mqtt"]["held"] == 10, 10, "every read held back")
        assert spool.depth() == 10 and stored_ids(rec) == []
    finally:
        wrong.stop()
    fixed = make_publisher(mqtt_cfg(broker, pki, "cam2", "acl", qos=qos), "cam2", spool)
    fixed.start()
    try:
        assert fixed.flush(30)
        wait_for(lambda: stored_ids(rec) == ids, 10, "every read at the receiver")
    finally:
        fixed.stop()
        rec.stop()


def test_certificate_that_does_not_verify_is_named(broker, pki, tmp_path: Path, caplog) -> None:
    rec = start_receiver(broker, pki, tmp_path / "bo", "tls")
    spool = Spool(tmp_path / "spool", 10**8)
    ids = _spool_reads(spool, "cam4", 5)
    bad = make_publisher(mqtt_cfg(broker, pki, "cam4", "tls", ca_file=pki.rogue_ca_file), "cam4", spool)
    caplog.set_level(logging.ERROR, logger="edge.publish")
    bad.start()
    try:
        wait_for(lambda: "does not verify" in caplog.text, 10, "the certificate error")
        assert str(pki.rogue_ca_file) in caplog.text and "certificate" in caplog.text
        assert spool.depth() == 5
    finally:
        bad.stop()
    good = make_publisher(mqtt_cfg(broker, pki, "cam4", "tls"), "cam4", spool)
    good.start()
    try:
        assert good.flush(30)
        wait_for(lambda: stored_ids(rec) == ids, 10, "every read at the receiver")
    finally:
        good.stop()
        rec.stop()


def test_receiver_with_wrong_password_says_so(broker, pki, tmp_path: Path) -> None:
    from edge.receive import Receiver

    wrong = tmp_path / "pw"
    wrong.write_text("nope\n")
    rec = Receiver(broker.url, tmp_path / "bo", username="backoffice", password_file=wrong, ca_file=pki.ca_file, reconnect_max_s=0.5)
    rec.start()
    try:
        wait_for(lambda: "refused the connection" in (rec.last_error or ""), 10, "the receiver's error")
        assert "reason code 13" in rec.last_error and "--password-file" in rec.last_error
    finally:
        rec.stop()


def test_a_message_over_the_brokers_packet_limit_is_held_and_the_other_reads_still_go(broker, pki, tmp_path: Path) -> None:
    # The broker announces its Maximum Packet Size (MQTT 5) and drops a client that sends more;
    # paho re-sends the message at each reconnection, so it must not be sent at all.
    with open(broker.conf, "a") as f:
        f.write("max_packet_size 6000\n")
    broker.restart()
    rec = start_receiver(broker, pki, tmp_path / "bo", "big")
    signer = Signer.generate("cam8")
    big = make_read(signer, "cam8", 0, image_bytes=20_000)
    small = [make_read(signer, "cam8", i) for i in range(1, 4)]
    spool = Spool(tmp_path / "spool", 10**8)
    for r in [big, *small]:
        spool.put(r)
    pub = make_publisher(mqtt_cfg(broker, pki, "cam8", "big"), "cam8", spool)
    pub.start()
    try:
        wait_for(lambda: len(stored_ids(rec)) == len(small), 10, "the reads that fit at the receiver")
        wait_for(lambda: "Maximum Packet Size" in (pub.status()["mqtt"]["last_error"] or ""), 10, "the size report")
        # The receiver can store the last small read before the publisher has taken its acknowledgement.
        wait_for(lambda: [r.read_id for r in spool.pending()] == [big.read_id], 10, "only the big read left in the spool")  # kept, not lost
        assert pub.status()["mqtt"]["connects"] == 1  # not dropped by the broker
    finally:
        pub.stop()
        rec.stop()
