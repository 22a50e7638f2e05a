"""The spool: durable, oldest first, deleted only on acknowledgement, capped imagery-first."""

from __future__ import annotations

import multiprocessing
import os
import signal
from datetime import datetime, timezone
from pathlib import Path

import pytest

from edge.spool import Spool, SpoolError
from edge.types import OutboundRead


def make_read(i: int, feed: str = "reads", image_bytes: int = 0, record_bytes: int = 100) -> OutboundRead:
    record = (f'{{"read_id":"r{i:05d}","feed":"{feed}","pad":"' + "x" * record_bytes + '"}').encode()
    images = {"overview": bytes([i % 256]) * image_bytes, "patch": b"p" * (image_bytes // 8)} if image_bytes else {}
    return OutboundRead(f"r{i:05d}", feed, record, images, datetime(2026, 1, 1, tzinfo=timezone.utc))


def test_put_then_pending_oldest_first_with_images_intact(tmp_path: Path) -> None:
    with Spool(tmp_path, 10_000_000) as spool:
        reads = [make_read(i, image_bytes=1000) for i in range(5)]
        for r in reads:
            spool.put(r)
        assert spool.pending(10) == reads
        assert spool.pending(2) == reads[:2]
        assert spool.depth() == 5
        assert spool.size_bytes() == sum(len(r.record) + sum(map(len, r.images.values())) for r in reads)


def test_same_read_on_two_feeds_are_two_entries_and_a_repeat_put_is_ignored(tmp_path: Path) -> None:
    with Spool(tmp_path, 10_000_000) as spool:
        spool.put(make_read(1, "reads"))
        spool.put(make_read(1, "pseudo"))
        spool.put(make_read(1, "reads"))
        assert [(r.read_id, r.feed) for r in spool.pending(10)] == [("r00001", "reads"), ("r00001", "pseudo")]


def test_ack_deletes_only_that_read_and_feed(tmp_path: Path) -> None:
    with Spool(tmp_path, 10_000_000) as spool:
        spool.put(make_read(1, "reads", image_bytes=500))
        spool.put(make_read(1, "pseudo"))
        spool.put(make_read(2, "reads"))
        before = spool.size_bytes()
        spool.ack("r00001", "reads")
        assert [(r.read_id, r.feed) for r in spool.pending(10)] == [("r00001", "pseudo"), ("r00002", "reads")]
        assert spool.size_bytes() == before - len(make_read(1, image_bytes=500).record) - 500 - 500 // 8
        assert spool.size_bytes() == spool._count_bytes()


def test_spool_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    with Spool(tmp_path / "s", 1000) as spool:
        spool.put(make_read(1))
        assert (spool.path.stat().st_mode & 0o777) == 0o600
        assert (Path(str(spool.path) + "-wal").stat().st_mode & 0o077) == 0


def test_reads_survive_reopening(tmp_path: Path) -> None:
    with Spool(tmp_path / "s", 10_000_000) as spool:
        spool.put(make_read(1, image_bytes=100))
    with Spool(tmp_path / "s", 10_000_000) as spool:
        assert spool.pending(10) == [make_read(1, image_bytes=100)]


def _put_forever(path: str, started) -> None:  # runs in a child process that gets SIGKILLed
    spool = Spool(Path(path), 100_000_000)
    i = 0
    while True:
        spool.put(make_read(i, image_bytes=2000))
        # After put() returns the read must be durable: record the fact outside the spool.
        with open(Path(path) / "done.txt", "a") as f:
            f.write(f"{i}\n")
        i += 1
        if i == 20:
            started.set()


def test_kill_9_during_puts_loses_nothing_that_put_returned(tmp_path: Path) -> None:
    started = multiprocessing.get_context("fork").Event()
    proc = multiprocessing.get_context("fork").Process(target=_put_forever, args=(str(tmp_path), started))
    proc.start()
    assert started.wait(30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    done = {int(x) for x in (tmp_path / "done.txt").read_text().split()}
    with Spool(tmp_path, 100_000_000) as spool:
        spooled = {int(r.read_id[1:]) for r in spool.pending(100_000)}
        assert done <= spooled
        for r in spool.pending(100_000):
            assert r == make_read(int(r.read_id[1:]), image_bytes=2000)  # no torn read


def test_cap_drops_oldest_imagery_before_any_read(tmp_path: Path) -> None:
    one = make_read(0, image_bytes=1000)
    record_len, images_len = len(one.record), 1000 + 1000 // 8
    # Room for six records and the imagery of four of them.
    with Spool(tmp_path, 6 * record_len + 4 * images_len + 10) as spool:
        for i in range(6):
            spool.put(make_read(i, image_bytes=1000))
        pending = spool.pending(10)
        assert [r.read_id for r in pending] == [f"r{i:05d}" for i in range(6)]  # every read kept
        assert [bool(r.images) for r in pending] == [False, False, True, True, True, True]  # oldest imagery gone
        assert spool.size_bytes() <= spool.max_bytes
        alarm = spool.alarm
        assert alarm.at_cap and alarm.images_dropped == 2 and alarm.reads_evicted == 0


def test_cap_evicts_oldest_reads_only_when_records_alone_exceed_it(tmp_path: Path) -> None:
    record_len = len(make_read(0).record)
    with Spool(tmp_path, 3 * record_len) as spool:
        for i in range(5):
            spool.put(make_read(i, image_bytes=100))
        assert [r.read_id for r in spool.pending(10)] == ["r00002", "r00003", "r00004"]
        assert all(not r.images for r in spool.pending(10))
        assert spool.alarm.reads_evicted == 2


def test_alarm_clears_when_drained_and_counters_persist(tmp_path: Path) -> None:
    with Spool(tmp_path, 3000) as spool:
        for i in range(4):
            spool.put(make_read(i, image_bytes=1000))
        assert spool.alarm.at_cap
        for r in spool.pending(10):
            spool.ack(r.read_id, r.feed)
        assert not spool.alarm.at_cap
    with Spool(tmp_path, 3000) as spool:
        assert spool.alarm.images_dropped > 0


def test_purge_older_than(tmp_path: Path) -> None:
    with Spool(tmp_path, 10_000_000) as spool:
        spool.put(make_read(1, image_bytes=10))
        spool._db.execute("UPDATE reads SET spooled_at = spooled_at - 3600")
        spool.put(make_read(2))
        assert spool.purge_older_than(1800) == 1
        assert [r.read_id for r in spool.pending(10)] == ["r00002"]
        assert spool.size_bytes() == spool._count_bytes()
        assert 0 <= spool.oldest_age_s() < 60


def test_reads_spooled_while_the_clock_was_ahead_are_still_purged_after_it_is_set_back(tmp_path: Path, monkeypatch) -> None:
    # A unit that booted with its clock years ahead, then was corrected by NTP: its reads must
    # not wait years for retention (at most the retention limit from the correction on).
    import edge.spool as spool_module

    now = [1_800_000_000.0]
    monkeypatch.setattr(spool_module.time, "time", lambda: now[0])
    with Spool(tmp_path, 10_000_000) as spool:
        now[0] += 10 * 365 * 86400  # the clock is ten years ahead
        spool.put(make_read(1))
        now[0] -= 10 * 365 * 86400  # corrected
        assert spool.purge_older_than(3600) == 0
        assert spool.oldest_age_s() == 0
        now[0] += 7200
        assert spool.purge_older_than(3600) == 1
        assert spool.depth() == 0


def test_entries_cursor_and_last_seq(tmp_path: Path) -> None:
    with Spool(tmp_path, 10_000_000) as spool:
        assert spool.last_seq() == 0 and spool.oldest_age_s() is None
        for i in range(5):
            spool.put(make_read(i))
        seqs = [s for s, _ in spool.entries(10)]
        assert [r.read_id for _, r in spool.entries(2, after_seq=seqs[1])] == ["r00002", "r00003"]
        assert [r.read_id for _, r in spool.entries(10, after_seq=seqs[0], upto_seq=seqs[2])] == ["r00001", "r00002"]
        assert spool.last_seq() == seqs[-1]
        assert spool.get(seqs[3]) == make_read(3)


def test_full_disk_is_a_clear_error_and_keeps_what_was_spooled(tmp_path: Path) -> None:
    with Spool(tmp_path, 10**9) as spool:
        spool.put(make_read(1))
        # SQLite's page limit gives the same SQLITE_FULL error as a full disk.
        pages = spool._db.execute("PRAGMA page_count").fetchone()[0]
        spool._db.execute(f"PRAGMA max_page_count = {pages + 1}")
        with pytest.raises(SpoolError, match=str(tmp_path)) as err:
            spool.put(make_read(2, image_bytes=200_000))
        assert "r00002" in str(err.value)
        assert [r.read_id for r in spool.pending(10)] == ["r00001"]
        assert spool.size_bytes() == spool._count_bytes()


def test_unopenable_spool_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SpoolError, match=str(blocker)):
        Spool(blocker / "spool.sqlite", 1000)
