"""ImagePipeline.from_config: the models and calibration a camera config names."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import MODELS_DIR, load_camera_config
from edge.detect import OnnxPlateDetector
from edge.pipeline import ImagePipeline
from edge.types import Box, PlateReading
from tests.unit.test_detect import PeakModel

ROOT = Path(__file__).resolve().parents[2]
needs_models = pytest.mark.skipif(not (MODELS_DIR / "detector.onnx").is_file(), reason="models not built")


@needs_models
def test_a_calibration_made_for_another_camera_is_warned_about(caplog):
    cfg = load_camera_config(ROOT / "examples" / "demo.toml")
    ImagePipeline.from_config(cfg)
    assert "made for camera" not in caplog.text
    ImagePipeline.from_config(cfg.with_overrides(camera={"id": "east"}))
    assert "camera east: calibration" in caplog.text and "made for camera 'demo'" in caplog.text


class _ShapeReader:
    """Stands in for a reader: records the crops it is given and reads each as one plate."""

    name, models = "stub", {}

    def __init__(self):
        self.crops: list[np.ndarray] = []

    def read(self, crops):
        self.crops += list(crops)
        return [PlateReading("AB12CDE", 0.9, (0.9,) * 7) for _ in crops]


def _bgr_frame() -> np.ndarray:
    frame = np.full((1080, 1920, 3), 60, np.uint8)
    frame[500:536, 800:960] = 255
    return frame


@pytest.mark.parametrize(
    "convert",
    [
        lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2GRAY),  # an infrared camera's grey frames
        lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2BGRA),  # a PNG with an alpha channel
        lambda f: f.astype(np.uint16) << 8,  # a 16-bit image
    ],
    ids=["grey", "bgra", "16-bit"],
)
def test_grey_alpha_and_16_bit_images_are_read_like_the_8_bit_colour_image(convert):
    reader = _ShapeReader()
    pipeline = ImagePipeline(OnnxPlateDetector(PeakModel(), 0.4, 0.45), reader)
    results = pipeline.process(convert(_bgr_frame()))
    assert len(results) == 1 and results[0].detection.box.iou(Box(800, 500, 160, 36)) > 0.9
    assert reader.crops[0].dtype == np.uint8 and reader.crops[0].ndim == 3 and reader.crops[0].shape[2] == 3


def test_an_image_of_floats_is_refused_with_its_type():
    pipeline = ImagePipeline(OnnxPlateDetector(PeakModel(), 0.4, 0.45), _ShapeReader())
    with pytest.raises(ValueError, match="float32"):
        pipeline.process(_bgr_frame().astype(np.float32) / 255)


def test_an_empty_image_is_refused_with_its_size():
    pipeline = ImagePipeline(OnnxPlateDetector(PeakModel(), 0.4, 0.45), _ShapeReader())
    with pytest.raises(ValueError, match=r"empty: shape \(480, 0, 3\)"):
        pipeline.process(np.zeros((480, 0, 3), np.uint8))
