"""Plate readers behind one interface, crop_plate, the model input, and `edge read --crops --json`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main as edge_main
from edge.config import CameraConfig, MODELS_DIR
from edge.errors import ModelError
from edge.plates.image import batch_input, is_two_line, plate_colour, plate_input
from edge.read import OnnxReader, TesseractReader, crop_plate, load_reader
from edge.types import Box, Detection, PlateColour, PlateReading
from models.train.render import random_plate

MODEL = MODELS_DIR / "reader.onnx"
needs_model = pytest.mark.skipif(not MODEL.is_file(), reason="models/reader.onnx not built")
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract program not installed")

# Clean, front-on plates of several formats; the reader must read nearly all of them exactly.
CLEAN = [("GB", "AB12CDE", "yellow"), ("GB", "KX68LMN", "white"), ("GB", "P452RTW", "yellow"),
         ("SK", "BA302CZ", "white"), ("DE", "MZG4821", "white"), ("ES", "4821BCD", "white")]


def _plates(lines: int = 1) -> list:
    rng = np.random.default_rng(11)
    return [random_plate(rng, c, text=t, colour=col, lines=lines, height_px=80) for c, t, col in CLEAN]


@pytest.fixture(scope="module")
def reader():
    if not MODEL.is_file():
        pytest.skip("models/reader.onnx not built")
    # A camera that expects these countries' plates (GB first): each plate is then read in its own format.
    return load_reader(CameraConfig().with_overrides(reader={"countries": ("GB", "SK", "DE", "ES")}))


@needs_model
def test_gb_camera_prefers_gb_formats():
    gb_only = load_reader(CameraConfig())
    readings = gb_only.read([p.image for p in _plates()[:3]])
    assert [r.text for r in readings] == [t for _, t, _ in CLEAN[:3]]
    assert all(r.country == "GB" for r in readings)
    assert readings[0].plate_format == "gb_current" and readings[2].plate_format == "gb_prefix"


@needs_model
def test_onnx_reader_reads_rendered_plates(reader):
    readings = reader.read([p.image for p in _plates()])
    assert all(isinstance(r, PlateReading) for r in readings)
    assert sum(r.text == p.text for r, p in zip(readings, _plates())) >= len(CLEAN) - 1, [r.text for r in readings]
    # Every reading fits a configured format; where formats overlap (4821BCD is also a GB dateless
    # mark) the first configured country wins, so only the unambiguous Slovak plate is checked by name.
    assert all(r.country in ("GB", "SK", "DE", "ES") for r in readings)
    assert readings[3].country == "SK"
    gb = readings[0]
    assert gb.backend == reader.name and reader.name.startswith("onnx:reader-")
    assert gb.colour is PlateColour.YELLOW and readings[1].colour is PlateColour.WHITE
    assert len(gb.char_confidences) == len(gb.text) and 0.0 <= gb.confidence <= 1.0
    confs = [gb.confidence] + [a.confidence for a in gb.alternatives]
    assert confs == sorted(confs, reverse=True) and gb.text not in [a.text for a in gb.alternatives]
    assert set(reader.models) == {"reader.onnx"} and len(reader.models["reader.onnx"]) == 64


@needs_model
def test_onnx_reader_reads_two_line_plates(reader):
    readings = reader.read([p.image for p in _plates(lines=2)[:3]])
    assert sum(r is not None and r.text == t for r, (_, t, _) in zip(readings, CLEAN)) >= 2


def test_only_plates_that_may_be_dark_are_retried_negated():
    rng = np.random.default_rng(5)
    light = [random_plate(rng, "GB", text="AB12CDE", colour=c, height_px=60).image for c in ("yellow", "white")]
    dark = [random_plate(rng, "GB", text="AB12CDE", colour="black", height_px=60).image]
    from edge.read import _may_be_dark

    assert _may_be_dark(batch_input(light + dark, 32, 128)).tolist() == [False, False, True]


@needs_model
def test_reads_light_characters_on_a_dark_plate(reader):
    rng = np.random.default_rng(6)
    plate = random_plate(rng, "GB", text="KX68LMN", colour="black", height_px=80)
    assert reader.read([plate.image])[0].text == "KX68LMN"


@needs_model
def test_reads_plates_whose_light_and_dark_are_swapped(reader):
    # Negatives of white plates that the model, trained mostly on dark characters, reads as confident
    # nonsense fitting a format (EG68RAM as 66A, NS20VON as NS0Y0N): that must not stop the negated look.
    plates = [random_plate(np.random.default_rng(seed), "GB", colour="white", height_px=60) for seed in (18, 22, 24, 35, 45)]
    readings = reader.read([255 - p.image for p in plates])
    assert [r.text if r else None for r in readings] == [p.text for p in plates]


class _ScriptedModel:
    """Stands in for the ONNX model: answers each run with the next scripted text per input row."""

    def __init__(self, *runs):
        self.runs = list(runs)
        self.sidecar = {"input": {"shape": [1, 32, 128]}, "name": "scripted", "version": "0"}
        self.path, self.sha256, self.name, self.version = Path("scripted.onnx"), "0" * 64, "scripted", "0"
        self.batches = []

    def run(self, x):
        texts = self.runs.pop(0)
        self.batches.append(len(x))
        probs = np.zeros((len(x), 32, 37), np.float32)
        probs[:, :, 0] = 1.0
        for n in range(len(x)):
            text = texts[n] if n < len(texts) else ""
            for t, ch in enumerate(text):
                probs[n, 2 * t + 1, 0] = 0.0
                probs[n, 2 * t + 1, 1 + "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ".index(ch)] = 1.0
        return [probs]


def test_weak_two_line_reading_is_retried_with_other_cuts():
    from edge.read import TWO_LINE_CUTS

    square = random_plate(np.random.default_rng(3), "GB", text="AB12CDE", colour="yellow", lines=2, height_px=80).image
    # First pass: nothing legible; of the other cuts, the third reads the plate.
    model = _ScriptedModel([""], ["", "", "AB12CDE", "", ""])
    reading = OnnxReader(model, ("GB",)).read([square])[0]
    assert reading.text == "AB12CDE" and reading.plate_format == "gb_current"
    assert model.batches == [1, len(TWO_LINE_CUTS)]
    # A confident one-line reading gets no second look.
    model = _ScriptedModel(["AB12CDE"])
    assert OnnxReader(model, ("GB",)).read([square])[0].text == "AB12CDE" and model.batches == [1]


def test_two_line_cut_can_be_chosen():
    plate = random_plate(np.random.default_rng(4), "GB", text="AB12CDE", colour="white", lines=2, height_px=80).image
    assert not np.array_equal(plate_input(plate, 32, 128, 0.4), plate_input(plate, 32, 128, 0.6))


@needs_model
def test_onnx_reader_handles_empty_batches_and_unreadable_crops(reader):
    assert reader.read([]) == []
    blank = np.full((40, 160, 3), 128, np.uint8)
    out = reader.read([np.zeros((1, 1, 3), np.uint8), blank])
    assert out[0] is None
    assert out[1] is None or isinstance(out[1], PlateReading)


def test_missing_model_names_the_file(tmp_path):
    cfg = CameraConfig().with_overrides(reader={"model": tmp_path / "nope.onnx"})
    with pytest.raises(ModelError, match="nope.onnx"):
        load_reader(cfg)


@needs_tesseract
def test_tesseract_backend_same_interface():
    cfg = CameraConfig().with_overrides(reader={"backend": "tesseract"})
    reader = load_reader(cfg)
    assert isinstance(reader, TesseractReader) and reader.name == "tesseract" and reader.models == {}
    p = random_plate(np.random.default_rng(3), "GB", text="AB12CDE", colour="white", lines=1, height_px=100)
    out = reader.read([p.image, np.zeros((2, 2, 3), np.uint8)])
    assert len(out) == 2 and out[1] is None
    assert out[0] is None or (isinstance(out[0], PlateReading) and out[0].backend == "tesseract")


def test_crop_plate_box_margin_and_clipping():
    img = np.zeros((100, 200, 3), np.uint8)
    crop = crop_plate(img, Detection(Box(50, 40, 100, 20), 0.9), margin=0.1)
    assert crop.shape[:2] == (24, 120)
    edge = crop_plate(img, Detection(Box(190, 90, 30, 20), 0.9), margin=0.0)
    assert edge.shape[:2] == (10, 10)


def test_crop_plate_rectifies_with_corners():
    # A plate drawn as a skewed quadrilateral comes back as an upright rectangle.
    img = np.zeros((200, 300, 3), np.uint8)
    quad = np.float32([[60, 80], [240, 60], [240, 110], [60, 130]])
    cv2.fillPoly(img, [quad.astype(np.int32)], (255, 255, 255))
    det = Detection(Box(60, 60, 180, 70), 0.9, corners=tuple(map(tuple, quad.tolist())))
    crop = crop_plate(img, det, margin=0.0)
    assert crop.shape[1] > 3 * crop.shape[0]
    assert crop[crop.shape[0] // 2].mean() > 200  # all plate, no black background across the middle row


def test_model_input_splits_two_line_plates_side_by_side():
    two = random_plate(np.random.default_rng(1), "GB", text="AB12CDE", lines=2, height_px=100).image
    one = random_plate(np.random.default_rng(1), "GB", text="AB12CDE", lines=1, height_px=60).image
    assert is_two_line(two) and not is_two_line(one)
    x = plate_input(two, 32, 128)
    assert x.shape == (32, 128) and x.dtype == np.float32 and -1.0 <= x.min() and x.max() <= 1.0


def test_plate_colour():
    yellow = np.full((30, 120, 3), (20, 200, 250), np.uint8)
    white = np.full((30, 120, 3), (235, 238, 240), np.uint8)
    grey = np.full((30, 120, 3), 200, np.uint8)
    assert plate_colour(yellow) is PlateColour.YELLOW
    assert plate_colour(white) is PlateColour.WHITE
    assert plate_colour(grey) is PlateColour.UNKNOWN  # an infrared image carries no colour


@needs_model
def test_cli_read_crops_json(tmp_path, capsys):
    for i, p in enumerate(_plates()[:2]):
        cv2.imwrite(str(tmp_path / f"plate{i}.png"), p.image)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    rc = edge_main(["read", "--crops", "--json", str(tmp_path)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 1  # one file could not be read
    objs = [json.loads(line) for line in lines]
    assert [Path(o["image"]).name for o in objs] == ["broken.jpg", "plate0.png", "plate1.png"]
    assert "error" in objs[0]
    for o in objs[1:]:
        assert set(o) >= {"image", "width", "height", "plates", "ms"} and o["ms"] > 0
        assert len(o["plates"]) <= 1
        for plate in o["plates"]:
            assert plate["box"] == [0, 0, o["width"], o["height"]]
            assert plate["text"].isalnum() and 0 <= plate["confidence"] <= 1


@needs_model
def test_cli_read_crops_all_good_exit_zero(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "a.png"), _plates()[0].image)
    assert edge_main(["read", "--crops", "--json", str(tmp_path / "a.png")]) == 0
    (obj,) = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert obj["plates"][0]["text"] == "AB12CDE"


SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


@pytest.mark.shared_data
@needs_model
def test_reads_real_european_test_crops():
    """A regression guard on real plates (the figures that count are in models/reader.md)."""
    if not (SHARED / "openalpr_benchmarks_eu").is_dir():
        pytest.skip("../shared/datasets not present")
    from models.train.reader_data import exact_crop, real_crops

    crops = [c for c in real_crops(SHARED, "test") if c.dataset == "openalpr_benchmarks_eu"]
    reader = load_reader(CameraConfig().with_overrides(reader={"countries": ("SK", "CZ")}))
    readings = reader.read([exact_crop(c) for c in crops])
    exact = sum(r is not None and r.text == c.text for r, c in zip(readings, crops))
    assert len(crops) >= 20 and exact >= 0.85 * len(crops)


def test_a_two_line_crop_two_pixels_high_still_makes_a_model_input():
    # The split between the lines must leave a row on each side, or the resize of the empty half fails.
    x = plate_input(np.array([[200, 200, 200], [0, 0, 0]], np.uint8), 32, 128)
    assert x.shape == (32, 128) and np.isfinite(x).all()


def test_plate_colour_of_bgra_and_16_bit_crops():
    # Crops of a PNG with alpha or of a 16-bit image, handed to a reader by an integrator's code.
    yellow = np.full((30, 120, 3), (20, 200, 250), np.uint8)
    assert plate_colour(cv2.cvtColor(yellow, cv2.COLOR_BGR2BGRA)) is PlateColour.YELLOW
    assert plate_colour(yellow.astype(np.uint16) << 8) is PlateColour.YELLOW


@pytest.mark.parametrize(
    "corners",
    [
        ((60, 60), (240, 60), (60, 110), (240, 110)),  # self-crossing: bottom corners swapped
        ((240, 60), (60, 60), (60, 110), (240, 110)),  # mirrored: the crop would read right to left
        ((60, 60), (150, 60), (240, 60), (60, 110)),  # three corners on one line
    ],
    ids=["self-crossing", "mirrored", "degenerate"],
)
def test_crop_plate_cuts_the_box_when_the_corners_are_not_a_plate_shape(corners):
    img = np.zeros((200, 300, 3), np.uint8)
    img[60:110, 60:240] = 255
    img[60:110, 60:70] = 128  # the plate's left end, to tell a mirrored crop
    det = Detection(Box(60, 60, 180, 50), 0.9, corners=tuple((float(x), float(y)) for x, y in corners))
    crop = crop_plate(img, det, margin=0.0)
    np.testing.assert_array_equal(crop, img[60:110, 60:240])


class _BrokenModel(_ScriptedModel):
    """Reads 'AB12CDE' everywhere, but one frame of the output is NaN or inf (a broken or badly quantised model)."""

    def __init__(self, bad: float):
        super().__init__(*[["AB12CDE"]] * 3)
        self.bad = bad

    def run(self, x):
        self.runs.append(["AB12CDE"] * len(x))
        probs = super().run(x)[0]
        probs[:, 3, 2] = self.bad
        return [probs]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_reader_output_that_is_not_finite_reads_nothing(bad):
    crop = random_plate(np.random.default_rng(5), "GB", text="AB12CDE", colour="white", height_px=40).image
    assert OnnxReader(_BrokenModel(bad), ("GB",)).read([crop]) == [None]


def test_a_grey_crop_with_a_channel_axis_reads_like_a_grey_crop():
    plate = random_plate(np.random.default_rng(6), "GB", text="AB12CDE", colour="white", height_px=40).image
    grey = cv2.cvtColor(plate, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(plate_input(grey[..., None], 32, 128), plate_input(grey, 32, 128))
    assert plate_colour(grey[..., None]) is PlateColour.UNKNOWN


def test_stretch_of_8_bit_pixels_is_numpys_percentile_stretch_bit_for_bit():
    # The reader was trained on np.percentile's stretch; the histogram shortcut must not move a pixel.
    from edge.plates.image import _stretch

    rng = np.random.default_rng(3)
    cases = [rng.integers(0, 256, (32, 128)), rng.integers(90, 140, (17, 61)), np.full((5, 9), 77)]
    cases += [np.where(rng.random((32, 128)) < 0.02, 255, 10), rng.integers(0, 256, (1, 1))]
    for grey in cases:
        grey = grey.astype(np.uint8)
        lo, hi = np.percentile(grey, (2, 98))
        expected = np.clip((grey.astype(np.float32) - float(lo)) * (2.0 / max(float(hi - lo), 16.0)) - 1.0, -1.0, 1.0)
        got = _stretch(grey)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("text, legible", [("27", False), ("K0", False), ("A1", True), ("7Q7Q", True)])
def test_a_short_reading_that_fits_no_format_is_not_a_plate(monkeypatch, text, legible):
    # "27" and "K0" fit no GB format: a badge or a stray mark. "A1" is a GB dateless plate; four or
    # more characters may be a foreign plate, so they are kept whatever their format.
    import edge.read

    monkeypatch.setattr(edge.read, "_may_be_dark", lambda x: np.zeros(len(x), bool))
    plate = random_plate(np.random.default_rng(8), "GB", text="AB12CDE", colour="white", height_px=40).image
    reading = OnnxReader(_ScriptedModel([text]), ("GB",)).read([plate])[0]
    assert (reading.text if reading else None) == (text if legible else None)


@pytest.mark.parametrize("may_be_dark, runs", [(True, [1, 1]), (False, [1])])
def test_every_plate_that_may_be_dark_is_read_negated_too(monkeypatch, may_be_dark, runs):
    # Even a confident reading that fits a format: light characters on a dark face can read as such.
    import edge.read

    monkeypatch.setattr(edge.read, "_may_be_dark", lambda x: np.full(len(x), may_be_dark))
    plate = random_plate(np.random.default_rng(8), "GB", text="AB12CDE", colour="white", height_px=40).image
    model = _ScriptedModel(["AB12CDE"], ["AB12CDE"])
    assert OnnxReader(model, ("GB",)).read([plate])[0].text == "AB12CDE"
    assert model.batches == runs


@pytest.mark.parametrize("colour, runs", [("yellow", [1]), ("white", [1, 1])])
def test_a_weak_yellow_plate_is_not_read_negated(monkeypatch, colour, runs):
    # Yellow faces are light: the negated pass is for light characters on a dark face.
    import edge.read

    monkeypatch.setattr(edge.read, "_may_be_dark", lambda x: np.ones(len(x), bool))
    plate = random_plate(np.random.default_rng(8), "GB", text="AB12CDE", colour=colour, height_px=40).image
    model = _ScriptedModel([""], [""])  # nothing legible either way: a weak reading
    OnnxReader(model, ("GB",)).read([plate])
    assert model.batches == runs


def test_colour_order_statistics_are_numpys():
    from edge.plates.image import _kth_smallest_u8, _median_u8

    rng = np.random.default_rng(12)
    for n in (1, 2, 3, 4, 1229, 2048):
        for values in (rng.integers(0, 256, n), rng.integers(100, 104, n), np.full(n, 255)):
            values = values.astype(np.uint8)
            assert _median_u8(values) == float(np.median(values))
            k = int(n * 0.6)
            assert _kth_smallest_u8(values, k) == np.partition(values, k)[k]


def test_batch_input_is_each_crops_model_input():
    rng = np.random.default_rng(13)
    crops = [random_plate(rng, "GB", colour=c, lines=lines, height_px=h).image
             for c, lines, h in (("yellow", 1, 40), ("white", 2, 80), ("white", 1, 25))]
    batch = batch_input(crops, 32, 128)
    assert batch.shape == (3, 1, 32, 128) and batch.dtype == np.float32
    for crop, x in zip(crops, batch):
        np.testing.assert_array_equal(x[0], plate_input(crop, 32, 128))
    with pytest.raises(ValueError, match="no crops"):
        batch_input([], 32, 128)


def test_a_weak_reading_works_out_its_plate_colour_once(monkeypatch):
    # The colour decides the negated second look and goes into the reading: one estimate serves both.
    import edge.read

    calls = []
    monkeypatch.setattr(edge.read, "_may_be_dark", lambda x: np.ones(len(x), bool))
    monkeypatch.setattr(edge.read, "plate_colour", lambda crop: calls.append(crop) or PlateColour.WHITE)
    plate = random_plate(np.random.default_rng(8), "GB", text="AB12CDE", colour="white", height_px=40).image
    model = _ScriptedModel(["AB1XCDE"], ["AB1XCDE"])  # fits no format: weak, read negated, no better
    reading = OnnxReader(model, ("GB",)).read([plate])[0]
    assert model.batches == [1, 1]
    assert reading.text == "AB1XCDE" and reading.colour is PlateColour.WHITE and len(calls) == 1


@needs_model
def test_cli_read_holds_opencv_to_the_detector_threads(tmp_path, capsys):
    """`ms` is meant as one camera's time: OpenCV may not spread an image's work over every core."""
    cv2.imwrite(str(tmp_path / "a.png"), _plates()[0].image)
    before = cv2.getNumThreads()
    cv2.setNumThreads(7)
    try:
        assert edge_main(["read", "--crops", "--json", str(tmp_path / "a.png")]) == 0
        assert cv2.getNumThreads() == 1  # the default configuration's detector.threads
    finally:
        cv2.setNumThreads(before)
