"""`edge run` argument and configuration errors: one clear line naming what is at fault."""

import signal

import pytest

from edge.cli import main


@pytest.fixture(autouse=True)
def _keep_signal_handlers():
    """`edge run` installs its SIGTERM/SIGINT handlers first thing: give pytest its own back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_no_source_names_the_camera_and_its_config_file(tmp_path, capsys):
    config = tmp_path / "north.toml"
    config.write_text('[camera]\nid = "north"\n')
    assert main(["run", "--camera", "north", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "north" in err and "capture.source" in err


def test_a_hang_up_stops_the_camera_cleanly_like_sigterm(monkeypatch, tmp_path):
    """SIGHUP (the SSH session that started `edge run` dropped) killed the process: open passes and reads not yet
    spooled were lost. It must set the stop flag, so the camera finishes its passes and flushes."""
    import os
    import threading

    import edge.camera
    import edge.capture

    hung_up_unhandled = threading.Event()
    # Stands in for the default action (which would end pytest) when `edge run` leaves SIGHUP alone.
    signal.signal(signal.SIGHUP, lambda *_: hung_up_unhandled.set())

    class Source:
        live, name = True, "rtsp://camera/stream"

    class Camera:
        def __init__(self, cfg, source, spool_dir=None):
            pass

        def run(self, stop, once, flush_timeout_s, progress):
            os.kill(os.getpid(), signal.SIGHUP)
            stopped = stop.wait(5)
            return 0 if stopped and not hung_up_unhandled.is_set() else 1

    monkeypatch.setattr(edge.capture, "open_source", lambda spec, cfg: Source())
    monkeypatch.setattr(edge.camera, "Camera", Camera)
    assert main(["run", "--camera", "north", "--source", "rtsp://camera/stream"]) == 0


@pytest.mark.parametrize("threads", [1, 2])
def test_the_camera_holds_opencv_to_its_detector_threads(monkeypatch, tmp_path, threads):
    """OpenCV's default pool takes every core for each resize: cameras sharing a unit's cores would contend.
    The camera gets `detector.threads`, as onnxruntime does."""
    import cv2

    import edge.camera
    import edge.capture

    seen: list[int] = []

    class Source:
        live, name = False, "frames/"

    class Camera:
        def __init__(self, cfg, source, spool_dir=None):
            seen.append(cv2.getNumThreads())

        def run(self, stop, once, flush_timeout_s, progress):
            return 0

    config = tmp_path / "north.toml"
    config.write_text(f'[camera]\nid = "north"\n[detector]\nthreads = {threads}\n')
    monkeypatch.setattr(edge.capture, "open_source", lambda spec, cfg: Source())
    monkeypatch.setattr(edge.camera, "Camera", Camera)
    before = cv2.getNumThreads()
    cv2.setNumThreads(7)
    try:
        assert main(["run", "--camera", "north", "--config", str(config), "--source", "frames/"]) == 0
    finally:
        cv2.setNumThreads(before)
    assert seen == [threads]
