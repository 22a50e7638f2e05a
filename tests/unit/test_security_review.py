"""Attacks on the trust features (signed reads, receiver, retention), each one a defect that was found and fixed.

Every test here is an attack that worked before its fix: the docstring says what the
attacker did and what the engine now does instead.
"""

from __future__ import annotations

import json
import signal
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

from edge.receive import Receiver
from edge.record import image_entry, to_json_line
from edge.signing import Signer
from edge.spool import Spool
from edge.types import OutboundRead


def _message(topic: str, payload: bytes, mid: int) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, payload=payload, mid=mid, qos=1)


def _client() -> SimpleNamespace:
    client = SimpleNamespace(disconnected=False)
    client.disconnect = lambda: setattr(client, "disconnected", True)
    return client


def _signed(signer: Signer, read_id: str, camera: str, **extra) -> bytes:
    record = {"read_id": read_id, "camera_id": camera, "plate": "AB12CDE", "images": {}, **extra}
    return to_json_line(signer.sign(record)).encode()


# --- the receiver must survive any message a publisher can send ---------------------------------


def test_a_record_with_an_object_where_a_text_field_goes_does_not_stall_the_receiver(tmp_path: Path) -> None:
    """Attack: publish `{"read_id": "r1", "camera_id": {}}`. SQLite refused to bind the object, the
    receiver took that for a full disk, acknowledged nothing and reconnected; the broker sent the
    same message again, for ever, and no later read of any camera was stored. Now it is stored
    (flagged, it does not verify) and acknowledged like any other read."""
    receiver = Receiver("mqtt://127.0.0.1:1", tmp_path)
    client = _client()
    odd = {"read_id": "r1", "camera_id": {"a": 1}, "plate": ["AB12CDE"], "timestamp": 3}
    receiver._on_message(client, None, _message("anpr/cam1/reads", json.dumps(odd).encode(), 1))
    assert not client.disconnected and receiver.last_error is None
    assert [mid for mid, _ in receiver._to_ack] == [1]
    row = receiver.store.db.execute("SELECT camera_id, plate, verified FROM reads WHERE read_id = 'r1'").fetchone()
    assert row == (None, None, 0)
    receiver.store.close()


def test_deeply_nested_json_is_refused_not_a_crash(tmp_path: Path) -> None:
    """Attack: a payload of 100 000 '['. json.loads raised RecursionError, which no handler caught:
    it left paho's loop and ended the receiver, and the unacknowledged message came back after
    every restart. Now it is refused and acknowledged; so is a read nested deep inside a record."""
    receiver = Receiver("mqtt://127.0.0.1:1", tmp_path)
    client = _client()
    receiver._on_message(client, None, _message("anpr/cam1/reads", b"[" * 100_000, 1))
    deep = b'{"read_id": "r2", "x": ' + b"[" * 900 + b"]" * 900 + b"}"
    receiver._on_message(client, None, _message("anpr/cam1/reads", deep, 2))
    assert [mid for mid, _ in receiver._to_ack] == [1, 2] and not client.disconnected
    assert receiver.store.counters().get("rejected", 0) >= 1
    receiver.store.close()


def test_a_read_published_under_another_cameras_topic_does_not_verify(tmp_path: Path) -> None:
    """Attack: with the broker's ACL too broad, cam2 publishes its own correctly signed read on
    cam1's topic, or claims to be cam1 on its own. Without --keys bound to cameras (the receiver's
    default) both verified and were filed as they claimed. The topic is what the broker's ACL
    vouches for, so a read whose camera_id (or feed) differs from its topic is now flagged, and
    stays flagged when its images arrive and it is checked again."""
    cam2 = Signer.generate("cam2")
    receiver = Receiver("mqtt://127.0.0.1:1", tmp_path)
    client = _client()
    patch = b"\xff\xd8\xffpatch"
    listed = {"patch": image_entry(patch, 1, 1)}
    receiver._on_message(client, None, _message("anpr/cam1/reads", _signed(cam2, "r1", "cam2", images=listed), 1))
    receiver._on_message(client, None, _message("anpr/cam2/reads", _signed(cam2, "r2", "cam1"), 2))
    receiver._on_message(client, None, _message("anpr/cam2/reads", _signed(cam2, "r3", "cam2", feed="hits"), 3))
    receiver._on_message(client, None, _message("anpr/cam2/reads", _signed(cam2, "r4", "cam2", feed="reads"), 4))
    receiver._on_message(client, None, _message("anpr/cam1/reads/images/r1/patch", patch, 5))
    rows = dict(receiver.store.db.execute("SELECT read_id, problems FROM reads WHERE verified = 0").fetchall())
    assert sorted(rows) == ["r1", "r2", "r3"]
    assert "claims camera_id 'cam2'" in rows["r1"] and "claims camera_id 'cam1'" in rows["r2"]
    assert "claims feed 'hits'" in rows["r3"]
    assert receiver.store.db.execute("SELECT verified FROM reads WHERE read_id = 'r4'").fetchone() == (1,)
    receiver.store.close()


# --- retention -----------------------------------------------------------------------------------


def test_a_retention_pass_leaves_no_delivered_plate_in_the_spools_write_ahead_log(tmp_path: Path) -> None:
    """Attack (forensic): after an outage the spool's WAL grows to hold the whole backlog; the reads
    are delivered and deleted, but SQLite reuses the WAL from its start without shrinking it, so
    its tail kept old records and images, plate text included, for as long as the camera ran:
    past the retention limit, and read back by anyone who copies the file. The retention pass
    only emptied the WAL when it had deleted something itself; now every pass empties it."""
    marker = b"ZZ99PLT"
    spool = Spool(tmp_path / "spool.sqlite", 10**9)
    now = datetime.now(timezone.utc)
    backlog = [OutboundRead(f"r{i}", "reads", b'{"plate":"' + marker + b'"}', {"overview": marker * 3000}, now) for i in range(200)]
    spool.put_many(backlog)
    spool.ack_many([(r.read_id, r.feed) for r in backlog])
    assert spool.purge_older_than(3600) == 0  # nothing old enough: all of it was delivered
    leftovers = {f.name: f.read_bytes().count(marker) for f in tmp_path.iterdir()}
    spool.close()
    assert all(count == 0 for count in leftovers.values()), leftovers


def test_the_deploy_units_keep_printed_reads_out_of_the_journal() -> None:
    """Defect: a camera with no broker yet (a fresh install, or a broker line commented out) prints
    every read, plate included, to stdout; under the shipped units stdout went to journald, which
    keeps it by its own rules, outside privacy.retention_hours and the spool's secure delete.
    The units now discard stdout; logs (stderr, never plate text) still reach the journal."""
    units = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
    for name in ("edge-camera@.service", "edge-serve.service"):
        lines = (units / name).read_text().splitlines()
        assert "StandardOutput=null" in lines, name
        assert not any(line.startswith("StandardError=null") for line in lines), name


# --- edge verify ---------------------------------------------------------------------------------


def test_verify_images_folder_reads_no_file_outside_it(tmp_path: Path, capsys) -> None:
    """Attack: a read sent to a back office names read_id "../outside" (or an image kind "../x").
    `edge verify --images DIR` joined them to DIR, read whatever file that named and printed the
    start of its SHA-256: an oracle for the existence and content of files the verifier can read.
    Now a read id or kind that is not a plain name is a problem of that read and nothing is read."""
    from edge.cli import main
    from edge.record import sha256_hex

    secret = tmp_path / "outside" / "secret.jpg"
    secret.parent.mkdir()
    secret.write_bytes(b"the verifier's private file")
    (tmp_path / "images").mkdir()
    attacker = Signer.generate("cam1")
    forged = [
        attacker.sign({"read_id": "../outside", "camera_id": "cam1", "images": {"secret": {"sha256": "0" * 64}}}),
        attacker.sign({"read_id": "r1", "camera_id": "cam1", "images": {"../outside/secret": {"sha256": "0" * 64}}}),
    ]
    reads = tmp_path / "reads.jsonl"
    reads.write_text("".join(to_json_line(r) + "\n" for r in forged))
    assert main(["verify", str(reads), "--images", str(tmp_path / "images")]) == 1
    out = capsys.readouterr().out
    assert sha256_hex(secret.read_bytes())[:16] not in out
    assert out.count("not a plain name") == 2


# --- audit log -----------------------------------------------------------------------------------


def _two_entry_log(path: Path) -> list[str]:
    from edge.audit import AuditLog

    log = AuditLog(path)
    log.append("retention_purge", removed=10, older_than_hours=72)
    log.append("read_published", read_id="r1", feed="reads")
    return path.read_text().splitlines()


def test_an_audit_entry_edited_with_a_repeated_key_is_detected(tmp_path: Path) -> None:
    """Attack: put `"removed":0,` in front of a purge entry's `"removed":10`. Python's json keeps the
    last value, so the entry hashed as before and `edge audit verify` said intact; a tool that keeps
    the first (SQLite's json_extract, some auditors' parsers) reads 0 deletions. A repeated key is
    now an edit of that line."""
    from edge.audit import verify_audit_log

    lines = _two_entry_log(tmp_path / "audit.log")
    lines[0] = lines[0].replace('"removed":10', '"removed":0,"removed":10')
    (tmp_path / "audit.log").write_text("\n".join(lines) + "\n")
    problems = verify_audit_log(tmp_path / "audit.log")
    assert problems and "audit.log:1" in problems[0] and "'removed' appears twice" in problems[0]


def test_audit_verify_with_an_anchor_reports_a_forged_hash_field_instead_of_crashing(tmp_path: Path, capsys) -> None:
    """A tampered log whose last line has a list for its hash made `edge audit verify --anchor` end
    in a traceback (unhashable list) instead of the TAMPERED report that names the line."""
    from edge.cli import main

    lines = _two_entry_log(tmp_path / "audit.log")
    (tmp_path / "audit.log").write_text("\n".join(lines + ['{"hash": [1]}']) + "\n")
    anchor = json.loads(lines[0])["hash"]
    assert main(["audit", "verify", str(tmp_path / "audit.log"), "--anchor", anchor]) == 1
    assert "TAMPERED" in capsys.readouterr().out


# --- edge receive --------------------------------------------------------------------------------


def test_edge_receive_without_keys_refuses_to_start_unless_told_to_trust_named_keys(tmp_path: Path, monkeypatch, capsys) -> None:
    """Defect: without --keys the receiver checks each read against the public key the read itself
    names, so a read made up and signed by anyone with broker access is stored with verified = 1.
    `edge receive` said nothing, and an operator took verified = 1 for "came from our camera".
    Later it printed a note at start; a back office should be safe by default, so it now refuses
    to start without --keys DIR unless --trust-named-keys (a test rig) asks for it, and says so."""
    import edge.receive
    from edge.cli import main

    class FakeReceiver:
        def __init__(self, *args, **kwargs) -> None:
            self.store = SimpleNamespace(counters=dict, close=lambda: None)

        def run(self) -> None:
            pass

        def stop(self) -> None:
            pass

    monkeypatch.setattr(edge.receive, "Receiver", FakeReceiver)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # keep pytest's own SIGTERM handling
    base = ["receive", "--broker", "mqtt://127.0.0.1:1883", "--out", str(tmp_path / "bo")]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "no trusted keys: give --keys DIR" in err and "--trust-named-keys" in err
    assert not (tmp_path / "bo").exists()  # refused before anything was created or subscribed
    assert main([*base, "--trust-named-keys"]) == 0
    err = capsys.readouterr().err
    assert "--trust-named-keys" in err and "not which camera made it" in err
    keys = tmp_path / "keys"
    keys.mkdir()
    assert main([*base, "--keys", str(keys)]) == 2  # an empty folder: every read would fail to verify
    assert "no *.pub public keys" in capsys.readouterr().err
    from edge.signing import write_public_key

    write_public_key(keys / "cam1.pub", Signer.generate("cam1")._key.public_key(), "cam1")
    assert main([*base, "--keys", str(keys)]) == 0
    assert "not which camera made it" not in capsys.readouterr().err
    try:  # both at once make no sense: argparse refuses them (exit 2)
        main([*base, "--keys", str(keys), "--trust-named-keys"])
    except SystemExit as done:
        assert done.code == 2
    else:
        raise AssertionError("--keys with --trust-named-keys was accepted")


def test_a_different_record_under_a_stored_read_id_is_kept_and_a_genuine_one_displaces_a_forgery(tmp_path: Path) -> None:
    """Attack: learn a read id before the back office has its record (the hits feed's id is derived
    from the full feed's without a key, and a refused feed waits 30 s for its retry) and publish
    a forged record under it first. De-duplication kept whichever came first and dropped the
    other as a plain duplicate: the genuine read was acknowledged and lost, and a forgery that
    came second vanished without a trace. Now a copy that differs from the stored one is kept in
    `conflicts`, and a copy that verifies takes the place of one that does not."""
    cam1, forger = Signer.generate("cam1"), Signer.generate("cam1")
    trusted = {cam1.key_id: cam1.public_raw}
    receiver = Receiver("mqtt://127.0.0.1:1", tmp_path, trusted_keys=trusted)
    client = _client()
    genuine = _signed(cam1, "r1", "cam1")
    receiver._on_message(client, None, _message("anpr/cam1/reads", _signed(forger, "r1", "cam1", plate="ZZ99ZZZ"), 1))
    receiver._on_message(client, None, _message("anpr/cam1/reads", genuine, 2))
    receiver._on_message(client, None, _message("anpr/cam1/reads", genuine, 3))  # a re-send: a plain duplicate
    receiver._on_message(client, None, _message("anpr/cam1/reads", _signed(forger, "r1", "cam1", plate="YY11YYY"), 4))
    receiver.store.commit()
    db = receiver.store.db
    assert db.execute("SELECT plate, verified FROM reads WHERE read_id = 'r1'").fetchall() == [("AB12CDE", 1)]
    kept = sorted(json.loads(r)["plate"] for (r,) in db.execute("SELECT record FROM conflicts WHERE read_id = 'r1'"))
    assert kept == ["YY11YYY", "ZZ99ZZZ"]
    assert receiver.store.counters()["duplicates"] == 1 and receiver.store.counters()["conflicts"] == 2
    assert [mid for mid, _ in receiver._to_ack] == [1, 2, 3, 4]
    receiver.store.close()


def test_the_receiver_deletes_reads_and_images_past_its_retention_leaving_no_plate_on_disk(tmp_path: Path) -> None:
    """Defect (retention): the reference back office kept every read and image for ever, and its
    database did not overwrite deleted rows, so even an operator's own DELETE left plates in free
    pages. `ReadStore.purge_older_than` (`edge receive --retention-hours H`) now deletes reads,
    conflicting copies and images (files too) received more than H hours ago, with SQLite's
    secure delete and the WAL emptied, so nothing of them stays on disk."""
    from edge.receive import ReadStore

    store = ReadStore(tmp_path)
    signer = Signer.generate("cam1")
    patch = b"\xff\xd8\xff" + b"ZZ99PLT" * 50
    for read_id, plate in (("old", "ZZ99PLT"), ("new", "AB12CDE")):
        store.begin()
        record = json.loads(_signed(signer, read_id, "cam1", plate=plate, images={"patch": image_entry(patch, 1, 1)}))
        store.add_record("anpr/cam1/reads", "reads", record)
        store.add_image(read_id, "patch", patch if read_id == "old" else b"\xff\xd8\xffnew")
        store.commit()
    store.begin()
    store.add_record("anpr/cam1/reads", "reads", json.loads(_signed(signer, "old", "cam1", plate="ZZ99PLT", lane="2")))
    store.add_image("orphan", "patch", patch)  # an image whose record never came
    store.commit()
    past = "2000-01-01T00:00:00.000Z"
    for table in ("reads", "images", "conflicts"):
        store.db.execute(f"UPDATE {table} SET received_at = ? WHERE read_id IN ('old', 'orphan')", (past,))

    assert store.purge_older_than(3600) == 1
    assert store.read_ids() == ["new"]
    assert store.db.execute("SELECT read_id FROM images").fetchall() == [("new",)]
    assert store.db.execute("SELECT COUNT(*) FROM conflicts").fetchone() == (0,)
    assert sorted(p.parent.name for p in (tmp_path / "images").rglob("*.jpg")) == ["new"]
    leftovers = {f.name: f.read_bytes().count(b"ZZ99PLT") for f in tmp_path.rglob("*") if f.is_file()}
    store.close()
    assert all(n == 0 for n in leftovers.values()), leftovers


def test_edge_receive_retention_hours_runs_retention_passes(tmp_path: Path, monkeypatch) -> None:
    """`edge receive --retention-hours H` hands H to the receiver, whose passes delete old reads."""
    import edge.receive
    from edge.cli import main

    left: list[list[str]] = []

    class OnePass(Receiver):
        def run(self) -> None:  # one retention pass instead of a broker connection
            self.store.db.execute("UPDATE reads SET received_at = '2000-01-01T00:00:00.000Z' WHERE read_id = 'old'")
            self._maybe_purge()
            left.append(self.store.read_ids())

    store = edge.receive.ReadStore(tmp_path / "bo")
    store.begin()
    for read_id in ("old", "new"):
        store.add_record("anpr/cam1/reads", "reads", {"read_id": read_id, "camera_id": "cam1"})
    store.commit()
    store.close()
    monkeypatch.setattr(edge.receive, "Receiver", OnePass)
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    out = str(tmp_path / "bo")
    assert main(["receive", "--broker", "mqtt://127.0.0.1:1883", "--out", out, "--retention-hours", "1", "--trust-named-keys"]) == 0
    assert left == [["new"]]
    assert main(["receive", "--broker", "mqtt://127.0.0.1:1883", "--out", out, "--trust-named-keys"]) == 0  # no limit: nothing deleted
    assert left[-1] == ["new"]


def test_receiver_image_files_are_owner_only_even_in_a_folder_made_beforehand(tmp_path: Path) -> None:
    """Defect: image files (plates, faces) were written with the process umask (0644) in per-read
    folders of 0755, so only the images/ folder's own mode kept others out, and an operator who
    made DIR/images beforehand (or restored it from a backup) exposed every image. Files are now
    0600 and their folders 0700, like the database."""
    import os
    import stat

    from edge.receive import ReadStore

    (tmp_path / "images").mkdir(mode=0o755)
    old_umask = os.umask(0o022)
    try:
        store = ReadStore(tmp_path)
        store.add_image("r1", "patch", b"\xff\xd8\xffpatch")
        store.commit()
        store.close()
    finally:
        os.umask(old_umask)
    image = tmp_path / "images" / "r1" / "patch.jpg"
    assert stat.S_IMODE(image.stat().st_mode) == 0o600
    assert stat.S_IMODE(image.parent.stat().st_mode) == 0o700


def test_a_forged_image_sent_first_does_not_displace_the_genuine_one(tmp_path: Path) -> None:
    """Attack: the same squatting with images. A forged patch sent under a read id before the
    camera's made the genuine patch a "duplicate image" and it was dropped: the genuine read then
    failed its image check for good, and (with a forged record too) could not even displace the
    forgery. A different image under a stored read id and kind is now kept aside, and the version
    the stored record's signed hash names is the one used."""
    cam1, forger = Signer.generate("cam1"), Signer.generate("cam1")
    receiver = Receiver("mqtt://127.0.0.1:1", tmp_path, trusted_keys={cam1.key_id: cam1.public_raw})
    client = _client()
    real, fake = b"\xff\xd8\xffgenuine patch", b"\xff\xd8\xffforged patch"
    for n, (topic, payload) in enumerate([
        ("anpr/cam1/reads/images/r1/patch", fake),
        ("anpr/cam1/reads", _signed(forger, "r1", "cam1", plate="ZZ99ZZZ", images={"patch": image_entry(fake, 1, 1)})),
        ("anpr/cam1/reads/images/r1/patch", real),
        ("anpr/cam1/reads", _signed(cam1, "r1", "cam1", images={"patch": image_entry(real, 1, 1)})),
        ("anpr/cam1/reads/images/r2/patch", fake),  # r2: a forged image first, then the genuine image and record
        ("anpr/cam1/reads/images/r2/patch", real),
        ("anpr/cam1/reads", _signed(cam1, "r2", "cam1", images={"patch": image_entry(real, 1, 1)})),
    ], start=1):
        receiver._on_message(client, None, _message(topic, payload, n))
    receiver.store.commit()
    db = receiver.store.db
    assert db.execute("SELECT read_id, plate, verified FROM reads ORDER BY read_id").fetchall() == [
        ("r1", "AB12CDE", 1), ("r2", "AB12CDE", 1)]
    for read_id in ("r1", "r2"):
        (path,) = db.execute("SELECT path FROM images WHERE read_id = ? AND kind = 'patch'", (read_id,)).fetchone()
        assert (tmp_path / path).read_bytes() == real
        (aside,) = db.execute("SELECT path FROM image_conflicts WHERE read_id = ?", (read_id,)).fetchone()
        assert (tmp_path / aside).read_bytes() == fake
    receiver.store.close()


# --- files holding secrets -----------------------------------------------------------------------


def test_a_broker_password_file_readable_by_everyone_is_warned_about_once(tmp_path: Path, caplog) -> None:
    """Defect: the camera refuses a signing or HMAC key that others can read, but took a broker
    password file of mode 0644 without a word; any local account could then log in to the broker
    as the camera (publish under its topic, or as the back office, read every plate). The file is
    used (a folder of 0700 may well protect it) but its mode is now logged, once, never its text."""
    import logging
    import os

    from edge.publish import read_password

    exposed = tmp_path / "cam.password"
    exposed.write_text("s3cret-pw\n")
    os.chmod(exposed, 0o644)
    with caplog.at_level(logging.WARNING, logger="edge.publish"):
        assert read_password(exposed) == "s3cret-pw"
        assert read_password(exposed) == "s3cret-pw"  # read at each connection: warned once
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(exposed) in warnings[0] and "0644" in warnings[0] and "chmod 600" in warnings[0]
    assert "s3cret" not in caplog.text
    caplog.clear()
    private = tmp_path / "bo.password"
    private.write_text("other\n")
    os.chmod(private, 0o600)
    with caplog.at_level(logging.WARNING, logger="edge.publish"):
        assert read_password(private) == "other"
    assert not caplog.records


def test_a_hotlist_readable_by_everyone_is_warned_about_once(tmp_path: Path, caplog) -> None:
    """Defect: a hotlist is a list of the vehicles someone is looking for (stolen, wanted, of
    interest): personal data as sensitive as the reads. The HMAC key beside it is refused when
    others can read it; the hotlist of mode 0644 was used silently. It is still used (its folder
    may protect it) but its mode is logged once, and never a line of it."""
    import logging
    import os

    from edge.privacy import Hotlist

    hot = tmp_path / "hotlist.txt"
    hot.write_text("XY70ZZT\n")
    os.chmod(hot, 0o644)
    with caplog.at_level(logging.WARNING, logger="edge.privacy"):
        hotlist = Hotlist(hot)
        hot.write_text("XY70ZZT\nAB12CDE\n")  # reloaded on change: not warned again
        assert "AB12CDE" in hotlist
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "0644" in warnings[0] and str(hot) in warnings[0]
    assert "XY70ZZT" not in caplog.text
    caplog.clear()
    os.chmod(hot, 0o640)
    with caplog.at_level(logging.WARNING, logger="edge.privacy"):
        Hotlist(hot)
    assert not caplog.records


# --- audit anchors -------------------------------------------------------------------------------


def test_the_receiver_keeps_the_audit_heads_cameras_publish_as_anchors(tmp_path: Path, capsys) -> None:
    """Defect: cutting the last entries off a camera's audit log is invisible to the chain alone;
    the camera publishes its log's head in every heartbeat so that it is kept off the unit, but the
    reference back office dropped status messages, so no anchor was kept anywhere and
    `edge audit verify --anchor` had nothing to check against. The receiver now keeps the newest
    head of each camera per day (subscribe it to `anpr/+/status` too), and a log later cut back
    fails `edge audit verify --anchor` with it."""
    from edge.audit import AuditLog
    from edge.cli import main

    log_path = tmp_path / "audit.log"
    audit = AuditLog(log_path)
    audit.append("retention_purge", removed=3, older_than_hours=72)
    audit.append("read_published", read_id="r1", feed="reads")
    seq, head = audit.head()
    receiver = Receiver("mqtt://127.0.0.1:1", tmp_path / "bo", topics=("anpr/+/reads/#", "anpr/+/status"))
    client = _client()
    status = {"state": "online", "camera_id": "cam1", "audit_head": {"seq": seq - 1, "hash": "0" * 64}}
    receiver._on_message(client, None, _message("anpr/cam1/status", json.dumps(status).encode(), 1))
    status["audit_head"] = {"seq": seq, "hash": head}
    receiver._on_message(client, None, _message("anpr/cam1/status", json.dumps(status).encode(), 2))
    receiver._on_message(client, None, _message("anpr/cam1/status", b'{"state": "offline"}', 3))
    receiver.store.commit()
    anchors = receiver.store.db.execute("SELECT camera_id, seq, hash FROM audit_heads").fetchall()
    assert anchors == [("cam1", seq, head)]  # the newest of the day
    receiver.store.close()

    log_path.write_text(log_path.read_text().splitlines(keepends=True)[0])  # the last entry cut off
    assert main(["audit", "verify", str(log_path)]) == 0  # the chain alone cannot tell
    assert main(["audit", "verify", str(log_path), "--anchor", head]) == 1
    assert "not in the log" in capsys.readouterr().out


def test_a_genuine_read_replayed_after_retention_is_deleted_again_at_the_next_pass(tmp_path: Path) -> None:
    """Attack: keep a copy of a genuine signed read and publish it again after the back office's
    retention deleted it. The receiver took it as new (its read id was gone), stored it as received
    today, verified, and kept it for another full period: retention undone by a replay. Retention
    now counts from the read's own time too, so a read taken longer ago than the limit goes at the
    next pass, whenever it arrived."""
    from edge.receive import ReadStore

    store = ReadStore(tmp_path)
    cam1 = Signer.generate("cam1")
    store.begin()
    store.add_record("anpr/cam1/reads", "reads", json.loads(_signed(cam1, "r1", "cam1", timestamp="2020-01-01T00:00:00.000Z")))
    store.add_record("anpr/cam1/reads", "reads", json.loads(_signed(cam1, "r2", "cam1", timestamp="2099-01-01T00:00:00.000Z")))
    store.commit()
    assert store.purge_older_than(3600) == 1
    assert store.read_ids() == ["r2"]  # a read from the future is kept: its receipt time still counts
    store.close()


def test_a_record_with_a_repeated_key_is_refused_by_the_receiver(tmp_path: Path, caplog) -> None:
    """Attack: put `"plate":"ZZ99ZZZ",` in front of a signed read's own plate. Python keeps the last
    value, so the receiver verified the read and stored it as signed, while any other subscriber
    whose parser keeps the first value saw another plate under a valid signature (`edge verify`
    already refuses such lines). The camera never writes a key twice: the receiver now refuses
    the message like any malformed one (logged, counted, acknowledged) and the read id stays free
    for the genuine read."""
    cam1 = Signer.generate("cam1")
    receiver = Receiver("mqtt://127.0.0.1:1", tmp_path)
    client = _client()
    crafted = _signed(cam1, "r1", "cam1").replace(b'"plate":', b'"plate":"ZZ99ZZZ","plate":', 1)
    receiver._on_message(client, None, _message("anpr/cam1/reads", crafted, 1))
    receiver._on_message(client, None, _message("anpr/cam1/reads", _signed(cam1, "r1", "cam1"), 2))
    assert receiver.store.db.execute("SELECT plate, verified FROM reads").fetchall() == [("AB12CDE", 1)]
    assert receiver.store.counters()["rejected"] == 1 and "'plate' appears twice" in caplog.text
    assert [mid for mid, _ in receiver._to_ack] == [1, 2]
    receiver.store.close()


def test_a_read_id_or_image_kind_with_a_trailing_newline_names_no_file(tmp_path: Path) -> None:
    """`^...$` with re.match lets a trailing newline through: read id "r1\\n" became a folder name
    with a newline in it (and a log line ending early). Names are now matched whole."""
    import pytest

    from edge.receive import ReadStore

    store = ReadStore(tmp_path)
    for read_id, kind in (("r1\n", "patch"), ("r1", "patch\n")):
        with pytest.raises(ValueError, match="unsafe"):
            store.add_image(read_id, kind, b"\xff\xd8\xff")
    store.close()
