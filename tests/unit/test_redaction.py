"""Redaction: bystanders' faces in the overview are pixelated; the plate being read stays sharp.

The face is scikit-image's astronaut photograph (shipped with the package), pasted
into a drawn road scene next to a drawn plate.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.context import build_read, overview_image
from edge.redaction import CASCADE_RESOURCE, FaceDetector, LbpCascade, cascade_from_opencv_xml, face_cascade, redact
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


# --- The cascade evaluator against a one-window-at-a-time reference --------------------------------
# The detector evaluates the cascade vectorised (int16 block sums, table look-ups for each stage's
# verdict, dense and sparse stages); these pin it to the plain algorithm and to known results.

_CLOCKWISE = (0, 1, 2, 5, 8, 7, 6, 3)  # neighbour blocks of the row-major 3 x 3 grid, MSB first (OpenCV)


def _cascade_spec() -> dict:
    return json.loads(resources.files("edge").joinpath(CASCADE_RESOURCE).read_text())


def _lbp_code(ii: list, x: int, y: int, rect: list) -> int:
    fx, fy, fw, fh = rect

    def block(r: int, c: int) -> int:
        x0, y0 = x + fx + c * fw, y + fy + r * fh
        return ii[y0 + fh][x0 + fw] - ii[y0][x0 + fw] - ii[y0 + fh][x0] + ii[y0][x0]

    sums = [block(r, c) for r in range(3) for c in range(3)]
    return sum(int(sums[i] >= sums[4]) << (7 - bit) for bit, i in enumerate(_CLOCKWISE))


def _stage_passes(stage: dict, features: list, ii: list, x: int, y: int) -> bool:
    leaves = []
    for weak in stage["weak"]:
        code = _lbp_code(ii, x, y, features[weak["feature"]])
        bit_set = (weak["subset"][code >> 5] >> (code & 31)) & 1
        leaves.append(weak["leaves"][0 if bit_set else 1])
    # numpy's float64 sum: some leaf combinations tie with a threshold to the last bit, so the
    # summation order is part of the cascade's definition here.
    return bool(np.sum(np.array(leaves)) >= stage["threshold"])


def _reference_hits(spec: dict, gray: np.ndarray, scale_factor: float = 1.1) -> list:
    """Every window passing every stage, one window at a time: same scales and step rule as the detector."""
    ww, wh = spec["window"]
    h0, w0 = gray.shape
    hits, scale = [], 1.0
    while w0 / scale >= ww and h0 / scale >= wh:
        sw, sh = int(round(w0 / scale)), int(round(h0 / scale))
        img = gray if scale == 1.0 else cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_LINEAR)
        ii = cv2.integral(img, sdepth=cv2.CV_32S).tolist()
        step = 1 if scale > 2 else 2
        for y in range(0, sh - wh + 1, step):
            for x in range(0, sw - ww + 1, step):
                if all(_stage_passes(st, spec["features"], ii, x, y) for st in spec["stages"]):
                    hits.append((round(x * scale), round(y * scale), round(ww * scale), round(wh * scale)))
        scale *= scale_factor
    return hits


@pytest.fixture(scope="module")
def astronaut_grey() -> np.ndarray:
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2GRAY)


def test_cascade_hits_match_a_window_by_window_reference(astronaut_grey):
    """A small image around the astronaut's face: hits at both window steps (2 below scale 2, 1 above)."""
    small = cv2.resize(astronaut_grey[40:200, 140:300], (72, 72), interpolation=cv2.INTER_AREA)
    hits = face_cascade().hits(small)
    assert sorted(hits) == sorted(_reference_hits(_cascade_spec(), small))
    assert len(hits) == 10 and {w for _, _, w, _ in hits} >= {32, 57}  # as the evaluator found before it was optimised


@pytest.mark.parametrize("n_stages", [1, 3, 6])
def test_windows_passing_the_first_stages_match_the_reference(astronaut_grey, n_stages):
    """The first stages pass many windows, so a slip in the dense or sparse evaluation shows in the
    survivors even where the full cascade would reject them later. Posterised grey levels make
    equal block sums (ties for `>=`) common."""
    spec = _cascade_spec()
    truncated = LbpCascade({**spec, "stages": spec["stages"][:n_stages]})
    small = cv2.resize(astronaut_grey[40:200, 140:300], (48, 40), interpolation=cv2.INTER_AREA)
    noise = np.random.default_rng(7).integers(0, 256, (40, 56), dtype=np.uint8)
    for image in (small, small // 64 * 64, noise):
        hits = truncated.hits(image)
        assert hits and sorted(hits) == sorted(_reference_hits({**spec, "stages": spec["stages"][:n_stages]}, image))


def test_stage_verdict_tables_match_the_leaf_sums():
    """Each stage's verdict for every leaf pattern is the float64 sum of those leaves against its threshold."""
    spec = _cascade_spec()
    for stage, st in zip(face_cascade().stages, spec["stages"]):
        leaves = np.array([w["leaves"] for w in st["weak"]])
        for pattern in range(2 ** len(leaves)):
            chosen = leaves[np.arange(len(leaves)), [(pattern >> i) & 1 for i in range(len(leaves))]]
            assert stage.passes[pattern] == (np.sum(chosen) >= st["threshold"]), (st["threshold"], pattern)


def test_astronaut_face_found_at_the_same_rectangles_at_two_sizes(astronaut_grey):
    """Exact boxes (computed before the evaluator was optimised): any change in what it finds shows here."""
    half = cv2.resize(astronaut_grey, (256, 256), interpolation=cv2.INTER_AREA)
    assert sorted(face_cascade().detect(astronaut_grey)) == [(171, 64, 106, 106), (403, 420, 58, 58)]
    assert face_cascade().detect(half) == [(85, 31, 53, 53)]
