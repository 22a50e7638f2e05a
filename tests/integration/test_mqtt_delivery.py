"""Reads go from the spool through a real broker to the back office: once each, signed, with their images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.signing import Signer
from edge.spool import Spool
from tests.integration.helpers import make_read, wait_for
from tests.integration.mqtt_fixtures import make_publisher, mqtt_cfg, retained_status, start_receiver, stored_ids


@pytest.mark.parametrize(
    ("imagery_mode", "qos", "protocol"),
    [("separate", 1, "5"), ("inline", 1, "5"), ("separate", 2, "5"), ("separate", 1, "3.1.1")],
)
def test_every_read_arrives_once_verified_with_its_images(broker, pki, tmp_path: Path, imagery_mode, qos, protocol) -> None:
    prefix = f"d{qos}{imagery_mode[0]}{protocol[0]}"
    rows: list[dict] = []
    rec = start_receiver(broker, pki, tmp_path / "bo", prefix, rows)
    signer = Signer.generate("cam1")
    reads = [make_read(signer, "cam1", i, image_bytes=3000 if i % 3 else 0) for i in range(30)]
    spool = Spool(tmp_path / "spool", 10**8)
    for r in reads:
        spool.put(r)
    cfg = mqtt_cfg(broker, pki, "cam1", prefix, imagery_mode=imagery_mode, qos=qos, protocol=protocol)
    published: list[tuple[str, str]] = []
    pub = make_publisher(cfg, "cam1", spool, on_published=lambda rid, feed: published.append((rid, feed)))
    pub.start()
    try:
        assert pub.flush(30), pub.status()
        wait_for(lambda: len(stored_ids(rec)) == len(reads), 10, "all reads at the receiver")
    finally:
        pub.stop()
        rec.stop()
    assert stored_ids(rec) == sorted(r.read_id for r in reads)
    assert sorted(published) == sorted((r.read_id, "reads") for r in reads)
    assert sorted(row["read_id"] for row in rows) == sorted(r.read_id for r in reads)  # one line per new read
    db = rec.store.db
    assert db.execute("SELECT COUNT(*) FROM reads WHERE verified = 1").fetchone()[0] == len(reads)
    for r in reads:
        files = {kind: (tmp_path / "bo" / rel).read_bytes() for kind, rel in db.execute("SELECT kind, path FROM images WHERE read_id = ?", (r.read_id,))}
        assert files == r.images
    # Inline image data is stored as files, not kept in the stored record.
    assert all("image_data" not in json.loads(rec_) for (rec_,) in db.execute("SELECT record FROM reads"))
    assert spool.depth() == 0


def test_status_is_retained_with_heartbeat_fields_and_says_offline_on_stop(broker, pki, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 10**8)
    pub = make_publisher(mqtt_cfg(broker, pki, "cam2", "st"), "cam2", spool)
    pub.start()
    try:
        status = retained_status(broker, pki, "st/cam2/status", lambda s: s.get("state") == "online")
    finally:
        pub.stop()
    assert status["camera_id"] == "cam2"
    assert status["fps"] == 12.5 and status["dropped_frames"] == 3 and status["models"] == {"reader": "test"}
    assert status["spool"]["depth"] == 0 and "oldest_age_s" in status["spool"] and "at_cap" in status["spool"]
    assert status["uptime_s"] >= 0
    # A clean stop leaves "offline" retained; a lost link leaves the will, also "offline".
    assert retained_status(broker, pki, "st/cam2/status")["state"] == "offline"


def test_shared_subscription_splits_reads_between_receivers_without_loss(broker, pki, tmp_path: Path) -> None:
    out = tmp_path / "bo"
    a = start_receiver(broker, pki, out, "sh", share="backoffice", client_id="bo-a")
    b = start_receiver(broker, pki, out, "sh", share="backoffice", client_id="bo-b")
    signer = Signer.generate("cam3")
    spool = Spool(tmp_path / "spool", 10**8)
    reads = [make_read(signer, "cam3", i, image_bytes=500) for i in range(40)]
    for r in reads:
        spool.put(r)
    pub = make_publisher(mqtt_cfg(broker, pki, "cam3", "sh"), "cam3", spool)
    pub.start()
    try:
        assert pub.flush(30)
        wait_for(lambda: len(stored_ids(a)) == len(reads), 10, "all reads in the shared folder")
    finally:
        pub.stop()
        a.stop()
        b.stop()
    assert stored_ids(a) == sorted(r.read_id for r in reads)
    counts_a, counts_b = a.store.counters(), b.store.counters()
    assert counts_a.get("reads", 0) > 0 and counts_b.get("reads", 0) > 0  # both took a share
    assert a.store.db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 2 * len(reads)
    # Images that reached the other receiver before their record are checked when the record comes.
    assert a.store.db.execute("SELECT COUNT(*) FROM reads WHERE verified = 1").fetchone()[0] == len(reads)


def test_reads_nobody_subscribed_to_stay_spooled_until_a_back_office_subscribes(broker, pki, tmp_path: Path) -> None:
    signer = Signer.generate("cam4")
    spool = Spool(tmp_path / "spool", 10**8)
    for i in range(5):
        spool.put(make_read(signer, "cam4", i))
    pub = make_publisher(mqtt_cfg(broker, pki, "cam4", "nosub"), "cam4", spool)
    pub.start()
    try:
        wait_for(lambda: "No matching subscribers" in (pub.status()["mqtt"]["last_error"] or ""), 10, "the no-subscriber report")
        assert spool.depth() == 5
        rec = start_receiver(broker, pki, tmp_path / "bo", "nosub")
        assert pub.flush(30)
        wait_for(lambda: len(stored_ids(rec)) == 5, 10, "the held reads at the receiver")
        rec.stop()
    finally:
        pub.stop()


def test_spool_at_its_cap_drops_imagery_keeps_every_read_and_raises_the_alarm(broker, pki, tmp_path: Path) -> None:
    signer = Signer.generate("cam5")
    reads = [make_read(signer, "cam5", i, image_bytes=20_000) for i in range(30)]
    record_bytes = sum(len(r.record) for r in reads)
    per_read_images = sum(len(v) for v in reads[0].images.values())
    spool = Spool(tmp_path / "spool", record_bytes + 10 * per_read_images)  # imagery of 10 reads fits
    for r in reads:  # spooled while the link is down
        spool.put(r)
    assert spool.alarm.at_cap and spool.alarm.images_dropped == 20
    rec = start_receiver(broker, pki, tmp_path / "bo", "cap")
    pub = make_publisher(mqtt_cfg(broker, pki, "cam5", "cap"), "cam5", spool)
    pub.start()
    try:
        status = retained_status(broker, pki, "cap/cam5/status", lambda s: s.get("spool", {}).get("images_dropped"))
        assert pub.flush(30)
        wait_for(lambda: len(stored_ids(rec)) == 30, 10, "every read at the receiver")
    finally:
        pub.stop()
        rec.stop()
    assert status["spool"]["images_dropped"] == 20 and status["spool"]["reads_evicted"] == 0
    with_images = [rid for (rid,) in rec.store.db.execute("SELECT DISTINCT read_id FROM images ORDER BY read_id")]
    assert with_images == [r.read_id for r in reads[20:]]  # the newest kept their pictures
    assert stored_ids(rec) == [r.read_id for r in reads]


def test_reads_from_an_untrusted_key_are_kept_but_flagged(broker, pki, tmp_path: Path) -> None:
    trusted, stranger = Signer.generate("cam6"), Signer.generate("cam6")
    rows: list[dict] = []
    rec = start_receiver(broker, pki, tmp_path / "bo", "keys", rows, trusted_keys={trusted.key_id: trusted.public_raw})
    spool = Spool(tmp_path / "spool", 10**8)
    spool.put(make_read(trusted, "cam6", 0))
    spool.put(make_read(stranger, "cam6", 1))
    pub = make_publisher(mqtt_cfg(broker, pki, "cam6", "keys"), "cam6", spool)
    pub.start()
    try:
        assert pub.flush(30)
        wait_for(lambda: len(rows) == 2, 10, "both reads")
    finally:
        pub.stop()
        rec.stop()
    verdict = {row["read_id"]: row["received"] for row in rows}
    assert verdict["cam6-000000"]["verified"] == 1
    assert verdict["cam6-000001"]["verified"] == 0
    assert any("not among the trusted keys" in p for p in verdict["cam6-000001"]["problems"])


def test_backlog_drains_oldest_first_at_its_rate_while_live_reads_go_at_once(broker, pki, tmp_path: Path) -> None:
    signer = Signer.generate("cam7")
    rows: list[dict] = []
    rec = start_receiver(broker, pki, tmp_path / "bo", "drain", rows)
    spool = Spool(tmp_path / "spool", 10**8)
    for i in range(40):  # spooled during an outage
        spool.put(make_read(signer, "cam7", i))
    pub = make_publisher(mqtt_cfg(broker, pki, "cam7", "drain", drain_rate_per_s=20), "cam7", spool)
    pub.start()
    try:
        wait_for(lambda: len(rows) >= 3, 10, "the backlog to start draining")
        live = make_read(signer, "cam7", 1000)
        spool.put(live)
        pub.notify()
        assert pub.flush(30)
        wait_for(lambda: len(rows) == 41, 10, "every read")
    finally:
        pub.stop()
        rec.stop()
    order = [row["read_id"] for row in rows]
    backlog = [rid for rid in order if rid != live.read_id]
    assert backlog == sorted(backlog)  # oldest first
    assert order.index(live.read_id) < 30  # overtook most of the paced backlog


@pytest.mark.parametrize("max_inflight", [1, 2])
def test_a_read_with_more_messages_than_the_window_is_still_delivered(broker, pki, tmp_path: Path, max_inflight) -> None:
    # A record and two images are three messages: a window of 1 or 2 (the config allows it, and a
    # broker's Receive Maximum can impose it) must slow such a read down, not hold it for ever.
    rec = start_receiver(broker, pki, tmp_path / "bo", f"win{max_inflight}")
    signer = Signer.generate("cam7")
    reads = [make_read(signer, "cam7", i, image_bytes=800) for i in range(3)]
    spool = Spool(tmp_path / "spool", 10**8)
    for r in reads:
        spool.put(r)
    pub = make_publisher(mqtt_cfg(broker, pki, "cam7", f"win{max_inflight}", max_inflight=max_inflight), "cam7", spool)
    pub.start()
    try:
        assert pub.flush(10), pub.status()
        wait_for(lambda: len(stored_ids(rec)) == len(reads), 10, "all reads at the receiver")
    finally:
        pub.stop()
        rec.stop()
    assert rec.store.db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 2 * len(reads)
    assert rec.store.db.execute("SELECT COUNT(*) FROM reads WHERE verified = 1").fetchone()[0] == len(reads)
