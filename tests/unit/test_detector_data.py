"""Detector training targets: plates, and the unlabelled real plates training must ignore."""

from __future__ import annotations

import numpy as np

from models.train.detector_data import OUT_HW, STRIDE, RealImage, Target, _plate_like, encode, real_sample


def test_an_ignored_plate_is_neither_a_peak_nor_background():
    heat, reg, mask = encode([Target((100, 80, 60, 16), None), Target((400, 200, 80, 20), None, ignore=True)])
    assert heat.shape == (1, *OUT_HW) and mask.shape == (3, *OUT_HW)
    assert heat[0, int((80 + 8) / STRIDE), int((100 + 30) / STRIDE)] == 1.0  # the labelled plate's centre
    ci, cj = int((200 + 10) / STRIDE), int((400 + 40) / STRIDE)
    assert heat[0, ci, cj] < 1e-3 and mask[2, ci, cj] == 0.0  # no peak, and no background penalty
    assert mask[2, 20, 25] == 1.0 and mask[2].mean() > 0.97  # everywhere else the background counts
    assert mask[0, ci, cj] == 0.0  # nor any box regression


def test_unlabelled_plates_follow_the_photo_into_the_sample():
    img = np.full((480, 640, 3), 90, np.uint8)
    real = RealImage(img, [(100.0, 300.0, 120.0, 30.0)], [(400.0, 320.0, 110.0, 28.0)])
    rng = np.random.default_rng(0)
    for _ in range(20):
        _, targets = real_sample(rng, real)
        assert all(t.corners is None for t in targets)
        assert sum(not t.ignore for t in targets) <= 1


def test_plate_like_readings_mix_letters_and_digits():
    assert _plate_like("RK641AL") and _plate_like("84EEE")
    assert not _plate_like("FELICIA") and not _plate_like("20140501") and not _plate_like("SK") and not _plate_like("AB12CDEFG")
