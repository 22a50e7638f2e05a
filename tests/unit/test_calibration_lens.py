"""Lens calibration recovers a known camera from rendered checkerboards; plate crops undistort correctly."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge.calibrate.file import Calibration, load_calibration
from edge.calibrate.lens import (
    calibrate_lens,
    distort_points,
    look_at_pose,
    patch_region,
    render_checkerboard,
    render_views,
    undistort_patch,
    undistort_points,
)
from edge.cli import main
from edge.errors import ConfigError

SIZE = (640, 480)
# A wide lens (63 degrees across) with barrel and a little tangential distortion.
K = np.array([[520.0, 0.0, 331.0], [0.0, 518.0, 236.0], [0.0, 0.0, 1.0]])
DIST = np.array([-0.18, 0.09, 0.0012, -0.0008, 0.0])
# A narrow roadside lens (16 degrees across, like the demo camera's) on a small sensor.
NARROW_SIZE = (640, 360)
NARROW_K = np.array([[2277.0, 0.0, 318.0], [0.0, 2277.0, 184.0], [0.0, 0.0, 1.0]])
BOARD = (9, 6)
SQUARE_MM = 30.0


@pytest.fixture(scope="module")
def board_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("boards")
    for i, view in enumerate(render_views(K, DIST, SIZE, *BOARD, SQUARE_MM, count=8, seed=3)):
        cv2.imwrite(str(folder / f"board_{i:02d}.png"), view)
    return folder


def test_recovers_focal_length_and_principal_point(board_folder):
    fit = calibrate_lens(sorted(board_folder.glob("*.png")), *BOARD, SQUARE_MM)
    assert len(fit.used) >= 6 and fit.distortion == "radial-tangential"
    assert fit.camera_matrix[0, 0] == pytest.approx(K[0, 0], rel=0.01)
    assert fit.camera_matrix[1, 1] == pytest.approx(K[1, 1], rel=0.01)
    assert fit.camera_matrix[0, 2] == pytest.approx(K[0, 2], rel=0.02)
    assert fit.camera_matrix[1, 2] == pytest.approx(K[1, 2], rel=0.02)
    assert fit.rms < 0.5
    # The fitted lens bends points like the true one (coefficients trade off, the mapping does not).
    probe = np.array([[40.0, 40.0], [600.0, 50.0], [320.0, 240.0], [620.0, 460.0], [20.0, 450.0]])
    true_ideal = undistort_points(Calibration(camera_matrix=K, dist_coeffs=DIST), probe)
    fit_ideal = undistort_points(Calibration(camera_matrix=fit.camera_matrix, dist_coeffs=fit.dist_coeffs), probe)
    # Compare as angles from the optical axis, since the two matrices differ slightly.
    rays_true = (true_ideal - K[:2, 2]) / np.diag(K)[:2]
    rays_fit = (fit_ideal - fit.camera_matrix[:2, 2]) / np.diag(fit.camera_matrix)[:2]
    assert np.abs(rays_true - rays_fit).max() * K[0, 0] < 4.0  # pixels, at the far corners


def test_recovers_a_narrow_lens(tmp_path):
    for i, view in enumerate(render_views(NARROW_K, np.zeros(5), NARROW_SIZE, *BOARD, SQUARE_MM, count=16, seed=5)):
        cv2.imwrite(str(tmp_path / f"board_{i:02d}.png"), view)
    fit = calibrate_lens(sorted(tmp_path.glob("*.png")), *BOARD, SQUARE_MM)
    assert fit.distortion == "radial"  # auto: tangential terms are not fitted on a narrow lens
    assert fit.camera_matrix[0, 0] == pytest.approx(NARROW_K[0, 0], rel=0.01)
    assert fit.camera_matrix[1, 1] == pytest.approx(NARROW_K[1, 1], rel=0.01)
    assert fit.camera_matrix[0, 2] == pytest.approx(NARROW_K[0, 2], rel=0.02)
    assert fit.camera_matrix[1, 2] == pytest.approx(NARROW_K[1, 2], rel=0.02)


def test_cli_prints_json_last_and_writes_the_lens_section(board_folder, tmp_path, capsys):
    out = tmp_path / "cam.toml"
    argv = ["calibrate", "lens", "--images", str(board_folder), "--board", "9x6", "--square-mm", "30", "--out", str(out)]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"fx", "fy", "cx", "cy", "rms"} <= summary.keys()
    assert summary["fx"] == pytest.approx(K[0, 0], rel=0.01)
    cal = load_calibration(out)
    assert cal.image_size == SIZE and cal.camera_matrix[0, 0] == pytest.approx(summary["fx"], abs=0.01)
    assert "edge calibrate lens --images" in cal.made_by["lens"]


def test_wrong_board_size_says_so(board_folder):
    with pytest.raises(ConfigError, match="INNER corners"):
        calibrate_lens(sorted(board_folder.glob("*.png"))[:3], 10, 7, SQUARE_MM)  # a failed search is slow: 3 will do


def test_distort_then_undistort_is_identity():
    cal = Calibration(camera_matrix=K, dist_coeffs=DIST)
    pts = np.array([[10.0, 12.0], [320.0, 240.0], [630.0, 470.0], [100.0, 400.0]])
    back = undistort_points(cal, distort_points(K, DIST, pts))
    np.testing.assert_allclose(back, pts, atol=0.01)
    assert np.abs(distort_points(K, DIST, pts) - pts).max() > 5  # the lens really does bend these


def test_undistort_patch_matches_the_ideal_image():
    # An ideal (pinhole) image with a smooth texture, and the same scene through the distorting lens.
    rng = np.random.default_rng(0)
    ideal = cv2.resize(rng.integers(0, 255, (60, 80), dtype=np.uint8), SIZE, interpolation=cv2.INTER_CUBIC)
    gx, gy = np.meshgrid(np.arange(SIZE[0], dtype=np.float64), np.arange(SIZE[1], dtype=np.float64))
    cal = Calibration(camera_matrix=K, dist_coeffs=DIST, image_size=SIZE)
    where = undistort_points(cal, np.stack([gx.ravel(), gy.ravel()], 1)).reshape(SIZE[1], SIZE[0], 2).astype(np.float32)
    raw = cv2.remap(ideal, where[..., 0], where[..., 1], cv2.INTER_LINEAR)
    raw = cv2.cvtColor(raw, cv2.COLOR_GRAY2BGR)

    box = (470.0, 360.0, 110.0, 28.0)  # a plate near the corner, where distortion is strong
    patch = undistort_patch(cal, raw, box, margin=0.1)
    x0, y0, pw, ph = patch_region(K, DIST, box, 0.1)
    assert patch.shape[:2] == (ph, pw)
    truth = cv2.getRectSubPix(ideal, (pw, ph), (x0 + (pw - 1) / 2, y0 + (ph - 1) / 2))
    err = np.abs(patch[..., 0].astype(float) - truth.astype(float))
    plain = raw[int(y0) : int(y0) + ph, int(x0) : int(x0) + pw, 0].astype(float)
    assert err.mean() < 3.0
    assert np.abs(plain - truth).mean() > 3 * err.mean()  # a plain crop is clearly worse


def test_without_lens_the_patch_is_a_plain_crop():
    img = np.arange(100 * 200 * 3, dtype=np.uint32).reshape(100, 200, 3).astype(np.uint8)
    patch = undistort_patch(Calibration(), img, (50, 40, 40, 10), margin=0.25)
    np.testing.assert_array_equal(patch, img[38:52, 40:100])


def test_cli_takes_folders_whose_names_are_not_utf8(board_folder, tmp_path):
    # cv2.imread segfaulted on such names (OpenCV 5), so run the command in a process of its own.
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    photos = tmp_path / os.fsdecode(b"f\xf6to")  # Latin-1 'foto' with an umlaut, as an old camera card names it
    photos.mkdir()
    for src in sorted(board_folder.glob("*.png"))[:4]:
        shutil.copy(src, photos / os.fsdecode(src.stem.encode() + b"\xe9.png"))
    out = photos / "cam.toml"
    argv = ["calibrate", "lens", "--images", str(photos), "--board", "9x6", "--square-mm", "30", "--out", str(out)]
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "edge", *map(os.fsencode, argv)], cwd=repo, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    summary = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert summary["views"] == 4 and summary["fx"] == pytest.approx(K[0, 0], rel=0.02)
    assert load_calibration(out).camera_matrix[0, 0] == pytest.approx(summary["fx"], abs=0.01)


def test_recovers_the_camera_from_a_board_small_in_the_frame(tmp_path):
    # Squares of 9-18 px (a board held far from a roadside camera): a fixed 15x15 px sub-pixel window reached
    # the neighbouring corners and pulled every corner off, giving fx 13% low with no error.
    rng = np.random.default_rng(11)
    for i in range(10):
        rvec, tvec = look_at_pose(rng, *BOARD, SQUARE_MM, K, SIZE)  # posed for 30 mm squares, drawn with 12 mm ones
        view = render_checkerboard(K, DIST, SIZE, *BOARD, 12.0, rvec, tvec, rng)
        cv2.imwrite(str(tmp_path / f"board_{i:02d}.png"), view)
    fit = calibrate_lens(sorted(tmp_path.glob("*.png")), *BOARD, 12.0)
    assert len(fit.used) >= 8 and fit.rms < 0.5
    assert fit.camera_matrix[0, 0] == pytest.approx(K[0, 0], rel=0.02)
    assert fit.camera_matrix[1, 2] == pytest.approx(K[1, 2], rel=0.03)
