"""Named alterations of a picture or crop: what a camera's image may suffer, to see what the models tolerate.

    python -m models.train.eval_detector --alter over2
    python -m models.train.eval_reader --alter grey_negative
"""

from __future__ import annotations

import cv2
import numpy as np


def _over(gain: float):
    return lambda im: np.clip(im.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def _grey(im: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


ALTERATIONS = {
    "dark0.3": lambda im: (im * 0.3).astype(np.uint8),
    "dark0.15": lambda im: (im * 0.15).astype(np.uint8),
    "over2": _over(2.0),
    "over3": _over(3.0),
    "gamma0.5": lambda im: cv2.LUT(im, (255 * (np.arange(256) / 255.0) ** 0.5).astype(np.uint8)),
    "grey": _grey,
    "jpeg15": lambda im: cv2.imdecode(cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 15])[1], cv2.IMREAD_COLOR),
    "blur2": lambda im: cv2.GaussianBlur(im, (0, 0), 2.0),
    "lowcontrast": lambda im: (im * 0.4 + 100).astype(np.uint8),
    "halfres": lambda im: cv2.resize(cv2.resize(im, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA), (im.shape[1], im.shape[0])),
    # Light characters on a dark face (black-and-silver plates); the grey one has no colour cast.
    "negative": lambda im: 255 - im,
    "grey_negative": lambda im: 255 - _grey(im),
}
