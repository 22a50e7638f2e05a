"""Redaction: bystanders' faces in the overview are pixelated; the plate being read stays sharp.

The face is scikit-image's astronaut photograph (shipped with the package), pasted
into a drawn road scene next to a drawn plate.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.context import build_read, overview_image
from edge.redaction import CASCADE_RESOURCE, FaceDetector, cascade_from_opencv_xml, redact
from edge.types import Box
from tests.unit import read_fixtures as F

skimage_data = pytest.importorskip("skimage.data")

FACE = (371, 264, 106, 106)  # the astronaut's face once pasted at (200, 200)
PLATE = Box(430, 390, 240, 56)  # overlaps the margin grown around the face


def _iou(a, b) -> float:
    return Box(*a).iou(Box(*b))


def _sharpness(img: np.ndarray, r) -> float:
    x, y, w, h = (int(v) for v in r)
    grey = cv2.cvtColor(img[y : y + h, x : x + w], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    img = F.scene()
    img[200:712, 200:712] = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    F.draw_plate(img, "AB12CDE", PLATE)
    return img


@pytest.fixture(scope="module")
def faces(frame):
    return FaceDetector().detect(frame)


def test_detector_finds_the_face(faces):
    assert max(_iou(f, FACE) for f in faces) > 0.5, faces


def test_redaction_blurs_the_face_and_leaves_the_plate_exact(frame, faces):
    x, y, w, h = PLATE.as_list()
    out, n = redact(frame, faces, [(x, y, w, h)])
    assert n >= 1
    assert _sharpness(out, FACE) < _sharpness(frame, FACE) / 10
    assert np.array_equal(out[y : y + h, x : x + w], frame[y : y + h, x : x + w])
    # Far from any face nothing changed.
    assert np.array_equal(out[800:, 1000:], frame[800:, 1000:])


def test_overview_is_redacted_with_plate_sharp(frame, tmp_path):
    cfg = F.config(tmp_path, imagery={"redact_bystanders": True})
    redacted, n, searched = overview_image(frame, PLATE, cfg)
    plain, _, searched_plain = overview_image(frame, PLATE, cfg.model_copy(update={"imagery": cfg.imagery.model_copy(update={"redact_bystanders": False})}))
    assert searched and not searched_plain and n >= 1
    f = redacted.shape[1] / frame.shape[1]
    face = [v * f for v in FACE]
    assert _sharpness(redacted, face) < _sharpness(plain, face) / 5
    px, py = int(np.ceil(PLATE.x * f)), int(np.ceil(PLATE.y * f))
    pw, ph = int(PLATE.w * f) - 1, int(PLATE.h * f) - 1
    assert np.array_equal(redacted[py : py + ph, px : px + pw], plain[py : py + ph, px : px + pw])


def test_record_says_redaction_was_applied(tmp_path):
    cfg = F.config(tmp_path, imagery={"redact_bystanders": True})
    track = F.track()
    track.best.frame.image[200:712, 200:712] = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    record = build_read(track, cfg, models=F.MODELS).record
    assert record["redaction"]["applied"] is True and record["redaction"]["regions"] >= 1
    assert record["redaction"]["detector"] == "opencv-lbp-frontalface"


def test_shipped_cascade_is_opencvs_frontal_face_cascade():
    from importlib import resources

    shipped = json.loads(resources.files("edge").joinpath(CASCADE_RESOURCE).read_text())
    converted = cascade_from_opencv_xml(Path(skimage_data.lbp_frontal_face_cascade_filename()))
    assert shipped == converted


def test_faces_are_found_in_grey_and_bgra_images_and_an_empty_one_has_none(frame, faces):
    """A grey (infrared) or BGRA image crashed cvtColor; an empty one divided by zero."""
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    detector = FaceDetector()
    crop = (slice(150, 750), slice(150, 750))  # around the face: keeps the test fast
    face = (FACE[0] - 150, FACE[1] - 150, FACE[2], FACE[3])
    for image in (grey[crop], grey[crop][:, :, None], cv2.cvtColor(frame[crop], cv2.COLOR_BGR2BGRA)):
        found = detector.detect(image)
        assert found and max(_iou(f, face) for f in found) > 0.5, (image.shape, found)
    out, n = redact(grey, faces, [PLATE.as_list()])
    assert n >= 1 and _sharpness(cv2.cvtColor(out, cv2.COLOR_GRAY2BGR), FACE) < _sharpness(frame, FACE) / 10
    assert detector.detect(np.zeros((0, 0, 3), np.uint8)) == []


def test_boxes_partly_or_wholly_outside_the_image_are_clipped_and_counted_truthfully():
    """The record's redaction.regions counted boxes lying wholly outside the image, which redact nothing."""
    img = F.scene(200, 100)
    out, n = redact(img, [(-20, -20, 50, 50), (250, 150, 10, 10), (-100, -100, 10, 10)], [(-5, -5, 10, 10)])
    assert n == 1
    assert not np.array_equal(out[10:30, 10:30], img[10:30, 10:30])  # the part inside is pixelated
    assert np.array_equal(out[:5, :5], img[:5, :5])  # the kept box, clipped to the image, is exact
    assert np.array_equal(out[60:, 100:], img[60:, 100:])
