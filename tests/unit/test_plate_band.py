"""The band at a plate's left (green zero-emission flash, blue identifier band, none) and where it is published.

Crops are drawn here (a plate on a car body, cut by edge.read.crop_plate as the reader gets it),
or rendered by the project's renderer; no data files.
"""

from __future__ import annotations

import dataclasses
import json
import os

import cv2
import jsonschema
import numpy as np
import pytest

from edge.cli.read import _plate_json
from edge.context import build_read
from edge.plates.image import BAND_MIN_HEIGHT, plate_band
from edge.privacy import FeedRouter
from edge.read import crop_plate
from edge.record import load_schema
from edge.signing import Signer
from edge.track import vote
from edge.types import Box, Detection, PlateBand, PlateColour, PlateReading
from tests.unit import read_fixtures as F

GREEN_FLASH = (80, 160, 0)  # BGR, as the renderer draws it
UK_BLUE = (153, 51, 0)
PLATE = Box(120, 80, 360, 80)  # 4.5 : 1, a UK one-line plate


def _scene(body=(110, 110, 110), band=None, face=(20, 200, 250), left_paint=None) -> np.ndarray:
    """A car body with a plate on it: `band` is the band's BGR colour (None: no band); `left_paint`
    paints the body beside the plate's left end only, from the top of the image to the bottom."""
    rng = np.random.default_rng(0)
    img = np.clip(np.array(body, np.float32) + rng.normal(0, 4, (240, 600, 3)), 0, 255).astype(np.uint8)
    if left_paint is not None:
        img[:, : int(PLATE.x)] = left_paint
    x, y, w, h = (int(v) for v in (PLATE.x, PLATE.y, PLATE.w, PLATE.h))
    cv2.rectangle(img, (x, y), (x + w, y + h), face, -1)
    text_x = x + int(0.08 * w)
    if band is not None:
        bw = int(0.38 * h)
        cv2.rectangle(img, (x, y), (x + bw, y + h), band, -1)
        cv2.putText(img, "UK", (x + 3, y + int(0.85 * h)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (240, 240, 240), 1)
        text_x = x + bw + int(0.05 * w)
    cv2.putText(img, "AB12 CDE", (text_x, y + int(0.8 * h)), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (20, 20, 20), 6)
    return img


def _crop(scene: np.ndarray) -> np.ndarray:
    """The crop the reader gets: the detection's box with crop_plate's margin around it."""
    return crop_plate(scene, Detection(PLATE, 0.9))


@pytest.mark.parametrize("band, expected", [(GREEN_FLASH, PlateBand.GREEN), (UK_BLUE, PlateBand.BLUE), (None, PlateBand.NONE)])
def test_green_flash_blue_band_and_no_band_are_told_apart(band, expected):
    for face in ((20, 200, 250), (240, 240, 240)):  # rear yellow and front white
        assert plate_band(_crop(_scene(band=band, face=face))) is expected


def test_bands_are_found_through_blur_jpeg_and_a_distant_plate():
    crop = _crop(_scene(band=GREEN_FLASH))
    small = cv2.resize(crop, (crop.shape[1] * 24 // crop.shape[0], 24), interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(small, (0, 0), 0.8)
    jpeg = cv2.imdecode(cv2.imencode(".jpg", blurred, [cv2.IMWRITE_JPEG_QUALITY, 40])[1], cv2.IMREAD_COLOR)
    assert plate_band(jpeg) is PlateBand.GREEN


def test_grey_infrared_crops_and_tiny_crops_are_unknown():
    crop = _crop(_scene(band=GREEN_FLASH))
    grey = cv2.cvtColor(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert plate_band(grey) is PlateBand.UNKNOWN
    assert plate_band(grey[..., 0]) is PlateBand.UNKNOWN  # one channel
    tiny = cv2.resize(crop, (crop.shape[1] * (BAND_MIN_HEIGHT - 1) // crop.shape[0], BAND_MIN_HEIGHT - 1), interpolation=cv2.INTER_AREA)
    assert plate_band(tiny) is PlateBand.UNKNOWN
    assert plate_band(np.zeros((0, 0, 3), np.uint8)) is PlateBand.UNKNOWN


@pytest.mark.parametrize("paint", [GREEN_FLASH, (40, 120, 30), UK_BLUE])
def test_a_green_or_blue_car_body_beside_a_plain_plate_is_not_a_band(paint):
    around = _crop(_scene(body=paint))  # the whole car in the band's colour
    beside = _crop(_scene(left_paint=paint))  # only the body left of the plate
    for crop in (around, beside):
        assert plate_band(crop) in (PlateBand.NONE, PlateBand.UNKNOWN)


def test_a_green_flash_on_a_blue_car_and_a_blue_band_on_a_green_car_are_found():
    assert plate_band(_crop(_scene(body=UK_BLUE, band=GREEN_FLASH))) is PlateBand.GREEN
    assert plate_band(_crop(_scene(body=(40, 120, 30), band=UK_BLUE))) is PlateBand.BLUE


def test_a_band_the_colour_of_the_car_around_it_is_unknown_not_a_guess():
    assert plate_band(_crop(_scene(body=GREEN_FLASH, band=GREEN_FLASH))) is PlateBand.UNKNOWN


def test_dirt_and_shadow_at_the_left_of_a_plain_plate_are_not_a_band():
    scene = _scene()
    x, y, h = int(PLATE.x), int(PLATE.y), int(PLATE.h)
    shadow = scene.copy()
    shadow[:, : x + 2 * h] = (shadow[:, : x + 2 * h] * 0.35).astype(np.uint8)
    dirt = scene.copy()
    cv2.rectangle(dirt, (x, y), (x + int(0.4 * h), y + h), (40, 70, 90), -1)  # brown grime where a band would be
    for crop in (_crop(shadow), _crop(dirt)):
        assert plate_band(crop) is PlateBand.NONE


def test_bgra_and_16_bit_crops_give_the_same_band():
    crop = _crop(_scene(band=GREEN_FLASH))
    assert plate_band(cv2.cvtColor(crop, cv2.COLOR_BGR2BGRA)) is PlateBand.GREEN
    assert plate_band(crop.astype(np.uint16) << 8) is PlateBand.GREEN


def _rendered_with_band(band: str) -> tuple[np.ndarray, object]:
    """A rendered UK plate carrying `band`, put on a grey car and cut as the reader gets it."""
    from models.train.render import random_plate

    for seed in range(200):
        p = random_plate(np.random.default_rng(seed), "GB", text="AB12CDE", lines=1, height_px=60)
        if p.band == band:
            break
    else:  # pragma: no cover - the renderer draws bands on about a third of one-line UK plates
        raise AssertionError(f"no {band} band in 200 renders")
    scene = np.full((200, p.image.shape[1] + 200, 3), 100, np.uint8)
    scene[70 : 70 + p.image.shape[0], 100 : 100 + p.image.shape[1]] = p.image
    crop = crop_plate(scene, Detection(Box(100, 70, p.image.shape[1], p.image.shape[0]), 0.9))
    return crop, p


@pytest.mark.parametrize("band", ["green", "blue", "none"])
def test_the_renderers_bands_are_recognised(band):
    crop, plate = _rendered_with_band(band)
    assert plate_band(crop).value == band == plate.band


def test_the_vote_takes_band_and_colour_from_the_same_reading():
    sure = PlateReading("AB12CDE", 0.95, (0.9,) * 7, colour=PlateColour.YELLOW, band=PlateBand.GREEN)
    unsure = PlateReading("AB12CDE", 0.6, (0.9,) * 7, colour=PlateColour.WHITE, band=PlateBand.NONE)
    voted = vote([unsure, sure, unsure])
    assert (voted.colour, voted.band) == (PlateColour.YELLOW, PlateBand.GREEN)
    assert PlateReading("AB12CDE", 0.9, (0.9,) * 7).band is PlateBand.UNKNOWN  # the default keeps old constructors working


def test_the_full_and_hits_only_records_carry_the_band_and_the_pseudonymised_one_does_not(tmp_path):
    key = tmp_path / "hmac.key"
    key.write_bytes(b"k" * 32)
    os.chmod(key, 0o600)
    (tmp_path / "hot.txt").write_text("AB12CDE\n")
    cfg = F.config(tmp_path, feeds=[{"name": "reads", "kind": "full"},
                                    {"name": "hits", "kind": "hits_only", "hotlist_file": "hot.txt"},
                                    {"name": "counts", "kind": "pseudonymised", "hmac_key_file": "hmac.key"}])
    track = F.track()
    track = dataclasses.replace(track, reading=dataclasses.replace(track.reading, band=PlateBand.GREEN))
    read = build_read(track, cfg, models=F.MODELS)
    assert read.record["band"] == "green" and read.record["colour"] == "yellow"
    full, hits, pseudo = (json.loads(i.record) for i in FeedRouter(cfg, Signer.generate("cam-1")).route(read))
    validator = jsonschema.Draft202012Validator(load_schema())
    assert full["band"] == "green" and hits["band"] == "green" and hits["feed_kind"] == "hits_only"
    assert "band" not in pseudo and "green" not in json.dumps(pseudo)
    for record in (full, hits, pseudo):
        assert validator.is_valid(record), list(validator.iter_errors(record))[:1]
    assert not validator.is_valid({**full, "band": "purple"})
    assert not validator.is_valid({**pseudo, "band": "green"})  # the schema refuses it on the pseudonymised feed too


def test_edge_read_json_prints_the_band_beside_the_colour():
    reading = PlateReading("AB12CDE", 0.9, (0.9,) * 7, colour=PlateColour.WHITE, band=PlateBand.BLUE)
    plate = _plate_json(reading, [0, 0, 10, 10], None)
    assert plate["band"] == "blue" and plate["colour"] == "white"
    assert list(plate).index("band") == list(plate).index("colour") + 1


def test_readers_fill_the_band_from_the_crop():
    from edge.config import MODELS_DIR, CameraConfig
    from edge.read import load_reader

    if not (MODELS_DIR / "reader.onnx").is_file():
        pytest.skip("models/reader.onnx not built")
    reader = load_reader(CameraConfig())
    crop, plate = _rendered_with_band("green")
    (reading,) = reader.read([crop])
    assert reading is not None and reading.band is PlateBand.GREEN
    assert reading.colour.value == plate.colour
