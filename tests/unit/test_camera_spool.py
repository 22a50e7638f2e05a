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


def camera_over(source, process, tracker, emitted: list):
    """A camera whose loop runs `process` on each frame of `source`; finished passes go to `emitted`."""
    from edge.camera import CameraStats
    from edge.config import load_camera_config

    cam = camera_with(FlakySpool(failures=0))
    cam.stats = CameraStats()
    cam.tracker = tracker
    cam.source = source
    cam.cfg = load_camera_config(None)
    cam.publisher = None
    cam._process = process
    cam._maybe_retention = lambda: None
    cam._emit = emitted.append
    cam._shutdown = lambda once, timeout: 0
    cam._context = threading.Thread(target=lambda: None)
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


def test_a_stop_request_ends_the_wait_on_a_full_spool_and_a_full_queue():
    """SIGTERM while the disk is full and the track queue is full: the camera stops instead of hanging."""
    import queue
    from types import SimpleNamespace

    from edge.camera import CameraStats
    from edge.config import CameraConfig

    cam = camera_with(FlakySpool(failures=10**9))
    cam.cfg, cam.calibration, cam.stats = CameraConfig(), None, CameraStats()
    cam._finished = queue.Queue(maxsize=1)
    cam._stop_requested = threading.Event()
    cam._publish = lambda track: cam._spool([track])
    threading.Thread(target=cam._context_loop, daemon=True).start()
    track = SimpleNamespace(track_id=1, reading=SimpleNamespace(text="AB12CDE", confidence=0.99))

    def frame_loop():
        for _ in range(3):  # one being spooled, one queued, one waiting for room
            cam._emit(track)

    loop = threading.Thread(target=frame_loop, daemon=True)
    loop.start()
    loop.join(0.5)
    assert loop.is_alive()  # waiting for the spool, as it should while running
    cam._stop_requested.set()
    loop.join(20)
    assert not loop.is_alive()
    assert cam._stopping.is_set()


def test_a_failing_retention_purge_is_logged_and_the_camera_goes_on(caplog):
    from types import SimpleNamespace

    class BrokenSpool:
        def purge_older_than(self, age_s):
            raise SpoolError("spool /var/lib/edge/x/spool.sqlite: cannot purge old reads: disk I/O error")

    cam = camera_with(BrokenSpool())
    cam.cfg, cam.audit, cam._last_retention = SimpleNamespace(privacy=SimpleNamespace(retention_hours=24.0)), None, -1e9
    cam._maybe_retention()  # must not raise out of the frame loop
    assert "disk I/O error" in caplog.text


def test_a_full_disk_under_the_audit_log_holds_the_read_back_and_then_spools_it(monkeypatch, tmp_path, caplog):
    """FeedRouter.route writes the audit log before the read is spooled: its failure must not lose the read."""
    from types import SimpleNamespace

    from edge.audit import AuditWriteError
    from edge.camera import CameraStats
    from tests.unit import read_fixtures as F

    monkeypatch.setattr(threading.Event, "wait", lambda self, timeout=None: self.is_set())  # no real sleeping

    class FullAuditRouter:
        failures = 2

        def route(self, read):
            if self.failures:
                self.failures -= 1
                raise AuditWriteError("audit log /var/lib/edge/x/audit.log: cannot write: No space left on device")
            return [read.read_id]

    spool = FlakySpool(failures=0)
    cam = camera_with(spool)
    cam.cfg, cam.calibration, cam.stats = F.config(tmp_path), None, CameraStats()
    cam.pipeline, cam.router, cam.publisher, cam.out = SimpleNamespace(model_roles=F.MODELS), FullAuditRouter(), None, None
    cam._publish(F.track())
    assert len(spool.written) == 1 and cam.stats.reads == 1
    assert caplog.text.count("No space left on device") == 2


def test_a_frame_that_raises_is_skipped_and_the_open_tracks_still_end_as_reads(caplog):
    """A bug on one frame must not end the camera nor lose the passes it was tracking."""
    from edge.capture import CaptureStats
    from edge.config import TrackingSection
    from edge.track import Tracker
    from tests.builders import frame, obs

    tracker = Tracker(TrackingSection())
    tracker.update(obs("AB12CDE", (10, 10, 80, 20), 0.0).frame.timestamp, [obs("AB12CDE", (10, 10, 80, 20), 0.0)])

    class Source:
        name, live, stats = "test", False, CaptureStats()

        def frames(self):
            yield frame(0.1, 1)
            yield frame(0.2, 2)

        def close(self):
            pass

    emitted = []
    cam = camera_over(Source(), lambda f: (_ for _ in ()).throw(RuntimeError("boom")), tracker, emitted)
    assert cam.run(threading.Event()) == 0
    assert cam.stats.frame_failures == 2 and "could not be processed" in caplog.text
    assert [t.reading.text for t in emitted] == ["AB12CDE"]


def test_passes_seen_before_a_live_source_stalled_end_on_time_not_when_it_returns():
    """The camera goes quiet right after a car: its read must not wait (in memory only) for the stream to come back."""
    from datetime import timedelta

    from edge.capture import CaptureStats
    from edge.config import TrackingSection
    from edge.track import Tracker
    from tests.builders import T0, frame, obs

    emitted, emitted_during_stall = [], []

    class Source:
        name, live, stats = "rtsp://camera/stream", True, CaptureStats()

        def frames(self):
            yield frame(0.0, 0)
            yield T0 + timedelta(seconds=5)  # no frame by then: the stream stalled
            emitted_during_stall.extend(emitted)

        def close(self):
            pass

    tracker = Tracker(TrackingSection(timeout_s=1.0))
    cam = camera_over(Source(), lambda f: tracker.update(f.timestamp, [obs("AB12CDE", (10, 10, 80, 20), 0.0)]), tracker, emitted)
    assert cam.run(threading.Event()) == 0
    assert [t.reading.text for t in emitted_during_stall] == ["AB12CDE"]
    assert cam.stats.frame_failures == 0


def test_a_read_given_up_at_shutdown_makes_the_exit_status_non_zero(caplog):
    """`--once` exits 0 only when every read is acknowledged or safely spooled: a read lost to a full disk is not."""
    import queue
    from types import SimpleNamespace

    from edge.camera import CameraStats
    from edge.capture import CaptureStats

    class FullSpool(FlakySpool):
        path = "/var/lib/edge/x/spool.sqlite"

        def depth(self):
            return 0

        def close(self):
            pass

    cam = camera_with(FullSpool(failures=10**9))
    cam.stats, cam.publisher, cam.source = CameraStats(), None, SimpleNamespace(stats=CaptureStats())
    cam._finished = queue.Queue(maxsize=8)
    cam._publish = lambda track: cam._spool([track])
    cam._context = threading.Thread(target=cam._context_loop, daemon=True)
    cam._context.start()
    cam._finished.put(SimpleNamespace(track_id=1, reading=SimpleNamespace(text="AB12CDE", confidence=0.99)))
    cam._stop_requested = threading.Event()
    cam._stop_requested.set()  # SIGTERM: only a stop gives up a read still waiting for the disk
    assert cam._shutdown(once=True, flush_timeout_s=1.0) != 0
    assert "disk is full" in caplog.text


def test_a_source_that_fails_still_ends_the_open_passes_as_reads(caplog):
    """A capture backend that raises mid-stream ends the camera (serve restarts it), not its reads."""
    from edge.capture import CaptureStats
    from edge.config import TrackingSection
    from edge.track import Tracker
    from tests.builders import frame, obs

    tracker = Tracker(TrackingSection())
    tracker.update(obs("AB12CDE", (10, 10, 80, 20), 0.0).frame.timestamp, [obs("AB12CDE", (10, 10, 80, 20), 0.0)])

    class Source:
        name, live, stats = "test", True, CaptureStats()

        def frames(self):
            yield frame(0.1, 1)
            raise RuntimeError("video backend error")

        def close(self):
            pass

    emitted = []
    cam = camera_over(Source(), lambda f: None, tracker, emitted)
    assert cam.run(threading.Event()) != 0
    assert [t.reading.text for t in emitted] == ["AB12CDE"]
    assert "video backend error" in caplog.text


def test_a_short_retention_limit_is_purged_often_enough_to_hold(monkeypatch):
    from types import SimpleNamespace

    import edge.camera
    import edge.privacy

    purges = []
    monkeypatch.setattr(edge.privacy, "apply_retention", lambda spool, cfg, audit: purges.append(1))
    clock = [1000.0]
    monkeypatch.setattr(edge.camera.time, "monotonic", lambda: clock[0])
    cam = camera_with(None)
    cam.cfg, cam.audit, cam._last_retention = SimpleNamespace(privacy=SimpleNamespace(retention_hours=0.01)), None, -1e9
    for _ in range(10):  # 36 s limit: a purge every 3.6 s, not every five minutes
        cam._maybe_retention()
        clock[0] += 4.0
    assert len(purges) == 10
    cam.cfg = SimpleNamespace(privacy=SimpleNamespace(retention_hours=72.0))
    for _ in range(10):
        cam._maybe_retention()
        clock[0] += 4.0
    assert len(purges) == 10  # a long limit keeps the five-minute pace


def test_a_second_process_on_one_camera_folder_is_refused_until_the_first_ends(tmp_path):
    import subprocess
    import sys

    from edge.camera import _lock_camera_dir
    from edge.errors import ConfigError

    held = _lock_camera_dir(tmp_path, "north")
    # Another process (a second `edge serve`, or a manual `edge run` beside the unit's) is refused.
    probe = ("import sys; from pathlib import Path; from edge.camera import _lock_camera_dir\n"
             "try:\n    _lock_camera_dir(Path(sys.argv[1]), 'north')\nexcept Exception as e:\n    print(e); sys.exit(3)")
    other = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert other.returncode == 3 and "camera north: already running" in other.stdout
    with pytest.raises(ConfigError, match="already running"):
        _lock_camera_dir(tmp_path, "north")
    held.close()
    _lock_camera_dir(tmp_path, "north").close()


def test_the_frame_loop_tells_a_supervisor_it_is_alive_unless_the_context_thread_is_stuck(tmp_path):
    """A hung camera (a stuck read build, a deadlock) used to sit silent on its pole: with a supervisor
    listening (systemd's WatchdogSec, `edge serve`) the camera now says READY and then beats while it works."""
    import socket
    import time

    from edge.capture import CaptureStats
    from edge.config import TrackingSection
    from edge.track import Tracker
    from edge.watchdog import Notifier
    from tests.builders import frame

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.2)
    busy_for = {"s": None}

    class Source:
        name, live, stats = "frames/", False, CaptureStats()

        def frames(self):
            s = busy_for["s"]
            cam._context_busy_since = None if s is None else time.monotonic() - s
            yield frame(0.0, 0)

        def close(self):
            pass

    messages = []
    try:
        for busy_for["s"] in (None, 10.0, 500.0):  # idle; busy 10 s (under the 60 s period); stuck 500 s
            cam = camera_over(Source(), lambda f: [], Tracker(TrackingSection()), [])
            cam.notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "60000000"})
            assert cam.run(threading.Event()) == 0
            got = []
            try:
                while True:
                    got.append(sock.recv(100).decode())
            except socket.timeout:
                messages.append(got)
    finally:
        sock.close()
    assert messages == [["READY=1", "WATCHDOG=1"], ["READY=1", "WATCHDOG=1"], ["READY=1"]]
