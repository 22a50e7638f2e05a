"""Builders for the MQTT integration tests: signed reads, a broker test bed, and a publisher process to SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from edge.record import image_entry, to_json_line
from edge.signing import Signer
from edge.types import OutboundRead

REPO = Path(__file__).resolve().parents[2]
PUBLISHER_PROC = Path(__file__).with_name("publisher_proc.py")


def fake_jpeg(n: int, seed: int) -> bytes:
    """n bytes that start like a JPEG (the receiver names the file by its magic), distinct per seed."""
    body = (seed.to_bytes(4, "big") * (n // 4 + 1))[: max(0, n - 3)]
    return b"\xff\xd8\xff" + body


def make_read(signer: Signer, camera: str, i: int, image_bytes: int = 0, feed: str = "reads") -> OutboundRead:
    """One signed read, as the camera's feed router would spool it. `image_bytes`: overview size (patch is 1/8)."""
    read_id = f"{camera}-{i:06d}"
    images = {}
    if image_bytes:
        images = {"overview": fake_jpeg(image_bytes, i), "patch": fake_jpeg(max(16, image_bytes // 8), i + 1)}
    now = datetime.now(timezone.utc)
    record = {
        "read_id": read_id,
        "camera_id": camera,
        "plate": f"AB{i % 100:02d}CDE",
        "confidence": 0.9,
        "timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "images": {k: image_entry(v, 640, 360) for k, v in images.items()},
    }
    signed = signer.sign(record)
    return OutboundRead(read_id, feed, to_json_line(signed).encode(), images, now)


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    """Poll until `predicate()` holds; fail naming `what` (a deadline for liveness, not a speed assertion)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class PublisherProcess:
    """tests/integration/publisher_proc.py in a child process that the test can SIGKILL and start again."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> PublisherProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, str(PUBLISHER_PROC), *self.args], stdout=log, stderr=log, env=env, cwd=REPO)
        log.close()
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
