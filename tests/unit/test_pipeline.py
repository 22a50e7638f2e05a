"""ImagePipeline.from_config: the models and calibration a camera config names."""

from pathlib import Path

import pytest

from edge.config import MODELS_DIR, load_camera_config
from edge.pipeline import ImagePipeline

ROOT = Path(__file__).resolve().parents[2]
needs_models = pytest.mark.skipif(not (MODELS_DIR / "detector.onnx").is_file(), reason="models not built")


@needs_models
def test_a_calibration_made_for_another_camera_is_warned_about(caplog):
    cfg = load_camera_config(ROOT / "examples" / "demo.toml")
    ImagePipeline.from_config(cfg)
    assert "made for camera" not in caplog.text
    ImagePipeline.from_config(cfg.with_overrides(camera={"id": "east"}))
    assert "camera east: calibration" in caplog.text and "made for camera 'demo'" in caplog.text
