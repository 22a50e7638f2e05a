"""The exposure watch: an alarm when a camera's picture is blown out, and only then."""

import logging

import numpy as np

from edge.exposure import MIN_SAMPLES, ExposureWatch, clipped_share
from models.train.render import random_plate


def _scene(seed: int = 0) -> np.ndarray:
    """A mid-grey 1080p street-like frame with a plate on it: nothing clipped."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(40, 200, (1080, 1920, 3), dtype=np.uint8)
    plate = random_plate(rng, "GB", text="AB12CDE", colour="white", height_px=60).image
    frame[600 : 600 + plate.shape[0], 900 : 900 + plate.shape[1]] = plate
    return frame


def test_clipped_share_measures_the_blown_out_part_of_the_frame():
    frame = _scene()
    assert clipped_share(frame) < 0.01
    frame[:, : 1920 // 4] = 255  # a quarter of the scene blown out
    assert 0.23 <= clipped_share(frame) <= 0.27
    assert clipped_share(np.full((480, 640), 255, np.uint8)) == 1.0  # grey frames too


def test_alarm_is_raised_only_once_most_recent_samples_are_blown_out_and_then_cleared(caplog):
    good, blown = _scene(), np.full((1080, 1920, 3), 255, np.uint8)
    watch = ExposureWatch("cam1", every=1, window=12)
    with caplog.at_level(logging.INFO, logger="edge.exposure"):
        for _ in range(MIN_SAMPLES - 1):
            watch.see(blown)
        assert not watch.over_exposed  # too few samples to judge
        watch.see(blown)
        assert watch.over_exposed and watch.status() == {"clipped_share": 1.0, "over_exposed": True}
        assert "cam1 is over-exposed" in caplog.text
        for _ in range(6):
            watch.see(good)
        assert not watch.over_exposed  # 6 of the last 12 blown: no longer most
        assert "exposure back within limits" in caplog.text


def test_a_flash_of_headlights_raises_no_alarm():
    watch = ExposureWatch("cam1", every=1, window=30)
    frames = [_scene()] * 20 + [np.full((1080, 1920, 3), 255, np.uint8)] * 5 + [_scene()] * 20
    for f in frames:
        watch.see(f)
        assert not watch.over_exposed


def test_only_every_nth_frame_is_measured():
    watch = ExposureWatch("cam1", every=25)
    for _ in range(50):
        watch.see(np.full((108, 192, 3), 255, np.uint8))
    assert len(watch._shares) == 2
