import os
import threading
import time
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture import FolderSource, LiveSource, VideoFileSource, open_source
from edge.config import CaptureSection
from edge.errors import SourceError


def write_frames(folder: Path, n: int, size=(64, 48)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = np.full((size[1], size[0], 3), i * 20 % 255, np.uint8)
        p = folder / f"f{i:03d}.jpg"
        cv2.imwrite(str(p), img)
        paths.append(p)
    return paths


def _clip(path: Path, shades, fourcc: str = "MJPG") -> bool:
    """A 64x48 clip at 10 fps, one flat frame per shade; False when this OpenCV build cannot write `fourcc`."""
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (64, 48))
    if not out.isOpened():
        return False
    for shade in shades:
        out.write(np.full((48, 64, 3), shade, np.uint8))
    out.release()
    return path.exists() and path.stat().st_size > 0


def test_folder_yields_frames_in_order_with_fixed_rate_timestamps(tmp_path):
    write_frames(tmp_path, 5)
    src = open_source(str(tmp_path), CaptureSection(fps=10))
    frames = list(src.frames())
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4]
    assert [Path(f.source).name for f in frames] == [f"f{i:03d}.jpg" for i in range(5)]
    gaps = [(b.timestamp - a.timestamp).total_seconds() for a, b in zip(frames, frames[1:])]
    assert gaps == pytest.approx([0.1] * 4)


def test_corrupt_frame_is_skipped_counted_and_the_rest_kept(tmp_path, caplog):
    paths = write_frames(tmp_path, 3)
    paths[1].write_bytes(paths[1].read_bytes()[:40])  # truncated JPEG
    src = FolderSource(tmp_path, CaptureSection())
    frames = list(src.frames())
    assert len(frames) == 2
    assert src.stats.errors == 1
    assert "f001.jpg" in caplog.text


@pytest.mark.parametrize("use_file_times", [False, True])
def test_a_frame_removed_after_the_folder_was_listed_is_skipped_not_fatal(tmp_path, use_file_times):
    paths = write_frames(tmp_path, 3)
    src = FolderSource(tmp_path, CaptureSection(use_file_times=use_file_times))
    paths[0].unlink()  # e.g. a recorder pruning its oldest frames while we read
    frames = list(src.frames())
    assert [Path(f.source).name for f in frames] == ["f001.jpg", "f002.jpg"]
    assert src.stats.errors == 1


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="no images"):
        open_source(str(tmp_path), CaptureSection())


def test_unknown_source_names_it_without_credentials():
    with pytest.raises(SourceError) as err:
        open_source("/nonexistent/user:secret@x/cam.mp4", CaptureSection())
    assert "no such" in str(err.value)


def test_video_file_frames(tmp_path):
    path = tmp_path / "clip.avi"
    _clip(path, range(0, 180, 30))
    src = open_source(str(path), CaptureSection())
    assert isinstance(src, VideoFileSource)
    frames = list(src.frames())
    assert len(frames) == 6
    assert frames[-1].timestamp > frames[0].timestamp


def test_corrupt_video_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError, match="broken.mp4"):
        open_source(str(path), CaptureSection())


def test_live_source_never_queues_unboundedly_and_counts_drops(monkeypatch):
    """A fast camera and a slow consumer: the queue holds at most queue_frames, drops are counted."""

    class FakeCap:
        def __init__(self):
            self.n = 0

        def isOpened(self):
            return True

        def read(self):
            self.n += 1
            if self.n > 50:
                time.sleep(0.01)
                return False, None
            return True, np.full((8, 8, 3), self.n, np.uint8)

        def release(self):
            pass

    monkeypatch.setattr("edge.capture._open_capture", lambda spec, timeout: FakeCap())
    src = LiveSource("rtsp://user:pw@camera/stream", CaptureSection(queue_frames=2, reconnect_initial_s=5))
    deadline = time.monotonic() + 10
    while src.stats.dropped < 48 and time.monotonic() < deadline:  # let the camera outrun us
        time.sleep(0.01)
    assert "pw" not in src.name
    got = []
    for f in src.frames():
        got.append(int(f.image[0, 0, 0]))
        if len(got) == 2:
            break
    src.close()
    assert got == [49, 50]  # the newest frames won
    assert src.stats.dropped == 48


def test_http_mjpeg_stream_drops_and_reconnects(caplog):
    """A real MJPEG-over-HTTP camera (served here) that hangs up after each burst: the source reopens it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    connections = []

    class Camera(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            connections.append(self.path)
            shade = 60 * len(connections)
            jpg = cv2.imencode(".jpg", np.full((48, 64, 3), shade, np.uint8))[1].tobytes()
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for _ in range(10):
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpg), jpg))
                time.sleep(0.02)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://user:pw@127.0.0.1:{server.server_address[1]}/stream.mjpg"
    src = open_source(url, CaptureSection(queue_frames=8, reconnect_initial_s=0.1, reconnect_max_s=0.2, open_timeout_s=2))
    shades = set()
    deadline = time.monotonic() + 20
    for f in src.frames():
        if isinstance(f, datetime):  # no frame for a while (reconnecting): the time, not a frame
            continue
        shades.add(int(f.image[0, 0, 0]) // 30)
        if len(shades) >= 2 or time.monotonic() > deadline:
            break
    src.close()
    server.shutdown()
    assert len(shades) >= 2, "frames from a second connection never came"
    assert src.stats.reconnects >= 1
    assert "stream dropped" in caplog.text and "pw" not in caplog.text


class _FailingCap:
    """A camera that accepts the connection, then fails every read (e.g. wrong stream path, no frames)."""

    def isOpened(self):
        return True

    def read(self):
        return False, None

    def release(self):
        pass


def test_a_stream_that_opens_but_never_delivers_backs_off_instead_of_retrying_at_full_rate(monkeypatch):
    waits = []
    real_wait = threading.Event.wait

    def wait(self, timeout=None):  # record the capture thread's backoff without sleeping through it
        if threading.current_thread().name.startswith("edge.capture"):
            waits.append(timeout)
            timeout = 0.001
        return real_wait(self, timeout)

    monkeypatch.setattr(threading.Event, "wait", wait)
    monkeypatch.setattr("edge.capture._open_capture", lambda spec, timeout: _FailingCap())
    src = LiveSource("rtsp://camera/stream", CaptureSection(reconnect_initial_s=1, reconnect_max_s=8))
    deadline = time.monotonic() + 5
    while src.stats.reconnects < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    src.close()
    assert waits[:4] == [1, 2, 4, 8]


def test_an_exception_in_the_capture_thread_reconnects_instead_of_stalling_the_camera(monkeypatch, caplog):
    """A backend that raises (cv2.error from a broken stream) must not silently end capture for ever."""

    class RaisingCap(_FailingCap):
        opened = 0

        def __init__(self):
            RaisingCap.opened += 1

        def read(self):
            if RaisingCap.opened == 1:
                raise cv2.error("OpenCV(4.x) ... error: (-215:Assertion failed) !buf.empty() in function 'imdecode_'")
            return True, np.full((8, 8, 3), 7, np.uint8)

    monkeypatch.setattr("edge.capture._open_capture", lambda spec, timeout: RaisingCap())
    src = LiveSource("rtsp://user:pw@camera/stream", CaptureSection(reconnect_initial_s=0.01))
    src._thread.join(0.2)
    alive = src._thread.is_alive()
    src.close()
    assert alive, "the capture thread died: the camera would wait for frames for ever"
    assert src.stats.reconnects >= 1
    assert "Assertion failed" in caplog.text and "pw" not in caplog.text


def test_video_file_times_end_at_its_modification_time_not_after_it(tmp_path):
    """A recorder writes the last frame last: reads must not be stamped after the file was finished."""
    import os
    from datetime import datetime, timedelta, timezone

    path = tmp_path / "clip.avi"
    _clip(path, range(0, 200, 10))
    finished = datetime(2026, 3, 29, 0, 59, 59, tzinfo=timezone.utc)
    os.utime(path, (finished.timestamp(), finished.timestamp()))
    frames = list(open_source(str(path), CaptureSection()).frames())
    assert frames[-1].timestamp <= finished
    assert frames[0].timestamp >= finished - timedelta(seconds=2.1)
    assert (frames[-1].timestamp - frames[0].timestamp).total_seconds() == pytest.approx(1.9)


def test_an_image_whose_header_claims_a_huge_size_is_skipped_not_fatal(tmp_path, caplog):
    """cv2.imdecode raises (not returns None) past its pixel limit: one such file must not end the run."""
    import struct
    import zlib

    paths = write_frames(tmp_path, 2)
    data = bytearray(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", 60000, 60000)  # IHDR width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    (tmp_path / "f000b.png").write_bytes(bytes(data))
    src = FolderSource(tmp_path, CaptureSection())
    frames = list(src.frames())
    assert [Path(f.source).name for f in frames] == [p.name for p in paths]
    assert src.stats.errors == 1 and "f000b.png" in caplog.text


def test_a_stalled_live_source_says_what_time_it_is_so_passes_can_end(monkeypatch):
    """One frame, then the camera goes quiet: the consumer must hear the time, not wait for the stream to return."""
    quiet = threading.Event()

    class StallingCap(_FailingCap):
        delivered = False

        def read(self):
            if not StallingCap.delivered:
                StallingCap.delivered = True
                return True, np.full((8, 8, 3), 5, np.uint8)
            quiet.wait(0.2)  # a stream that has stopped sending
            return False, None

    monkeypatch.setattr("edge.capture._open_capture", lambda spec, timeout: StallingCap())
    monkeypatch.setattr("edge.capture._IDLE_S", 0.05)
    src = LiveSource("rtsp://camera/stream", CaptureSection(reconnect_initial_s=5))
    got = []
    reader = threading.Thread(target=lambda: got.extend(item for _, item in zip(range(2), src.frames())), daemon=True)
    reader.start()
    reader.join(1.0)
    src.close()
    quiet.set()
    assert len(got) == 2, "the source blocked with no frame: passes seen before the stall would never end"
    first, tick = got
    assert isinstance(tick, datetime) and tick >= first.timestamp


def test_unpadded_frame_numbers_are_taken_in_numeric_order(tmp_path):
    """`ffmpeg -i clip.mp4 frame_%d.jpg` does not pad: frame_10 came before frame_2 and passes were scrambled."""
    img = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    for i in range(1, 13):
        (tmp_path / f"frame_{i}.jpg").write_bytes(img)
    names = [Path(f.source).name for f in open_source(str(tmp_path), CaptureSection()).frames()]
    assert names == [f"frame_{i}.jpg" for i in range(1, 13)]


def test_with_file_times_frames_come_in_time_order_so_time_never_steps_back(tmp_path):
    import os

    img = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    for name, t in (("a.jpg", 1_700_000_002), ("b.jpg", 1_700_000_003), ("c.jpg", 1_700_000_001)):
        (tmp_path / name).write_bytes(img)
        os.utime(tmp_path / name, (t, t))
    frames = list(open_source(str(tmp_path), CaptureSection(use_file_times=True)).frames())
    assert [Path(f.source).name for f in frames] == ["c.jpg", "a.jpg", "b.jpg"]
    assert all(a.timestamp < b.timestamp for a, b in zip(frames, frames[1:]))


def test_a_folder_where_no_image_can_be_read_fails_not_a_silent_success(tmp_path):
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(b"not a jpeg")
    src = open_source(str(tmp_path), CaptureSection())
    with pytest.raises(SourceError, match="none of its 2 image"):
        list(src.frames())
    assert src.stats.errors == 2


def test_a_video_file_whose_name_is_not_utf8_is_read_not_a_crash(tmp_path):
    """OpenCV passes file names to FFmpeg as UTF-8 and segfaults on a Latin-1 one: the camera process died."""
    import os
    import subprocess
    import sys

    good = tmp_path / "clip.avi"
    _clip(good, range(0, 160, 40))
    latin1 = os.fsencode(tmp_path) + b"/caf\xe9.avi"  # "café.avi" as a Windows share or an old recorder writes it
    try:
        with open(latin1, "wb") as f:
            f.write(good.read_bytes())
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    # In a child process: before the fix the crash takes the interpreter down with it.
    code = "import os,sys; from edge.capture import open_source; from edge.config import CaptureSection; " \
           "print(len(list(open_source(os.fsdecode(sys.argv[1].encode('latin-1')), CaptureSection()).frames())))"
    done = subprocess.run([sys.executable, "-c", code, latin1.decode("latin-1")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "4"




def test_recordings_joined_end_to_end_keep_time_moving_forward(tmp_path):
    """`cat seg1.ts seg2.ts`: the second segment's clock starts at 0 again. Its reads were stamped in the first
    segment's time, and the tracker took the step back for a clock change that ends every open pass."""
    one, two = tmp_path / "one.ts", tmp_path / "two.ts"
    if not (_clip(one, range(0, 100, 10), "MPEG") and _clip(two, range(100, 200, 10), "MPEG")):
        pytest.skip("this OpenCV build cannot write MPEG-TS")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(one.read_bytes() + two.read_bytes())
    frames = list(open_source(str(joined), CaptureSection()).frames())
    assert len(frames) == 20
    gaps = [(b.timestamp - a.timestamp).total_seconds() for a, b in zip(frames, frames[1:])]
    assert gaps == pytest.approx([0.1] * 19, abs=0.02)


class _FileCap:
    """A video file as the capture backend sees it: frames with a given clock (CAP_PROP_POS_MSEC)."""

    def __init__(self, clock_ms: list[float], fps: float = 0.0):
        self.clock_ms, self.fps, self.i = clock_ms, fps, 0

    def isOpened(self):
        return True

    def read(self):
        if self.i >= len(self.clock_ms):
            return False, None
        self.i += 1
        return True, np.zeros((8, 8, 3), np.uint8)

    def get(self, prop):
        if prop == cv2.CAP_PROP_POS_MSEC:
            return self.clock_ms[self.i - 1]
        return {cv2.CAP_PROP_FPS: self.fps}.get(prop, 0.0)

    def release(self):
        pass


def test_a_video_without_a_clock_gets_the_configured_rate_not_one_instant(tmp_path, monkeypatch):
    """A muxer that gives no timestamps (position always 0): every frame had the same time, so no speed and no pass timeout."""
    (tmp_path / "raw.h264").write_bytes(b"\x00")
    monkeypatch.setattr("edge.capture._open_capture", lambda spec, timeout: _FileCap([0.0] * 5))
    frames = list(VideoFileSource(tmp_path / "raw.h264", CaptureSection(fps=20)).frames())
    gaps = [(b.timestamp - a.timestamp).total_seconds() for a, b in zip(frames, frames[1:])]
    assert gaps == pytest.approx([0.05] * 4)


def test_a_video_that_opens_but_holds_no_frame_is_refused_not_a_silent_success(tmp_path):
    """A recording cut before its first frame: `edge run --once` ended "done: 0 frames" with status 0."""
    path = tmp_path / "empty.avi"
    _clip(path, ())  # a header, no frame
    with pytest.raises(SourceError, match="empty.avi.*no frame"):
        open_source(str(path), CaptureSection())


def test_closing_a_live_source_does_not_wait_out_a_stalled_read(monkeypatch):
    """SIGTERM on a stream stuck in a read: shutdown waited up to open_timeout_s (up to 120 s) before flushing,
    past `edge serve`'s stop_timeout_s, which then killed the camera."""
    reading, unblock = threading.Event(), threading.Event()

    class StalledCap(_FailingCap):
        def read(self):
            reading.set()
            unblock.wait(30)
            return False, None

    monkeypatch.setattr("edge.capture._open_capture", lambda spec, timeout: StalledCap())
    monkeypatch.setattr("edge.capture._CLOSE_WAIT_S", 0.05, raising=False)
    src = LiveSource("rtsp://camera/stream", CaptureSection(open_timeout_s=60))
    assert reading.wait(5)
    closer = threading.Thread(target=src.close, daemon=True)
    closer.start()
    closer.join(3)
    stuck = closer.is_alive()
    unblock.set()
    src._thread.join(5)  # let the released reader finish here: after the test it would log into a closed stream
    assert not stuck, "close() waited for the stalled read"
    assert not src._thread.is_alive()


@pytest.mark.parametrize("suffix", [".mpg", ".mts", ".wmv"])
def test_common_recorder_export_formats_are_read_as_video(tmp_path, suffix):
    """An NVR's .mpg/.mts/.wmv export was refused as 'not a video file this engine knows', though FFmpeg reads it."""
    path = tmp_path / f"export{suffix}"
    if not _clip(path, range(0, 200, 40), "WMV2" if suffix == ".wmv" else "MPEG"):
        pytest.skip(f"this OpenCV build cannot write {suffix}")
    assert len(list(open_source(str(path), CaptureSection()).frames())) == 5


@pytest.mark.parametrize("device", ["/dev/video0", "/dev/v4l/by-id/usb-Cam_0001-video-index0", "/dev/v4l/by-path/pci-0000:00:14.0-usb-0:2:1.0-video-index0"])
def test_every_device_path_opens_with_v4l2_stable_links_included(monkeypatch, device):
    """udev's stable names for USB cameras went to FFmpeg, which cannot read a device node: they never opened."""
    from edge import capture

    backends = []
    monkeypatch.setattr(capture.cv2, "VideoCapture", lambda spec, backend, *params: backends.append(backend))
    capture._open_capture(device, 1.0)
    assert backends == [cv2.CAP_V4L2]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_12_bit_frame_in_a_16_bit_file_keeps_its_tones(tmp_path, suffix):
    """An IR camera's Mono12 frame saved as 16-bit: decoding divided by 256 whatever the depth, a black frame (max 15)."""
    from edge.capture import decode_image

    ramp = np.tile(np.linspace(0, 4095, 64).astype(np.uint16), (48, 1))  # 12 bits used of 16
    cv2.imwrite(str(tmp_path / f"ir{suffix}"), ramp)
    (frame,) = list(open_source(str(tmp_path), CaptureSection()).frames())
    assert frame.image.dtype == np.uint8 and frame.image.max() == 255
    assert abs(int(frame.image[0, 32, 0]) - 32 * 4095 // 63 // 16) <= 1
    full = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (48, 1))  # all 16 bits: the usual 1/256
    grey = decode_image(cv2.imencode(suffix, full)[1].tobytes(), cv2.IMREAD_GRAYSCALE)
    assert np.abs(grey.astype(int) - (full >> 8)).max() <= 1


def test_a_recording_on_the_dev_shm_ram_disk_is_read_as_a_file_not_a_device():
    """/dev/shm/clip.mp4 was taken for a camera device because of its /dev/ prefix: it never opened (or replayed for ever)."""
    import shutil
    import tempfile

    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no writable /dev/shm")
    folder = Path(tempfile.mkdtemp(dir=shm))
    try:
        write_frames(folder / "frames", 2)
        clip = folder / "clip.avi"
        _clip(clip, range(0, 180, 60))
        video = open_source(str(clip), CaptureSection())
        frames = open_source(str(folder / "frames"), CaptureSection())
        try:
            assert isinstance(video, VideoFileSource) and len(list(video.frames())) == 3
            assert isinstance(frames, FolderSource)
        finally:
            video.close()
            frames.close()
    finally:
        shutil.rmtree(folder)
