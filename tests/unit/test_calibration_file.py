"""The calibration file: round trip, merging sections, errors that name the key, validate-config."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge.calibrate.file import Calibration, Lane, dumps_calibration, load_calibration, save_calibration, scaled_to
from edge.cli import main
from edge.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
K = np.array([[1000.0, 0.0, 640.0], [0.0, 1001.5, 355.0], [0.0, 0.0, 1.0]])


def lens_only() -> Calibration:
    return Calibration(
        camera_id="demo",
        image_size=(1280, 720),
        camera_matrix=K,
        dist_coeffs=np.array([-0.1, 0.02, 0.001, -0.002, 0.0]),
        reprojection_rms=0.12,
        made_by={"lens": "edge calibrate lens --images x --board 9x6 --square-mm 30"},
    )


def scene_only() -> Calibration:
    return Calibration(
        roi=((0.0, 300.0), (1280.0, 300.0), (1280.0, 720.0), (0.0, 720.0)),
        lanes=(Lane("1", ((0.0, 300.0), (640.0, 300.0), (640.0, 720.0))), Lane("2", ((640.0, 300.0), (1280.0, 300.0), (1280.0, 720.0)))),
        travel_direction="towards",
        homography=np.array([[0.01, 0.0, -6.4], [0.0, -0.02, 20.0], [0.0, 0.001, 1.0]]),
    )


def test_round_trip_keeps_every_value(tmp_path):
    path = tmp_path / "cam.toml"
    s = scene_only()
    cal = replace(
        lens_only(),
        roi=s.roi,
        lanes=s.lanes,
        travel_direction=s.travel_direction,
        homography=s.homography,
        plate_width_px=(40.0, 180.0),
        confidence_knots=((0.1, 0.5, 0.9), (0.05, 0.4, 0.97)),
    )
    save_calibration(cal, path)
    back = load_calibration(path)
    np.testing.assert_allclose(back.camera_matrix, cal.camera_matrix)
    np.testing.assert_allclose(back.dist_coeffs, cal.dist_coeffs)
    np.testing.assert_allclose(back.homography, cal.homography)
    assert back.roi == cal.roi and back.lanes == cal.lanes and back.travel_direction == "towards"
    assert back.plate_width_px == (40.0, 180.0) and back.confidence_knots == cal.confidence_knots
    assert back.image_size == (1280, 720) and back.camera_id == "demo" and back.reprojection_rms == 0.12
    assert back.made_by["lens"].startswith("edge calibrate lens")


def test_saving_one_section_keeps_the_others(tmp_path):
    path = tmp_path / "cam.toml"
    save_calibration(lens_only(), path)
    save_calibration(scene_only(), path)
    save_calibration(Calibration(plate_width_px=(30.0, 90.0)), path)
    back = load_calibration(path)
    np.testing.assert_allclose(back.camera_matrix, K)
    assert back.lanes == scene_only().lanes and back.plate_width_px == (30.0, 90.0)
    assert back.made_by["lens"].startswith("edge calibrate lens")  # provenance of the untouched section survives


def test_file_has_comments_saying_what_made_each_section():
    text = dumps_calibration(lens_only())
    assert "[lens]" in text and 'made_by = "edge calibrate lens' in text
    assert "# Lens:" in text and "`edge calibrate lens`" in text
    assert "[scene]" not in text  # empty sections are not written


BAD = [
    ("[lens]\ncamera_matrix = [[-5.0, 0, 640], [0, 1000, 360], [0, 0, 1]]\ndist_coeffs = [0, 0, 0, 0, 0]\n",
     "lens.camera_matrix", "focal lengths"),
    ("[lens]\ncamera_matrix = [[1000, 0, 640], [0, 1000, 360]]\ndist_coeffs = [0, 0, 0, 0, 0]\n", "lens.camera_matrix", "3x3"),
    ("[lens]\ncamera_matrix = [[1000, 0, 640], [0, 1000, 360], [0, 0, 1]]\ndist_coeffs = [0, 0]\n", "lens.dist_coeffs", "5 numbers"),
    ("[scene]\nroi = [[0, 0], [10, 10]]\n", "scene.roi", "at least 3 points"),
    ("[scene]\ntravel_direction = \"north\"\n", "scene.travel_direction", "'towards'"),
    ("[scene]\nhomography = [[1, 2, 3], [2, 4, 6], [0, 0, 1]]\n", "scene.homography", "singular"),
    ("[[scene.lanes]]\nname = \"1\"\npolygon = [[0, 0], [5, 5], [10, 10]]\n", "scene.lanes.0.polygon", "no area"),
    ("[plate_size]\nwidth_px = [90, 40]\n", "plate_size.width_px", "min < max"),
    ("[confidence]\nx_knots = [0.1, 0.5, 0.9]\ny_knots = [0.2, 0.1, 0.9]\n", "confidence.y_knots", "must not decrease"),
    ("[confidence]\nx_knots = [0.5, 0.1]\ny_knots = [0.2, 0.3]\n", "confidence.x_knots", "strictly increasing"),
    # nan compares false both ways, so it passed "strictly increasing" and made every calibrated confidence nan.
    ("[confidence]\nx_knots = [0.1, nan, 0.9]\ny_knots = [0.2, 0.3, 0.4]\n", "confidence.x_knots", "finite"),
    ("[confidence]\nx_knots = [0.1, 0.5, inf]\ny_knots = [0.2, 0.3, 0.4]\n", "confidence.x_knots", "finite"),
    ("image_size = [640, 480]\n[scene]\nroi = [[0, 0], [2000, 0], [2000, 400]]\n", "(top level)", "outside image_size"),
    ("[lens]\nfocal = 3\n", "lens.focal", "unknown key"),
]


@pytest.mark.parametrize("text,key,message", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_field_is_named(tmp_path, text, key, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_calibration(path)
    assert str(path) in str(err.value)
    line = next(ln for ln in str(err.value).splitlines() if message in ln)
    assert line.strip().startswith(key)


def test_scaled_to_another_resolution_keeps_the_geometry():
    cal = replace(lens_only(), **{k: getattr(scene_only(), k) for k in ("roi", "lanes", "homography")}, plate_width_px=(40.0, 160.0))
    half = scaled_to(cal, (640, 360))
    assert half.image_size == (640, 360) and half.plate_width_px == (20.0, 80.0)
    assert half.camera_matrix[0, 0] == pytest.approx(500.0) and half.camera_matrix[1, 2] == pytest.approx(177.5)
    assert half.roi[2] == (640.0, 360.0) and half.lanes[1].polygon[0] == (320.0, 150.0)
    # The same road point, seen at half resolution, maps to the same metres.
    import cv2

    px = np.array([[[700.0, 500.0]]])
    np.testing.assert_allclose(cv2.perspectiveTransform(px / 2, half.homography), cv2.perspectiveTransform(px, cal.homography))
    assert scaled_to(cal, (1280, 720)) is cal


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="calibration file not found"):
        load_calibration(tmp_path / "absent.toml")
    (tmp_path / "broken.toml").write_text("[lens\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_calibration(tmp_path / "broken.toml")


def test_a_bad_calibration_is_never_written(tmp_path):
    bad = Calibration(plate_width_px=(50.0, 10.0))
    with pytest.raises(ConfigError, match="plate_size.width_px"):
        save_calibration(bad, tmp_path / "cam.toml")
    assert not (tmp_path / "cam.toml").exists()


def test_validate_config_checks_the_calibration_file(tmp_path, capsys):
    (tmp_path / "cam.toml").write_text('[camera]\nid = "c1"\ncalibration = "cal.toml"\n')
    (tmp_path / "cal.toml").write_text("[plate_size]\nwidth_px = [0, 40]\n")
    assert main(["validate-config", str(tmp_path / "cam.toml")]) == 1
    err = capsys.readouterr().err
    assert "cal.toml" in err and "plate_size.width_px = [0, 40]" in err
    save_calibration(lens_only(), tmp_path / "cal.toml", merge_existing=False)
    assert main(["validate-config", str(tmp_path / "cam.toml")]) == 0


def test_validate_config_takes_a_calibration_file_directly(tmp_path, capsys):
    bad = tmp_path / "cal.toml"
    bad.write_text('[scene]\ntravel_direction = "north"\n')
    assert main(["validate-config", str(bad)]) == 1
    assert "scene.travel_direction = 'north'" in capsys.readouterr().err
    save_calibration(lens_only(), bad, merge_existing=False)
    assert main(["validate-config", str(bad)]) == 0
    assert f"{bad}: ok" in capsys.readouterr().out


@pytest.mark.parametrize("path", sorted((REPO / "calibration").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_calibration_files_are_valid(path):
    cal = load_calibration(path)
    assert cal.image_size is not None and cal.camera_matrix is not None


def test_made_by_naming_a_file_that_is_not_utf8_is_written(tmp_path):
    # `edge calibrate ... --images <folder>` on a folder named in Latin-1: argv holds the name with surrogates.
    import os

    command = "edge calibrate plate-size --frames " + os.fsdecode(b"/data/caf\xe9")
    save_calibration(Calibration(plate_width_px=(30.0, 90.0), made_by={"plate_size": command}), tmp_path / "cam.toml")
    assert load_calibration(tmp_path / "cam.toml").made_by["plate_size"] == r"edge calibrate plate-size --frames /data/caf\xe9"


@pytest.mark.parametrize(
    "text,key",
    [
        # Corners typed in reading order (top-left, top-right, bottom-left, bottom-right): a bow tie, not a trapezoid.
        ("[scene]\nroi = [[400, 200], [880, 200], [0, 719], [1279, 719]]\n", "scene.roi"),
        ('[[scene.lanes]]\nname = "1"\npolygon = [[100, 200], [540, 200], [0, 719], [640, 719]]\n', "scene.lanes.0.polygon"),
    ],
)
def test_a_polygon_that_crosses_itself_is_refused(tmp_path, text, key):
    # Point-in-polygon on a bow tie leaves out part of the area meant and keeps the rest: a silent blind spot.
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_calibration(path)
    line = next(ln for ln in str(err.value).splitlines() if "crosses itself" in ln)
    assert line.strip().startswith(key)


def test_a_convex_or_concave_polygon_is_accepted(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text("[scene]\nroi = [[0, 0], [100, 0], [100, 100], [50, 40], [0, 100]]\n")  # concave, touching no edge
    assert len(load_calibration(path).roi) == 5


def test_a_file_that_cannot_be_written_is_a_config_error(tmp_path):
    # An OSError escaped as a traceback after the whole fit had run (e.g. --out under a read-only /etc/edge).
    (tmp_path / "not-a-folder").write_text("")
    with pytest.raises(ConfigError, match="not-a-folder/cam.toml: cannot write"):
        save_calibration(lens_only(), tmp_path / "not-a-folder" / "cam.toml")


def test_control_characters_in_made_by_are_written_as_escapes(tmp_path):
    # The last argument of a line in a script saved with CRLF ends in '\r'; it reached made_by and the
    # writer's own read-back check failed with a TOMLDecodeError traceback.
    command = 'edge calibrate scene --lane "1:0,0 10,0 10,10"\r'
    save_calibration(Calibration(plate_width_px=(30.0, 90.0), made_by={"plate_size": command}), tmp_path / "cam.toml")
    assert load_calibration(tmp_path / "cam.toml").made_by["plate_size"] == command
