"""From a plate crop to the reader model's input, the same in training and at run time.

The model reads one line of characters. Two-line plates (UK square and motorcycle plates,
some European ones) are recognised by their shape (width / height below `TWO_LINE_ASPECT`),
split at the brightest row between the lines, and the two rows are placed side by side, so
'AB12' over 'CDE' is read as 'AB12CDE' by the same one-line model.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge.types import PlateColour

# One-line plates are at least about 2:1 (US) and mostly 4.5:1; square plates are about 1.3:1.
TWO_LINE_ASPECT = 1.65


def is_two_line(crop: np.ndarray) -> bool:
    h, w = crop.shape[:2]
    return w < TWO_LINE_ASPECT * h


def _split_rows(grey: np.ndarray, cut: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top and bottom lines of a two-line plate, cut at the brightest band in the middle third
    (or at `cut`, a fraction of the height)."""
    h = grey.shape[0]
    if cut is not None:
        at = min(h - 1, max(1, round(h * cut)))
        return grey[:at], grey[at:]
    lo, hi = max(1, int(h * 0.35)), int(h * 0.65)  # a cut at row 0 would leave the top line empty
    if hi - lo < 1:
        return grey[: h // 2], grey[h // 2 :]
    profile = cv2.blur(grey.astype(np.float32), (grey.shape[1], 1))[:, 0]
    cut = lo + int(np.argmax(profile[lo:hi]))
    return grey[:cut], grey[cut:]


def _stretch(grey: np.ndarray) -> np.ndarray:
    """Contrast stretch between the 2nd and 98th percentiles, to [-1, 1]: exposure stops mattering.

    The model reads dark characters on a light plate; light-on-dark plates (black-and-silver,
    some Czech and US plates) are read from the negated input (see edge.read.OnnxReader).
    """
    if grey.dtype != np.uint8:
        lo, hi = np.percentile(grey, (2, 98))
        scale = 2.0 / max(float(hi - lo), 16.0)
        return np.clip((grey.astype(np.float32) - float(lo)) * scale - 1.0, -1.0, 1.0)
    # 8-bit: the same percentiles from a histogram and the same arithmetic through a 256-entry
    # table, bit for bit (tests/unit/test_read.py), at a fraction of the cost: this runs for every crop.
    lo, hi = _percentiles_u8(grey, (2, 98))
    scale = 2.0 / max(float(hi - lo), 16.0)
    # np.clip((levels - lo) * scale - 1, -1, 1) in float32, in place: np.clip's own overhead is most of its cost here
    lut = _LEVELS - float(lo)
    lut *= scale
    lut -= 1.0
    np.maximum(lut, -1.0, out=lut)
    np.minimum(lut, 1.0, out=lut)
    return cv2.LUT(grey, lut)  # lut[grey], several times faster


_LEVELS = np.arange(256, dtype=np.float32)


def _percentiles_u8(grey: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """np.percentile(grey, qs) (linear method) for uint8 pixels, from their histogram."""
    cum = np.bincount(grey.ravel(), minlength=256).cumsum()  # methods: numpy's function wrappers cost more here
    n = int(cum[-1])
    ats = [q / 100 * (n - 1) for q in qs]
    belows = [math.floor(at) for at in ats]
    # the k-th smallest pixel (from 0) is the first grey level whose cumulative count exceeds k;
    # one search for the two ranks around every percentile
    ranks = [r for below in belows for r in (below, min(below + 1, n - 1))]
    levels = cum.searchsorted(ranks, side="right").tolist()
    out = []
    for j, (at, below) in enumerate(zip(ats, belows)):
        a, b = float(levels[2 * j]), float(levels[2 * j + 1])
        t = at - below
        out.append(a + (b - a) * t if t < 0.5 else b - (b - a) * (1 - t))  # numpy's lerp
    return out


def _resize(grey: np.ndarray, width: int, height: int) -> np.ndarray:
    interp = cv2.INTER_AREA if grey.shape[0] > height else cv2.INTER_LINEAR
    return cv2.resize(grey, (width, height), interpolation=interp)


def plate_input(crop: np.ndarray, height: int, width: int, cut: float | None = None) -> np.ndarray:
    """One crop (BGR or grey uint8) as a float32 array (height, width) in [-1, 1].

    `cut`: for a two-line crop, where to split the lines (a fraction of the height) instead of
    at the brightest band between them."""
    if crop.ndim == 3 and crop.shape[2] > 1:
        grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    elif crop.ndim == 3:  # grey with a channel axis (H, W, 1)
        grey = crop[..., 0]
    else:
        grey = crop
    if grey.shape[0] < 2 or grey.shape[1] < 2:
        raise ValueError(f"plate crop is too small to read: {grey.shape[1]}x{grey.shape[0]} px")
    if is_two_line(grey):
        top, bottom = _split_rows(grey, cut)
        grey = np.hstack([_resize(top, width // 2, height), _resize(bottom, width - width // 2, height)])
    else:
        grey = _resize(grey, width, height)
    return _stretch(grey)


def batch_input(crops: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Crops as one (N, 1, height, width) float32 batch."""
    if not crops:
        raise ValueError("batch_input: no crops to make a batch of")
    batch = np.empty((len(crops), 1, height, width), np.float32)  # filled in place: np.stack costs more than a crop's copy
    for i, crop in enumerate(crops):
        batch[i, 0] = plate_input(crop, height, width)
    return batch


def plate_colour(crop: np.ndarray) -> PlateColour:
    """Yellow (UK rear) or white (front, most of Europe) from the crop's bright background pixels.

    Grey (infrared) crops carry no colour: they are UNKNOWN rather than guessed.
    """
    if crop.ndim != 3 or crop.shape[2] < 3 or crop.shape[0] < 2 or crop.shape[1] < 2:
        return PlateColour.UNKNOWN
    crop = crop[..., :3]  # BGRA: the alpha says nothing of the colour
    if crop.dtype == np.uint16:  # the HSV conversion below takes 8-bit (or float) pixels only
        crop = (crop >> 8).astype(np.uint8)
    h, w = crop.shape[:2]
    centre = crop[h // 6 : h - h // 6 or h, w // 8 : w - w // 8 or w]
    # A 64x32 thumbnail says as much as the crop, at a fixed cost. Resizing treats the channels
    # alike, so an exactly grey crop stays exactly grey.
    whole = cv2.resize(crop, (64, 32), interpolation=cv2.INTER_NEAREST).reshape(-1, 3)
    if int(np.abs(whole[:, 0].astype(np.int16) - whole[:, 2]).max()) <= 2:
        return PlateColour.UNKNOWN  # exactly grey everywhere (bands included): a monochrome (infrared) camera
    thumb = cv2.resize(centre, (64, 32), interpolation=cv2.INTER_AREA)
    # Planes, not (pixel, channel) rows: picking pixels from a contiguous plane is several times faster.
    hue_px, sat_px, value = cv2.split(cv2.cvtColor(thumb, cv2.COLOR_BGR2HSV))
    face = value >= _kth_smallest_u8(value.ravel(), int(value.size * 0.6))  # the plate's face, not its characters
    sat = _median_u8(sat_px[face])
    hue = _median_u8(hue_px[face])
    if sat < 40:
        return PlateColour.WHITE
    if 12 <= hue <= 40:  # OpenCV hue is 0-180; yellow is about 30
        return PlateColour.YELLOW
    return PlateColour.OTHER


# Order statistics of 8-bit values from their histogram: the same numbers as np.partition and
# np.median, at a fraction of their cost on the 2048 pixels of a colour thumbnail.
def _ranks_u8(values: np.ndarray, ranks: list[int]) -> list[int]:
    """The k-th smallest (from 0) of uint8 `values`, for each k in `ranks`."""
    cum = np.bincount(values, minlength=256).cumsum()
    # the first level whose cumulative count exceeds k
    return cum.searchsorted(ranks, side="right").tolist()


def _kth_smallest_u8(values: np.ndarray, k: int) -> int:
    return _ranks_u8(values, [k])[0]


def _median_u8(values: np.ndarray) -> float:
    """np.median of non-empty uint8 values: the middle one, or the mean of the middle two."""
    n = len(values)
    lo, hi = _ranks_u8(values, [(n - 1) // 2, n // 2])
    return (lo + hi) / 2
