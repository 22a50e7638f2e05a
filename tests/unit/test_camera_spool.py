"""A full or unwritable disk holds reads back; it does not lose them."""

import threading

import pytest

from edge.camera import Camera
from edge.spool import SpoolError


class FlakySpool:
    def __init__(self, failures: int):
        self.failures = failures
        self.written = []

    def put_many(self, reads):
        if self.failures:
            self.failures -= 1
            raise SpoolError("spool /var/lib/edge/x/spool.sqlite: database or disk is full")
        self.written.extend(reads)


def camera_with(spool) -> Camera:
    cam = Camera.__new__(Camera)  # only the spooling part is under test: no models needed
    cam.spool = spool
    cam._stopping = threading.Event()
    return cam


def test_spool_errors_are_retried_until_the_read_is_written(monkeypatch, caplog):
    monkeypatch.setattr(threading.Event, "wait", lambda self, timeout=None: self.is_set())  # no real sleeping
    spool = FlakySpool(failures=2)
    camera_with(spool)._spool(["read-1"])
    assert spool.written == ["read-1"]
    assert caplog.text.count("disk is full") == 2 and "retrying" in caplog.text


def test_at_shutdown_a_failing_spool_is_reported_not_retried_forever():
    cam = camera_with(FlakySpool(failures=1))
    cam._stopping.set()
    with pytest.raises(SpoolError, match="disk is full"):
        cam._spool(["read-1"])
