"""The detector's geometry (letterbox, windows, decode, NMS, ROI) and the committed ONNX model."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from edge.config import MODELS_DIR, CameraConfig
from edge.detect import (
    CANVAS_STEP,
    MAX_TILES,
    MIN_PLATE_INPUT_PX,
    OnnxPlateDetector,
    PLATE_INPUT_PX,
    Window,
    decode,
    letterbox,
    load_detector,
    nms,
    plan_windows,
    unletterbox,
)
from edge.errors import ModelError
from edge.types import Box

INPUT_HW = (384, 640)


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("frame_hw", [(1080, 1920), (720, 1280), (1200, 900), (300, 400)])
def test_letterbox_round_trip(frame_hw):
    image = np.zeros((*frame_hw, 3), np.uint8)
    canvas, scale = letterbox(image, INPUT_HW)
    assert canvas.shape == (*INPUT_HW, 3)
    # The image fills one side exactly and sits top-left; the rest is padding.
    assert round(frame_hw[0] * scale) == INPUT_HW[0] or round(frame_hw[1] * scale) == INPUT_HW[1]
    window = Window(0, 0, frame_hw[1], frame_hw[0])
    frame_pts = np.array([[0, 0], [frame_hw[1] - 1, frame_hw[0] - 1], [frame_hw[1] * 0.3, frame_hw[0] * 0.7]], np.float32)
    back = unletterbox(frame_pts * scale, scale, window)
    np.testing.assert_allclose(back, frame_pts, atol=1e-3)


def test_letterbox_keeps_content_where_the_inverse_says():
    image = np.zeros((1080, 1920, 3), np.uint8)
    cv2.rectangle(image, (900, 500), (1100, 560), (255, 255, 255), -1)
    canvas, scale = letterbox(image, INPUT_HW)
    ys, xs = np.nonzero(canvas[..., 0] > 128)
    frame = unletterbox(np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.max() + 1]], np.float32), scale, Window(0, 0, 1920, 1080))
    np.testing.assert_allclose(frame, [[900, 500], [1101, 561]], atol=4)


def test_unletterbox_adds_the_window_offset():
    pts = np.array([[10.0, 20.0]], np.float32)
    np.testing.assert_allclose(unletterbox(pts, 0.5, Window(100, 200, 640, 384)), [[120.0, 240.0]])


def test_nms_keeps_the_best_of_overlapping_boxes_and_all_disjoint_ones():
    boxes = np.array([[0, 0, 100, 20], [5, 1, 100, 20], [300, 300, 50, 10], [2, 0, 98, 21]], np.float32)
    scores = np.array([0.6, 0.9, 0.5, 0.7], np.float32)
    assert nms(boxes, scores, 0.45) == [1, 2]
    assert nms(boxes, scores, 0.99) == [1, 3, 0, 2]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.45) == []


def test_decode_turns_a_heat_peak_into_box_and_corners():
    heat = np.zeros((96, 160), np.float32)
    reg = np.zeros((12, 96, 160), np.float32)
    heat[40, 50] = 0.9
    heat[40, 51] = 0.5  # a neighbour, not a local maximum
    reg[:, 40, 50] = [0.25, 0.5, np.log(100 / 4), np.log(20 / 4), -0.5, -0.5, 0.5, -0.5, 0.5, 0.5, -0.5, 0.5]
    boxes, scores, corners = decode(heat, reg, 0.3, 4)
    assert scores.tolist() == pytest.approx([0.9])
    cx, cy = (50 + 0.25) * 4, (40 + 0.5) * 4
    np.testing.assert_allclose(boxes[0], [cx - 50, cy - 10, 100, 20], rtol=1e-5)
    np.testing.assert_allclose(corners[0], [[cx - 50, cy - 10], [cx + 50, cy - 10], [cx + 50, cy + 10], [cx - 50, cy + 10]], rtol=1e-5)


def test_windows_default_to_the_whole_frame_or_the_roi_bounding_box():
    assert plan_windows(1920, 1080, INPUT_HW) == [Window(0, 0, 1920, 1080)]
    roi = [(400.5, 300), (1500, 320), (1600, 1000), (350, 990)]
    assert plan_windows(1920, 1080, INPUT_HW, roi) == [Window(350, 300, 1250, 700)]


def _covers_frame(windows, w: int, h: int) -> bool:
    covered = np.zeros((h, w), bool)
    for win in windows:
        covered[win.y : win.y + win.h, win.x : win.x + win.w] = True
    return bool(covered.all())


def test_small_plates_are_tiled_so_they_reach_the_findable_width():
    windows = plan_windows(1920, 1080, INPUT_HW, None, (100.0, 200.0))
    assert len(windows) > 1
    for w in windows:
        assert 100 * min(INPUT_HW[0] / w.h, INPUT_HW[1] / w.w) >= MIN_PLATE_INPUT_PX - 0.5
    assert _covers_frame(windows, 1920, 1080)


def test_tiling_is_capped_and_still_enlarges_very_small_plates():
    whole = min(INPUT_HW[0] / 1080, INPUT_HW[1] / 1920)
    windows = plan_windows(1920, 1080, INPUT_HW, None, (30.0, 200.0))
    assert 1 < len(windows) <= MAX_TILES
    for w in windows:
        assert min(INPUT_HW[0] / w.h, INPUT_HW[1] / w.w) >= 1.5 * whole
    assert _covers_frame(windows, 1920, 1080)


def test_plates_big_enough_need_no_tiles():
    assert plan_windows(1920, 1080, INPUT_HW, None, (150.0, 400.0)) == [Window(0, 0, 1920, 1080)]


# --------------------------------------------------------------------------- ROI with a stand-in network


class PeakModel:
    """Stands in for the ONNX session: one heat peak wherever the bright rectangle is in the letterboxed input."""

    name, version, sha256 = "stub", "0", "0" * 64
    path = Path("stub.onnx")
    sidecar = {"input": {"height": 384, "width": 640, "pad_value": 114}, "stride": 4}

    def run(self, tensor: np.ndarray):
        img = tensor[0, 0]
        heat = np.zeros((1, 1, 96, 160), np.float32)
        reg = np.zeros((1, 12, 96, 160), np.float32)
        ys, xs = np.nonzero(img > 250)
        if len(xs):
            x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            cx, cy = (x0 + x1) / 2 / 4, (y0 + y1) / 2 / 4
            i, j = int(cy), int(cx)
            heat[0, 0, i, j] = 0.95
            reg[0, :4, i, j] = [cx - j, cy - i, np.log((x1 - x0) / 4), np.log((y1 - y0) / 4)]
        return [heat, reg]


def _frame_with_plate(x: int, y: int, w: int, h: int) -> np.ndarray:
    frame = np.full((1080, 1920, 3), 60, np.uint8)
    frame[y : y + h, x : x + w] = 255
    return frame


def test_roi_crop_maps_boxes_back_to_frame_pixels():
    cal = SimpleNamespace(roi=((1000.0, 600.0), (1900.0, 600.0), (1900.0, 1060.0), (1000.0, 1060.0)), plate_width_px=None)
    det = OnnxPlateDetector(PeakModel(), 0.4, 0.45, cal)
    found = det.detect(_frame_with_plate(1400, 800, 160, 36))
    assert len(found) == 1
    assert found[0].box.iou(Box(1400, 800, 160, 36)) > 0.9


def test_boxes_centred_outside_the_roi_polygon_are_dropped():
    # A triangle whose bounding box holds the plate but whose area does not.
    cal = SimpleNamespace(roi=((0.0, 0.0), (1900.0, 0.0), (0.0, 1070.0)), plate_width_px=None)
    det = OnnxPlateDetector(PeakModel(), 0.4, 0.45, cal)
    assert det.detect(_frame_with_plate(1500, 900, 160, 36)) == []
    assert len(det.detect(_frame_with_plate(200, 200, 160, 36))) == 1


def test_boxes_of_implausible_width_for_the_calibration_are_dropped():
    cal = SimpleNamespace(roi=None, plate_width_px=(300.0, 500.0))
    det = OnnxPlateDetector(PeakModel(), 0.4, 0.45, cal)
    assert det.detect(_frame_with_plate(800, 500, 120, 30)) == []
    assert len(det.detect(_frame_with_plate(800, 500, 380, 80))) == 1


class SmallPlatesOnlyModel(PeakModel):
    """Like the committed model, misses plates wider than half its input; counts its runs."""

    def __init__(self) -> None:
        self.runs = 0

    def run(self, tensor: np.ndarray):
        self.runs += 1
        heat, reg = super().run(tensor)
        if len(np.nonzero(tensor[0, 0] > 250)[1]) and np.ptp(np.nonzero(tensor[0, 0] > 250)[1]) > 320:
            heat[:] = 0
        return [heat, reg]


def test_a_close_up_plate_is_found_by_looking_again_at_half_size():
    det = OnnxPlateDetector(SmallPlatesOnlyModel(), 0.4, 0.45)
    found = det.detect(_frame_with_plate(150, 400, 1600, 340))  # 83 % of the frame's width
    assert len(found) == 1 and found[0].box.iou(Box(150, 400, 1600, 340)) > 0.9
    assert det.model.runs == 2
    assert OnnxPlateDetector(SmallPlatesOnlyModel(), 0.4, 0.45, zoom_out=False).detect(_frame_with_plate(150, 400, 1600, 340)) == []


def test_no_second_look_when_a_plate_was_found_or_the_calibration_bounds_plate_widths():
    det = OnnxPlateDetector(SmallPlatesOnlyModel(), 0.4, 0.45)
    assert len(det.detect(_frame_with_plate(800, 500, 160, 36))) == 1 and det.model.runs == 1
    cal = SimpleNamespace(roi=None, plate_width_px=(1000.0, 1700.0))  # tiles are not needed for plates this wide
    det = OnnxPlateDetector(SmallPlatesOnlyModel(), 0.4, 0.45, cal)
    # The calibration says how wide plates are, so the frame is drawn small enough at once.
    assert len(det.detect(_frame_with_plate(150, 400, 1600, 340))) == 1 and det.model.runs == 1


class FreeSizePeakModel(PeakModel):
    """A model saved with a free input size (as the committed ones are): records the canvas sizes it was run at."""

    free_hw = ("height", "width")

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def sized(self, **dims: int) -> "FreeSizePeakModel":
        self.sizes.append((dims["height"], dims["width"]))
        return self

    def run(self, tensor: np.ndarray):
        assert tensor.shape[2:] == self.sizes[-1], "run at another size than the session was made for"
        h, w = tensor.shape[2:]
        heat, reg = super().run(np.pad(tensor, ((0, 0), (0, 0), (0, 384 - h), (0, 640 - w)), constant_values=114))
        return [heat[..., : h // 4, : w // 4], reg[..., : h // 4, : w // 4]]


def test_a_free_size_model_runs_on_a_canvas_trimmed_to_the_picture():
    model = FreeSizePeakModel()
    det = OnnxPlateDetector(model, 0.4, 0.45)
    frame = np.full((600, 800, 3), 60, np.uint8)  # 4:3, drawn 384x512 in the 384x640 input
    frame[300:340, 500:660] = 255
    found = det.detect(frame)
    assert model.sizes == [(384, 512)]
    assert len(found) == 1 and found[0].box.iou(Box(500, 300, 160, 40)) > 0.8


def test_a_calibrated_camera_draws_its_smallest_plate_at_plate_input_px():
    model = FreeSizePeakModel()
    cal = SimpleNamespace(roi=((0.0, 540.0), (1919.0, 540.0), (1919.0, 1079.0), (0.0, 1079.0)), plate_width_px=(400.0, 800.0))
    det = OnnxPlateDetector(model, 0.4, 0.45, cal)
    found = det.detect(_frame_with_plate(900, 800, 440, 96))
    scale = PLATE_INPUT_PX / 400.0  # below the 1/3 that would fit the 1920 x 540 ROI strip into 640 x 384
    assert scale < 1 / 3
    step = CANVAS_STEP
    assert model.sizes == [(-(-round(540 * scale) // step) * step, -(-round(1920 * scale) // step) * step)]
    assert len(found) == 1 and found[0].box.iou(Box(900, 800, 440, 96)) > 0.8


def test_a_plate_across_a_tile_seam_is_found_once_and_whole():
    cal = SimpleNamespace(roi=None, plate_width_px=(100.0, 200.0))
    det = OnnxPlateDetector(PeakModel(), 0.4, 0.45, cal)
    windows = det.plan(1920, 1080)[0]
    assert len(windows) > 1
    seam = windows[0].x + windows[0].w  # the first tile's right edge, inside the frame
    found = det.detect(_frame_with_plate(seam - 80, 300, 160, 36))
    assert len(found) == 1
    assert found[0].box.iou(Box(seam - 80, 300, 160, 36)) > 0.9


def test_a_frame_of_another_size_than_the_calibration_rescales_the_roi():
    cal = SimpleNamespace(roi=((500.0, 300.0), (950.0, 300.0), (950.0, 530.0), (500.0, 530.0)), plate_width_px=None, image_size=(960, 540))
    det = OnnxPlateDetector(PeakModel(), 0.4, 0.45, cal)
    found = det.detect(_frame_with_plate(1400, 800, 160, 36))  # inside the ROI once it is scaled 2x
    assert len(found) == 1 and found[0].box.iou(Box(1400, 800, 160, 36)) > 0.9


# --------------------------------------------------------------------------- the committed model


def _synthetic_frame() -> tuple[np.ndarray, Box]:
    """A 1280x768 frame made by the project's compositor with one plate about 200 px wide."""
    from models.train import scenes

    rng = np.random.default_rng(7)
    img = scenes.random_background(rng, 384, 640)
    scenes.add_distractors(rng, img, 3, keep_out=[(250, 160, 140, 60)])
    plate, _ = scenes.make_plate_source()(rng)
    aspect = plate.shape[1] / plate.shape[0]
    quad = np.array([[270, 180], [370, 182], [370, 182 + 100 / aspect], [270, 180 + 100 / aspect]], np.float32)
    scenes.paste_plate(rng, img, plate, quad)
    x0, y0 = quad.min(0)
    x1, y1 = quad.max(0)
    frame = cv2.resize(img, (1280, 768), interpolation=cv2.INTER_LINEAR)
    return frame, Box(float(x0 * 2), float(y0 * 2), float((x1 - x0) * 2), float((y1 - y0) * 2))


@pytest.mark.parametrize("name", ["detector.onnx", "detector_int8.onnx"])
def test_committed_model_finds_a_plate_in_a_synthetic_scene(name):
    if not (MODELS_DIR / name).is_file():
        pytest.fail(f"{MODELS_DIR / name} is not committed")
    cfg = CameraConfig().with_overrides(detector={"model": name, "threshold": 0.3})
    detector = load_detector(cfg)
    frame, truth = _synthetic_frame()
    found = detector.detect(frame)
    assert found, "no plate found"
    assert max(d.box.iou(truth) for d in found) >= 0.5
    assert found == sorted(found, key=lambda d: -d.score)
    assert detector.name.startswith("onnx:detector-")
    assert list(detector.models.values())[0] and len(list(detector.models.values())[0]) == 64
    best = max(found, key=lambda d: d.box.iou(truth))
    assert best.corners is not None and len(best.corners) == 4


def test_missing_model_raises_model_error_naming_the_file(tmp_path):
    missing = tmp_path / "nowhere" / "detector.onnx"
    cfg = CameraConfig().with_overrides(detector={"model": str(missing)})
    with pytest.raises(ModelError, match=str(missing).replace(".", r"\.")):
        load_detector(cfg)


def test_a_calibration_of_another_aspect_ratio_is_warned_about(caplog):
    from edge.detect import _scaled_calibration

    cal = SimpleNamespace(roi=[(0, 0), (1279, 0), (1279, 719), (0, 719)], plate_width_px=(90.0, 220.0), image_size=(1280, 720))
    roi, widths = _scaled_calibration(cal, 1920, 1080)  # the same view, rescaled
    assert widths == (135.0, 330.0) and "aspect" not in caplog.text
    _scaled_calibration(cal, 1280, 1024)
    assert "another aspect ratio" in caplog.text


# --------------------------------------------------------------------------- awkward inputs


class NanCornersModel(PeakModel):
    """The peak model, but its corner regressions are NaN (as a broken or badly quantised model can give)."""

    def run(self, tensor: np.ndarray):
        heat, reg = super().run(tensor)
        reg[0, 4:] = np.nan
        return [heat, reg]


def test_non_finite_corners_are_dropped_and_the_plate_is_still_cropped():
    from edge.read import crop_plate

    frame = _frame_with_plate(800, 500, 160, 36)
    found = OnnxPlateDetector(NanCornersModel(), 0.4, 0.45).detect(frame)
    assert len(found) == 1 and found[0].corners is None  # the box is good, the corners are not
    crop = crop_plate(frame, found[0])
    assert 160 <= crop.shape[1] <= 200 and 36 <= crop.shape[0] <= 45  # the box and its margin


def test_an_roi_off_the_frame_falls_back_to_the_whole_frame():
    # An ROI drawn for a larger frame (no image_size to rescale it by) misses this frame entirely.
    cal = SimpleNamespace(roi=((3000.0, 3000.0), (3500.0, 3000.0), (3500.0, 3500.0)), plate_width_px=None)
    found = OnnxPlateDetector(PeakModel(), 0.4, 0.45, cal).detect(_frame_with_plate(800, 500, 160, 36))
    assert len(found) == 1 and found[0].box.iou(Box(800, 500, 160, 36)) > 0.9


def test_a_wide_strip_of_small_plates_is_still_capped_at_max_tiles():
    # A 4K gantry camera's ROI: a strip across the frame, too low for the tiles to grow in height.
    roi = [(0, 1000), (3840, 1000), (3840, 1200), (0, 1200)]
    windows = plan_windows(3840, 2160, (448, 800), roi, (20.0, 40.0))
    assert 1 < len(windows) <= MAX_TILES
    strip = [Window(w.x, w.y - 1000, w.w, w.h) for w in windows]
    assert _covers_frame(strip, 3840, 200)


@pytest.mark.parametrize("widths", [(0.0, 100.0), (-20.0, 100.0), (60.0, 30.0), (float("nan"), 100.0)])
def test_plate_widths_that_cannot_plan_tiles_are_refused_naming_them(widths):
    with pytest.raises(ValueError, match=r"plate_width_px"):
        plan_windows(1920, 1080, INPUT_HW, None, widths)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_a_heat_map_cell_that_is_not_finite_is_no_plate_and_hides_none(bad):
    heat = np.zeros((96, 160), np.float32)
    reg = np.zeros((12, 96, 160), np.float32)
    heat[40, 50] = 0.9  # a real plate
    heat[40, 51] = bad  # beside it, what a broken or badly quantised model may give
    heat[10, 100] = bad  # and alone
    boxes, scores, _ = decode(heat, reg, 0.3, 4)
    assert scores.tolist() == pytest.approx([0.9])
