"""`edge bench` as integrators call it: the JSON contract of INTERFACES.md, errors, the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.labels import load_labelled_folder
from edge.pipeline import PlateResult
from edge.types import Detection, PlateReading

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_frames"
MODELS = ROOT / "models"
REQUIRED = ("det_recall", "read_exact", "char_acc", "false_pos_per_image", "median_ms")
have_models = pytest.mark.skipif(
    not ((MODELS / "detector.onnx").is_file() and (MODELS / "reader.onnx").is_file()),
    reason="models/detector.onnx and models/reader.onnx not built yet",
)


class LabelEcho:
    """A stand-in engine that finds and reads every labelled plate of a folder, except one plate it misreads."""

    def __init__(self, folder: Path) -> None:
        self.by_shape: dict[tuple, list] = {}
        self.last_timings_ms: dict[str, float] = {}
        self.reader = None
        for im in load_labelled_folder(folder):
            self.by_shape[self._key_of(im.path)] = im.plates

    @staticmethod
    def _key_of(path: Path) -> bytes:
        import cv2

        return cv2.imread(str(path))[::97, ::97].tobytes()

    def process(self, image: np.ndarray) -> list[PlateResult]:
        self.last_timings_ms = {"detect": 0.1, "read": 0.1}
        out = []
        for p in self.by_shape.get(image[::97, ::97].tobytes(), []):
            text = p.plate if p.plate != "YK17HNU" else "YK17HNV"
            out.append(PlateResult(Detection(p.box, 0.9), PlateReading(text, 0.9, (0.9,) * len(text))))
        return out


def test_json_last_line_holds_the_interface_keys(monkeypatch, capsys, tmp_path: Path) -> None:
    folder = SAMPLES / "seq_day_front"
    monkeypatch.setattr("edge.cli.bench.pipeline_for", lambda cfg, backend: LabelEcho(folder))
    status = main(["bench", str(folder), "--json", "--report", str(tmp_path / "report")])
    assert status == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    for key in REQUIRED:
        assert isinstance(summary[key], (int, float)), key
    n = len(load_labelled_folder(folder))  # frames with a plate; the others are benched as frames without one
    assert summary["images"] == len(list(folder.glob("*.jpg"))) > n and summary["det_recall"] == 1.0
    assert summary["read_exact"] < 1.0 and summary["confusions"][0] == {"truth": "U", "read": "V", "count": n}
    assert summary["sequence"]["passes"] == 1  # sequence.json was used: the folder was tracked
    assert "onnx" in summary["backends"]
    assert (tmp_path / "report" / "index.html").is_file()
    assert len(list((tmp_path / "report" / "misses" / "onnx").glob("*.jpg"))) == n


def test_table_output_without_json(monkeypatch, capsys) -> None:
    folder = SAMPLES / "singles"
    monkeypatch.setattr("edge.cli.bench.pipeline_for", lambda cfg, backend: LabelEcho(folder))
    assert main(["bench", str(folder), "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert "detection recall" in out and "100.0%" in out and "decode median ms" in out


def test_unknown_backend_is_a_usage_error(capsys) -> None:
    assert main(["bench", str(SAMPLES / "singles"), "--backends", "onnx,magic"]) == 2
    assert "magic" in capsys.readouterr().err


def test_not_a_labelled_folder_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert main(["bench", str(tmp_path)]) == 2
    assert "labels.csv" in capsys.readouterr().err


def test_a_parent_of_labelled_folders_names_them(capsys) -> None:
    assert main(["bench", str(SAMPLES)]) == 2
    assert "seq_day_rear" in capsys.readouterr().err


@have_models
def test_real_engine_on_a_sample_sequence() -> None:
    proc = subprocess.run([sys.executable, "-m", "edge", "-q", "bench", str(SAMPLES / "seq_day_front"), "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in REQUIRED:
        assert key in summary
    assert summary["images"] > 0 and summary["peak_rss_mb"] > 0


@have_models
def test_backends_side_by_side_run_in_their_own_processes() -> None:
    proc = subprocess.run([sys.executable, "-m", "edge", "-q", "bench", str(SAMPLES / "singles"), "--json", "--limit", "2",
                           "--backends", "onnx,tesseract"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(summary["backends"]) == {"onnx", "tesseract"}
    assert summary["backend"] == "onnx" and summary["backends"]["tesseract"]["images"] == 2


def test_countries_reach_the_reader_config(monkeypatch) -> None:
    folder = SAMPLES / "singles"
    seen = []

    def pipeline(cfg, backend):
        seen.append(cfg.reader.countries)
        return LabelEcho(folder)

    monkeypatch.setattr("edge.cli.bench.pipeline_for", pipeline)
    assert main(["bench", str(folder), "--limit", "1", "--countries", "sk, cz"]) == 0
    assert seen == [("SK", "CZ")]


def test_an_unknown_country_is_a_usage_error_naming_it(capsys) -> None:
    assert main(["bench", str(SAMPLES / "singles"), "--countries", "GB,XX"]) == 2
    assert "XX" in capsys.readouterr().err
