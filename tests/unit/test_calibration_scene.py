"""Scene calibration: homography from four road points, speed with its uncertainty, direction, ROI and lanes."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from edge.calibrate.file import Calibration, Lane, load_calibration
from edge.calibrate.scene import (
    camera_height_m,
    direction_of,
    fit_homography,
    is_wrong_way,
    lane_of,
    speed_kmh,
    to_road,
)
from edge.cli import main
from edge.errors import ConfigError

W, H = 1280, 720
K = np.array([[1500.0, 0.0, 640.0], [0.0, 1500.0, 360.0], [0.0, 0.0, 1.0]])
MOUNT_M, PITCH = 6.0, math.radians(18.0)


def project(world) -> np.ndarray:
    """A pinhole camera 6 m up looking along the road. World: X right, Y along the road away, Z up (m)."""
    v = np.asarray(world, dtype=np.float64) - np.array([0.0, 0.0, MOUNT_M])
    down = -math.sin(PITCH) * v[:, 1] - math.cos(PITCH) * v[:, 2]
    depth = math.cos(PITCH) * v[:, 1] - math.sin(PITCH) * v[:, 2]
    return np.stack([K[0, 2] + K[0, 0] * v[:, 0] / depth, K[1, 2] + K[1, 1] * down / depth], axis=1)


def ground(xy) -> np.ndarray:
    xy = np.asarray(xy, dtype=np.float64)
    return np.hstack([xy, np.zeros((len(xy), 1))])


ROAD = np.array([[-1.8, 14.0], [1.8, 14.0], [1.8, 26.0], [-1.8, 26.0]])


@pytest.fixture
def cal() -> Calibration:
    h = fit_homography(project(ground(ROAD)), ROAD)
    return Calibration(image_size=(W, H), camera_matrix=K, dist_coeffs=np.zeros(5), homography=h)


def test_recovers_a_known_homography(cal):
    # Points other than the four used map to where they really are on the road.
    rng = np.random.default_rng(1)
    road = np.stack([rng.uniform(-4, 4, 50), rng.uniform(12, 40, 50)], axis=1)
    np.testing.assert_allclose(to_road(cal, project(ground(road))), road, atol=1e-3)
    # And against a homography given directly.
    h_true = np.array([[0.02, 0.001, -5.0], [0.0005, -0.03, 25.0], [0.00001, 0.0012, 1.0]])
    px = np.array([[100.0, 600.0], [1100.0, 620.0], [900.0, 250.0], [300.0, 240.0]])
    road4 = cv2.perspectiveTransform(px.reshape(-1, 1, 2), h_true).reshape(-1, 2)
    np.testing.assert_allclose(fit_homography(px, road4), h_true / h_true[2, 2], rtol=1e-6, atol=1e-9)


def test_camera_height_comes_back_from_homography_and_lens(cal):
    assert camera_height_m(cal) == pytest.approx(MOUNT_M, rel=1e-3)
    assert camera_height_m(Calibration(homography=cal.homography)) is None


def test_collinear_points_are_refused():
    px = np.array([[0.0, 0.0], [10.0, 10.0], [20.0, 20.0], [0.0, 50.0]])
    with pytest.raises(ConfigError, match="on one line"):
        fit_homography(px, np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]))
    with pytest.raises(ConfigError, match="at least 4"):
        fit_homography(px[:3], px[:3])


def plate_track(speed_kmh_true: float, towards: bool, n: int = 12, fps: float = 12.5, x_m: float = -1.0):
    """Pixel centres of a plate 0.4 m up, driving along the road at a known speed."""
    v = speed_kmh_true / 3.6
    t = np.arange(n) / fps
    y = (28.0 - v * t) if towards else (13.0 + v * t)
    pts = np.stack([np.full(n, x_m), y, np.full(n, 0.40)], axis=1)
    return project(pts), t


@pytest.mark.parametrize("true_kmh", [30.0, 50.0, 110.0])
def test_speed_of_a_synthetic_track_is_within_its_stated_uncertainty(cal, true_kmh):
    px, t = plate_track(true_kmh, towards=True)
    rng = np.random.default_rng(int(true_kmh))
    noisy = px + rng.normal(0, 1.0, px.shape)  # box-centre jitter of a real detector
    kmh, sigma = speed_kmh(cal, noisy, t, plate_height_m=0.40)
    assert 0 < sigma < 0.1 * true_kmh  # the estimate is useful
    assert abs(kmh - true_kmh) < 3 * sigma
    # Without noise the only error left is the plate-height model: exact when the height is right.
    exact, _ = speed_kmh(cal, px, t, plate_height_m=0.40)
    assert exact == pytest.approx(true_kmh, rel=1e-3)


def test_speed_uncertainty_shrinks_with_a_longer_track(cal):
    short_px, short_t = plate_track(50, towards=True, n=3)
    long_px, long_t = plate_track(50, towards=True, n=12)
    assert speed_kmh(cal, long_px, long_t)[1] < speed_kmh(cal, short_px, short_t)[1]


def test_speed_needs_a_homography_and_two_points(cal):
    px, t = plate_track(50, towards=True)
    assert speed_kmh(Calibration(), px, t) is None
    assert speed_kmh(cal, px[:1], t[:1]) is None


@pytest.mark.parametrize("use_homography", [True, False])
def test_direction(cal, use_homography):
    c = cal if use_homography else Calibration()
    px, _ = plate_track(50, towards=True)
    assert direction_of(c, tuple(px[0]), tuple(px[-1]), 60, 110) == "towards"
    px, _ = plate_track(50, towards=False)
    assert direction_of(c, tuple(px[0]), tuple(px[-1]), 110, 60) == "away"
    left = project(ground([[3.0, 18.0], [-3.0, 18.0]]))
    assert direction_of(c, tuple(left[0]), tuple(left[1]), 80, 80) == "left"
    assert direction_of(c, tuple(left[1]), tuple(left[0]), 80, 80) == "right"


def test_wrong_way():
    cal = Calibration(travel_direction="towards")
    assert is_wrong_way(cal, "away") and not is_wrong_way(cal, "towards") and not is_wrong_way(cal, "left")
    assert not is_wrong_way(Calibration(), "away")


def test_lanes():
    cal = Calibration(
        lanes=(Lane("1", ((100.0, 300.0), (640.0, 300.0), (640.0, 700.0), (100.0, 700.0))),
               Lane("2", ((640.0, 300.0), (1200.0, 300.0), (1200.0, 700.0), (640.0, 700.0)))),
    )
    assert lane_of(cal, (300, 400)) == "1" and lane_of(cal, (900, 400)) == "2" and lane_of(cal, (10, 10)) is None


def test_scene_command_writes_the_file_and_a_picture(tmp_path, capsys):
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.full((H, W, 3), 90, np.uint8))
    px = project(ground(ROAD))
    road_points = " ".join(f"{x:.2f},{y:.2f}={X},{Y}" for (x, y), (X, Y) in zip(px, ROAD))
    out = tmp_path / "cam.toml"
    argv = [
        "calibrate", "scene", "--frame", str(frame), "--out", str(out),
        "--roi", "0,250 1280,250 1280,720 0,720",
        "--lane", "1:0,250 640,250 640,720 0,720", "--lane", "2:640,250 1280,250 1280,720 640,720",
        "--direction", "towards", "--road-points", road_points,
    ]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["road_points_error_m"] < 1e-3 and summary["lanes"] == ["1", "2"]
    cal = load_calibration(out)
    assert cal.travel_direction == "towards" and lane_of(cal, (100, 700)) == "1" and cal.image_size == (W, H)
    np.testing.assert_allclose(to_road(cal, px), ROAD, atol=1e-3)
    picture = cv2.imread(summary["picture"])
    assert picture is not None and picture.shape == (H, W, 3) and (picture != 90).any()
    # Redoing only the direction keeps the lanes and homography.
    assert main(["calibrate", "scene", "--frame", str(frame), "--out", str(out), "--direction", "away"]) == 0
    again = load_calibration(out)
    assert again.travel_direction == "away" and len(again.lanes) == 2 and again.homography is not None


def test_scene_command_names_a_bad_point(tmp_path, capsys):
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.zeros((100, 100, 3), np.uint8))
    argv = ["calibrate", "scene", "--frame", str(frame), "--out", str(tmp_path / "c.toml"), "--roi", "0,0 10,x 5,5"]
    assert main(argv) == 2
    assert "--roi: '10,x' is not a point 'x,y'" in capsys.readouterr().err
    assert not (tmp_path / "c.toml").exists()


def test_demo_calibration_matches_the_camera_that_rendered_its_sequence():
    """calibration/demo.toml (made by calibration/make_demo.py) against the truth of sample_frames/seq_day_front."""
    import csv
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    seq = repo / "sample_frames" / "seq_day_front"
    meta = json.loads((seq / "sequence.json").read_text())
    cal = load_calibration(repo / "calibration" / "demo.toml")
    assert cal.image_size == (meta["width"], meta["height"])
    focal = (meta["width"] / 2) / math.tan(math.radians(meta["camera"]["hfov_deg"]) / 2)
    assert cal.camera_matrix[0, 0] == pytest.approx(focal, rel=0.01)
    assert camera_height_m(cal) == pytest.approx(meta["camera"]["mount_m"], rel=0.02)
    # The labelled pass: bottom centre of the plate box, as the camera loop tracks it.
    rows = list(csv.DictReader(open(seq / "labels.csv")))
    pts = [(float(r["x"]) + float(r["w"]) / 2, float(r["y"]) + float(r["h"])) for r in rows]
    times = [int(r["image"].rsplit("_t", 1)[1][:4]) / meta["fps"] for r in rows]
    assert direction_of(cal, pts[0], pts[-1], float(rows[0]["w"]), float(rows[-1]["w"])) == meta["passes"][0]["direction"]
    assert lane_of(cal, pts[-1]) == "1"  # the vehicle drives 1.8 m left of the centre line
    kmh, sigma = speed_kmh(cal, pts, times)
    assert 10 < kmh < 120 and sigma < 0.1 * kmh


def test_scene_command_takes_file_names_that_are_not_utf8(tmp_path):
    # cv2.imread and cv2.imwrite segfaulted on such names (OpenCV 5), so run the command in a process of its own.
    import os
    import subprocess
    import sys
    from pathlib import Path

    folder = tmp_path / os.fsdecode(b"caf\xe9")
    folder.mkdir()
    ok, png = cv2.imencode(".png", np.full((H, W, 3), 90, np.uint8))
    frame = folder / "frame.png"
    frame.write_bytes(png.tobytes())
    out = folder / "cam.toml"
    argv = ["calibrate", "scene", "--frame", str(frame), "--out", str(out), "--roi", "0,250 1280,250 1280,720 0,720"]
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "edge", *map(os.fsencode, argv)], cwd=repo, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    summary = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert summary["roi_points"] == 4 and load_calibration(out).image_size == (W, H)
    assert cv2.imdecode(np.fromfile(os.fsencode(out.with_suffix(".png")), np.uint8), cv2.IMREAD_COLOR).shape == (H, W, 3)


def test_scene_picture_of_an_unknown_image_type_is_named(tmp_path, capsys):
    # OpenCV has no encoder for '.txt': that was a cv2.error traceback.
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.zeros((100, 100, 3), np.uint8))
    argv = ["calibrate", "scene", "--frame", str(frame), "--out", str(tmp_path / "c.toml"), "--direction", "away"]
    assert main([*argv, "--picture", str(tmp_path / "scene.txt")]) == 2
    assert "--picture" in capsys.readouterr().err
