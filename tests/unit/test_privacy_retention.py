"""Retention on a real spool: what the limit deletes must be gone from the disk, not only from the queries."""

from __future__ import annotations

import pytest

from edge.audit import AuditLog
from edge.privacy import apply_retention
from edge.spool import Spool
from edge.types import OutboundRead, utc_now
from tests.unit import read_fixtures as F

PLATE = b"QX51RTN"
IMAGE = b"\xff\xd8JPEG-OF-A-PLATE" * 64


def _spool_bytes(folder) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


def test_purged_reads_leave_no_plate_or_image_bytes_on_disk(tmp_path):
    cfg = F.config(tmp_path, retention_hours=1)
    folder = tmp_path / "spool"
    with Spool(folder, 10**8) as spool:
        for i in range(20):
            record = b'{"plate":"' + PLATE + b'","n":%d}' % i + b" " * 400
            spool.put(OutboundRead(f"id-{i}", "reads", record, {"patch": IMAGE}, utc_now()))
    with Spool(folder, 10**8) as spool:  # a later start: the reads are in the main database file now
        assert PLATE in _spool_bytes(folder)
        spool._db.execute("UPDATE reads SET spooled_at = spooled_at - 7200")  # two hours old
        assert apply_retention(spool, cfg, AuditLog(tmp_path / "audit.log")) == 20
        # The camera goes on running: nothing closes (and so checkpoints) the database after a purge.
        on_disk = _spool_bytes(folder)
        assert PLATE not in on_disk and IMAGE not in on_disk
