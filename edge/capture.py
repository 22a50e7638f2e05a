"""Frame sources behind one interface: image folder, video file, RTSP/HTTP stream, V4L2 device.

Offline sources (folders, files) yield every frame in order. Live sources (streams,
devices) are read by a thread into a short queue where the newest frame wins:
inference never falls behind the camera by more than `queue_frames`, and every
frame dropped on the way is counted. Streams reopen with exponential backoff and
log why they dropped, with credentials masked.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator, Protocol

import cv2
import numpy as np

from edge.config import CaptureSection
from edge.errors import SourceError
from edge.labels import list_images
from edge.logs import redact
from edge.types import Frame

log = logging.getLogger(__name__)

# A live source with no frame for this long says what time it is, so passes seen before a stall still end.
_IDLE_S = 0.5
# How long close() waits for the capture thread to let go of the stream before leaving it to finish alone.
_CLOSE_WAIT_S = 1.0

# What recorders and DVR/NVR exports write; all read by the FFmpeg OpenCV ships with.
VIDEO_SUFFIXES = (
    ".mp4", ".mkv", ".avi", ".mov", ".ts", ".m4v", ".webm", ".mjpeg", ".mjpg", ".h264", ".h265",
    ".mpg", ".mpeg", ".m2ts", ".mts", ".264", ".265", ".hevc", ".flv", ".wmv", ".asf", ".3gp",
)


@dataclass
class CaptureStats:
    frames: int = 0  # handed to inference
    dropped: int = 0  # read from a live source but replaced by a newer frame before inference took it
    errors: int = 0  # unreadable frames or files, skipped
    reconnects: int = 0


class FrameSource(Protocol):
    name: str
    live: bool
    stats: CaptureStats

    def frames(self) -> Iterator[Frame | datetime]:
        """Frames in order; a live source also yields the time (a datetime) when no frame has come for a while."""
        ...

    def close(self) -> None: ...


def decode_image(data: bytes, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """BGR (or, with `flags`, grey or unchanged) image from encoded bytes; None when they are not a readable image.

    8-bit whatever the file's depth (but with IMREAD_UNCHANGED): see _to_8bit for 16-bit files.
    """
    if not data:  # imdecode raises on no bytes
        return None
    to_8bit = flags in (cv2.IMREAD_COLOR, cv2.IMREAD_GRAYSCALE)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags | cv2.IMREAD_ANYDEPTH if to_8bit else flags)
    except cv2.error:  # e.g. a corrupt header claiming more pixels than OpenCV allows: it raises, not returns None
        return None
    if img is None or not img.size:
        return None
    return _to_8bit(img) if to_8bit and img.dtype != np.uint8 else img


def _to_8bit(img: np.ndarray) -> np.ndarray | None:
    """A 16-bit image as 8-bit by its significant bits; None for other depths (float data is not a camera frame).

    Machine-vision and IR cameras store 10- or 12-bit pixels in 16-bit PNG/TIFF. OpenCV's own conversion
    divides by 256 whatever the bit depth, which left a 12-bit frame black (at most 15 of 255).
    """
    if img.dtype != np.uint16:
        return None
    shift = max(0, int(img.max()).bit_length() - 8)
    return (img >> shift).astype(np.uint8)


def load_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """An image file decoded, or None when it cannot be read or decoded (for tools that skip such files).

    Decodes the file's bytes: cv2.imread crashes (OpenCV 5) on file names that are not UTF-8.
    """
    try:
        data = Path(path).read_bytes()
    except OSError:  # no read permission, gone since the listing, ...
        return None
    return decode_image(data, flags)


def read_image(path: Path) -> np.ndarray:
    """An image file as BGR; SourceError naming the file when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SourceError(f"{path}: cannot read: {err.strerror}") from None
    img = decode_image(data)
    if img is None:
        raise SourceError(f"{path}: not a readable image (corrupt, truncated or unsupported format)")
    return img


def _natural_key(path: Path) -> tuple[list[str | int], str]:
    """Sort key that puts frame_9.jpg before frame_10.jpg (recorders and `ffmpeg -i frame_%d.jpg` do not pad)."""
    # re.split with a group alternates text and digits, so equal positions always hold the same type.
    parts: list[str | int] = [int(t) if i % 2 else t for i, t in enumerate(re.split(r"(\d+)", path.name))]
    return parts, path.name


class FolderSource:
    """Images of a folder in name order (numbers by value), or in file-time order when file times are the timestamps.

    Timestamps: file times, or a fixed rate from the first file's time.
    """

    live = False

    def __init__(self, folder: Path, cfg: CaptureSection) -> None:
        if not folder.is_dir():
            raise SourceError(f"{folder}: not a folder")
        self.paths = sorted(list_images(folder), key=_natural_key)
        if cfg.use_file_times:
            # Frames in name order with times out of order would make the tracker take each step back
            # for a clock step and split the passes: when file times are the timestamps, they set the order.
            self.paths.sort(key=lambda p: _mtime(p) or datetime.min.replace(tzinfo=timezone.utc))
        if not self.paths:
            raise SourceError(f"{folder}: no images in folder (looked for .jpg, .jpeg, .png, .bmp, .webp, .tif)")
        self.name = str(folder)
        self.cfg = cfg
        self.stats = CaptureStats()
        self._closed = False

    def frames(self) -> Iterator[Frame]:
        start = _mtime(self.paths[0]) or datetime.now(timezone.utc)
        period = timedelta(seconds=1.0 / self.cfg.fps)
        for seq, path in enumerate(self.paths):
            if self._closed:
                return
            try:
                image = read_image(path)
            except SourceError as err:
                self.stats.errors += 1
                log.warning("skipping frame: %s", err)
                continue
            ts = start + seq * period
            if self.cfg.use_file_times:
                ts = _mtime(path) or ts
            self.stats.frames += 1
            yield Frame(image, ts, seq, str(path))
        if not self.stats.frames and not self._closed:
            # Otherwise `edge run --once` would end "done: 0 frames" with status 0, as if the folder held no plates.
            raise SourceError(f"{self.name}: none of its {len(self.paths)} image(s) could be read (see the warnings above)")

    def close(self) -> None:
        self._closed = True


def _mtime(path: Path) -> datetime | None:
    """A file's modification time; None when it has gone (a recorder may prune frames while we read)."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    except OSError:
        return None


def _open_capture(spec: str | int, timeout_s: float) -> cv2.VideoCapture:
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(timeout_s * 1000), cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(timeout_s * 1000)]
    # Every /dev path but a file (on the /dev/shm RAM disk) is a V4L2 device, the stable /dev/v4l/by-id/... and
    # by-path/... links included (a box with several USB cameras names them so): FFmpeg would try to read the
    # device node as a media file.
    if isinstance(spec, int) or (spec.startswith("/dev/") and not os.path.isfile(spec)):
        cap = cv2.VideoCapture(spec, cv2.CAP_V4L2)
    else:
        cap = cv2.VideoCapture(spec, cv2.CAP_FFMPEG, params)
    return cap


def _open_video_file(path: Path, timeout_s: float) -> cv2.VideoCapture:
    """FFmpeg's capture of a video file, whatever bytes its name holds."""
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        # OpenCV hands the name to FFmpeg as UTF-8 and, given one that is not (e.g. a Latin-1 name from a
        # recorder's share), kills the whole process (segfault, OpenCV 5). FFmpeg opens it by descriptor instead.
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as err:
            raise SourceError(f"{path}: cannot read: {err.strerror}") from None
        try:
            proxy = f"/proc/self/fd/{fd}"
            if not os.path.exists(proxy):  # no /proc (not Linux)
                raise SourceError(f"{path}: the file name is not UTF-8, which this platform cannot pass to FFmpeg: rename the file")
            return _open_capture(proxy, timeout_s)  # FFmpeg has its own descriptor once open: ours can go
        finally:
            os.close(fd)
    return _open_capture(name, timeout_s)


class VideoFileSource:
    """A video file, every frame in order; timestamps from the file's own clock, ending at its modification time."""

    live = False

    def __init__(self, path: Path, cfg: CaptureSection) -> None:
        if not path.is_file():
            raise SourceError(f"{path}: video file not found")
        self.path = path
        self.name = str(path)
        self.cfg = cfg
        self.stats = CaptureStats()
        self._cap = _open_video_file(path, cfg.open_timeout_s)
        if not self._cap.isOpened():
            raise SourceError(f"{path}: cannot open video (corrupt, truncated or a codec FFmpeg lacks)")
        # The first frame is read now: a file that opens but holds no decodable frame (a recording cut before
        # its first key frame) is refused like one that does not open, not ended "done: 0 frames" with status 0.
        self._first = self._read()
        if self._first is None:
            self._cap.release()
            raise SourceError(f"{path}: opens as a video but no frame could be decoded (empty, truncated, or a codec FFmpeg lacks)")
        self._closed = False

    def _read(self) -> tuple[np.ndarray, float] | None:
        """The next frame and its position on the file's clock (ms); None at the end."""
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return image, self._cap.get(cv2.CAP_PROP_POS_MSEC)

    def frames(self) -> Iterator[Frame]:
        # A recorder writes the last frame last: the file's modification time is when the recording ended.
        start = (_mtime(self.path) or datetime.now(timezone.utc)) - timedelta(seconds=self._duration_s())
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        period_ms = 1000.0 / (fps if fps > 0 else self.cfg.fps)
        offset_ms, last_ms, stepped = 0.0, None, False
        item, self._first = self._first, None
        seq = 0
        while item is not None and not self._closed:
            image, pos_ms = item
            ms = pos_ms + offset_ms
            if last_ms is not None and ms <= last_ms:
                # The file's clock went back or stood still (recordings joined end to end, a muxer without
                # timestamps): carry on one frame period later, so reads are not stamped in the past and the
                # tracker does not take the step for a clock change that ends every open pass.
                if not stepped:
                    log.warning("%s: the video's clock goes back or stands still at frame %d; timestamps continue from the frame before", self.name, seq)
                    stepped = True
                offset_ms += last_ms + period_ms - ms
                ms = last_ms + period_ms
            last_ms = ms
            self.stats.frames += 1
            yield Frame(image, start + timedelta(milliseconds=ms), seq, self.name)
            seq += 1
            item = self._read()
        frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if frame_count and seq < frame_count - 1 and not self._closed:
            self.stats.errors += 1
            log.warning("%s: video ended after %d of %d frames (truncated or corrupt); frames read so far are kept", self.name, seq, frame_count)

    def _duration_s(self) -> float:
        """The video's length from its header; 0 when the container does not say (raw streams)."""
        fps, count = self._cap.get(cv2.CAP_PROP_FPS), self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        return count / fps if fps > 0 and count > 0 else 0.0

    def close(self) -> None:
        self._closed = True
        self._first = None
        self._cap.release()


class LiveSource:
    """A stream or device read by a thread; the newest frames win, older ones are dropped and counted."""

    live = True

    def __init__(self, spec: str | int, cfg: CaptureSection) -> None:
        self.spec = spec
        self.name = redact(str(spec))
        self.cfg = cfg
        self.stats = CaptureStats()
        self._queue: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"edge.capture:{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = self.cfg.reconnect_initial_s
        seq = 0
        while not self._stop.is_set():
            cap = None
            try:
                cap = _open_capture(self.spec, self.cfg.open_timeout_s)
                if not cap.isOpened():
                    log.warning("%s: cannot open (no answer within %.0f s, refused, or bad credentials); retrying in %.1f s", self.name, self.cfg.open_timeout_s, delay)
                else:
                    log.info("%s: opened", self.name)
                    while not self._stop.is_set():
                        ok, image = cap.read()
                        if not ok or image is None:
                            log.warning("%s: stream dropped (read failed or timed out after %.0f s); reconnecting in %.1f s", self.name, self.cfg.open_timeout_s, delay)
                            break
                        # Reset only once frames flow: a stream that opens but never delivers still backs off.
                        delay = self.cfg.reconnect_initial_s
                        if image.ndim == 2:
                            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
                        with self._cond:
                            # Stamped under the lock: no frame is older than a "no frame by then" time yielded before it.
                            frame = Frame(image, datetime.now(timezone.utc), seq, self.name)
                            seq += 1
                            if len(self._queue) >= self.cfg.queue_frames:
                                self._queue.popleft()
                                self.stats.dropped += 1
                            self._queue.append(frame)
                            self._cond.notify()
            except Exception:  # e.g. cv2.error from a broken stream: a dead thread would leave the camera waiting for ever
                log.exception("%s: capture failed; reconnecting in %.1f s", self.name, delay)
            finally:
                if cap is not None:
                    cap.release()
            if self._stop.wait(delay):
                break
            self.stats.reconnects += 1
            delay = min(delay * 2, self.cfg.reconnect_max_s)

    def frames(self) -> Iterator[Frame | datetime]:
        """Frames as they come; the time now instead when none came for _IDLE_S (a stalled or reconnecting stream)."""
        while not self._stop.is_set():
            with self._cond:
                if not self._queue:
                    self._cond.wait(_IDLE_S)
                if self._stop.is_set():
                    return
                item = self._queue.popleft() if self._queue else datetime.now(timezone.utc)
            if isinstance(item, Frame):
                self.stats.frames += 1
            yield item

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        # The thread may be inside an open or a read of a stalled stream for up to open_timeout_s (up to 120 s):
        # a shutdown must not wait for that before flushing its reads (`edge serve` kills a camera that takes
        # longer than stop_timeout_s). The daemon thread releases the stream itself once the call returns.
        self._thread.join(timeout=_CLOSE_WAIT_S)
        if self._thread.is_alive():
            log.info("%s: stream still answering a call; it is released in the background", self.name)


def open_source(spec: str, cfg: CaptureSection) -> FrameSource:
    """The source a `--source` string names: folder, video file, URL, /dev/videoN or a device index."""
    if re.fullmatch(r"\d+", spec):
        return LiveSource(int(spec), cfg)
    if re.match(r"^(rtsp|rtsps|http|https|rtmp|udp|tcp)://", spec, re.I):
        return LiveSource(spec, cfg)
    path = Path(spec)
    if spec.startswith("/dev/"):
        if not os.path.exists(spec):
            raise SourceError(f"{spec}: no such device")
        # A device node; a recording or a folder of frames on /dev/shm (a RAM disk) is read as such, not
        # handed to V4L2 (which cannot open it) and retried for ever.
        if not (path.is_file() or path.is_dir()):
            return LiveSource(spec, cfg)
    if path.is_dir():
        return FolderSource(path, cfg)
    if path.is_file():
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return VideoFileSource(path, cfg)
        raise SourceError(f"{path}: not a folder of frames or a video file this engine knows ({', '.join(VIDEO_SUFFIXES)})")
    raise SourceError(f"{redact(spec)}: no such folder, file, device or stream URL")

