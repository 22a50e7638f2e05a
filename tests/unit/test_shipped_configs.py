"""Every configuration file the project ships must validate."""

from pathlib import Path

import pytest

from edge.cli import main
from edge.config import load_camera_config, load_site_config

ROOT = Path(__file__).resolve().parents[2]
CAMERAS = sorted(p for p in (ROOT / "examples").glob("*.toml") if p.name != "site.toml")
CALIBRATIONS = sorted((ROOT / "calibration").glob("*.toml"))


@pytest.mark.parametrize("path", CAMERAS, ids=lambda p: p.name)
def test_example_camera_files_validate(path):
    cfg = load_camera_config(path)
    # Secrets are made on the unit (the file's comments say how); everything else must be in the repository.
    missing = cfg.missing_files()
    assert all("'secrets/" in line for line in missing), missing
    if not missing:
        assert main(["validate-config", str(path)]) == 0


def test_example_site_file_validates():
    site = load_site_config(ROOT / "examples" / "site.toml")
    assert len(site.cameras) == 2


@pytest.mark.parametrize("path", CALIBRATIONS, ids=lambda p: p.name)
def test_shipped_calibration_files_validate(path):
    from edge.calibrate.file import load_calibration

    load_calibration(path)
