"""`edge validate-config --site`: a site is valid only when the cameras it names would start."""

from __future__ import annotations

from edge.cli import main


def site(tmp_path, camera_text: str) -> str:
    (tmp_path / "cam.toml").write_text(camera_text)
    (tmp_path / "site.toml").write_text('[[cameras]]\nconfig = "cam.toml"\nsource = "frames"\n')
    return str(tmp_path / "site.toml")


def test_site_with_a_bad_camera_file_is_invalid(tmp_path, capsys):
    # It said "ok" while `edge serve` on the same file refused to start.
    path = site(tmp_path, '[camera]\nid = "c1"\n[detector]\nthreshold = 7\n')
    assert main(["validate-config", "--site", path]) == 1
    err = capsys.readouterr().err
    assert "cam.toml" in err and "detector.threshold = 7" in err


def test_site_with_a_bad_calibration_file_is_invalid(tmp_path, capsys):
    path = site(tmp_path, '[camera]\nid = "c1"\ncalibration = "cal.toml"\n')
    (tmp_path / "cal.toml").write_text("[plate_size]\nwidth_px = [90, 40]\n")
    assert main(["validate-config", "--site", path]) == 1
    assert "cal.toml" in capsys.readouterr().err


def test_site_with_valid_cameras_is_ok(tmp_path, capsys):
    path = site(tmp_path, '[camera]\nid = "c1"\n')
    assert main(["validate-config", "--site", path]) == 0
    assert f"{path}: ok" in capsys.readouterr().out
