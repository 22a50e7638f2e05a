"""The data that flows between the stages of one camera's pipeline.

    capture --Frame--> detect --Detection--> read --PlateReading--> track --TrackResult--> context --> spool --> publish

Every type is a small frozen dataclass checked where it is made, so a stage can
be tested alone with hand-made inputs and a bad value fails at its source.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum

import numpy as np


_PLATE_TEXT = re.compile(r"[A-Z0-9]*")


def _check_unit(name: str, value: float) -> None:
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in pixels of the full frame: top-left corner, width, height."""

    x: float
    y: float
    w: float
    h: float

    def __post_init__(self) -> None:
        if self.w <= 0 or self.h <= 0:
            raise ValueError(f"box width and height must be positive, got w={self.w} h={self.h}")

    @property
    def area(self) -> float:
        return self.w * self.h

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def as_list(self) -> list[int]:
        return [round(self.x), round(self.y), round(self.w), round(self.h)]


Corners = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]
"""Plate corners in frame pixels: top-left, top-right, bottom-right, bottom-left."""


@dataclass(frozen=True)
class Frame:
    """One decoded image from a source. `image` is BGR uint8, height x width x 3."""

    image: np.ndarray
    timestamp: datetime
    seq: int
    source: str = ""

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            shape = getattr(img, "shape", None)
            dtype = getattr(img, "dtype", None)
            raise ValueError(f"frame image must be HxWx3 uint8 BGR, got shape {shape} dtype {dtype}")
        if self.timestamp.tzinfo is None:
            raise ValueError("frame timestamp must be timezone-aware (UTC)")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class Detection:
    """A plate found in a frame."""

    box: Box
    score: float
    corners: Corners | None = None

    def __post_init__(self) -> None:
        _check_unit("detection score", self.score)


class PlateColour(str, Enum):
    YELLOW = "yellow"  # UK rear plate
    WHITE = "white"  # UK front plate, most of Europe
    OTHER = "other"
    UNKNOWN = "unknown"


class PlateBand(str, Enum):
    """The band at a plate's left edge (edge.plates.image.plate_band)."""

    GREEN = "green"  # UK zero-emission "green flash": what clean-air-zone cameras look for
    BLUE = "blue"  # national identifier band: UK/GB, or the EU band
    NONE = "none"  # no band
    UNKNOWN = "unknown"  # grey (infrared) or too small a crop, or a car body of the band's colour around it


@dataclass(frozen=True)
class Alternative:
    text: str
    confidence: float

    def __post_init__(self) -> None:
        _check_unit("alternative confidence", self.confidence)


@dataclass(frozen=True)
class PlateReading:
    """What a reader made of one plate crop."""

    text: str
    confidence: float
    char_confidences: tuple[float, ...]
    alternatives: tuple[Alternative, ...] = ()
    country: str | None = None  # e.g. "GB", "SK"; None when no grammar matched
    plate_format: str | None = None  # e.g. "gb_current"
    colour: PlateColour = PlateColour.UNKNOWN
    backend: str = ""
    band: PlateBand = PlateBand.UNKNOWN  # from the same crop as `colour`

    def __post_init__(self) -> None:
        if not _PLATE_TEXT.fullmatch(self.text):
            raise ValueError(f"plate text must be upper-case letters and digits, got {self.text!r}")
        _check_unit("reading confidence", self.confidence)
        if len(self.char_confidences) != len(self.text):
            raise ValueError(
                f"need one confidence per character: text {self.text!r} has {len(self.text)}, "
                f"got {len(self.char_confidences)}"
            )
        for c in self.char_confidences:
            _check_unit("character confidence", c)


@dataclass(frozen=True)
class Observation:
    """One plate in one frame: where it was and what it read.

    `reading` is None when the plate was located but not read, because its track had
    already settled on a reading (reading costs more than detection).
    """

    frame: Frame
    detection: Detection
    reading: PlateReading | None
    others: tuple[Box, ...] = ()  # the frame's other plates: bystanders' plates, redacted in this one's overview


class Direction(str, Enum):
    """Direction of travel relative to the camera, from the track's motion."""

    TOWARDS = "towards"  # plate grows / moves down the image
    AWAY = "away"
    LEFT = "left"
    RIGHT = "right"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class TrackResult:
    """One vehicle pass: the voted reading of all its observations and the best one kept for imagery."""

    track_id: int
    reading: PlateReading  # voted across the track
    best: Observation  # the frame whose reading agreed best with the vote: imagery comes from here
    first_seen: datetime
    last_seen: datetime
    frames: int
    direction: Direction = Direction.UNKNOWN
    lane: str | None = None
    speed_kmh: float | None = None
    speed_uncertainty_kmh: float | None = None
    observations: tuple[Observation, ...] = field(default=(), repr=False)
    # Where the plate was in each frame of the pass (time, box): light, for speed and direction.
    path: tuple[tuple[datetime, Box], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"a track has at least one frame, got {self.frames}")
        if self.last_seen < self.first_seen:
            raise ValueError("track last_seen is before first_seen")


@dataclass(frozen=True)
class OutboundRead:
    """One read as it leaves on one feed: spooled durably, then published, deleted on acknowledgement."""

    read_id: str  # unique per vehicle pass, stable across retries
    feed: str  # feed name from the privacy policy; the full feed is "reads"
    record: bytes  # the signed JSON record, UTF-8
    images: dict[str, bytes]  # e.g. {"patch": jpeg, "overview": jpeg}; empty when the feed carries none
    created_at: datetime


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
