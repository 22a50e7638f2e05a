"""`edge read --json` on folders as integrators have them: odd file names, files that are not images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import MODELS_DIR

ROOT = Path(__file__).resolve().parents[2]
needs_model = pytest.mark.skipif(not (MODELS_DIR / "reader.onnx").is_file(), reason="models/reader.onnx not built")


def _edge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The command in its own process: a crash in native code must fail the test, not end the test run."""
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=ROOT, capture_output=True, timeout=120,
                          env={**os.environ, **(env or {})})


def _write_odd_name(folder: Path) -> None:
    with open(os.fsencode(folder) + b"/caf\xe9.png", "wb") as f:
        f.write(cv2.imencode(".png", np.full((40, 120, 3), 200, np.uint8))[1].tobytes())


@needs_model
def test_a_file_name_that_is_not_utf8_is_read(tmp_path: Path) -> None:
    # Names copied from old Windows or camera SD cards can hold Latin-1 bytes; Linux keeps them as they are.
    png = cv2.imencode(".png", np.full((40, 120, 3), 200, np.uint8))[1].tobytes()
    (tmp_path / "plain.png").write_bytes(png)
    with open(os.fsencode(tmp_path) + b"/caf\xe9.png", "wb") as f:
        f.write(png)
    (tmp_path / "empty.jpg").write_bytes(b"")  # a failed copy
    proc = _edge("read", "--crops", "--json", str(tmp_path))
    assert proc.returncode == 1, proc.stderr.decode(errors="replace")[-2000:]  # 1: the empty file, reported
    objs = {Path(o["image"]).name: o for o in map(json.loads, proc.stdout.decode().splitlines())}
    assert len(objs) == 3 and "error" in objs.pop("empty.jpg")
    assert all("error" not in o and o["width"] == 120 for o in objs.values())


@needs_model
def test_a_file_name_that_is_not_utf8_is_printed_on_a_strict_utf8_terminal(tmp_path: Path) -> None:
    # An en_GB.UTF-8 desktop gives Python a strict UTF-8 stdout (only the C locale escapes undecodable bytes).
    _write_odd_name(tmp_path)
    proc = _edge("read", "--crops", str(tmp_path), env={"PYTHONIOENCODING": "utf-8:strict"})
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    assert proc.stdout.decode().startswith(str(tmp_path) + "/caf\ufffd.png: ")


def _on_a_terminal(*args: str) -> list[str]:
    """The lines a terminal shows when stdout and stderr both go to it (a carriage return overwrites from column 0)."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "edge", *args], cwd=ROOT, stdout=slave, stderr=slave)
    os.close(slave)
    raw = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        raw += chunk
    os.close(master)
    proc.wait(timeout=120)
    shown = []
    for line in raw.decode(errors="replace").replace("\r\n", "\n").split("\n"):
        screen = ""
        for part in line.split("\r"):
            screen = part + screen[len(part):]
        if screen.strip():
            shown.append(screen.rstrip())
    return shown


@needs_model
def test_the_progress_line_does_not_garble_results_on_a_terminal(tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), np.full((40, 120, 3), 200, np.uint8))
    shown = _on_a_terminal("read", "--crops", str(tmp_path))
    assert [line.split(":")[0] for line in shown] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")], shown
