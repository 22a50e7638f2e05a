"""Hand-made frames, tracks and configs for the record, context, privacy and signing tests.

Frames are drawn here (a textured road scene and a yellow plate written with
cv2.putText), so these tests depend on no other stage and no data files.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from edge.config import CameraConfig
from edge.types import Alternative, Box, Detection, Direction, Frame, Observation, PlateColour, PlateReading, TrackResult

T0 = datetime(2026, 11, 23, 1, 2, 3, 456789, tzinfo=timezone.utc)
SHA = "ab" * 32
MODELS = {"detector": f"detector.onnx@{SHA}", "reader": f"reader.onnx@{'cd' * 32}"}


def scene(width: int = 1920, height: int = 1080, seed: int = 0) -> np.ndarray:
    """A road-like BGR scene with enough texture that JPEG sizes are not flattered by flat colour (a fresh copy)."""
    return _scene(width, height, seed).copy()


@lru_cache(maxsize=8)
def _scene(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None, None]
    img = (np.array([120, 130, 140]) * (0.6 + 0.4 * y)).repeat(width, axis=1)
    img = img + rng.normal(0, 12, (height, width, 3))
    for _ in range(40):  # kerbs, signs, parked cars
        x0, y0 = rng.integers(0, width - 50), rng.integers(0, height - 50)
        cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + rng.integers(20, 300)), int(y0 + rng.integers(20, 200))),
                      tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    img = cv2.GaussianBlur(np.clip(img, 0, 255).astype(np.uint8), (3, 3), 0)
    return img


def draw_plate(img: np.ndarray, text: str, box: Box, colour=(0, 200, 255)) -> None:
    """A UK-style rear plate: yellow background, black characters."""
    x, y, w, h = (int(v) for v in (box.x, box.y, box.w, box.h))
    cv2.rectangle(img, (x, y), (x + w, y + h), colour, -1)
    scale = h / 30
    cv2.putText(img, text, (x + int(0.05 * w), y + int(0.8 * h)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                max(2, int(scale * 2.5)), cv2.LINE_AA)


def plate_frame(text: str = "AB12CDE", seed: int = 0) -> tuple[Frame, Box]:
    img = scene(seed=seed)
    box = Box(860, 700, 320, 70)
    cv2.rectangle(img, (760, 450), (1280, 820), (60, 60, 160), -1)  # the vehicle
    draw_plate(img, text, box)
    return Frame(image=img, timestamp=T0 + timedelta(milliseconds=400), seq=5, source="test"), box


def reading(text: str = "AB12CDE", alternatives: tuple[str, ...] = ("AB12COE",)) -> PlateReading:
    return PlateReading(
        text=text, confidence=0.93, char_confidences=tuple(0.9 for _ in text),
        alternatives=tuple(Alternative(a, 0.05) for a in alternatives),
        country="GB", plate_format="gb_current", colour=PlateColour.YELLOW, backend="test",
    )


def track(text: str = "AB12CDE", track_id: int = 7, seed: int = 0, alternatives: tuple[str, ...] = ("AB12COE",)) -> TrackResult:
    frame, box = plate_frame(text, seed)
    r = reading(text, alternatives)
    corners = ((box.x, box.y), (box.x + box.w, box.y), (box.x + box.w, box.y + box.h), (box.x, box.y + box.h))
    obs = Observation(frame=frame, detection=Detection(box=box, score=0.9, corners=corners), reading=r)
    return TrackResult(
        track_id=track_id, reading=r, best=obs, first_seen=T0, last_seen=T0 + timedelta(seconds=1), frames=6,
        direction=Direction.TOWARDS, lane="1", observations=(obs,),
    )


def config(tmp: Path, imagery: dict | None = None, **privacy) -> CameraConfig:
    """A camera config whose relative paths resolve inside `tmp`; redaction off unless `imagery` turns it on."""
    data = {
        "camera": {"id": "cam-1", "site_id": "a34-north", "latitude": 51.5, "longitude": -0.12, "heading_deg": 90.0},
        "spool": {"dir": str(tmp / "spool")},
        "imagery": {"redact_bystanders": False, **(imagery or {})},
    }
    if privacy:
        data["privacy"] = privacy
    cfg = CameraConfig.model_validate(data)
    return cfg.model_copy(update={"source_file": tmp / "camera.toml"})
