"""The back-office receiver: subscribe, verify, de-duplicate by `read_id`, store reads and images.

A reference for integrators and the back office of the test suite. It stores into one folder:

    DIR/reads.sqlite                        reads (read_id unique), images, counters, conflicting
                                            copies (conflicts, image_conflicts), audit_heads
    DIR/images/<read_id>/<kind>.<ext>       image files (JPEG, PNG or .bin)

No read is lost between the broker and the folder: messages are acknowledged to the broker
only after the SQLite transaction holding them has committed (paho's manual
acknowledgement, a batch per network-loop turn), and the receiver keeps a persistent MQTT
session (fixed client id, clean start off, session expiry), so the broker queues reads
published while it is away. A read delivered twice (a re-send after an outage) is counted
as a duplicate and stored once. A *different* record under a read_id already stored (a
forgery, or the genuine read after a forgery) is kept in the `conflicts` table and logged;
a copy that verifies takes the place of a stored one that does not.

Subscribed to the cameras' status topics too (`--topic 'anpr/+/status'`), it keeps the newest
audit log head of each camera per day in `audit_heads`: anchors for `edge audit verify --anchor`.

Several receivers can share the load with an MQTT 5 shared subscription (`share`, topic
`$share/<group>/<pattern>`). Give them the same folder (SQLite in WAL mode serialises the
writers and the unique `read_id` de-duplicates across them) and each its own client id:
a read's images may reach one receiver and its record another.

Signatures are checked with `edge.signing.verify_record` against the images received so
far, with the trusted camera keys given (`edge receive --keys DIR`). Without them each read
is checked with the public key it names itself: that shows it is intact, not who signed it
(anyone who can publish can sign with a key of their own), so `edge receive` refuses to
start that way unless `--trust-named-keys` asks for it, and every read is stored with
`key_trust` ('trusted' or 'named') saying which check `verified` reports. As a library,
`ReadStore` and `Receiver` keep `trusted_keys=None` for tests and rigs, with a warning.
An image arriving after its record checks the record again. A read that does not verify
is stored with `verified = 0` and its problems (evidence is kept, never silently dropped)
and logged as a warning. So is a read whose signed `camera_id` or `feed` differs from
the topic it came on: the broker's ACL vouches for the topic, not for what the record claims.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import random
import re
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.errors import EdgeError
from edge.publish import BrokerAddress, describe_connect_error, describe_reason, read_password, tls_context
from edge.record import INLINE_IMAGES_FIELD, parse_record

log = logging.getLogger(__name__)

DB_FILE = "reads.sqlite"
DEFAULT_TOPIC = "anpr/+/reads/#"  # the full feed's records and their images, every camera
SESSION_EXPIRY_S = 24 * 3600
BATCH_MAX = 200  # messages stored per transaction at most
RETENTION_EVERY_S = 300.0  # retention pass interval at most (ten passes per retention period if that is shorter)
# Topic levels that become file names: no path separators, no dot-dot.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")  # fullmatch: "$" would let a trailing newline in
_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reads (
    read_id TEXT PRIMARY KEY,
    feed TEXT NOT NULL,
    camera_id TEXT,
    plate TEXT,
    timestamp TEXT,
    topic TEXT NOT NULL,
    received_at TEXT NOT NULL,
    verified INTEGER,            -- 1 verifies, 0 does not (see problems), NULL not checked
    problems TEXT,               -- JSON list
    record TEXT NOT NULL,        -- the record as received, less inline image data
    key_trust TEXT               -- 'trusted': checked against trusted keys; 'named': against the key the read names
);                               -- (verified = 1 then means intact only); NULL: not checked
CREATE TABLE IF NOT EXISTS images (
    read_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,          -- relative to the receiver's folder
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (read_id, kind)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit_heads (  -- anchors for `edge audit verify --anchor`: newest head per camera and day
    camera_id TEXT NOT NULL,
    day TEXT NOT NULL,           -- UTC date received
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (camera_id, day)
);
CREATE TABLE IF NOT EXISTS image_conflicts (  -- images that differ from the one kept under their read_id and kind
    read_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS conflicts (  -- records that differ from the one kept under their read_id
    read_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    received_at TEXT NOT NULL,
    verified INTEGER,
    problems TEXT,
    record TEXT NOT NULL
);
"""


class ReceiverError(EdgeError):
    """The receiver's folder or database cannot be used."""


def _text(value: Any) -> str | None:
    """A record field for a text column: the value when it is text, else NULL.

    A publisher controls these values: an object or list here would make SQLite refuse the
    row, which looks like a full disk, so the message would never be acknowledged and would
    stall the receiver for ever. The whole record is kept in the `record` column anyway.
    """
    return value if isinstance(value, str) else None


def topic_problems(topic: str, record: dict[str, Any]) -> list[str]:
    """Where a record's signed camera and feed differ from the topic it came on (`<prefix>/<camera>/<feed>`).

    The broker's ACL lets each camera's account publish only under its own topic, so the topic
    is what the broker vouches for. A read claiming another camera (or another feed) than its
    topic names was moved there or forged, even when its signature is intact: without trusted
    keys bound to cameras, any key signs for any camera id.
    """
    levels = topic.split("/")
    if len(levels) < 3:
        return [f"topic {topic!r} is not <prefix>/<camera>/<feed>"]
    problems = []
    camera, feed = levels[-2], levels[-1]
    if record.get("camera_id") != camera:
        problems.append(f"published on {topic!r} (camera {camera!r}) but the read claims camera_id {record.get('camera_id')!r}")
    if "feed" in record and record["feed"] != feed:
        problems.append(f"published on {topic!r} (feed {feed!r}) but the read claims feed {record['feed']!r}")
    return problems


def _now_iso(ago_s: float = 0.0) -> str:
    """Now (or `ago_s` seconds ago) as the receiver writes times: they compare as text in SQL."""
    then = datetime.now(timezone.utc) - timedelta(seconds=ago_s)
    return then.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _load_verifier() -> Callable[..., list[str]] | None:
    try:
        from edge.signing import verify_record
    except ImportError:
        return None
    return verify_record


def _syncfs() -> Callable[[int], int] | None:
    """Linux syncfs(2): flush one filesystem. Python has no wrapper for it."""
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _syncfs()


def _sync_files(folder: Path, paths: list[Path]) -> None:
    """Make files (and their directory entries) durable: one syncfs for a batch, else fsync each."""
    if len(paths) > 1 and _SYNCFS is not None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            if _SYNCFS(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class ReadStore:
    """reads.sqlite and the image files of one receiver folder."""

    def __init__(self, out: Path, trusted_keys: dict[str, bytes] | None = None) -> None:
        self.out = Path(out)
        self.trusted_keys = trusted_keys
        self._verify = _load_verifier()
        if self._verify is None:
            log.warning("edge.signing is not available: reads are stored unverified (verified = NULL)")
            self.key_trust: str | None = None
        elif trusted_keys is None:
            log.warning("receiver %s: no trusted keys: each read is checked with the key it names, so verified = 1 "
                        "means intact, not signed by a known camera (stored with key_trust = 'named')", self.out)
            self.key_trust = "named"
        else:
            self.key_trust = "trusted"
        try:
            (self.out / "images").mkdir(parents=True, exist_ok=True, mode=0o700)
            if not (self.out / DB_FILE).exists():
                (self.out / DB_FILE).touch(mode=0o600)  # reads carry number plates: owner-only
            self.db = sqlite3.connect(self.out / DB_FILE, isolation_level=None, timeout=30, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA secure_delete=ON")  # deleted reads are overwritten, not left in free pages
            self.db.executescript(_SCHEMA)
            self._add_missing_columns()
        except (OSError, sqlite3.Error) as err:
            raise ReceiverError(f"receiver folder {self.out}: cannot open {DB_FILE}: {err}") from None
        self._in_tx = False
        self._unsynced: list[Path] = []

    def _add_missing_columns(self) -> None:
        """A folder written by an older receiver: add the columns it lacks (old rows keep NULL: not known)."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(reads)")}
        if "key_trust" not in columns:
            self.db.execute("ALTER TABLE reads ADD COLUMN key_trust TEXT")

    def begin(self) -> None:
        if not self._in_tx:
            self.db.execute("BEGIN IMMEDIATE")
            self._in_tx = True

    def commit(self) -> None:
        """Image files of this batch to stable storage, then the transaction: only then may the broker be acknowledged."""
        if self._unsynced:
            _sync_files(self.out, self._unsynced)
            self._unsynced = []
        if self._in_tx:
            self.db.execute("COMMIT")
            self._in_tx = False

    def rollback(self) -> None:
        self._unsynced = []  # their rows are gone: a re-delivery writes them again
        if self._in_tx:
            self.db.execute("ROLLBACK")
            self._in_tx = False

    def bump(self, name: str, n: int = 1) -> None:
        self.db.execute(
            "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?", (name, n, n)
        )

    def counters(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT name, value FROM counters").fetchall())

    def read_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT read_id FROM reads ORDER BY read_id")]

    # ---- records ------------------------------------------------------------------------

    def add_record(self, topic: str, feed: str, record: dict[str, Any]) -> dict[str, Any] | None:
        """Store a record (inside the open transaction); the stored row, or None for a duplicate or a conflict."""
        read_id = record["read_id"]
        stored = self.db.execute("SELECT record, verified, problems, topic, received_at FROM reads WHERE read_id = ?",
                                 (read_id,)).fetchone()
        if stored is not None:
            return self._another_copy(topic, feed, record, stored)
        inline = record.pop(INLINE_IMAGES_FIELD, None)
        if isinstance(inline, dict):
            for kind, b64 in inline.items():
                try:
                    self.add_image(read_id, kind, base64.b64decode(b64, validate=True), record, verify=False)
                except (binascii.Error, TypeError, ValueError):
                    log.warning("read %s: inline image %r is not valid base64; not stored", read_id, kind)
        self._prefer_signed_images(read_id, record)
        verified, problems = self._check(record, self._images_of(read_id), topic)
        row = self._insert(topic, feed, record, verified, problems)
        self.bump("reads")
        if verified == 0:
            self.bump("unverified")
            log.warning("read %s from %s does not verify: %s", read_id, topic, "; ".join(problems))
        return row

    def _insert(self, topic: str, feed: str, record: dict[str, Any], verified: int | None, problems: list[str]) -> dict[str, Any]:
        row = {
            "read_id": record["read_id"],
            "feed": feed,
            "camera_id": _text(record.get("camera_id")),
            "plate": _text(record.get("plate")),
            "timestamp": _text(record.get("timestamp")),
            "topic": topic,
            "received_at": _now_iso(),
            "verified": verified,
            "key_trust": None if verified is None else self.key_trust,
            "problems": problems,
        }
        self.db.execute(
            "INSERT INTO reads (read_id, feed, camera_id, plate, timestamp, topic, received_at, verified, problems, record, "
            "key_trust) VALUES (:read_id, :feed, :camera_id, :plate, :timestamp, :topic, :received_at, :verified, "
            ":problems, :record, :key_trust)",
            {**row, "problems": json.dumps(problems), "record": json.dumps(record, separators=(",", ":"), ensure_ascii=False)},
        )
        return row

    def _another_copy(self, topic: str, feed: str, record: dict[str, Any], stored: tuple) -> dict[str, Any] | None:
        """A record under a read_id already stored: a re-send (dropped), or a different record (kept in conflicts).

        Whoever learns a read id first (the hits feed's is derived from the full feed's without
        a key) could otherwise publish a forgery under it and have the genuine read dropped as a
        duplicate, or probe with forgeries that leave no trace. A copy that verifies takes the
        place of a stored one that does not; the other copy is kept either way.
        """
        read_id = record["read_id"]
        record.pop(INLINE_IMAGES_FIELD, None)  # a conflicting copy's images are not stored: its hashes name them
        old_record, old_verified, old_problems, old_topic, old_received = stored
        if json.dumps(json.loads(old_record), sort_keys=True) == json.dumps(record, sort_keys=True):
            self.bump("duplicates")
            return None
        self.bump("conflicts")
        # Each copy is judged with the images its own signed hashes name, among those received.
        verified, problems = self._check(record, self._images_matching(read_id, record), topic)
        old_now, _ = self._check(json.loads(old_record), self._images_matching(read_id, json.loads(old_record)), old_topic)
        if verified == 1 and old_now != 1:
            self.db.execute("INSERT INTO conflicts VALUES (?, ?, ?, ?, ?, ?)",
                            (read_id, old_topic, old_received, old_verified, old_problems, old_record))
            self.db.execute("DELETE FROM reads WHERE read_id = ?", (read_id,))
            if old_verified == 0:
                self.bump("unverified", -1)
            log.warning("read %s from %s verifies and replaces the copy stored before, which did not (kept in conflicts)",
                        read_id, topic)
            self._prefer_signed_images(read_id, record)
            return self._insert(topic, feed, record, verified, problems)
        self.db.execute("INSERT INTO conflicts VALUES (?, ?, ?, ?, ?, ?)",
                        (read_id, topic, _now_iso(), verified, json.dumps(problems),
                         json.dumps(record, separators=(",", ":"), ensure_ascii=False)))
        log.warning("read %s from %s differs from the copy already stored (from %s); kept in conflicts%s",
                    read_id, topic, old_topic, "" if verified == 1 else ": " + "; ".join(problems))
        return None

    def _check(self, record: dict[str, Any], images: dict[str, bytes], topic: str) -> tuple[int | None, list[str]]:
        problems = topic_problems(topic, record)
        if self._verify is None:
            return (0 if problems else None), problems
        problems += self._verify(record, images, self.trusted_keys)
        return (0 if problems else 1), problems

    # ---- images -------------------------------------------------------------------------

    def add_image(self, read_id: str, kind: str, data: bytes, record: dict[str, Any] | None = None, verify: bool = True) -> bool:
        """Store one image (file first, then its row); False when it was already there."""
        if not (_SAFE_NAME.fullmatch(read_id) and _SAFE_NAME.fullmatch(kind)):
            raise ValueError(f"unsafe read id or image kind in topic: {read_id!r} / {kind!r}")
        digest = hashlib.sha256(data).hexdigest()
        kept = self.db.execute("SELECT sha256 FROM images WHERE read_id = ? AND kind = ?", (read_id, kind)).fetchone()
        if kept is not None:
            known = {kept[0]} | {h for (h,) in self.db.execute(
                "SELECT sha256 FROM image_conflicts WHERE read_id = ? AND kind = ?", (read_id, kind))}
            if digest in known:
                self.bump("duplicate_images")
                return False
            # A different image under a stored read id and kind: a forgery sent first must not make
            # the genuine image a "duplicate". Both are kept; the one the signed record names is used.
            rel = self._write_image(read_id, f"{kind}.{digest[:16]}", data, kind, record)
            self.db.execute("INSERT INTO image_conflicts VALUES (?, ?, ?, ?, ?, ?)",
                            (read_id, kind, str(rel), len(data), digest, _now_iso()))
            self.bump("image_conflicts")
            log.warning("read %s: a different %r image came (kept aside in %s)", read_id, kind, rel)
            stored = self.db.execute("SELECT record FROM reads WHERE read_id = ?", (read_id,)).fetchone()
            if stored is not None:
                self._prefer_signed_images(read_id, json.loads(stored[0]))
                if verify:
                    self._recheck(read_id)
            return True
        rel = self._write_image(read_id, kind, data, kind, record)
        self.db.execute("INSERT INTO images VALUES (?, ?, ?, ?, ?, ?)", (read_id, kind, str(rel), len(data), digest, _now_iso()))
        self.bump("images")
        if verify:
            self._recheck(read_id)
        return True

    def _write_image(self, read_id: str, name: str, data: bytes, kind: str, record: dict[str, Any] | None) -> Path:
        """Write an image file (owner-only); its path relative to the folder. Durable at the next commit()."""
        rel = Path("images") / read_id / (name + self._extension(data, kind, record))
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # images show plates and faces: owner-only,
        tmp = path.with_name(path.name + ".tmp")                      # whatever the mode of a pre-existing images/
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        self._unsynced.append(path)  # made durable by commit(), before the broker is told we have it
        return rel

    @staticmethod
    def _declared_hashes(record: dict[str, Any]) -> dict[str, str]:
        """kind -> SHA-256 as the (signed) record lists its images; malformed entries left out."""
        declared = record.get("images")
        if not isinstance(declared, dict):
            return {}
        return {k: v["sha256"] for k, v in declared.items() if isinstance(v, dict) and isinstance(v.get("sha256"), str)}

    def _images_matching(self, read_id: str, record: dict[str, Any]) -> dict[str, bytes]:
        """The read's images, each kind the version the record's signed hash names when one was received."""
        images = self._images_of(read_id)
        for kind, want in self._declared_hashes(record).items():
            alt = self.db.execute("SELECT path FROM image_conflicts WHERE read_id = ? AND kind = ? AND sha256 = ?",
                                  (read_id, kind, want)).fetchone()
            if alt is not None:
                images[kind] = (self.out / alt[0]).read_bytes()
        return images

    def _prefer_signed_images(self, read_id: str, record: dict[str, Any]) -> None:
        """Swap in, as the read's image of each kind, the version kept aside that the record's signed hash names."""
        for kind, want in self._declared_hashes(record).items():
            kept = self.db.execute("SELECT path, bytes, sha256, received_at FROM images WHERE read_id = ? AND kind = ?",
                                   (read_id, kind)).fetchone()
            if kept is None or kept[2] == want:
                continue
            alt = self.db.execute("SELECT rowid, path, bytes, sha256, received_at FROM image_conflicts "
                                  "WHERE read_id = ? AND kind = ? AND sha256 = ?", (read_id, kind, want)).fetchone()
            if alt is None:
                continue
            self.db.execute("UPDATE images SET path = ?, bytes = ?, sha256 = ?, received_at = ? WHERE read_id = ? AND kind = ?",
                            (*alt[1:], read_id, kind))
            self.db.execute("UPDATE image_conflicts SET path = ?, bytes = ?, sha256 = ?, received_at = ? WHERE rowid = ?",
                            (*kept, alt[0]))
            log.warning("read %s: the %r image its signed hash names replaces the one kept before (set aside)", read_id, kind)

    def _extension(self, data: bytes, kind: str, record: dict[str, Any] | None) -> str:
        declared = ((record or {}).get("images") or {}).get(kind) or {}
        if declared.get("content_type") in _EXTENSIONS:
            return _EXTENSIONS[declared["content_type"]]
        if data[:3] == b"\xff\xd8\xff":
            return ".jpg"
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return ".png"
        return ".bin"

    def _images_of(self, read_id: str) -> dict[str, bytes]:
        out = {}
        for kind, rel in self.db.execute("SELECT kind, path FROM images WHERE read_id = ?", (read_id,)):
            out[kind] = (self.out / rel).read_bytes()
        return out

    def _recheck(self, read_id: str) -> None:
        """An image came after its record: check the record again with it."""
        row = self.db.execute("SELECT record, topic FROM reads WHERE read_id = ?", (read_id,)).fetchone()
        if row is None:
            return
        verified, problems = self._check(json.loads(row[0]), self._images_of(read_id), row[1])
        self.db.execute("UPDATE reads SET verified = ?, problems = ?, key_trust = ? WHERE read_id = ?",
                        (verified, json.dumps(problems), None if verified is None else self.key_trust, read_id))
        if verified == 0:
            log.warning("read %s: its images do not verify: %s", read_id, "; ".join(problems))

    # ---- audit anchors --------------------------------------------------------------------

    def add_audit_head(self, topic: str, status: dict[str, Any]) -> bool:
        """Keep the audit log head a camera's status message carries; False when it carries none.

        The chain alone cannot show that entries were cut off its end; a head kept here, off the
        unit, can (`edge audit verify LOG --anchor HASH`). One per camera and day, the newest,
        is enough and keeps the table small; heads hold no personal data, so retention keeps them.
        """
        head, levels = status.get("audit_head"), topic.split("/")
        if not (isinstance(head, dict) and isinstance(head.get("seq"), int) and isinstance(head.get("hash"), str)
                and re.fullmatch(r"[0-9a-f]{64}", head["hash"]) and len(levels) >= 2):
            return False
        now = _now_iso()
        # The camera the topic names (what the broker's ACL vouches for), not the one the message claims.
        self.db.execute(
            "INSERT INTO audit_heads VALUES (?, ?, ?, ?, ?) ON CONFLICT(camera_id, day) DO UPDATE SET "
            "seq = excluded.seq, hash = excluded.hash, received_at = excluded.received_at",
            (levels[-2], now[:10], head["seq"], head["hash"], now),
        )
        return True

    # ---- retention ----------------------------------------------------------------------

    def purge_older_than(self, age_s: float) -> int:
        """Delete what was received, or taken, more than `age_s` seconds ago; returns how many reads went.

        A read goes with its images (rows and files) and its conflicting copies; so do images
        whose record never came, and conflicting copies of reads still kept. Rows are overwritten
        (secure_delete) and the WAL emptied, so no plate outlives the pass in the database files.
        Commits the open batch with it (acknowledging stays the caller's job, after this returns).
        """
        cutoff = _now_iso(age_s)
        self.begin()
        try:
            # Counted from the read's own time as well as its receipt: a genuine read kept by someone and
            # published again after it was deleted would otherwise start a new retention period.
            old = [r for (r,) in self.db.execute("SELECT read_id FROM reads WHERE received_at < ? OR timestamp < ?",
                                                  (cutoff, cutoff))]
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS purge_ids (read_id TEXT PRIMARY KEY)")
            self.db.execute("DELETE FROM purge_ids")
            self.db.executemany("INSERT INTO purge_ids VALUES (?)", [(r,) for r in old])
            gone = ("read_id IN (SELECT read_id FROM purge_ids) OR (received_at < ? AND read_id NOT IN "
                    "(SELECT read_id FROM reads))")
            files = []
            for table in ("images", "image_conflicts"):
                files += [self.out / rel for (rel,) in self.db.execute(f"SELECT path FROM {table} WHERE {gone}", (cutoff,))]
                self.db.execute(f"DELETE FROM {table} WHERE {gone}", (cutoff,))
            self.db.execute("DELETE FROM conflicts WHERE received_at < ? OR read_id IN (SELECT read_id FROM purge_ids)", (cutoff,))
            self.db.execute("DELETE FROM reads WHERE read_id IN (SELECT read_id FROM purge_ids)")
            # Files before the commit: a crash in between leaves rows without files (deleted next
            # pass), never files that no row names any more (kept for ever).
            for path in files:
                path.unlink(missing_ok=True)
                try:
                    path.parent.rmdir()
                except OSError:  # another image of the read is still there
                    pass
            self.commit()
        except (OSError, sqlite3.Error):
            self.rollback()
            raise
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL still holds the rows as they were
        except sqlite3.Error as err:  # a reader holds the WAL open: the next pass empties it
            log.warning("receiver %s: checkpoint after retention failed: %s", self.out / DB_FILE, err)
        if old:
            log.info("retention: deleted %d read(s) received or taken more than %g h ago", len(old), age_s / 3600)
        return len(old)

    def close(self) -> None:
        self.rollback()
        self.db.close()


class Receiver:
    """Subscribes to reads and stores them in a ReadStore; `run()` blocks, `start()` runs it in a thread."""

    def __init__(
        self,
        broker: str,
        out: Path,
        *,
        topics: tuple[str, ...] = (DEFAULT_TOPIC,),
        share: str | None = None,
        client_id: str | None = None,
        username: str | None = None,
        password_file: Path | None = None,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        trusted_keys: dict[str, bytes] | None = None,
        on_read: Callable[[dict[str, Any]], None] | None = None,
        session_expiry_s: int = SESSION_EXPIRY_S,
        reconnect_max_s: float = 30.0,
        retention_hours: float | None = None,
    ) -> None:
        self.broker = BrokerAddress.parse(broker)
        self.out = Path(out)
        self.topics = tuple(f"$share/{share}/{t}" if share else t for t in topics)
        digest = hashlib.sha1(str(self.out.resolve()).encode()).hexdigest()[:8]
        self.client_id = client_id or f"edge-receive-{socket.gethostname()}-{digest}"
        self.username, self.password_file = username, password_file
        self.ca_file, self.cert_file, self.key_file = ca_file, cert_file, key_file
        self.trusted_keys = trusted_keys
        self.on_read = on_read
        self.session_expiry_s = session_expiry_s
        self.reconnect_max_s = reconnect_max_s
        self.retention_hours = retention_hours  # None: keep everything (the back office's own policy applies)
        self._next_purge = 0.0
        self.store = ReadStore(self.out, trusted_keys)
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._to_ack: list[tuple[int, int]] = []
        self._new_rows: list[dict[str, Any]] = []
        self._errors: list[str] = []

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self.run, name="edge.receive", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    @property
    def last_error(self) -> str | None:
        return self._errors[-1] if self._errors else None

    def run(self) -> None:
        backoff = 0.5
        try:
            while not self._stop.is_set():
                self._maybe_purge()  # also while the broker is away: retention does not wait for it
                if self._connect():
                    self._serve()
                if self._stop.is_set():
                    break
                if self.connected.is_set():  # it worked for a while: reconnect soon
                    self.connected.clear()
                    backoff = 0.5
                self._stop.wait(backoff)
                backoff = min(self.reconnect_max_s, backoff * 2) * random.uniform(0.8, 1.0)
            if self._client is not None:
                self._client.disconnect()
        finally:
            self.store.rollback()

    def _serve(self) -> None:
        """Run the network loop until the connection ends (or is refused)."""
        while not self._stop.is_set():
            rc = self._client.loop(timeout=0.05)
            # While messages keep coming, read more before committing: one fsync per batch, not per message.
            for _ in range(BATCH_MAX):
                if rc != mqtt.MQTT_ERR_SUCCESS or not self._to_ack:
                    break
                before = len(self._to_ack)
                rc = self._client.loop(timeout=0)
                if len(self._to_ack) == before:
                    break
            self._settle()
            self._maybe_purge()
            if rc != mqtt.MQTT_ERR_SUCCESS:
                if self.connected.is_set():
                    self._error(f"broker {self.broker}: connection lost; reconnecting (reads wait at the broker meanwhile)")
                return

    def _maybe_purge(self) -> None:
        """Retention: delete what is older than `retention_hours`, at least ten times per period."""
        if self.retention_hours is None or time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + min(RETENTION_EVERY_S, self.retention_hours * 360.0)
        try:
            self.store.purge_older_than(self.retention_hours * 3600.0)
        except (OSError, sqlite3.Error) as err:  # tried again at the next pass; storing goes on meanwhile
            self._error(f"receiver {self.out}: retention could not delete old reads ({err}); retrying")

    def _connect(self) -> bool:
        try:
            if self._client is None:
                client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5, manual_ack=True)
                if self.broker.tls:
                    client.tls_set_context(tls_context(self.ca_file, self.cert_file, self.key_file))
                client.on_connect = self._on_connect
                client.on_subscribe = self._on_subscribe
                client.on_message = self._on_message
                self._client = client
            if self.username:
                self._client.username_pw_set(self.username, read_password(self.password_file))
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry_s
            self._client.connect(self.broker.host, self.broker.port, 30, clean_start=False, properties=props)
        except (OSError, EdgeError, ssl.SSLError, ValueError) as err:
            self._error(describe_connect_error(err, self.broker, self.ca_file))
            return False
        return True

    def _error(self, message: str) -> None:
        if not self._errors or self._errors[-1] != message:
            log.error("%s", message)
        self._errors.append(message)
        del self._errors[:-20]

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any) -> None:
        if reason.is_failure:
            hint = f"; check --username ({self.username!r}) and --password-file" if reason.value in (134, 135) else ""
            self._error(f"broker {self.broker} refused the connection: {describe_reason(reason)}{hint}")
            client.disconnect()
            return
        log.info("receiver connected to %s as %s (session %s)", self.broker, self.client_id,
                 "resumed" if flags.session_present else "new")
        # Subscribe every time: a broker restarted without persistence has forgotten the session.
        # QoS 1, not 2, even for QoS 2 publishers: paho answers an incoming QoS 2 PUBLISH with
        # PUBREC at once, before we have stored it, and keeps it only in memory, so a receiver
        # that dies there would lose it. At QoS 1 the PUBACK waits for our commit, and the
        # unique read_id turns "at least once" into "exactly once" in the store.
        client.subscribe([(t, 1) for t in self.topics])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode], properties: Any) -> None:
        for topic, reason in zip(self.topics, reasons):
            if reason.is_failure:
                self._error(f"broker {self.broker} refused the subscription to {topic!r}: {describe_reason(reason)}")
            else:
                log.info("subscribed to %s (granted QoS %d)", topic, reason.value)
        if not any(r.is_failure for r in reasons):
            self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.store.begin()
            self._handle(msg)
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, RecursionError) as err:
            # A malformed message (e.g. "images" not an object, or JSON nested deeper than Python
            # recurses): refused and acknowledged, or the broker would send it again after every
            # restart and stop the receiver each time.
            log.warning("message on %s ignored: %s", msg.topic, err)
            self.store.bump("rejected")
        except (OSError, sqlite3.Error) as err:
            # Disk full or folder unwritable: acknowledge nothing of this batch, so the broker sends it again.
            self._drop_batch(f"receiver {self.out}: cannot store the message on {msg.topic} ({err}); it stays at the broker")
            client.disconnect()
            return
        self._to_ack.append((msg.mid, msg.qos))

    def _drop_batch(self, message: str) -> None:
        try:
            self.store.rollback()
        except sqlite3.Error:  # the connection is unusable; nothing of the batch was committed either way
            pass
        self._to_ack.clear()
        self._new_rows.clear()
        self._error(message)

    def _handle(self, msg: mqtt.MQTTMessage) -> None:
        levels = msg.topic.split("/")
        if len(levels) >= 5 and levels[-3] == "images":
            self.store.add_image(levels[-2], levels[-1], msg.payload)
            return
        obj = parse_record(msg.payload)
        if not isinstance(obj, dict) or "read_id" not in obj:
            if not (isinstance(obj, dict) and levels[-1] == "status" and self.store.add_audit_head(msg.topic, obj)):
                self.store.bump("other_messages")  # e.g. an offline status the pattern also matched
            return
        if not _SAFE_NAME.fullmatch(str(obj["read_id"])):
            raise ValueError(f"read_id {obj['read_id']!r} is not a plain id")
        row = self.store.add_record(msg.topic, levels[-1], obj)
        if row is not None:
            self._new_rows.append({**obj, "received": row})

    def _settle(self) -> None:
        """Commit what this loop turn stored, then acknowledge it to the broker (never the other way round)."""
        if not self._to_ack:
            return
        try:
            self.store.commit()
        except (OSError, sqlite3.Error) as err:
            self._drop_batch(f"receiver {self.out / DB_FILE}: cannot store reads ({err}); they stay at the broker")
            self._client.disconnect()  # unacknowledged messages come again after reconnecting
            return
        for mid, qos in self._to_ack:
            if qos > 0:
                self._client.ack(mid, qos)
        self._to_ack.clear()
        rows, self._new_rows = self._new_rows, []
        if self.on_read is not None:
            for row in rows:
                self.on_read(row)
