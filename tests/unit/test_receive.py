"""The reference receiver: a malformed message is refused on its own, it does not stop the receiver."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

from edge.receive import Receiver


def _message(topic: str, payload: bytes, mid: int) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, payload=payload, mid=mid, qos=1)


def test_a_malformed_record_is_refused_and_acknowledged_not_a_crash(tmp_path: Path) -> None:
    # Unacknowledged, a message that crashes the receiver comes back after every restart and
    # stops every later read from being stored: it must be refused and acknowledged instead.
    receiver = Receiver("mqtt://127.0.0.1:1", tmp_path)
    client = SimpleNamespace(disconnect=lambda: None)
    jpeg = base64.b64encode(b"\xff\xd8\xff" + b"x" * 20).decode()
    inline = {"read_id": "r1", "images": ["patch"], "image_data": {"patch": jpeg}}
    receiver._on_message(client, None, _message("anpr/cam1/reads", json.dumps(inline).encode(), 1))
    later_image = {"read_id": "r2", "images": ["patch"]}
    receiver._on_message(client, None, _message("anpr/cam1/reads", json.dumps(later_image).encode(), 2))
    receiver._on_message(client, None, _message("anpr/cam1/reads/images/r2/patch", b"\xff\xd8\xff", 3))
    assert [mid for mid, _ in receiver._to_ack] == [1, 2, 3]
    receiver.store.close()


# --- which keys a read was checked with -------------------------------------------------------


def _read(signer, read_id: str) -> dict:
    return signer.sign({"read_id": read_id, "camera_id": "cam1", "plate": "AB12CDE", "images": {}})


def test_each_read_says_whether_it_was_checked_against_trusted_keys_or_the_key_it_names(tmp_path: Path) -> None:
    """verified = 1 from the key a read names means intact, not "from our camera": the row says which."""
    from edge.receive import ReadStore
    from edge.signing import Signer

    cam1, stranger = Signer.generate("cam1"), Signer.generate("cam1")
    trusted = ReadStore(tmp_path / "trusted", trusted_keys={cam1.key_id: cam1.public_raw})
    named = ReadStore(tmp_path / "named")
    for store in (trusted, named):
        store.begin()
        for read_id, signer in (("r1", cam1), ("r2", stranger)):
            store.add_record("anpr/cam1/reads", "reads", _read(signer, read_id))
        store.commit()
    rows = lambda s: s.db.execute("SELECT read_id, verified, key_trust FROM reads ORDER BY read_id").fetchall()  # noqa: E731
    assert rows(trusted) == [("r1", 1, "trusted"), ("r2", 0, "trusted")]
    assert rows(named) == [("r1", 1, "named"), ("r2", 1, "named")]  # the stranger's read "verifies": hence the mark
    trusted.close()
    named.close()


def test_a_folder_from_an_older_receiver_gets_the_key_trust_column_and_keeps_its_reads(tmp_path: Path) -> None:
    import sqlite3

    from edge.receive import ReadStore
    from edge.signing import Signer

    old = sqlite3.connect(tmp_path / "reads.sqlite")
    old.execute("CREATE TABLE reads (read_id TEXT PRIMARY KEY, feed TEXT NOT NULL, camera_id TEXT, plate TEXT, "
                "timestamp TEXT, topic TEXT NOT NULL, received_at TEXT NOT NULL, verified INTEGER, problems TEXT, "
                "record TEXT NOT NULL)")
    old.execute("INSERT INTO reads VALUES ('r0', 'reads', 'cam1', 'AB12CDE', NULL, 'anpr/cam1/reads', "
                "'2026-11-23T00:00:00.000Z', 1, '[]', '{}')")
    old.commit()
    old.close()
    cam1 = Signer.generate("cam1")
    store = ReadStore(tmp_path, trusted_keys={cam1.key_id: cam1.public_raw})
    store.begin()
    row = store.add_record("anpr/cam1/reads", "reads", _read(cam1, "r1"))
    store.commit()
    assert row["key_trust"] == "trusted"  # also in the JSON line `edge receive` prints
    assert store.db.execute("SELECT read_id, key_trust FROM reads ORDER BY read_id").fetchall() == [
        ("r0", None), ("r1", "trusted")]  # an old row's check is not known, and not guessed
    store.close()
    ReadStore(tmp_path).close()  # opening it again changes nothing
