"""Exposure watch: tells the operator when a camera's picture is blown out.

The detector loses plates in over-exposed frames (recall 96.7 % as photographed, 85.0 % with the
light doubled and clipped, 58.3 % tripled: models/detector.md), and no later stage can bring back
clipped pixels. So the camera measures, on a sample of its frames, the share of the scene that is
clipped white, and raises an alarm on its status topic while most recent samples are over the limit.
On the real test photos that share is at most 8 %; doubled light makes it 18 % at the median.
"""

from __future__ import annotations

import logging
from collections import deque

import numpy as np

from edge.motion import grey_thumbnail

log = logging.getLogger(__name__)

# The thumbnail's pixels each average 4 x 4 picked pixels: a clipped cell stays clipped, noise does not.
CLIPPED_LEVEL = 250  # grey level at and above which a thumbnail cell counts as clipped
CLIPPED_SHARE_LIMIT = 0.15  # share of the scene clipped above which plates start to be missed
EVERY_N_FRAMES = 25  # about one sample a second at 25 fps: exposure changes slowly
WINDOW = 30  # samples judged together, so one flash of headlights or sun is no alarm
MIN_SAMPLES = 10  # nor the first few seconds


def clipped_share(image: np.ndarray) -> float:
    """Share of the frame (0..1) that is clipped white, from the motion gate's grey thumbnail (about 0.3 ms at 1080p)."""
    thumb = grey_thumbnail(image)
    return float(np.count_nonzero(thumb >= CLIPPED_LEVEL)) / thumb.size


class ExposureWatch:
    """Samples every EVERY_N_FRAMES-th frame; `over_exposed` while most of the last WINDOW samples (at least
    MIN_SAMPLES) are over the limit."""

    def __init__(self, camera_id: str, every: int = EVERY_N_FRAMES, window: int = WINDOW) -> None:
        self.camera_id = camera_id
        self.every = every
        self._frames = 0
        self._shares: deque[float] = deque(maxlen=window)
        self.over_exposed = False

    def see(self, image: np.ndarray) -> None:
        self._frames += 1
        if (self._frames - 1) % self.every:
            return
        self._shares.append(clipped_share(image))
        n = len(self._shares)
        over = n >= MIN_SAMPLES and sum(s > CLIPPED_SHARE_LIMIT for s in self._shares) > n / 2
        if over and not self.over_exposed:
            log.warning(
                "camera %s is over-exposed: %.0f%% of the scene is clipped white (median of the last %d samples); "
                "plates will be missed: expose for the plates",
                self.camera_id, 100 * float(np.median(self._shares)), len(self._shares),
            )
        elif self.over_exposed and not over:
            log.info("camera %s: exposure back within limits", self.camera_id)
        self.over_exposed = over

    def status(self) -> dict[str, float | bool | None]:
        """What the status heartbeat carries: the median clipped share of recent samples and the alarm."""
        median = float(np.median(self._shares)) if self._shares else None
        return {"clipped_share": None if median is None else round(median, 3), "over_exposed": self.over_exposed}
