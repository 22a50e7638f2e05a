"""The camera's status (the retained heartbeat a back office watches)."""

from pathlib import Path

import pytest

from edge.camera import Camera
from edge.capture import open_source
from edge.config import MODELS_DIR, load_camera_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not (MODELS_DIR / "detector.onnx").is_file(), reason="models not built")
def test_status_carries_the_audit_log_head_to_anchor_it_off_the_unit(tmp_path):
    cfg = load_camera_config(ROOT / "examples" / "demo.toml")
    source = open_source(str(ROOT / "sample_frames" / "singles"), cfg.capture)
    cam = Camera(cfg, source, spool_dir=tmp_path, out=None)
    try:
        head = cam.status()["audit_head"]
        assert head["seq"] >= 1 and (head["seq"], head["hash"]) == cam.audit.head()  # the start is already logged
        assert cam.calibration is not None and cam.calibration is cam.pipeline.calibration
        assert cam.status()["exposure"] == {"clipped_share": None, "over_exposed": False}  # no frame seen yet
    finally:
        source.close()
        cam.spool.close()
