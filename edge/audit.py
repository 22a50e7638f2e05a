"""An append-only, hash-chained audit log on the unit: what was sent, deleted and changed.

One JSON object per line:

    {"seq": 7, "ts": "2026-11-23T01:02:03.456Z", "event": "read_published", ...fields..., "prev": "<hash of line 6>", "hash": "<hash of this line>"}

`hash` is the SHA-256 of `prev` followed by the entry's canonical JSON without `hash`,
so changing, removing, inserting or reordering any line breaks the chain from there
on, and `verify` names the first line at fault. The first line's `prev` is 64 zeros.

What it cannot do on its own: someone with write access who rewrites the whole file
and recomputes every hash is not detected by the file alone. Publishing the latest
hash off the unit (e.g. in each heartbeat) anchors the chain; `head()` gives it.

Entries never hold plate text: reads are named by read id, feed and record hash, so
the log can be kept (and shown to an auditor) without becoming a second store of reads.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from edge.errors import ConfigError, EdgeError
from edge.record import iso_ms
from edge.types import utc_now

log = logging.getLogger(__name__)

GENESIS = "0" * 64
_RESERVED = frozenset({"seq", "ts", "event", "prev", "hash"})


class AuditWriteError(EdgeError):
    """The audit log cannot be written (disk full, unwritable folder); the entry was not added."""

# Events the engine writes (other code may add its own).
READ_PUBLISHED = "read_published"
RETENTION_PURGE = "retention_purge"
CONFIG_LOADED = "config_loaded"
CONFIG_CHANGED = "config_changed"
KEYS_LOADED = "keys_loaded"  # key ids (never key material) in use at start
KEYS_CHANGED = "keys_changed"
HOTLIST_LOADED = "hotlist_loaded"  # a hotlist (re)loaded: its file name, content hash and size, never its plates


def _entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256((str(entry.get("prev", "")) + data).encode("utf-8")).hexdigest()


def _last_line(path: Path) -> bytes | None:
    """The last non-empty line of a file, read from its end (the log may be large)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return _last_line_of(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _last_line_of(fd: int, end: int) -> bytes | None:
    block, data = 4096, b""
    pos = end
    while pos > 0:
        step = min(block, pos)
        pos -= step
        data = os.pread(fd, step, pos) + data
        lines = data.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or pos == 0:
            last = lines[-1].strip()
            return last or None
    return None


def _chain_end(line: bytes | None) -> tuple[int, str]:
    """(seq, hash) of the entry on a log's last line; ValueError when it is not an entry."""
    if line is None:
        return 0, GENESIS
    try:
        entry = json.loads(line)
        return int(entry["seq"]), str(entry["hash"])
    except (ValueError, KeyError, TypeError):
        raise ValueError("last line is not a valid entry") from None


class AuditLog:
    """Append entries to the chain; thread-safe within one process (one camera process owns one log)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._end = self.path.stat().st_size if self.path.exists() else 0
            last = _last_line(self.path) if self._end else None
        except OSError as err:
            raise ConfigError(f"{self.path}: cannot open audit log: {err.strerror}") from None
        try:
            self._seq, self._prev = _chain_end(last)
        except ValueError:
            raise ConfigError(
                f"{self.path}: last line of the audit log is not a valid entry; "
                f"run `edge audit verify {self.path}` and keep the file as evidence before starting a new log"
            ) from None

    def append(self, event: str, **fields: Any) -> None:
        """Add one entry and flush it to disk before returning."""
        clash = _RESERVED & fields.keys()
        if clash:
            raise ValueError(f"audit fields {sorted(clash)} are reserved")
        with self._lock:
            try:
                # O_APPEND: every write lands at the end even if the file was opened elsewhere too.
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
            except OSError as err:
                raise AuditWriteError(f"audit log {self.path}: cannot write: {err.strerror}") from None
            try:
                # Another process may write this log too (a second `edge run` for the camera, a tool):
                # hold the file lock from reading the chain's end to writing, so the chain never forks.
                fcntl.flock(fd, fcntl.LOCK_EX)
                end = os.fstat(fd).st_size
                seq, prev = self._seq, self._prev
                if end < self._end:
                    # Cut back or replaced under us: go on from our own last entry, so the break stays
                    # visible to `edge audit verify` instead of a fresh chain that would look intact.
                    log.error("audit log %s is shorter than this process last wrote it (%d < %d bytes): "
                              "it was cut back or replaced", self.path, end, self._end)
                elif end > self._end:  # someone else appended since our last entry: continue from theirs
                    try:
                        seq, prev = _chain_end(_last_line_of(fd, end))
                    except ValueError:
                        raise AuditWriteError(
                            f"audit log {self.path}: another writer left a last line that is not an entry; "
                            f"run `edge audit verify {self.path}`"
                        ) from None
                entry: dict[str, Any] = {"seq": seq + 1, "ts": iso_ms(utc_now()), "event": event, **fields, "prev": prev}
                entry["hash"] = _entry_hash(entry)
                line = json.dumps(entry, separators=(",", ":"), ensure_ascii=False, allow_nan=False) + "\n"
                data = line.encode("utf-8")
                try:
                    self._write(fd, end, data)
                except OSError as err:
                    raise AuditWriteError(f"audit log {self.path}: cannot write: {err.strerror}") from None
                self._seq, self._prev, self._end = entry["seq"], entry["hash"], end + len(data)
            finally:
                os.close(fd)  # releases the lock

    @staticmethod
    def _write(fd: int, end: int, data: bytes) -> None:
        try:
            if os.write(fd, data) != len(data):  # a disk that fills mid-line writes part of it
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, end)  # no half line: it would break the chain for every later entry
            raise

    def head(self) -> tuple[int, str]:
        """(sequence number, hash) of the newest entry: publish it off the unit to anchor the chain."""
        with self._lock:
            return self._seq, self._prev

    def last_entry(self, *events: str) -> dict[str, Any] | None:
        """The newest entry of any of these event types (reads the whole file: for start-up, not the hot path)."""
        found = None
        # Only lines that mention one of the events are parsed: the log holds mostly read entries.
        needles = [json.dumps(e, ensure_ascii=False).encode("utf-8") for e in events]
        if self.path.exists():
            with open(self.path, "rb") as f:
                for line in f:
                    if not any(n in line for n in needles):
                        continue
                    try:
                        entry = json.loads(line)
                    except ValueError:  # a damaged line (bad UTF-8 included): `edge audit verify` names it
                        continue
                    if isinstance(entry, dict) and entry.get("event") in events:
                        found = entry
        return found

    def note_config(self, config_sha256: str, source: str) -> bool:
        """Record the configuration a camera starts with; a `config_changed` entry when it differs from the last one.

        Returns True when the configuration changed since the last start.
        """
        # Either event records the configuration then in force; the newest of them is the last start's.
        last = self.last_entry(CONFIG_LOADED, CONFIG_CHANGED)
        previous = last.get("config_sha256") if last else None
        if previous is not None and previous != config_sha256:
            self.append(CONFIG_CHANGED, config_sha256=config_sha256, previous_sha256=previous, source=source)
            return True
        self.append(CONFIG_LOADED, config_sha256=config_sha256, source=source)
        return False

    def note_keys(self, keys: dict[str, str]) -> bool:
        """Record the ids of the keys a camera starts with (signing, pseudonyms); `keys_changed` when they differ.

        Returns True when a key changed since the last start: a rotated pseudonym key starts a
        new pseudonym period, and a new signing key must reach the back office's trusted keys.
        """
        last = self.last_entry(KEYS_LOADED, KEYS_CHANGED)
        previous = last.get("keys") if last else None
        if previous is not None and previous != keys:
            self.append(KEYS_CHANGED, keys=keys, previous=previous)
            return True
        self.append(KEYS_LOADED, keys=keys)
        return False

    @staticmethod
    def verify(path: Path) -> list[str]:
        return verify_audit_log(path)


def _hash_or_none(entry: dict[str, Any]) -> str | None:
    # NaN or a lone surrogate parse from JSON but cannot be hashed: no writer of ours made that line.
    try:
        return _entry_hash(entry)
    except ValueError:
        return None


def _load_entry(line: bytes) -> tuple[Any, list[str]]:
    """A line parsed as json does (the last of two equal keys wins), and the keys it repeats.

    A repeated key is an edit the hash cannot see: the entry hashes as its last value, while a
    reader that keeps the first (SQLite's json_extract, for one) is shown the other.
    """
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in items:
            if key in obj:
                repeated.append(key)
            obj[key] = value
        return obj

    return json.loads(line, object_pairs_hook=pairs), repeated


def verify_audit_log(path: Path) -> list[str]:
    """Everything wrong with an audit log's chain, naming the line; [] when it is intact."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        return [f"{path}: cannot read: {err.strerror}"]
    problems: list[str] = []
    prev, seq = GENESIS, 0
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        problems.append(f"{path}: last line is not terminated (a write was cut short or the file was edited)")
    for n, line in enumerate(lines, start=1):
        where = f"{path}:{n}"
        try:
            entry, repeated = _load_entry(line)
            if not isinstance(entry, dict):
                raise ValueError("not an object")
        except ValueError:
            problems.append(f"{where}: not a JSON object")
            return problems  # the chain cannot be followed past a line we cannot read
        if repeated:
            problems.append(f"{where}: key {repeated[0]!r} appears twice in the entry (the entry was edited)")
        if entry.get("prev") != prev:
            problems.append(f"{where}: 'prev' does not match the hash of the line before (a line was removed, inserted or reordered)")
        if entry.get("hash") != _hash_or_none(entry):
            problems.append(f"{where}: 'hash' does not match the entry's content (the entry was edited)")
        if entry.get("seq") != seq + 1:
            problems.append(f"{where}: sequence number {entry.get('seq')!r}, expected {seq + 1}")
        prev = str(entry.get("hash"))
        seq = entry.get("seq") if isinstance(entry.get("seq"), int) else seq + 1
    return problems
