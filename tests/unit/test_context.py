"""Track -> Read: imagery from the chosen frame, at the configured sizes, named by hash in the record."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from edge.context import build_read, plate_patch
from edge.types import Box
from tests.unit import read_fixtures as F


def _decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    track = F.track()
    return track, build_read(track, F.config(tmp_path_factory.mktemp("c")), models=F.MODELS, clock_synced=True, processing_ms=8.25)


def test_images_come_from_the_best_frame_and_match_their_hashes(built):
    track, read = built
    assert set(read.images) == {"patch", "overview"}
    for kind, data in read.images.items():
        entry = read.record["images"][kind]
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
        img = _decode(data)
        assert (entry["width"], entry["height"]) == (img.shape[1], img.shape[0])
    # The patch is the plate box plus margin at native resolution, from that frame.
    expected = plate_patch(track.best.frame.image, track.best.detection.box, 0.15)
    patch = _decode(read.images["patch"])
    assert patch.shape == expected.shape
    assert np.abs(patch.astype(int) - expected.astype(int)).mean() < 6  # JPEG noise only


def test_overview_has_the_configured_width_and_stays_small(built):
    _, read = built
    overview = _decode(read.images["overview"])
    assert overview.shape[1] == 640 and overview.shape[0] == 360
    assert len(read.images["overview"]) < 40_000  # about 25 kB is the target for real scenes


def test_record_carries_the_track_and_camera_facts(built):
    track, read = built
    r = read.record
    assert r["plate"] == "AB12CDE" and r["colour"] == "yellow" and r["country"] == "GB"
    assert r["times"] == {
        "first_seen": "2026-11-23T01:02:03.456Z", "last_seen": "2026-11-23T01:02:04.456Z",
        "best_frame": "2026-11-23T01:02:03.856Z", "clock_synced": True,
    }
    assert r["timestamp"] == r["times"]["best_frame"]
    assert r["location"] == {"latitude": 51.5, "longitude": -0.12} and r["heading_deg"] == 90.0
    assert r["plate_box"] == [860, 700, 320, 70] and r["frame_size"] == [1920, 1080] and r["frames"] == 6
    assert r["plate_corners"][2] == [1180.0, 770.0] and r["direction"] == "towards" and r["lane"] == "1"
    assert r["alternatives"] == [{"plate": "AB12COE", "confidence": 0.05}]
    assert r["processing_ms"] == round(8.25, 1)
    assert [m["role"] for m in r["models"]] == ["detector", "reader"]


@pytest.mark.parametrize("level,kinds", [("none", set()), ("patch", {"patch"}), ("patch_and_overview", {"patch", "overview"})])
def test_imagery_level_decides_what_is_made(tmp_path, level, kinds):
    read = build_read(F.track(), F.config(tmp_path, imagery={"level": level}), models=F.MODELS)
    assert set(read.images) == kinds and set(read.record["images"]) == kinds
    assert read.record["imagery_level"] == level


def test_patch_is_clipped_at_the_frame_edge():
    img = np.zeros((100, 200, 3), np.uint8)
    assert plate_patch(img, Box(150, 80, 60, 30), 0.2).shape == (100 - 74, 200 - 138, 3)


def test_calibration_is_named_when_given(tmp_path):
    class Cal:
        file, sha256 = "cam-1.toml", "ef" * 32

    read = build_read(F.track(), F.config(tmp_path, imagery={"level": "none"}), models=F.MODELS, calibration=Cal())
    assert read.record["calibration"] == {"file": "cam-1.toml", "sha256": "ef" * 32}


def test_faces_are_searched_at_a_width_set_by_the_smallest_face(tmp_path):
    from edge.context import detection_width

    assert detection_width(F.config(tmp_path)) == 1280  # 24 px cascade window = 12 px in a 640 px overview
    assert detection_width(F.config(tmp_path, imagery={"redact_min_face_px": 24})) == 640


def test_a_pass_against_the_calibrated_direction_is_flagged_wrong_way(tmp_path):
    from dataclasses import replace

    from edge.calibrate.file import Calibration
    from edge.types import Direction

    track = replace(F.track(), direction=Direction.AWAY)
    cfg = F.config(tmp_path, imagery={"level": "none"})
    assert build_read(track, cfg, models=F.MODELS, calibration=Calibration(travel_direction="towards")).record["wrong_way"] is True
    assert build_read(track, cfg, models=F.MODELS, calibration=Calibration(travel_direction="away")).record["wrong_way"] is False
    assert build_read(track, cfg, models=F.MODELS).record["wrong_way"] is None


class _NoFaces:
    name = "none"

    def detect(self, image):
        return []


@pytest.mark.parametrize("redact", [True, False])
def test_other_vehicles_plates_are_pixelated_in_the_overview_when_bystanders_are_redacted(tmp_path, redact):
    from edge.context import overview_image

    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (720, 1280, 3)).astype(np.uint8)  # fine detail everywhere: pixelation shows
    plate, other = Box(200, 500, 160, 36), Box(900, 420, 150, 34)
    cfg = F.config(tmp_path, imagery={"overview_width": 1280, "redact_bystanders": redact})
    out, regions, _ = overview_image(image, plate, cfg, _NoFaces(), others=(other,))
    changed = (out.astype(int) != image.astype(int)).any(axis=2)
    assert changed[420:454, 900:1050].mean() > (0.9 if redact else -1) and regions == (1 if redact else 0)
    if not redact:
        assert not changed.any()
    assert not changed[500:536, 200:360].any()  # the plate being read stays exactly as captured


def test_each_observation_carries_the_frames_other_plates(tmp_path):
    from types import SimpleNamespace

    from edge.camera import Camera
    from edge.exposure import ExposureWatch
    from edge.pipeline import PlateResult
    from edge.types import Detection

    a, b = Detection(Box(10, 10, 100, 25), 0.9), Detection(Box(400, 300, 90, 22), 0.8)
    seen = []
    cam = Camera.__new__(Camera)  # the frame loop alone: a stand-in pipeline and tracker
    cam.gate, cam.stats = None, SimpleNamespace(frames=1, detections=0, recent_ms=[], frame_ms=0.0, fps=0.0, still_frames=0)
    cam.exposure = ExposureWatch("test")
    cam.pipeline = SimpleNamespace(process=lambda image, skip: [PlateResult(a, F.track().reading), PlateResult(b, None, True)])
    cam.tracker = SimpleNamespace(open_tracks=0, is_settled=lambda box, t: False,
                                  update=lambda t, obs, size=None: seen.extend(obs) or [])
    frame = F.track().best.frame
    cam._process(frame)
    assert [o.others for o in seen] == [(b.box,), (a.box,)]
