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


@needs_model
def test_annotate_writes_each_image_with_its_plates_drawn(tmp_path: Path) -> None:
    frame = ROOT / "sample_frames" / "singles" / "single_000_day_front.jpg"  # one UK plate, read by the committed models
    other = tmp_path / "other"
    other.mkdir()
    (other / frame.name).write_bytes(frame.read_bytes())  # same file name in a second folder
    out = tmp_path / "annotated"
    proc = _edge("read", "--json", "--annotate", str(out), str(frame), str(other))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    result = json.loads(proc.stdout.decode().splitlines()[0])
    plate = result["plates"][0]
    assert len(plate["corners"]) == 4
    assert sorted(p.name for p in out.iterdir()) == ["single_000_day_front.jpg", "single_000_day_front_2.jpg"]
    original = cv2.imread(str(frame))
    drawn = cv2.imread(str(out / "single_000_day_front.jpg"))
    assert drawn.shape == original.shape
    changed = np.abs(drawn.astype(int) - original.astype(int)).max(axis=2) > 60
    x, y, w, h = plate["box"]
    assert changed[max(0, y - 80) : y + h + 10, max(0, x - 10) : x + w + 10].mean() > 0.05  # outline and label
    assert changed[: max(0, y - 120)].mean() < 0.001  # and nothing far from the plate


@needs_model
def test_annotate_puts_a_crops_reading_underneath_it(tmp_path: Path) -> None:
    from models.train.render import random_plate

    crop = random_plate(np.random.default_rng(1), "GB", text="AB12CDE", colour="white", height_px=60).image
    cv2.imwrite(str(tmp_path / "crop.png"), crop)
    proc = _edge("read", "--crops", "--annotate", str(tmp_path / "out"), str(tmp_path / "crop.png"))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    drawn = cv2.imread(str(tmp_path / "out" / "crop.jpg"))
    assert drawn.shape[1] == crop.shape[1] and drawn.shape[0] > crop.shape[0]


@needs_model
def test_annotate_into_a_path_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    proc = _edge("read", "--annotate", str(blocker), str(ROOT / "sample_frames" / "singles" / "single_000_day_front.jpg"))
    assert proc.returncode == 2
    assert str(blocker) in proc.stderr.decode() and "Traceback" not in proc.stderr.decode()


def test_an_unreadable_image_is_named_once_in_the_human_output(tmp_path: Path) -> None:
    from edge.cli.read import _human

    bad = str(tmp_path / "x.jpg")
    assert _human({"image": bad, "error": f"{bad}: not a readable image"}) == f"{bad}: error: not a readable image"
