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
