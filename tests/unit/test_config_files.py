"""Files a camera configuration names (calibration, keys, hotlists, broker credentials) must exist:
`edge validate-config` and `edge run` both say which, by key, before anything starts."""

from __future__ import annotations

from pathlib import Path

from edge.cli import main
from edge.config import load_camera_config

CAMERA = """
[camera]
id = "north"
calibration = "cal/north.toml"
[[privacy.feeds]]
name = "reads"
kind = "full"
[[privacy.feeds]]
name = "hits"
kind = "hits_only"
hotlist_file = "hotlist.txt"
[mqtt]
broker = "mqtts://backoffice:8883"
username = "north"
password_file = "/nonexistent/mqtt.password"
"""


def test_every_missing_file_is_named_by_key_value_and_where_it_was_looked_for(tmp_path: Path) -> None:
    (tmp_path / "north.toml").write_text(CAMERA)
    missing = load_camera_config(tmp_path / "north.toml").missing_files()
    assert missing == [
        f"{tmp_path / 'north.toml'}: camera.calibration = 'cal/north.toml': {tmp_path / 'cal/north.toml'} not found",
        f"{tmp_path / 'north.toml'}: privacy.feeds[1].hotlist_file = 'hotlist.txt': {tmp_path / 'hotlist.txt'} not found",
        f"{tmp_path / 'north.toml'}: mqtt.password_file = '/nonexistent/mqtt.password': /nonexistent/mqtt.password not found",
    ]
    (tmp_path / "hotlist.txt").write_text("AB12CDE\n")
    assert len(load_camera_config(tmp_path / "north.toml").missing_files()) == 2


def test_edge_run_refuses_a_camera_whose_files_are_missing_naming_them(tmp_path: Path, capsys) -> None:
    (tmp_path / "north.toml").write_text(CAMERA)
    assert main(["run", "--config", str(tmp_path / "north.toml"), "--camera", "north", "--source", str(tmp_path), "--once"]) == 2
    err = capsys.readouterr().err
    assert "camera.calibration = 'cal/north.toml'" in err and "privacy.feeds[1].hotlist_file = 'hotlist.txt'" in err
    assert "Traceback" not in err


def test_a_camera_file_given_as_a_site_file_is_named_as_such(capsys) -> None:
    root = Path(__file__).resolve().parents[2]
    assert main(["serve", "--config", str(root / "examples" / "demo.toml")]) == 2
    err = capsys.readouterr().err
    assert "this is a camera file" in err and "unknown key" not in err
