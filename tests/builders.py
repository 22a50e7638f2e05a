"""Hand-made pipeline data for tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

from edge.types import Box, Detection, Frame, Observation, PlateReading

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def reading(text: str, conf: float = 0.9, chars: list[float] | None = None) -> PlateReading:
    return PlateReading(text=text, confidence=conf, char_confidences=tuple(chars or [conf] * len(text)), backend="test")


def frame(t_s: float = 0.0, seq: int = 0, size: tuple[int, int] = (320, 240)) -> Frame:
    w, h = size
    return Frame(np.zeros((h, w, 3), np.uint8), T0 + timedelta(seconds=t_s), seq, "test")


def obs(text: str, box: tuple[float, float, float, float], t_s: float, conf: float = 0.9, seq: int = 0, chars=None) -> Observation:
    return Observation(frame(t_s, seq), Detection(Box(*box), 0.9), reading(text, conf, chars))
