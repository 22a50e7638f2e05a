"""Durable store-and-forward: every read is on disk before it is published, and leaves only when acknowledged.

One SQLite database in WAL mode holds the reads a camera has produced and the broker has
not yet acknowledged. The camera loop calls `put()`, the publisher reads `entries()` oldest
first and calls `ack()` when the broker's PUBACK/PUBCOMP arrives, and the retention job calls
`purge_older_than()`.

Durability: `put()` commits with `synchronous=FULL`, so a read is on stable storage when
`put()` returns; a process killed at any instant (kill -9) or a power cut after that loses
nothing. Acknowledgements are deleted with `synchronous=NORMAL`: in WAL mode that survives a
killed process, and a power cut can at worst bring back a read already delivered, which the
back office drops as a duplicate (`read_id`). That halves the fsyncs per read.

Size cap (`max_bytes`, counted as payload bytes: records plus images). When a new read would
take the spool over the cap:
  1. the imagery of the oldest reads is dropped first (oldest first, the new read's last),
     because a read without its pictures is still evidence of a pass;
  2. only if the records alone are still over the cap, the oldest reads are evicted
     (ring-buffer policy): the newest reads matter most to live users (hotlist hits), and
     the oldest are closest to their retention limit anyway.
Both are counted (persistently, in the database) and raise `alarm`, which the publisher puts
on the status topic. The alarm clears when the spool drains below 80% of the cap.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from edge.errors import EdgeError
from edge.types import OutboundRead

log = logging.getLogger(__name__)

SPOOL_FILE = "spool.sqlite"
SCHEMA_VERSION = "1"
ALARM_CLEAR_FRACTION = 0.8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reads (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- spool order: oldest first
    read_id TEXT NOT NULL,
    feed TEXT NOT NULL,
    record BLOB NOT NULL,
    created_at TEXT NOT NULL,                -- ISO 8601 from the read
    spooled_at REAL NOT NULL,                -- unix seconds, for age and retention
    UNIQUE (read_id, feed)
);
CREATE TABLE IF NOT EXISTS images (
    seq INTEGER NOT NULL REFERENCES reads(seq) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (seq, kind)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SpoolError(EdgeError):
    """The spool cannot be opened or written (disk full, unwritable folder, corrupt file)."""


@dataclass(frozen=True)
class SpoolAlarm:
    """What the cap policy has done; published on the status topic."""

    at_cap: bool
    images_dropped: int  # reads whose imagery was dropped to stay under the cap, ever
    reads_evicted: int  # reads evicted (lost) to stay under the cap, ever

    def as_dict(self) -> dict[str, object]:
        return {"at_cap": self.at_cap, "images_dropped": self.images_dropped, "reads_evicted": self.reads_evicted}


def spool_file(path: Path) -> Path:
    """The database file for a spool path: a folder gets `spool.sqlite` inside it."""
    path = Path(path)
    if path.is_dir() or path.suffix == "":
        return path / SPOOL_FILE
    return path


class Spool:
    """A camera's durable outbound queue. Thread-safe: one connection behind a lock."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"spool max_bytes must be positive, got {max_bytes}")
        self.path = spool_file(path)
        self.max_bytes = int(max_bytes)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                # Reads carry number plates (personal data): owner-only. SQLite gives its
                # -wal and -shm files the database file's permissions.
                self.path.touch(mode=0o600)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA secure_delete=ON")  # a deleted read's plate and images are overwritten, not left in free pages
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            self._bytes = self._count_bytes()
        except (sqlite3.Error, OSError) as err:
            raise SpoolError(f"spool {self.path}: cannot open: {err}") from None
        self._at_cap = self._bytes > self.max_bytes * ALARM_CLEAR_FRACTION and self._counter("images_dropped") > 0

    # ---- writing -------------------------------------------------------------------------

    def put(self, read: OutboundRead) -> None:
        """Store one read durably. A read already spooled (same read_id and feed) is left as it is."""
        self.put_many([read])

    def put_many(self, reads: list[OutboundRead]) -> None:
        """Store several reads in one transaction (one fsync): durable on return."""
        if not reads:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                added = 0
                for read in reads:
                    added += self._insert(read)
                self._bytes += added
                if self._bytes > self.max_bytes:
                    self._apply_cap()
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                self._bytes = self._count_bytes()
                raise SpoolError(f"spool {self.path}: cannot store read {reads[0].read_id!r}: {err}") from None

    def _insert(self, read: OutboundRead) -> int:
        cur = self._db.execute(
            "INSERT OR IGNORE INTO reads (read_id, feed, record, created_at, spooled_at) VALUES (?, ?, ?, ?, ?)",
            (read.read_id, read.feed, read.record, _iso(read.created_at), time.time()),
        )
        if cur.rowcount == 0:
            return 0
        seq = cur.lastrowid
        self._db.executemany(
            "INSERT INTO images (seq, kind, data) VALUES (?, ?, ?)", [(seq, k, v) for k, v in read.images.items()]
        )
        return len(read.record) + sum(len(v) for v in read.images.values())

    def _apply_cap(self) -> None:
        """Bring the spool under max_bytes: oldest imagery first, then (only then) the oldest reads."""
        self._at_cap = True
        dropped = 0
        while self._bytes > self.max_bytes:
            row = self._db.execute(
                "SELECT seq, SUM(LENGTH(data)) FROM images WHERE seq = (SELECT MIN(seq) FROM images)"
            ).fetchone()
            if row is None or row[0] is None:
                break
            self._db.execute("DELETE FROM images WHERE seq = ?", (row[0],))
            self._bytes -= row[1]
            dropped += 1
        evicted = 0
        while self._bytes > self.max_bytes:
            row = self._db.execute("SELECT seq, LENGTH(record) FROM reads ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                break
            self._db.execute("DELETE FROM reads WHERE seq = ?", (row[0],))
            self._bytes -= row[1]
            evicted += 1
        if dropped:
            self._bump("images_dropped", dropped)
            log.warning("spool %s at its cap (%d bytes): dropped the imagery of %d oldest read(s)", self.path, self.max_bytes, dropped)
        if evicted:
            self._bump("reads_evicted", evicted)
            log.error("spool %s at its cap (%d bytes) with records alone: evicted %d oldest read(s)", self.path, self.max_bytes, evicted)

    def ack(self, read_id: str, feed: str) -> None:
        """The broker has the read: delete it (and its imagery)."""
        self.ack_many([(read_id, feed)])

    def ack_many(self, keys: list[tuple[str, str]]) -> None:
        """Delete several acknowledged reads in one transaction."""
        if not keys:
            return
        with self._lock:
            try:
                # NORMAL is enough for deletes: see the module docstring.
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("BEGIN IMMEDIATE")
                freed = 0
                for read_id, feed in keys:
                    freed += self._delete_where("read_id = ? AND feed = ?", (read_id, feed))
                self._db.execute("COMMIT")
                self._bytes -= freed
            except sqlite3.Error as err:
                self._rollback()
                self._bytes = self._count_bytes()
                raise SpoolError(f"spool {self.path}: cannot delete acknowledged reads: {err}") from None
            finally:
                self._db.execute("PRAGMA synchronous=FULL")
            self._maybe_clear_alarm()

    def purge_older_than(self, age_s: float) -> int:
        """Delete reads spooled more than `age_s` seconds ago (retention); returns how many."""
        now = time.time()
        cutoff = now - age_s
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                # Spooled while the clock was ahead (it was set back since): their age counts from
                # now, or they would outlive the retention limit by as much as the clock was wrong.
                self._db.execute("UPDATE reads SET spooled_at = ? WHERE spooled_at > ?", (now, now))
                n = self._db.execute("SELECT COUNT(*) FROM reads WHERE spooled_at < ?", (cutoff,)).fetchone()[0]
                freed = self._delete_where("spooled_at < ?", (cutoff,))
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise SpoolError(f"spool {self.path}: cannot purge old reads: {err}") from None
            self._bytes -= freed
            self._maybe_clear_alarm()
            # Every pass, not only when it deleted something: SQLite reuses the WAL from its start
            # without shrinking it, so its tail can hold reads delivered (and deleted) long ago,
            # plates and images included. Emptying it bounds their life on disk by this pass's
            # interval; the overwritten (secure_delete) pages reach the database file at the same time.
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as err:  # a reader holding the WAL open: the next pass completes it
                log.warning("spool %s: checkpoint after retention failed: %s", self.path, err)
        if n:
            log.info("spool %s: retention purged %d read(s) older than %.0f s", self.path, n, age_s)
        return int(n)

    def _delete_where(self, where: str, params: tuple) -> int:
        freed = self._db.execute(
            f"SELECT COALESCE(SUM(LENGTH(record)), 0) + COALESCE((SELECT SUM(LENGTH(data)) FROM images "
            f"WHERE seq IN (SELECT seq FROM reads WHERE {where})), 0) FROM reads WHERE {where}",
            params + params,
        ).fetchone()[0]
        self._db.execute(f"DELETE FROM reads WHERE {where}", params)  # images go by ON DELETE CASCADE
        return int(freed)

    # ---- reading -------------------------------------------------------------------------

    def pending(self, limit: int = 100) -> list[OutboundRead]:
        """Up to `limit` spooled reads, oldest first."""
        return [read for _, read in self.entries(limit)]

    def entries(self, limit: int, after_seq: int = 0, upto_seq: int | None = None) -> list[tuple[int, OutboundRead]]:
        """(seq, read) pairs with after_seq < seq <= upto_seq, oldest first: the publisher's cursor."""
        upto = upto_seq if upto_seq is not None else 2**63 - 1
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, read_id, feed, record, created_at FROM reads WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (after_seq, upto, limit),
            ).fetchall()
            return [(row[0], self._read(row)) for row in rows]

    def get(self, seq: int) -> OutboundRead | None:
        with self._lock:
            row = self._db.execute("SELECT seq, read_id, feed, record, created_at FROM reads WHERE seq = ?", (seq,)).fetchone()
            return self._read(row) if row else None

    def _read(self, row: tuple) -> OutboundRead:
        images = dict(self._db.execute("SELECT kind, data FROM images WHERE seq = ? ORDER BY kind", (row[0],)).fetchall())
        return OutboundRead(row[1], row[2], bytes(row[3]), {k: bytes(v) for k, v in images.items()}, datetime.fromisoformat(row[4]))

    def last_seq(self) -> int:
        """The newest read's sequence number (0 when empty): reads above it are newer than now."""
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM reads").fetchone()[0])

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM reads").fetchone()[0])

    def oldest_age_s(self) -> float | None:
        with self._lock:
            oldest = self._db.execute("SELECT MIN(spooled_at) FROM reads").fetchone()[0]
        return None if oldest is None else max(0.0, time.time() - oldest)

    def size_bytes(self) -> int:
        """Payload bytes held (records plus images): what the cap counts."""
        return self._bytes

    @property
    def alarm(self) -> SpoolAlarm:
        with self._lock:
            return SpoolAlarm(self._at_cap, self._counter("images_dropped"), self._counter("reads_evicted"))

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:  # pragma: no cover - closing is best effort
                pass

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- helpers -------------------------------------------------------------------------

    def _count_bytes(self) -> int:
        records = self._db.execute("SELECT COALESCE(SUM(LENGTH(record)), 0) FROM reads").fetchone()[0]
        images = self._db.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM images").fetchone()[0]
        return int(records + images)

    def _counter(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, key: str, n: int) -> None:
        self._db.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + ?",
            (key, str(n), n),
        )

    def _maybe_clear_alarm(self) -> None:
        if self._at_cap and self._bytes < self.max_bytes * ALARM_CLEAR_FRACTION:
            self._at_cap = False
            log.info("spool %s back under %.0f%% of its cap", self.path, ALARM_CLEAR_FRACTION * 100)

    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:  # pragma: no cover - the connection is already unusable
            pass


def _iso(ts: datetime) -> str:
    return ts.isoformat()
