"""INTERFACES.md's contracts, called exactly as an integrator's script calls them: the `edge`
command in its own process, on the project's sample frames and fixtures cut from them.

- `edge read [--crops] --json PATH...`: one JSON object per image and nothing else, the fields,
  sorting and box conventions, `"error"` for an unreadable file and exit 1.
- `edge run ... --once` without a broker: stdout holds the reads, each valid against
  `edge schema`, carrying the promised fields; `edge verify` of those lines exits 0 with the
  camera's public key, 1 when a byte of a signed field changes, and says "integrity only"
  without `--keys`.
- `edge calibrate plate-size` reproduces the committed demo calibration ("the same inputs give
  the same file", calibration/README.md).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import MODELS_DIR

ROOT = Path(__file__).resolve().parents[2]
SINGLES = ROOT / "sample_frames" / "singles"
SEQUENCE = ROOT / "sample_frames" / "seq_day_front"
PLATE_TEXT = re.compile(r"[A-Z0-9]+")
needs_models = pytest.mark.skipif(
    not ((MODELS_DIR / "detector.onnx").is_file() and (MODELS_DIR / "reader.onnx").is_file()),
    reason="models/detector.onnx and models/reader.onnx not built",
)


def edge(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=ROOT, capture_output=True, text=True,
                          input=stdin, timeout=300, env={**os.environ, "PYTHONIOENCODING": "utf-8"})


def json_lines(stdout: str) -> list[dict]:
    """Every stdout line parsed: a line that is not JSON fails the test (the contract says 'nothing else')."""
    return [json.loads(line) for line in stdout.splitlines()]


def check_plate(plate: dict, width: int, height: int) -> None:
    assert PLATE_TEXT.fullmatch(plate["text"]), plate["text"]
    assert 0.0 <= plate["confidence"] <= 1.0
    x, y, w, h = plate["box"]
    assert all(isinstance(v, int) for v in plate["box"]), plate["box"]
    assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= width and y + h <= height, (plate["box"], width, height)


@needs_models
def test_read_json_is_one_object_per_image_in_sorted_order():
    proc = edge("read", "--json", str(SINGLES))
    assert proc.returncode == 0, proc.stderr[-2000:]
    objs = json_lines(proc.stdout)
    images = sorted(p for p in SINGLES.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    assert [o["image"] for o in objs] == [str(p) for p in images]
    for o in objs:
        assert o.keys() >= {"image", "width", "height", "plates", "ms"}
        assert (o["height"], o["width"]) == cv2.imread(o["image"]).shape[:2]
        assert o["ms"] > 0
        for plate in o["plates"]:
            check_plate(plate, o["width"], o["height"])
        confidences = [p["confidence"] for p in o["plates"]]
        assert confidences == sorted(confidences, reverse=True)
    assert sum(len(o["plates"]) for o in objs) >= len(objs) // 2  # it does find plates in these


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    """Plate crops cut at the labelled boxes of three sample frames, a blank card and a file that is not an image."""
    folder = tmp_path_factory.mktemp("crops")
    with open(SINGLES / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["x"]][:3]
    for i, r in enumerate(rows):
        x, y, w, h = (int(r[k]) for k in "xywh")
        cv2.imwrite(str(folder / f"a{i}_{r['plate']}.png"), cv2.imread(str(SINGLES / r["image"]))[y:y + h, x:x + w])
    cv2.imwrite(str(folder / "b_blank.png"), np.full((40, 160, 3), 255, np.uint8))
    (folder / "c_broken.jpg").write_bytes(b"not a jpeg")
    return folder


@needs_models
def test_read_crops_json_reads_the_whole_crop_and_reports_an_unreadable_file(crops: Path):
    proc = edge("read", "--crops", "--json", str(crops))
    assert proc.returncode == 1, proc.stderr[-2000:]  # 1: the broken file; the run went on
    objs = {Path(o["image"]).name: o for o in json_lines(proc.stdout)}
    assert sorted(objs) == sorted(p.name for p in crops.iterdir())
    broken = objs.pop("c_broken.jpg")
    assert "error" in broken and "c_broken.jpg" in broken["error"]
    assert objs.pop("b_blank.png")["plates"] == []  # nothing legible: empty, not a guess
    for name, o in objs.items():
        assert "error" not in o
        assert len(o["plates"]) == 1, o
        plate = o["plates"][0]
        check_plate(plate, o["width"], o["height"])
        assert plate["box"] == [0, 0, o["width"], o["height"]]  # the whole crop, no detection
    assert sum(o["plates"][0]["text"] == name.split("_")[1][:-4] for name, o in objs.items()) >= 2


@pytest.fixture(scope="module")
def camera_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """`edge run --once` without a broker on the front-facing day sequence, with its own spool."""
    spool = tmp_path_factory.mktemp("spool")
    return edge("run", "--source", str(SEQUENCE), "--camera", "docs-cam", "--once", "--spool", str(spool)), spool


@needs_models
def test_run_once_prints_reads_valid_against_edge_schema(camera_run):
    import jsonschema

    proc, spool = camera_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    reads = json_lines(proc.stdout)
    assert reads, proc.stderr[-2000:]
    schema_proc = edge("schema")
    assert schema_proc.returncode == 0
    validator = jsonschema.Draft202012Validator(json.loads(schema_proc.stdout))
    for r in reads:
        errors = [e.message for e in validator.iter_errors(r)]
        assert not errors, errors
        assert r["camera_id"] == "docs-cam" and r["read_id"] and PLATE_TEXT.fullmatch(r["plate"])
        assert 0.0 <= r["confidence"] <= 1.0
        assert datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).utcoffset() == timedelta(0)
    assert len({r["read_id"] for r in reads}) == len(reads)
    assert (spool / "docs-cam" / "spool.sqlite").is_file()  # and kept in the spool


@needs_models
def test_verify_accepts_the_reads_with_the_cameras_key_and_refuses_a_changed_one(camera_run, tmp_path: Path):
    proc, spool = camera_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(spool / "docs-cam" / "signing.key.pub", keys / "docs-cam.pub")  # what README says to give the back office

    trusted = edge("verify", "--keys", str(keys), "-", stdin=proc.stdout)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr

    integrity = edge("verify", "-", stdin=proc.stdout)
    assert integrity.returncode == 0
    assert "integrity" in (integrity.stdout + integrity.stderr).lower()  # says it proved no origin

    first = json.loads(proc.stdout.splitlines()[0])
    changed = json.dumps({**first, "plate": first["plate"][:-1] + ("X" if first["plate"][-1] != "X" else "Y")})
    tampered = edge("verify", "--keys", str(keys), "-", stdin=changed + "\n")
    assert tampered.returncode == 1

    stranger = tmp_path / "stranger"
    stranger.mkdir()
    assert edge("keygen", "--camera", "other", "--out", str(stranger / "other.key")).returncode == 0
    (stranger / "other.key").unlink()  # only the public key is a trusted key
    untrusted = edge("verify", "--keys", str(stranger), "-", stdin=proc.stdout)
    assert untrusted.returncode == 1


@needs_models
def test_plate_size_command_reproduces_the_committed_demo_calibration(tmp_path: Path):
    from edge.calibrate.file import load_calibration

    committed = load_calibration(ROOT / "calibration" / "demo.toml")
    made_by = tomllib_section(ROOT / "calibration" / "demo.toml", "plate_size")["made_by"]
    assert made_by.startswith("edge calibrate plate-size --frames sample_frames/seq_day_front --source detector")
    out = tmp_path / "demo.toml"
    proc = edge("-q", "calibrate", "plate-size", "--frames", "sample_frames/seq_day_front", "--source", "detector",
                "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["width_px"] == list(committed.plate_width_px)


def tomllib_section(path: Path, name: str) -> dict:
    from edge.config import tomllib  # tomllib, or tomli on Python 3.10

    return tomllib.loads(path.read_text())[name]


@needs_models
def test_bench_reads_a_folder_of_small_unboxed_images_as_crops(crops: Path, tmp_path: Path):
    # README "Benchmarking your own images": with every box empty, small images are read whole as
    # plate crops and detection recall is not measured. INTERFACES.md: the last line holds the keys.
    folder = tmp_path / "labelled"
    folder.mkdir()
    rows = ["image,plate,x,y,w,h"]
    for p in sorted(crops.glob("a*.png")):
        shutil.copy(p, folder / p.name)
        rows.append(f"{p.name},{p.stem.split('_')[1]},,,,")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    proc = edge("-q", "bench", str(folder), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary.keys() >= {"det_recall", "read_exact", "char_acc", "false_pos_per_image", "median_ms"}
    assert summary["mode"] == "crops" and summary["det_recall"] is None
    assert summary["images"] == len(rows) - 1 and summary["read_exact"] >= 0.6
