"""Plate readers: the project's ONNX model and tesseract, behind one interface.

    reader = load_reader(cfg)                      # cfg.reader.backend: "onnx" | "tesseract"
    readings = reader.read([crop_plate(frame.image, det) for det in detections])

Both backends end in the same grammar decoding (`edge.plates.decode`), so their figures compare
the recognisers alone. A reading is None when nothing legible was found in the crop.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
from typing import Protocol, Sequence

import cv2
import numpy as np

from edge.config import CameraConfig, ReaderBackend
from edge.errors import ModelError
from edge.onnx import OnnxModel, load_model
from edge.plates.decode import ALPHABET, Decoded, Lattice, best_path, decode
from edge.plates.image import CROP_MARGIN, batch_input, is_two_line, plate_band, plate_colour, plate_input
from edge.types import Alternative, Detection, PlateColour, PlateReading

log = logging.getLogger(__name__)


class PlateReader(Protocol):
    name: str  # e.g. "onnx:reader-1.0" or "tesseract"
    models: dict[str, str]  # model file name -> sha256 (goes into read records); {} for tesseract

    def read(self, crops: Sequence[np.ndarray]) -> list[PlateReading | None]:
        """One reading (or None: nothing legible) per BGR crop, in order."""
        ...


# A reading that fits no plate format must have at least this many characters to count as legible:
# shorter ones are badges, model numbers and stray letters ("TDI", "27", "J"). On the real train
# photos this dropped 9 of 40 false-positive reads and no plate read right (models/reader.md, session 8).
MIN_UNFORMATTED_CHARS = 4


def _reading(decoded: list[Decoded], crop: np.ndarray, backend: str, colour: PlateColour | None = None) -> PlateReading | None:
    """The reading of a crop from its decodings; `colour`: the crop's plate_colour where already known."""
    if not decoded or not decoded[0].text:
        return None
    if decoded[0].plate_format is None and len(decoded[0].text) < MIN_UNFORMATTED_CHARS:
        return None
    best = decoded[0]
    # An alternative's confidence is the reading's scaled by how much worse it ranked, so the
    # list is in confidence order and never claims more than the reading itself.
    alternatives = tuple(
        Alternative(d.text, float(best.confidence * math.exp(min(0.0, d.score - best.score))))
        for d in decoded[1:]
        if d.text
    )
    return PlateReading(
        text=best.text,
        confidence=best.confidence,
        char_confidences=tuple(float(min(1.0, max(0.0, c))) for c in best.char_confidences),
        alternatives=alternatives,
        country=best.country,
        plate_format=best.format_name,
        colour=plate_colour(crop) if colour is None else colour,
        backend=backend,
        band=plate_band(crop),  # the same crop as the colour: a track takes both from one observation
    )


def _readable(crop: np.ndarray) -> bool:
    return isinstance(crop, np.ndarray) and crop.ndim in (2, 3) and crop.shape[0] >= 4 and crop.shape[1] >= 8


WEAK_CONFIDENCE = 0.5  # below this (or fitting no format) a reading gets a second look
# Where a weak two-line plate is cut between its lines, as fractions of its height. On rendered
# validation plates these fixed 7 of 28 weak two-line readings and broke 1 (models/reader.md).
TWO_LINE_CUTS = (0.4, 0.45, 0.5, 0.55, 0.6)
# A plate is worth reading negated only if its face may be dark: the median of the middle of the
# stretched input (-1 black .. 1 white) is below this. Dark characters cover a third of a light
# plate at most, so its median sits high. On real training crops and 400 rendered validation
# plates, every negated reading that was right came from a crop with a median below 0.03; about one
# real crop in nine passes (models/reader.md).
DARK_FACE_MEDIAN = 0.1


def _may_be_dark(x: np.ndarray) -> np.ndarray:
    """(N, 1, H, W) model inputs -> (N,) True where the plate face may be darker than its characters."""
    _, _, h, w = x.shape
    middle = x[:, 0, h // 5 : h - h // 5, w // 16 : w - w // 16].reshape(len(x), -1)
    return np.median(middle, axis=1) < DARK_FACE_MEDIAN


class OnnxReader:
    """The project's CTC recogniser (models/reader.onnx or its INT8 variant) plus grammar decoding."""

    def __init__(self, model: OnnxModel, countries: Sequence[str] = ("GB",), max_alternatives: int = 3):
        self.model = model
        shape = model.sidecar.get("input", {}).get("shape", [1, 32, 128])
        if not isinstance(shape, list) or len(shape) < 2 or not all(type(v) is int and v > 0 for v in shape[-2:]):
            raise ModelError(f"{model.path.with_suffix('.json')}: input.shape must end in [height, width] (positive integers), got {shape!r}")
        self.height, self.width = shape[-2], shape[-1]
        alphabet = model.sidecar.get("alphabet", ALPHABET)
        if alphabet != ALPHABET:
            raise ModelError(f"{model.path.with_suffix('.json')}: alphabet {alphabet!r} is not the decoder's {ALPHABET!r}")
        self.countries = tuple(countries)
        self.max_alternatives = max_alternatives
        self.name = f"onnx:{model.name}-{model.version}"
        self.models = {model.path.name: model.sha256}

    def frame_probabilities(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """The model's raw output (N, T, 37) for readable crops (for evaluation and debugging)."""
        return self.model.run(batch_input(list(crops), self.height, self.width))[0]

    def _decode(self, probs: np.ndarray) -> list[Decoded]:
        # NaN or inf (a broken or badly quantised model) decodes to confident nonsense: nothing legible.
        if not np.isfinite(probs).all():
            return []
        return decode(best_path(probs), self.countries, self.max_alternatives)

    def _weak(self, decoded: list[Decoded]) -> bool:
        return not decoded or decoded[0].plate_format is None or decoded[0].confidence < WEAK_CONFIDENCE

    def _keep_better(self, results: list[list[Decoded]], k: int, probs: np.ndarray) -> None:
        """Replace reading k by the decoding of `probs` if that fits a format and is more confident."""
        d = self._decode(probs)
        before = results[k][0].confidence if results[k] else 0.0
        if d and d[0].plate_format is not None and d[0].confidence > before:
            results[k] = d

    def read(self, crops: Sequence[np.ndarray]) -> list[PlateReading | None]:
        out: list[PlateReading | None] = [None] * len(crops)
        idx = [i for i, c in enumerate(crops) if _readable(c)]
        if not idx:
            return out
        x = batch_input([crops[i] for i in idx], self.height, self.width)
        probs = self.model.run(x)[0]
        results = [self._decode(p) for p in probs]
        # Second looks that only some crops pay for; a second look's reading is kept only when it fits
        # a format and is more confident, so noise never wins.
        # 1. Light characters on a dark plate: every plate whose face may be dark is read negated too,
        # however confident its reading: the model reads many such plates as confident nonsense that
        # fits a format. A yellow face is a light one (UK rear plates): its negated reading never won
        # on validation or real crops, and blurred yellow plates often pass the darkness test
        # (models/reader.md, session 8).
        dark = np.flatnonzero(_may_be_dark(x)).tolist()
        # The colour is costly (a tenth of the model's time): worked out once per crop, kept for the reading.
        colours = {k: plate_colour(crops[idx[k]]) for k in dark}
        dark = [k for k in dark if colours[k] is not PlateColour.YELLOW]
        if dark:
            for k, p in zip(dark, self.model.run(-x[dark])[0]):
                self._keep_better(results, k, p)
        # 2. Two-line plates: a tilted plate defeats the cut between the lines, so other cuts are tried.
        weak = [k for k, d in enumerate(results) if self._weak(d) and is_two_line(crops[idx[k]])]
        if weak and TWO_LINE_CUTS:
            alt = np.stack([plate_input(crops[idx[k]], self.height, self.width, cut) for k in weak for cut in TWO_LINE_CUTS])
            for n, p in enumerate(self.model.run(alt[:, None])[0]):
                self._keep_better(results, weak[n // len(TWO_LINE_CUTS)], p)
        for k, (i, decoded) in enumerate(zip(idx, results)):
            out[i] = _reading(decoded, crops[i], self.name, colours.get(k))
        return out


_WHITELIST = "-c tessedit_char_whitelist=" + ALPHABET


class TesseractReader:
    """Tesseract (`--psm 7`, one text line, A-Z0-9 only) through pytesseract, with the same decoding."""

    name = "tesseract"

    def __init__(self, countries: Sequence[str] = ("GB",), max_alternatives: int = 3):
        try:
            import pytesseract
        except ImportError as err:
            raise ModelError(f"the tesseract backend needs the pytesseract package ({err})") from None
        if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
            raise ModelError(
                f"the tesseract backend needs the '{pytesseract.pytesseract.tesseract_cmd}' program "
                "(Debian: apt install tesseract-ocr)"
            )
        self._tess = pytesseract
        self.countries = tuple(countries)
        self.max_alternatives = max_alternatives
        self.models: dict[str, str] = {}
        self.version = str(pytesseract.get_tesseract_version())

    def _lattice(self, crop: np.ndarray) -> Lattice:
        grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
        if grey.shape[0] < 64:  # tesseract reads characters of about 30 px and up best
            s = 64 / grey.shape[0]
            grey = cv2.resize(grey, (int(grey.shape[1] * s), 64), interpolation=cv2.INTER_CUBIC)
        data = self._tess.image_to_data(grey, config=f"--psm 7 {_WHITELIST}", output_type=self._tess.Output.DICT)
        text, confs = "", []
        for word, conf in zip(data["text"], data["conf"]):
            word = re.sub(r"[^A-Z0-9]", "", str(word).upper())
            if not word:
                continue
            # Word confidence 0-100; tesseract reports 0 (or -1) for some whitelisted LSTM lines: unknown.
            c = min(0.999, float(conf) / 100.0) if float(conf) > 0 else 0.5
            text += word
            confs += [c] * len(word)  # tesseract scores words, not characters
        return Lattice.from_text(text, confs)

    def read(self, crops: Sequence[np.ndarray]) -> list[PlateReading | None]:
        out: list[PlateReading | None] = []
        for crop in crops:
            if not _readable(crop):
                out.append(None)
                continue
            decoded = decode(self._lattice(crop), self.countries, self.max_alternatives)
            out.append(_reading(decoded, crop, self.name))
        return out


def _plate_shaped(q: np.ndarray) -> bool:
    """Corners TL, TR, BR, BL make a convex quadrilateral turning clockwise on screen, as a plate's do.

    Crossed, mirrored or collinear corners (a confused model) would warp the plate into a crop no
    reader can read; the detection's box is cut instead.
    """
    edges = np.roll(q, -1, axis=0) - q
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    return bool((turns > 0).all())


def crop_plate(image: np.ndarray, detection: Detection, margin: float = CROP_MARGIN) -> np.ndarray:
    """The plate cut from a frame with `margin` (a fraction of its size) around it.

    With corners, the quadrilateral is warped to a front-on rectangle (margin included), which
    undoes the camera's perspective; without, the axis-aligned box is cut (clipped to the frame).
    """
    H, W = image.shape[:2]
    if detection.corners is not None and _plate_shaped(np.float32(detection.corners)):
        q = np.float32(detection.corners)
        centre = q.mean(axis=0)
        q = centre + (q - centre) * (1.0 + 2.0 * margin)
        w = int(round(max(np.linalg.norm(q[1] - q[0]), np.linalg.norm(q[2] - q[3]))))
        h = int(round(max(np.linalg.norm(q[3] - q[0]), np.linalg.norm(q[2] - q[1]))))
        if w >= 2 and h >= 2:
            dst = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
            M = cv2.getPerspectiveTransform(q.astype(np.float32), dst)
            return cv2.warpPerspective(image, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    b = detection.box
    mx, my = b.w * margin, b.h * margin
    x0, y0 = int(max(0, np.floor(b.x - mx))), int(max(0, np.floor(b.y - my)))
    x1, y1 = int(min(W, np.ceil(b.x + b.w + mx))), int(min(H, np.ceil(b.y + b.h + my)))
    if x1 <= x0 or y1 <= y0:
        return image[0:0, 0:0]
    return image[y0:y1, x0:x1]


def load_reader(cfg: CameraConfig) -> PlateReader:
    """The reader the camera's configuration names (`[reader]` backend, model, countries, threads)."""
    rc = cfg.reader
    if rc.backend is ReaderBackend.TESSERACT:
        return TesseractReader(rc.countries, rc.max_alternatives)
    model = load_model(cfg.model_path(rc.model), threads=rc.threads)
    reader = OnnxReader(model, rc.countries, rc.max_alternatives)
    try:
        reader.read([np.full((32, 128, 3), 200, np.uint8)])  # warm-up: the first run allocates
    except Exception as err:  # onnxruntime's untyped errors: most often a sidecar that does not match the model
        raise ModelError(
            f"{model.path.with_suffix('.json')}: input {reader.height}x{reader.width} (height x width) "
            f"does not fit the model {model.path}: {err}"
        ) from None
    return reader
