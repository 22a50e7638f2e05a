"""Track -> Read: the record of one vehicle pass and its imagery, all from the frame of the chosen reading.

    read = build_read(track, cfg, models={"detector": "detector.onnx@<sha256>"}, clock_synced=True)
    read.record   # unsigned, JSON-ready, schema edge/schema/read.schema.json; holds each image's SHA-256
    read.images   # {"patch": jpeg, "overview": jpeg}, as the camera's imagery level allows

Imagery follows UK police practice (NASPLE; the Met's DPIA of the TfL feed): a plate
patch at native resolution (a few kB) and a small overview of the scene (about 25 kB
at the defaults: 640 px wide, JPEG quality 60). Bystanders' faces and other vehicles' plates in
the overview are pixelated before encoding (`edge.redaction`), never the plate being read. What each
subscriber then receives is decided per feed by `edge.privacy.FeedRouter`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edge import __version__
from edge.config import CameraConfig, ImageryLevel
from edge.record import SCHEMA_ID, SCHEMA_VERSION, image_entry, iso_ms, model_entries, read_id_for
from edge.redaction import MIN_FACE_PX, BystanderDetector, FaceDetector, redact
from edge.types import Box, TrackResult

PATCH = "patch"
OVERVIEW = "overview"


@dataclass(frozen=True)
class Read:
    """One vehicle pass ready for the feeds: an unsigned record and the images it names by hash."""

    record: dict[str, Any]
    images: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def read_id(self) -> str:
        return str(self.record["read_id"])


def detection_width(cfg: CameraConfig) -> int:
    """Width at which faces are searched for: the cascade's smallest face (24 px) there is
    `redact_min_face_px` in the overview. At the default 12 px (twice the overview's width),
    faces too small to be found are too small to recognise in the overview anyway."""
    return round(cfg.imagery.overview_width * MIN_FACE_PX / cfg.imagery.redact_min_face_px)


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    if not ok:  # pragma: no cover - OpenCV fails only on empty or odd images
        raise ValueError(f"cannot encode a {image.shape} image as JPEG")
    return buf.tobytes()


def _clip_rect(x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer (x, y, w, h) covering the float rectangle, clipped to the image (at least 1 x 1)."""
    xa, ya = max(0, min(width - 1, math.floor(x0))), max(0, min(height - 1, math.floor(y0)))
    xb, yb = max(xa + 1, min(width, math.ceil(x1))), max(ya + 1, min(height, math.ceil(y1)))
    return xa, ya, xb - xa, yb - ya


def plate_patch(image: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """The plate box grown by `margin` of its size on each side, at the frame's own resolution."""
    h, w = image.shape[:2]
    x, y, bw, bh = _clip_rect(box.x - margin * box.w, box.y - margin * box.h,
                              box.x + box.w * (1 + margin), box.y + box.h * (1 + margin), w, h)
    return image[y : y + bh, x : x + bw]


def overview_image(
    image: np.ndarray, plate: Box, cfg: CameraConfig, detector: BystanderDetector | None = None,
    others: tuple[Box, ...] | list[Box] = (),
) -> tuple[np.ndarray, int, bool]:
    """The scaled overview with bystanders redacted (per config): their faces, and `others`, the other
    vehicles' plates found in the frame. Returns (image, regions redacted, searched)."""
    h, w = image.shape[:2]
    width = min(w, cfg.imagery.overview_width)
    f = width / w
    small = cv2.resize(image, (width, max(1, round(h * f))), interpolation=cv2.INTER_AREA) if f < 1 else image.copy()
    if not cfg.imagery.redact_bystanders:
        return small, 0, False
    sh, sw = small.shape[:2]
    keep = [_clip_rect(plate.x * f, plate.y * f, (plate.x + plate.w) * f, (plate.y + plate.h) * f, sw, sh)]
    detector = detector or FaceDetector(max_width=detection_width(cfg))
    # Detect on the full frame (the detector scales it down to its own working size), redact the overview.
    found = [*detector.detect(image), *((b.x, b.y, b.w, b.h) for b in others)]
    scaled = [(round(x * f), round(y * f), max(1, round(bw * f)), max(1, round(bh * f))) for x, y, bw, bh in found]
    redacted, n = redact(small, scaled, keep)
    return redacted, n, True


def _calibration_entry(calibration: Any) -> dict[str, Any] | None:
    """Which calibration was in force: its file name and hash where the object says them."""
    if calibration is None:
        return None
    keys = ("name", "file", "sha256")
    if isinstance(calibration, dict):
        return {k: str(calibration[k]) for k in keys if calibration.get(k) is not None}
    return {k: str(getattr(calibration, k)) for k in keys if getattr(calibration, k, None) is not None}


def _corners(track: TrackResult) -> list[list[float]] | None:
    corners = track.best.detection.corners
    return None if corners is None else [[round(float(x), 1), round(float(y), 1)] for x, y in corners]


def _speed(track: TrackResult) -> dict[str, Any] | None:
    if track.speed_kmh is None:
        return None
    unc = track.speed_uncertainty_kmh
    return {"kmh": round(float(track.speed_kmh), 1), "uncertainty_kmh": None if unc is None else round(float(unc), 1)}


def _wrong_way(calibration: Any, track: TrackResult) -> bool | None:
    if calibration is None or getattr(calibration, "travel_direction", None) is None:
        return None
    from edge.calibrate.scene import is_wrong_way

    return is_wrong_way(calibration, track.direction.value)


def build_read(
    track: TrackResult,
    cfg: CameraConfig,
    *,
    models: dict[str, str],
    calibration: Any = None,
    clock_synced: bool | None = None,
    processing_ms: float | None = None,
    detector: BystanderDetector | None = None,
) -> Read:
    """The record and imagery of one finished track.

    `models` maps each model's role to "NAME@SHA256" (see `edge.record.model_entries`).
    `clock_synced` says whether the unit's clock was synchronised (None: unknown).
    Imagery comes only from `track.best`, the frame whose reading agreed with the vote.
    """
    best = track.best
    frame, box, reading = best.frame, best.detection.box, track.reading
    level = cfg.imagery.level
    images: dict[str, bytes] = {}
    entries: dict[str, dict[str, Any]] = {}
    redaction = {"applied": False, "detector": None, "regions": 0}
    if level in (ImageryLevel.PATCH, ImageryLevel.OVERVIEW):
        patch = plate_patch(frame.image, box, cfg.imagery.patch_margin)
        images[PATCH] = encode_jpeg(patch, cfg.imagery.patch_jpeg_quality)
        entries[PATCH] = image_entry(images[PATCH], patch.shape[1], patch.shape[0])
    if level is ImageryLevel.OVERVIEW:
        det = detector or FaceDetector(max_width=detection_width(cfg))
        overview, regions, searched = overview_image(frame.image, box, cfg, det, best.others)
        images[OVERVIEW] = encode_jpeg(overview, cfg.imagery.overview_jpeg_quality)
        entries[OVERVIEW] = image_entry(images[OVERVIEW], overview.shape[1], overview.shape[0])
        redaction = {"applied": searched, "detector": det.name if searched else None, "regions": regions}

    cam = cfg.camera
    record: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "read_id": read_id_for(cam.id, track.first_seen, track.track_id),
        "feed": "reads",
        "feed_kind": "full",
        "camera_id": cam.id,
        "site_id": cam.site_id,
        "location": {"latitude": cam.latitude, "longitude": cam.longitude},
        "heading_deg": cam.heading_deg,
        "lane": track.lane,
        "direction": track.direction.value,
        "wrong_way": _wrong_way(calibration, track),
        "timestamp": iso_ms(frame.timestamp),
        "times": {
            "first_seen": iso_ms(track.first_seen),
            "last_seen": iso_ms(track.last_seen),
            "best_frame": iso_ms(frame.timestamp),
            "clock_synced": clock_synced,
        },
        "plate": reading.text,
        "country": reading.country,
        "plate_format": reading.plate_format,
        "confidence": round(float(reading.confidence), 4),
        "char_confidences": [round(float(c), 4) for c in reading.char_confidences],
        "alternatives": [
            {"plate": a.text, "confidence": round(float(a.confidence), 4)}
            for a in reading.alternatives[: cfg.reader.max_alternatives]
        ],
        "colour": reading.colour.value,
        "band": reading.band.value,
        "plate_box": box.as_list(),
        "plate_corners": _corners(track),
        "frame_size": [frame.width, frame.height],
        "frames": track.frames,
        "speed": _speed(track),
        "models": model_entries(models),
        "reader_backend": reading.backend,
        "processing_ms": None if processing_ms is None else round(float(processing_ms), 1),
        "imagery_level": level.value,
        "images": entries,
        "redaction": redaction,
        "engine": {"name": "edge-anpr", "version": __version__},
    }
    calib = _calibration_entry(calibration)
    if calib is not None:
        record["calibration"] = calib
    return Read(record=record, images=images)
