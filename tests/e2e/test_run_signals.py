"""`edge run` stops cleanly on SIGTERM: open tracks are finished, reads flushed, exit 0."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(proc: subprocess.Popen, needle: str, timeout_s: float = 60) -> str:
    """Read stderr lines until one holds `needle`; return what was read."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"never saw {needle!r}:\n{''.join(seen)}")


def test_sigterm_mid_run_finishes_tracks_and_exits_zero(tmp_path: Path):
    frames = tmp_path / "frames"
    frames.mkdir()
    source = sorted((ROOT / "sample_frames" / "seq_day_front").glob("*.jpg"))
    for rep in range(20):  # long enough to still be running when the signal comes
        for f in source:
            shutil.copy(f, frames / f"r{rep:02d}_{f.name}")
    proc = start("run", "--source", str(frames), "--camera", "demo", "--spool", str(tmp_path / "spool"))
    wait_for(proc, "reading")
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "received SIGTERM" in err and "stopping" in err and "done:" in err


def test_stream_that_never_opens_keeps_retrying_hides_credentials_and_stops_on_sigterm(tmp_path: Path):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "cam.toml"
    cfg.write_text("[capture]\nopen_timeout_s = 1\nreconnect_initial_s = 0.2\nreconnect_max_s = 0.5\n")
    proc = start("run", "--config", str(cfg), "--source", f"rtsp://viewer:s3cret@127.0.0.1:{port}/stream", "--camera", "gate", "--spool", str(tmp_path / "spool"))
    seen = wait_for(proc, "cannot open")
    seen += wait_for(proc, "cannot open")  # and again: it keeps trying
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    logs = seen + err
    assert proc.returncode == 0, logs[-2000:]
    assert "s3cret" not in logs and "viewer" not in logs
    assert "[gate]" in logs
