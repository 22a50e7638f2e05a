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

from edge.types import PlateBand, PlateColour

# The context cut around a plate for reading (edge.read.crop_plate), as a fraction of its size: plate_band
# finds the plate's left edge from it.
CROP_MARGIN = 0.1

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


def _colour_pixels(crop: np.ndarray) -> np.ndarray | None:
    """The crop's colour channels as 8-bit BGR (what the HSV conversion takes); None for a grey crop."""
    if crop.ndim != 3 or crop.shape[2] < 3:
        return None
    crop = crop[..., :3]  # BGRA: the alpha says nothing of the colour
    return (crop >> 8).astype(np.uint8) if crop.dtype == np.uint16 else crop


def plate_colour(crop: np.ndarray) -> PlateColour:
    """Yellow (UK rear) or white (front, most of Europe) from the crop's bright background pixels.

    Grey (infrared) crops carry no colour: they are UNKNOWN rather than guessed.
    """
    crop = _colour_pixels(crop)
    if crop is None or crop.shape[0] < 2 or crop.shape[1] < 2:
        return PlateColour.UNKNOWN
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


# The left band (plate_band). Geometry is in plate heights, which fix a band's size whatever the plate's
# length: a UK or EU band is a third to nearly half a plate height wide (the renderer draws 0.33-0.42).
BAND_MIN_HEIGHT = 12  # px: below this a band is a column or two of blurred pixels
_BAND_ROWS = 24  # the band thumbnail's height; one row is 1/24 of the crop
_BAND_COLS_PER_PLATE_H = 16  # its columns: one is 1/16 of a plate height, a band 5 to 7 of them
_BAND_LOOK = 1.0  # plate heights looked at right of the plate's left edge: the band and some face
_BAND_WIDTH = (2, 12)  # columns: 0.12 to 0.75 plate heights, perspective and blur included
_BAND_MIN_PX = 3  # and at least this many crop pixels: JPEG's colour is at half resolution, its fringes 1-2 px
_BAND_START = 5  # columns: a band starts within 0.3 plate heights of where the plate's left edge should be
_BAND_FILL = 0.5  # fraction of a column's plate rows in the band's colour (the flag and 'UK' cover the rest)
_FACE_FILL = 0.3  # the face right of the band: at most this much of it in either band colour
_AROUND = 1 / 3  # at most this share of the band's columns may show its colour above or below the plate
_SAME_HUE = 12  # OpenCV hue steps (0-180): paint around the plate this close to the band's hue is "the same colour"
_PAINT_SAT = 0.6  # ... if it is at least this fraction as saturated
_GREY_SPREAD = 6  # levels: channels this close everywhere are a monochrome (infrared) image
# OpenCV hue (0-180), saturation and value: a band is printed in strong, saturated colour; car paint
# seen through dirt, shadow or a dull exposure mostly falls below the saturation floor.
_SAT, _VAL = 90, 40
_GREEN = ((45, _SAT, _VAL), (91, 255, 255))  # the green flash (hue about 75); yellow (about 25) and the
# yellow-green fringes JPEG leaves where a yellow plate meets its surround (up to about 40) stay out
_BLUE = ((92, _SAT, _VAL), (132, 255, 255))  # UK and EU blue (about 110)


def plate_band(crop: np.ndarray, margin: float = CROP_MARGIN) -> PlateBand:
    """The band at the left of a plate crop: the green zero-emission flash, a blue identifier band, none.

    `crop` is the reader's crop (edge.read.crop_plate), with `margin` of the plate's size around
    the plate, so its left edge is expected `margin / (1 + 2 margin)` of the way in. A band is a run
    of columns next to that edge that are saturated green or blue across the plate's rows, with the
    plate's face right of it and, above and below it, not the same colour: car paint of the band's
    colour fills the crop's outer rows too. Where paint of the band's colour around the plate cannot
    be told from a band, the answer is UNKNOWN, as it is for grey (infrared) crops and crops under
    BAND_MIN_HEIGHT px tall.
    """
    crop = _colour_pixels(crop)
    if crop is None or crop.shape[0] < BAND_MIN_HEIGHT or crop.shape[1] < 2:
        return PlateBand.UNKNOWN
    h, w = crop.shape[:2]
    plate_h = h / (1 + 2 * margin)
    edge = w * margin / (1 + 2 * margin)  # where the plate's left edge should be, in crop pixels
    x1 = min(w, max(2, round(edge + _BAND_LOOK * plate_h)))
    cols = max(4, round(x1 / plate_h * _BAND_COLS_PER_PLATE_H))
    region = crop[:, :x1]
    if h > 2 * _BAND_ROWS:
        # Area averaging costs in proportion to the pixels (50 us at 100 px tall): a larger crop is first
        # sampled to twice the thumbnail, whose 2x2 averaging is then cheap; 4 samples still even out noise.
        region = cv2.resize(region, (2 * cols, 2 * _BAND_ROWS), interpolation=cv2.INTER_NEAREST)
    thumb = cv2.resize(region, (cols, _BAND_ROWS), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(thumb, cv2.COLOR_BGR2HSV)
    start = int(edge / x1 * cols)  # the plate's left edge in thumbnail columns
    min_cols = max(_BAND_WIDTH[0], math.ceil(_BAND_MIN_PX * cols / x1))
    # Most crops have nothing green or blue at the left: one look at both colours settles those.
    either = cv2.inRange(hsv, _GREEN[0], _BLUE[1])
    either_counts = _plate_row_counts(either)
    if any(c >= _BAND_FILL * _FULL for c in either_counts[: start + _BAND_START + 1]):
        found = [_band_run(hsv, cv2.inRange(hsv, *bounds), start, either_counts, min_cols) for bounds in (_GREEN, _BLUE)]
        if "band" in found:
            return PlateBand.GREEN if found[0] == "band" else PlateBand.BLUE  # a blue flag on a green flash is still green
        if "body" in found:
            return PlateBand.UNKNOWN
    b, g, r = cv2.split(thumb)
    spread = max(cv2.minMaxLoc(cv2.absdiff(b, g))[1], cv2.minMaxLoc(cv2.absdiff(g, r))[1])
    return PlateBand.UNKNOWN if spread <= _GREY_SPREAD else PlateBand.NONE  # grey: a band could not show


_R0, _R1 = _BAND_ROWS // 5, _BAND_ROWS - _BAND_ROWS // 5  # the plate's rows, well inside its top and bottom edges
_FULL = 255 * (_R1 - _R0)  # a column's count when all its plate rows are in colour


def _plate_row_counts(mask: np.ndarray) -> list[int]:
    """Per thumbnail column, how many of the plate's rows are in the mask (x 255); a few dozen columns, so a list."""
    return cv2.reduce(mask[_R0:_R1], 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[0].tolist()


def _band_run(hsv: np.ndarray, mask: np.ndarray, start: int, either_counts: list[int], min_cols: int) -> str:
    """In a band thumbnail (HSV) and its mask of one colour (255 = in colour): "band", "body" (the
    colour fills the plate's rows where the band would be and the rows around it, as car paint does)
    or "" (no band of the colour). A band is `min_cols` to _BAND_WIDTH[1] columns wide; `either_counts`
    are the plate-row counts of both band colours together."""
    coloured = [c >= _BAND_FILL * _FULL for c in _plate_row_counts(mask)]
    lo_w, hi_w = min_cols, _BAND_WIDTH[1]
    x = 0
    while x <= start + _BAND_START and x < len(coloured):
        if not coloured[x]:
            x += 1
            continue
        end = x
        while end < len(coloured) and coloured[end]:
            end += 1
        if end > start:  # reaches into the plate
            painted = _painted_around(hsv, mask, x, end) > _AROUND
            # Right of a band is the plate's face, white or yellow: neither band colour (a green "band"
            # followed by blue is green paint beside a blue band). A column of blur between them is skipped.
            face = either_counts[end + 1 : end + 4]
            if not painted and lo_w <= end - x <= hi_w and face and max(face) < _FACE_FILL * _FULL:
                return "band"
            # Paint beside the plate ends near its edge; paint running well into where a band would be
            # may be a band of the car's own colour.
            if painted and end > start + _BAND_WIDTH[0] + 1:
                return "body"
        x = end
    return ""


def _painted_around(hsv: np.ndarray, mask: np.ndarray, x0: int, x1: int) -> float:
    """Share of columns x0..x1 whose top or bottom thumbnail row is of the colour seen in their plate
    rows: paint around the plate, not a printed band. "Of the colour": the hue within _SAME_HUE of its
    median in the plate rows, at least _PAINT_SAT of its saturation and half a band's brightness (paint
    in shade counts). The colour JPEG smears a few pixels past a band's ends is far paler: it does not."""
    inside = mask[_R0:_R1, x0:x1] > 0  # the run's columns are coloured: never empty
    hue = _median_u8(hsv[_R0:_R1, x0:x1, 0][inside])
    sat = _PAINT_SAT * _median_u8(hsv[_R0:_R1, x0:x1, 1][inside])
    painted = {
        i
        for row in (0, -1)
        for i, (h, s, v) in enumerate(hsv[row, x0:x1].tolist())
        if abs(h - hue) <= _SAME_HUE and s >= sat and v >= _VAL // 2
    }
    return len(painted) / (x1 - x0)


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
