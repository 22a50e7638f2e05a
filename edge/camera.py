"""One camera's process: frames in, signed reads out, nothing lost.

    source -> motion gate -> ImagePipeline (detect, crop, read) -> Tracker -> scene facts
           -> build_read (imagery, redaction) -> FeedRouter (feeds, signatures) -> Spool -> Publisher | stdout

Every finished read is written to the spool before anything else happens to it;
the publisher deletes it only when the broker acknowledges it. Without a broker
the reads are printed as JSON lines and stay in the spool, so a later run with a
broker delivers them.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, TextIO, TypeVar

import numpy as np

from edge.capture import FrameSource
from edge.clock import clock_state
from edge.config import CameraConfig, FeedKind
from edge.errors import SourceError
from edge.exposure import ExposureWatch
from edge.motion import MotionGate
from edge.pipeline import ImagePipeline
from edge.track import Tracker
from edge.types import Direction, Frame, Observation, OutboundRead, TrackResult
from edge.watchdog import Notifier

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 300.0

_T = TypeVar("_T")


@dataclass
class CameraStats:
    started: float = field(default_factory=time.monotonic)
    frames: int = 0
    still_frames: int = 0  # skipped by the motion gate
    detections: int = 0
    reads: int = 0
    rejected_low_confidence: int = 0
    frame_failures: int = 0  # frames that raised in processing (a bug): logged and skipped
    reads_lost: int = 0  # finished passes whose read could not be built or spooled: logged, and the exit status says so
    fps: float = 0.0  # exponential moving average of processed frames per second
    frame_ms: float = 0.0  # moving average of pipeline time per processed frame
    recent_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))  # for percentiles

    def percentile_ms(self, q: float) -> float | None:
        return float(np.percentile(self.recent_ms, q)) if self.recent_ms else None


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def _lock_camera_dir(folder: Path, camera_id: str) -> TextIO:
    """Hold `folder`'s lock for this process's life: two processes on one camera (a second `edge serve`,
    or a manual `edge run` beside the unit's) would interleave one spool and break one audit chain."""
    import fcntl

    from edge.errors import ConfigError

    path = folder / ".lock"
    f = open(path, "a")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise ConfigError(f"camera {camera_id}: already running (another process holds {path})") from None
    return f


class Camera:
    _lock: TextIO | None = None  # the camera folder's lock (see _lock_camera_dir)
    # When the context thread last began a step (a read, or a retry of a full disk); None while it waits
    # for work. The frame loop vouches for the whole process to a supervisor only while this is recent.
    _context_busy_since: float | None = None
    notifier: Notifier = Notifier({})  # silent until __init__ reads the environment (systemd, `edge serve`)

    def __init__(self, cfg: CameraConfig, source: FrameSource, *, spool_dir: Path | None = None, out: TextIO | None = sys.stdout) -> None:
        from edge.privacy import FeedRouter, camera_dir, open_audit, signing_key_path
        from edge.signing import Signer
        from edge.spool import Spool

        self.cfg = cfg
        self.source = source
        self.out = out
        self.stats = CameraStats()
        cam = cfg.camera.id
        self.dir = camera_dir(cfg, spool_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock = _lock_camera_dir(self.dir, cam)
        except OSError as err:  # a spool path that is a file, on a read-only disk, not ours: say which, no traceback
            from edge.errors import ConfigError

            where = "--spool" if spool_dir is not None else (f"{cfg.source_file}: spool.dir" if cfg.source_file else "spool.dir")
            raise ConfigError(f"{where} = '{spool_dir or cfg.spool.dir}': camera {cam} cannot use {self.dir}: {err.strerror or err}") from None

        self.pipeline = ImagePipeline.from_config(cfg)  # loads the calibration the config names
        self.calibration = self.pipeline.calibration
        self.tracker = Tracker(cfg.tracking)
        self.gate = MotionGate(cfg.detector.motion_threshold) if cfg.detector.motion_gating else None
        self.exposure = ExposureWatch(cam)

        self.audit = open_audit(cfg, spool_dir)
        self.signer = Signer.load_or_create(signing_key_path(cfg, spool_dir), cam)
        self.router = FeedRouter(cfg, self.signer, self.audit)
        self.spool = Spool(self.dir, int(cfg.spool.max_mb * 1024 * 1024))
        self.full_feeds = {f.name for f in cfg.privacy.feeds if f.kind is FeedKind.FULL}
        self.publisher = None
        if cfg.mqtt.broker:
            from edge.publish import Publisher

            self.publisher = Publisher(
                cfg.mqtt.model_copy(update={k: cfg.resolve(getattr(cfg.mqtt, k)) for k in ("password_file", "ca_file", "cert_file", "key_file")}),
                cam,
                self.spool,
                status=self.status,
                on_published=lambda read_id, feed: self.audit.append("published", read_id=read_id, feed=feed),
            )
        self._last_retention = float("-inf")  # the first pass runs at once (monotonic time starts at boot)
        # Finished tracks wait here for the context thread; each holds one frame, so the bound bounds memory.
        self._finished: queue.Queue[TrackResult | None] = queue.Queue(maxsize=8)
        self._stopping = threading.Event()  # shutting down: the context thread stops waiting for the spool
        self._stop_requested = threading.Event()  # the caller's stop event, once run() has it
        self._context = threading.Thread(target=self._context_loop, name=f"edge.context:{cam}", daemon=True)
        self.notifier = Notifier()

    # -- status ----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        s = self.stats
        return {
            "camera_id": self.cfg.camera.id,
            "fps": round(s.fps, 2),
            "frames": s.frames,
            "frames_still": s.still_frames,
            "frames_dropped": self.source.stats.dropped,
            "frame_errors": self.source.stats.errors,
            "frame_failures": s.frame_failures,
            "reconnects": self.source.stats.reconnects,
            "reads": s.reads,
            "frame_ms": round(s.frame_ms, 2),
            "frame_ms_p50": _round(s.percentile_ms(50)),
            "frame_ms_p95": _round(s.percentile_ms(95)),
            "exposure": self.exposure.status(),
            "models": self.pipeline.models,
            # The audit log's newest entry, kept off the unit: a log later cut back or rewritten no longer contains it.
            "audit_head": dict(zip(("seq", "hash"), self.audit.head())),
            "clock": dataclasses.asdict(clock_state()),
            "uptime_s": round(time.monotonic() - s.started, 1),
        }

    # -- the loop ------------------------------------------------------------------

    def run(self, stop: threading.Event, once: bool = False, flush_timeout_s: float = 30.0, progress: TextIO | None = None) -> int:
        """Process the source until it ends or `stop` is set; then finish open tracks and flush. Returns an exit status.

        `progress`: a terminal to show a one-line progress display on (offline sources).
        """
        self._stop_requested = stop
        if self.publisher is not None:
            self.publisher.start()
        log.info("camera %s: reading %s", self.cfg.camera.id, self.source.name)
        self._context.start()
        self.notifier.ready()
        source_failed = False
        try:
            try:
                self._frame_loop(stop, progress)
            except SourceError as err:  # e.g. no frame of a folder readable: its message says which and why
                source_failed = True
                log.error("camera %s: %s; finishing open passes", self.cfg.camera.id, err)
            except Exception:  # the capture backend itself: end the camera (serve restarts it), not its passes
                source_failed = True
                log.exception("camera %s: source %s failed; finishing open passes", self.cfg.camera.id, self.source.name)
            for track in self.tracker.flush():
                self._emit(track)
        finally:
            self.source.close()
            status = self._shutdown(once, flush_timeout_s)
        return status or (1 if source_failed else 0)

    def _frame_loop(self, stop: threading.Event, progress: TextIO | None) -> None:
        total = len(getattr(self.source, "paths", ())) or None
        shown = 0.0
        for frame in self.source.frames():
            self._beat()
            if isinstance(frame, datetime):  # a live source stalled: passes seen before it end now, not when it returns
                for track in self.tracker.update(frame, []):
                    self._emit(track)
            else:
                try:
                    self._process(frame)
                except Exception:  # one bad frame must not end the camera or lose its open tracks
                    self.stats.frame_failures += 1
                    log.exception("frame %d from %s could not be processed; skipped", frame.seq, frame.source)
            self._maybe_retention()
            if progress is not None and time.monotonic() - shown > 0.25:
                shown = time.monotonic()
                of = f"/{total}" if total else ""
                progress.write(f"\r  frame {self.stats.frames}{of}  reads {self.stats.reads}  {self.stats.fps:5.1f} fps ")
                progress.flush()
            if stop.is_set():
                log.info("stopping: finishing open tracks and flushing the spool")
                break
        if progress is not None:
            progress.write("\n")

    def _process(self, frame: Frame) -> None:
        s = self.stats
        s.frames += 1
        t0 = time.perf_counter()
        self.exposure.see(frame.image)
        if self.gate is not None and self.tracker.open_tracks == 0 and not self.gate.moved(frame.image):
            s.still_frames += 1
            finished = self.tracker.update(frame.timestamp, [])
        else:
            if self.gate is not None and self.tracker.open_tracks:
                self.gate.moved(frame.image)  # so that, once tracks end, stillness is judged against a recent scene
            results = self.pipeline.process(frame.image, skip=lambda d: self.tracker.is_settled(d.box, frame.timestamp))
            s.detections += len(results)
            boxes = [r.detection.box for r in results]
            observations = [
                Observation(frame, r.detection, r.reading, tuple(b for j, b in enumerate(boxes) if j != i))
                for i, r in enumerate(results)
                if r.reading is not None or r.skipped
            ]
            finished = self.tracker.update(frame.timestamp, observations, (frame.width, frame.height))
        ms = (time.perf_counter() - t0) * 1e3
        s.recent_ms.append(ms)
        s.frame_ms = ms if s.frames == 1 else 0.9 * s.frame_ms + 0.1 * ms
        s.fps = 1000.0 / s.frame_ms if s.frame_ms > 0 else 0.0
        for track in finished:
            self._emit(track)

    def _with_scene(self, track: TrackResult) -> TrackResult:
        """Direction, lane and speed from the road calibration, calibrated confidence."""
        cal = self.calibration
        if cal is None:
            return track
        from edge.calibrate import confidence, scene
        from edge.calibrate.file import scaled_to

        cal = scaled_to(cal, (track.best.frame.width, track.best.frame.height))

        first, last = track.path[0][1], track.path[-1][1]
        anchor = lambda b: (b.center[0], b.y + b.h)  # noqa: E731 - bottom centre of the plate touches the bumper line
        changes: dict[str, Any] = {
            "direction": Direction(scene.direction_of(cal, anchor(first), anchor(last), first.w, last.w)),
            "lane": scene.lane_of(cal, anchor(track.best.detection.box)),
        }
        speed = scene.speed_kmh(cal, [anchor(b) for _, b in track.path], [(t - track.first_seen).total_seconds() for t, _ in track.path])
        if speed is not None:
            changes["speed_kmh"], changes["speed_uncertainty_kmh"] = speed
        raw = track.reading.confidence
        changes["reading"] = dataclasses.replace(track.reading, confidence=confidence.calibrate_confidence(cal, raw))
        return dataclasses.replace(track, **changes)

    def _emit(self, track: TrackResult) -> None:
        """Hand a finished track to the context thread (blocking when it is behind: reads are never dropped)."""
        track = self._with_scene(track)
        if track.reading.confidence < self.cfg.reader.min_confidence:
            self.stats.rejected_low_confidence += 1
            log.debug("dropped track %d: confidence %.2f below %.2f", track.track_id, track.reading.confidence, self.cfg.reader.min_confidence)
            return
        while True:
            try:
                self._finished.put(track, timeout=0.5)
                return
            except queue.Full:
                self._beat()  # waiting for the context thread (a full disk holds reads in memory) is not a hang
                if self._stop_requested.is_set():
                    # The context thread is stuck retrying a full or unwritable spool while the queue is
                    # full: asked to stop, let it give up, or the two threads would wait on each other for ever.
                    self._stopping.set()

    def _context_loop(self) -> None:
        """Imagery, redaction, signing and spooling take tens to hundreds of ms a read: keep them off the frame loop."""
        from edge.audit import AuditWriteError
        from edge.spool import SpoolError

        while (track := self._finished.get()) is not None:
            self._context_busy_since = time.monotonic()
            try:
                self._publish(track)
            except (SpoolError, AuditWriteError) as err:  # given up at a stop: the disk is still full or unwritable
                self.stats.reads_lost += 1
                log.error("read of track %d lost: %s", track.track_id, err)
            except Exception:  # a bug here must not stop the camera; the log says which read
                self.stats.reads_lost += 1
                log.exception("could not build read for track %d", track.track_id)  # no plate text: logs are kept outside retention
            finally:
                self._context_busy_since = None

    def _beat(self) -> None:
        """Tell a supervisor this camera is alive: the frame loop turns, and the context thread is idle or
        began its current step within a watchdog period (a read build that hangs stops the beats, and the
        supervisor restarts the camera a period later). A full-disk retry waits 30 s at most, so a period
        of a minute never mistakes one for a hang."""
        busy = self._context_busy_since
        period = self.notifier.period_s
        if busy is None or period is None or time.monotonic() - busy < period:
            self.notifier.alive()

    def _spool(self, outbound: list[OutboundRead]) -> None:
        self._until_written(lambda: self.spool.put_many(outbound))

    def _until_written(self, write: Callable[[], _T]) -> _T:
        """Run a step that writes to disk (spool, audit log), retrying while the disk is full or unwritable.

        Meanwhile finished tracks queue up and then the frame loop waits (live frames are
        dropped and counted): reads already made are held, not lost. Only a shutdown gives up.
        """
        from edge.audit import AuditWriteError
        from edge.spool import SpoolError

        delay = 1.0
        while True:
            try:
                return write()
            except (SpoolError, AuditWriteError) as err:
                if self._stopping.is_set():
                    raise
                log.error("%s; retrying in %.0f s (reads wait in memory meanwhile)", err, delay)
                self._stopping.wait(delay)
                self._context_busy_since = time.monotonic()  # a retry is progress, not a hang
                delay = min(delay * 2, 30.0)

    def _publish(self, track: TrackResult) -> None:
        from edge.context import build_read

        read = build_read(
            track,
            self.cfg,
            models=self.pipeline.model_roles,
            calibration=self.calibration,
            clock_synced=clock_state().synced,
            processing_ms=round(self.stats.frame_ms, 2),
        )
        outbound = self._until_written(lambda: self.router.route(read))  # route() writes the audit log
        self._spool(outbound)  # durable, all feeds at once, before anything else sees the read
        self.stats.reads += 1
        if self.publisher is not None:
            self.publisher.notify()
        elif self.out is not None:
            try:
                for item in outbound:
                    if item.feed in self.full_feeds or not self.full_feeds:
                        self.out.write(item.record.decode() + "\n")
                self.out.flush()
            except BrokenPipeError:
                log.warning("stdout was closed: reads are no longer printed, they stay in %s", self.spool_path)
                self.out = None

    def _maybe_retention(self) -> None:
        now = time.monotonic()
        # At least ten purges per retention period, so a short limit is overrun by a tenth at most.
        every_s = min(RETENTION_EVERY_S, self.cfg.privacy.retention_hours * 360.0)
        if now - self._last_retention >= every_s:
            from edge.audit import AuditWriteError
            from edge.privacy import apply_retention
            from edge.spool import SpoolError

            self._last_retention = now
            try:
                apply_retention(self.spool, self.cfg, self.audit)
            except (SpoolError, AuditWriteError) as err:  # runs on the frame loop: a failed purge is tried again next time, reading goes on
                log.error("retention: %s; trying again in %.0f s", err, every_s)

    def _finish_context(self) -> None:
        """Let the context thread spool every read queued for it, then end.

        A full or unwritable disk is retried until it clears or a stop is asked for (a signal): the end of a
        folder or a file (`--once`) alone gives up no read, which a spool short of space for a moment would lose.
        """
        queued_end = False
        while self._context.is_alive():
            self._beat()
            if self._stop_requested.is_set():
                self._stopping.set()  # asked to stop: reads still waiting for the disk are given up
            if not queued_end:
                try:
                    self._finished.put(None, timeout=0.5)  # the queue may be full behind a read waiting for the disk
                    queued_end = True
                except queue.Full:
                    continue
            self._context.join(0.5)

    def _shutdown(self, once: bool, flush_timeout_s: float) -> int:
        status = 0
        self.notifier.stopping()
        self._finish_context()
        if self.stats.reads_lost:
            log.error("%d read(s) could not be built or spooled (see above): exit status 1", self.stats.reads_lost)
            status = 1
        if self.publisher is not None:
            delivered = self.publisher.flush(flush_timeout_s if once else min(flush_timeout_s, 10.0), self._stop_requested)
            if not delivered:
                log.warning("%d read(s) not yet acknowledged by the broker; they stay in %s and go at the next start", self.spool.depth(), self.spool_path)
            self.publisher.stop()
        elif self.spool.depth():
            log.info("no broker configured: %d read(s) kept in %s for a later run with --broker", self.spool.depth(), self.spool_path)
        self.spool.close()
        if self._lock is not None:  # the folder is free for the next start (the OS frees it anyway at exit)
            self._lock.close()
        s = self.stats
        log.info(
            "done: %d frames (%d still, %d dropped, %d unreadable), %d detections, %d reads, %d below confidence; "
            "per frame %.1f ms median, %.1f ms p95 (%.1f fps on one core)",
            s.frames, s.still_frames, self.source.stats.dropped, self.source.stats.errors, s.detections, s.reads,
            s.rejected_low_confidence, s.percentile_ms(50) or 0.0, s.percentile_ms(95) or 0.0,
            1000.0 / s.percentile_ms(50) if s.percentile_ms(50) else 0.0,
        )
        return status

    @property
    def spool_path(self) -> Path:
        return self.spool.path

