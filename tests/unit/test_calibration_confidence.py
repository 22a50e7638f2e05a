"""Confidence calibration (isotonic map, ECE) and the plate-size range."""

from __future__ import annotations

import numpy as np
import pytest

from edge.calibrate.confidence import (
    apply_knots,
    calibrate_confidence,
    expected_calibration_error,
    fit_confidence,
    isotonic_fit,
)
from edge.calibrate.file import Calibration
from edge.calibrate.platesize import fit_plate_width
from edge.errors import ConfigError


def overconfident_reader(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores crowded near 1 while the true chance of an exact read is much lower (like a CTC max-prob)."""
    rng = np.random.default_rng(seed)
    p_true = rng.beta(2.0, 1.2, n)  # how likely each read really is to be right
    raw = 1 - (1 - p_true) ** 3  # the reader's score: monotone in p_true, but inflated
    correct = (rng.random(n) < p_true).astype(float)
    return raw, correct


def test_pool_adjacent_violators_on_a_known_case():
    xs, ys = isotonic_fit([1, 2, 3, 4, 5, 6], [0, 1, 0, 1, 1, 0])
    # 0 | 1,0 pool to 0.5 | 1, 1, 0: the last 0 pools with the 1 before it (0.5), which then pools with 1: 2/3.
    np.testing.assert_allclose(ys, [0.0, 0.5, 2 / 3])
    np.testing.assert_allclose(xs, [1.0, 2.5, 5.0])
    assert np.all(np.diff(ys) >= 0)


def test_tied_scores_map_to_one_value():
    xs, ys = isotonic_fit([0.5, 0.5, 0.5, 0.9], [1, 0, 0, 1])
    np.testing.assert_allclose(xs, [0.5, 0.9])
    np.testing.assert_allclose(ys, [1 / 3, 1.0])


def test_ece_of_a_perfectly_calibrated_and_a_wrong_score():
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    hits = (rng.random(20000) < p).astype(float)
    assert expected_calibration_error(p, hits) < 0.02
    assert expected_calibration_error(np.full(20000, 0.95), hits) == pytest.approx(0.45, abs=0.02)


def test_calibrated_confidence_has_lower_error_on_held_back_reads():
    train_raw, train_ok = overconfident_reader(3000, seed=1)
    test_raw, test_ok = overconfident_reader(1500, seed=2)  # held back: never seen by the fit
    fit = fit_confidence(train_raw, train_ok, test_raw, test_ok)
    assert fit.ece_raw > 0.1  # the raw score really is off
    assert fit.ece_calibrated < fit.ece_raw / 3
    assert fit.ece_calibrated < 0.05
    xs, ys = fit.knots
    assert len(xs) <= 64 and all(b > a for a, b in zip(xs, xs[1:])) and all(b >= a for a, b in zip(ys, ys[1:]))


def test_calibrate_confidence_applies_the_map_and_is_identity_without_one():
    assert calibrate_confidence(Calibration(), 0.73) == 0.73
    assert calibrate_confidence(None, 0.2) == 0.2
    cal = Calibration(confidence_knots=((0.2, 0.8), (0.1, 0.5)))
    assert calibrate_confidence(cal, 0.5) == pytest.approx(0.3)
    assert calibrate_confidence(cal, 0.0) == pytest.approx(0.1) and calibrate_confidence(cal, 1.0) == pytest.approx(0.5)
    np.testing.assert_allclose(apply_knots(cal.confidence_knots, [0.2, 0.8]), [0.1, 0.5])


def test_plate_width_range_is_robust():
    rng = np.random.default_rng(0)
    widths = list(rng.uniform(60, 140, 200)) + [3.0, 900.0]  # two stray boxes
    lo, hi = fit_plate_width(widths)
    assert 40 < lo < 60 and 140 < hi < 200
    with pytest.raises(ConfigError, match="need at least"):
        fit_plate_width([50, 60])


def test_confidence_command_fits_on_train_and_reports_on_test(tmp_path, monkeypatch, capsys):
    """`edge calibrate confidence` wiring, with a stand-in reader whose raw score is overconfident."""
    import json

    import cv2

    import edge.read
    from edge.calibrate.file import load_calibration
    from edge.cli import main
    from edge.labels import split_of
    from edge.types import PlateReading

    rng = np.random.default_rng(4)
    folder = tmp_path / "labelled"
    folder.mkdir()
    rows = ["image,plate,x,y,w,h"]
    truth: dict[int, tuple[float, bool]] = {}  # crop brightness -> (raw score, read right)
    for i in range(300):
        p_true = float(rng.beta(2.0, 1.2))
        truth[i] = (1 - (1 - p_true) ** 3, bool(rng.random() < p_true))
        img = np.zeros((40, 60, 3), np.uint8)
        img[10:30, 10:50] = (i % 256, i // 256, 0)  # the crop carries its index, so the reader can look it up
        cv2.imwrite(str(folder / f"img_{i:03d}.png"), img)
        rows.append(f"img_{i:03d}.png,AB12CDE,10,10,40,20")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")

    class StandIn:
        def read(self, crops):
            out = []
            for crop in crops:
                i = int(crop[crop.shape[0] // 2, crop.shape[1] // 2, 0]) + 256 * int(crop[crop.shape[0] // 2, crop.shape[1] // 2, 1])
                score, right = truth[i]
                text = "AB12CDE" if right else "AB12CDF"
                out.append(PlateReading(text=text, confidence=score, char_confidences=(score,) * 7))
            return out

    monkeypatch.setattr(edge.read, "load_reader", lambda cfg: StandIn())
    out = tmp_path / "cam.toml"
    assert main(["calibrate", "confidence", "--labels", str(folder), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    n_test = sum(split_of(f"img_{i:03d}.png") == "test" for i in range(300))
    assert summary["held_back"] == n_test and summary["fitted_on"] == 300 - n_test
    assert summary["ece_calibrated"] < summary["ece_raw"]
    cal = load_calibration(out)
    assert cal.confidence_knots is not None and "held-back ECE" in cal.made_by["confidence"]


def test_plate_size_command_from_labelled_boxes(tmp_path, capsys):
    import json

    import cv2

    from edge.calibrate.file import load_calibration
    from edge.cli import main

    rows = ["image,plate,x,y,w,h"]
    for i, w in enumerate(range(60, 140, 8)):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.zeros((360, 640, 3), np.uint8))
        rows.append(f"f{i}.png,AB12CDE,10,10,{w},{w // 5}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "cam.toml"
    assert main(["calibrate", "plate-size", "--frames", str(tmp_path), "--source", "labels", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["plates"] == 10 and summary["observed_px"][0] == 60 and summary["observed_px"][2] == 132
    cal = load_calibration(out)
    assert cal.image_size == (640, 360) and cal.plate_width_px[0] < 60 and cal.plate_width_px[1] > 132
    assert "--source labels" in cal.made_by["plate_size"]
