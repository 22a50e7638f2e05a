"""The README's demo: `edge run --source sample_frames/<sequence> --camera demo --once` prints one read per vehicle."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from edge.track import text_similarity

ROOT = Path(__file__).resolve().parents[2]
SEQUENCES = sorted(p.parent for p in (ROOT / "sample_frames").glob("*/sequence.json"))


def run_edge(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_there_are_sample_sequences():
    assert SEQUENCES, "sample_frames/ has no sequence (regenerate with: python3 sample_frames/generate.py --seed 7)"


@pytest.mark.parametrize("folder", SEQUENCES, ids=lambda p: p.name)
def test_one_read_per_vehicle_pass(folder: Path, tmp_path: Path):
    truth = json.loads((folder / "sequence.json").read_text())
    proc = run_edge("run", "--source", str(folder), "--camera", "demo", "--once", "--spool", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    reads = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    expected = sorted(p["plate"] for p in truth["passes"])
    got = sorted(r["plate"] for r in reads)
    assert len(reads) == len(expected), f"expected one read per pass {expected}, got {got}\n{proc.stderr[-2000:]}"
    for r in reads:
        assert r["camera_id"] == "demo" and r["read_id"]
        assert datetime.fromisoformat(r["timestamp"]).utcoffset() == timedelta(0)
        assert 0.0 <= r["confidence"] <= 1.0
        assert {m["role"]: m["name"] for m in r["models"]} == {"detector": "detector.onnx", "reader": "reader.onnx"}
        assert all(len(m["sha256"]) == 64 for m in r["models"])
    # Every pass is matched by a distinct read that is at most one character off; most are exact.
    remaining = list(got)
    for plate in expected:
        best = max(remaining, key=lambda g: text_similarity(g, plate))
        assert text_similarity(best, plate) >= 1 - 1.5 / len(plate), f"no read close to {plate}: {got}"
        remaining.remove(best)
    exact = sum(1 for p in expected if p in got)
    assert exact >= (len(expected) + 1) // 2, f"only {exact} of {expected} read exactly: {got}"


def test_second_run_with_same_spool_reprints_nothing_lost(tmp_path: Path):
    """Without a broker the reads stay in the spool: the spool file exists and holds them."""
    folder = SEQUENCES[0]
    proc = run_edge("run", "--source", str(folder), "--camera", "demo", "--once", "--spool", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "demo" / "spool.sqlite").is_file()
    assert "kept in" in proc.stderr


def test_bad_source_and_bad_camera_id_are_clear_errors(tmp_path: Path):
    proc = run_edge("run", "--source", str(tmp_path / "nope"), "--camera", "demo", "--once")
    assert proc.returncode == 2 and "nope" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_edge("run", "--source", str(SEQUENCES[0]), "--camera", "cam/1#", "--once")
    assert proc.returncode == 2 and "camera.id" in proc.stderr and "Traceback" not in proc.stderr


def test_calibrated_demo_camera_names_lane_direction_and_speed(tmp_path: Path):
    folder = ROOT / "sample_frames" / "seq_day_front"
    truth = json.loads((folder / "sequence.json").read_text())
    proc = run_edge("run", "--config", "examples/demo.toml", "--source", str(folder), "--camera", "demo", "--once", "--spool", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    [read] = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert read["direction"] == truth["passes"][0]["direction"]
    assert read["lane"] in {"1", "2"}
    assert 25 < read["speed"]["kmh"] < 50 and 0 < read["speed"]["uncertainty_kmh"] < 5  # rendered at about 36 km/h
    assert read["calibration"]["file"] == "demo.toml"
