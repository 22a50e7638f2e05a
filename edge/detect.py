"""Plate detection: full frame (or the calibrated region of interest) -> Detections in frame pixels.

    detector = load_detector(cfg, calibration)
    for d in detector.detect(frame.image):   # sorted by score, highest first
        d.box, d.score, d.corners

The project's detector (models/detector.onnx, card in models/detector.md) is a
CenterNet-style network on a letterboxed input (size from the sidecar: 448x800): a heat map of plate
centres at stride 4 plus, per cell, the box size and the four plate corners.
This module does everything around the network in numpy/OpenCV:

1. Plan the windows: the bounding rectangle of the calibrated region of interest
   (or the whole frame). When calibration gives the smallest plate width and that
   plate would be drawn below MIN_PLATE_INPUT_PX wide at the model's input, the
   window is cut into overlapping tiles so it stays big enough (each tile costs one
   more inference; at most MAX_TILES).
2. Letterbox each window: resize the uint8 image (INTER_AREA when shrinking, as in
   training), paste it top-left on a grey canvas. A model whose input size is free (the
   committed ones) gets a canvas no larger than the picture needs, rounded up to CANVAS_STEP:
   a 4:3 photo or a wide ROI strip costs time in proportion to its area, and a calibrated
   camera draws its smallest plate no wider than PLATE_INPUT_PX.
3. Decode: local maxima of the heat map above the threshold -> box and corners. An
   uncalibrated picture in which nothing was found is looked at once more drawn at
   half size (ZOOM_OUT), for close-ups whose plate is wider than any seen in training.
4. Map back to frame pixels, drop boxes whose centre is outside the ROI polygon or
   whose width is implausible for the calibrated plate size, then greedy NMS.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import cv2
import numpy as np

from edge.errors import ModelError
from edge.onnx import OnnxModel, load_model
from edge.types import Box, Corners, Detection

if TYPE_CHECKING:  # the training machines have no pydantic; only load_detector needs the config
    from edge.config import CameraConfig

log = logging.getLogger(__name__)

MIN_PLATE_INPUT_PX = 40.0  # narrower plates at the model input are often missed (recall vs width: models/detector.md)
# A calibrated camera's window is drawn no larger than puts its smallest plate at this width: wider
# plates cost time and find no more. Not less: a frame shrunk so far that its close-range plates are
# 64 px wide loses them (recall 87 % against 97 % for 600 px plates in 1080p: models/detector.md).
PLATE_INPUT_PX = 96.0
NET_STRIDE = 32  # the network's coarsest stride (five stride-2 stages): every input side is a multiple of it
CANVAS_STEP = 64  # a free-size canvas side is a multiple of this (and of NET_STRIDE): fewer sizes, fewer sessions
MAX_TILES = 6  # bounds the cost of tiling: 6 inferences per frame at most
PLATE_WIDTH_TOLERANCE = (0.6, 1.6)  # calibrated (min, max) widths are estimates: allow this much beyond them
DEFAULT_INPUT_HW = (448, 800)  # when a sidecar does not say
DEFAULT_PAD = 114
# An uncalibrated picture in which nothing was found is searched again drawn this much smaller, for
# close-ups: the model was trained on plates up to about half the input's width (models/detector.md).
ZOOM_OUT = 0.5


class PlateDetector(Protocol):
    name: str
    models: dict[str, str]

    def detect(self, image: np.ndarray) -> list[Detection]: ...


@dataclass(frozen=True)
class Window:
    """A rectangle of the frame run through the network on its own: x, y, w, h in frame pixels."""

    x: int
    y: int
    w: int
    h: int


# --------------------------------------------------------------------------- geometry


def bgr8(image: np.ndarray) -> np.ndarray:
    """The image as 8-bit BGR, which is what the models were trained on (the same array when it already is).

    Grey and BGRA images are converted, 16-bit ones scaled by 1/256 as cv2.imread does (so the
    API sees what `edge read` sees); other pixel types have no agreed range and are refused.
    """
    if image.ndim < 2 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"image pixels are {image.dtype}: expected uint8 (or uint16) grey, BGR or BGRA")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def letterbox(
    image: np.ndarray,
    input_hw: tuple[int, int],
    pad: int = DEFAULT_PAD,
    shrink: float = 1.0,
    max_scale: float = math.inf,
    trim: bool = False,
) -> tuple[np.ndarray, float]:
    """Fit `image` into input_hw keeping its aspect, top-left, grey padding; returns (canvas, scale).

    `shrink` < 1 draws the image that much smaller than would fit (the rest is padding), and it is
    never drawn larger than `max_scale`. `trim`: the canvas is cut to the drawn image rounded up to
    a multiple of CANVAS_STEP, for a model that takes any input size."""
    h, w = image.shape[:2]
    scale = min(min(input_hw[0] / h, input_hw[1] / w) * shrink, max_scale)
    nw, nh = min(input_hw[1], max(1, round(w * scale))), min(input_hw[0], max(1, round(h * scale)))
    ch, cw = input_hw
    if trim:
        ch, cw = min(ch, _round_up(nh, CANVAS_STEP)), min(cw, _round_up(nw, CANVAS_STEP))
    canvas = np.full((ch, cw, 3), pad, np.uint8)
    canvas[:nh, :nw] = resize(image, nw, nh)
    return canvas, scale


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Shrink without aliasing, fast: exact 2x box filters (OpenCV's fast INTER_AREA path), then bilinear.

    General INTER_AREA costs 5-10 ms for 1080p -> 640 on one core; halving first then a bilinear
    step of less than 2x costs about 1.5 ms and keeps thin plate strokes from aliasing.
    Training (models/train/detector_data.py) resizes with this same function.
    """
    h, w = image.shape[:2]
    while w >= 2 * width and h >= 2 * height:
        w, h = w // 2, h // 2
        image = cv2.resize(image[: h * 2, : w * 2], (w, h), interpolation=cv2.INTER_AREA)
    if (w, h) == (width, height):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def unletterbox(points: np.ndarray, scale: float, window: Window) -> np.ndarray:
    """Model-input pixels (..., 2) -> frame pixels, for a window letterboxed with `scale`."""
    return points / scale + np.array([window.x, window.y], np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_candidates: int = 200) -> list[int]:
    """Greedy non-maximum suppression over (N, 4) x, y, w, h boxes; indices kept, best first."""
    order = np.argsort(-scores, kind="stable")[:max_candidates]
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    areas = boxes[:, 2] * boxes[:, 3]
    keep: list[int] = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        iw = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
        ih = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
        inter = iw * ih
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return keep


def decode(heat: np.ndarray, reg: np.ndarray, threshold: float, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heat (H, W) and reg (12, H, W) -> boxes (N, 4) x,y,w,h, scores (N,), corners (N, 4, 2), model-input pixels."""
    # A NaN or inf cell (a broken or badly quantised model) is no plate, and must not hide its neighbours.
    heat = np.nan_to_num(heat, nan=0.0, posinf=0.0, neginf=0.0)
    peaks = (heat >= threshold) & (heat >= cv2.dilate(heat, np.ones((3, 3), np.uint8)))
    ii, jj = np.nonzero(peaks)
    scores = heat[ii, jj].astype(np.float32)
    r = reg[:, ii, jj].astype(np.float32)  # (12, N)
    cx = (jj + r[0]) * stride
    cy = (ii + r[1]) * stride
    w = np.exp(np.clip(r[2], -3, 6)) * stride
    h = np.exp(np.clip(r[3], -3, 6)) * stride
    boxes = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
    rel = r[4:12].T.reshape(-1, 4, 2)
    corners = np.stack([cx, cy], axis=1)[:, None, :] + rel * np.stack([w, h], axis=1)[:, None, :]
    return boxes, scores, corners


def _roi_box(frame_w: int, frame_h: int, roi: Sequence[tuple[float, float]] | None) -> tuple[int, int, int, int] | None:
    """The ROI's bounding box clipped to the frame (x0, y0, x1, y1); None without an ROI or when it is off the frame."""
    if not roi:
        return None
    pts = np.asarray(roi, np.float32)
    x0, y0 = max(0, int(math.floor(pts[:, 0].min()))), max(0, int(math.floor(pts[:, 1].min())))
    x1, y1 = min(frame_w, int(math.ceil(pts[:, 0].max()))), min(frame_h, int(math.ceil(pts[:, 1].max())))
    return None if x1 - x0 < 8 or y1 - y0 < 8 else (x0, y0, x1, y1)


def plan_windows(
    frame_w: int,
    frame_h: int,
    input_hw: tuple[int, int],
    roi: Sequence[tuple[float, float]] | None = None,
    plate_width_px: tuple[float, float] | None = None,
) -> list[Window]:
    """The frame rectangles to run the network on: the ROI's bounding box, tiled if plates would be too small."""
    if plate_width_px and not 0 < plate_width_px[0] <= plate_width_px[1] < math.inf:
        raise ValueError(f"calibration plate_width_px must be (min, max) with 0 < min <= max, got {tuple(plate_width_px)!r}")
    x0, y0, x1, y1 = _roi_box(frame_w, frame_h, roi) or (0, 0, frame_w, frame_h)
    w, h = x1 - x0, y1 - y0
    scale = min(input_hw[0] / h, input_hw[1] / w)
    if not plate_width_px or plate_width_px[0] * scale >= MIN_PLATE_INPUT_PX:
        return [Window(x0, y0, w, h)]
    # Tiles with the model's aspect, sized so the smallest plate reaches MIN_PLATE_INPUT_PX,
    # overlapping by the largest plate so every plate lies whole inside at least one tile.
    need = MIN_PLATE_INPUT_PX / plate_width_px[0]
    tw, th = min(w, input_hw[1] / need), min(h, input_hw[0] / need)
    overlap = min(plate_width_px[1] * 1.1, tw * 0.5)
    nx = max(1, math.ceil((w - overlap) / max(1.0, tw - overlap)))
    ny = max(1, math.ceil((h - overlap * 0.5) / max(1.0, th - overlap * 0.5)))
    if nx * ny > MAX_TILES:
        # Keep the cost bounded: grow the tiles evenly (plates a little smaller than asked for).
        grow = math.sqrt(nx * ny / MAX_TILES)
        tw, th = min(w, tw * grow), min(h, th * grow)
        # A strip lower than a tile cannot grow in height, so the columns alone may still be too many.
        nx = max(1, min(MAX_TILES, math.ceil((w - overlap) / max(1.0, tw - overlap))))
        tw = max(tw, (w + (nx - 1) * overlap) / nx)
        ny = max(1, min(MAX_TILES // nx, math.ceil((h - overlap * 0.5) / max(1.0, th - overlap * 0.5))))
        th = max(th, (h + (ny - 1) * overlap * 0.5) / ny)
    xs = [x0 + round(i * (w - tw) / (nx - 1)) if nx > 1 else x0 for i in range(nx)]
    ys = [y0 + round(j * (h - th) / (ny - 1)) if ny > 1 else y0 for j in range(ny)]
    return [Window(x, y, round(tw), round(th)) for y in ys for x in xs]


def _scaled_calibration(calibration: Any, frame_w: int, frame_h: int) -> tuple[list | None, tuple[float, float] | None]:
    """ROI and plate widths from the calibration, rescaled when the frame size differs from the calibrated one."""
    if calibration is None:
        return None, None
    roi = getattr(calibration, "roi", None)
    widths = getattr(calibration, "plate_width_px", None)
    size = getattr(calibration, "image_size", None)
    if size and (size[0] != frame_w or size[1] != frame_h):
        sx, sy = frame_w / size[0], frame_h / size[1]
        if abs(sx / sy - 1.0) > 0.02:  # not the same view rescaled: the ROI and plate widths will be distorted
            log.warning("calibration made for %dx%d frames is stretched to %dx%d frames (another aspect ratio)", size[0], size[1], frame_w, frame_h)
        roi = [(x * sx, y * sy) for x, y in roi] if roi else roi
        widths = (widths[0] * sx, widths[1] * sx) if widths else widths
    return (list(roi) if roi else None), (tuple(widths) if widths else None)


# --------------------------------------------------------------------------- the detector


def _sidecar_int(model: OnnxModel, section: dict, key: str, default: int, low: int = 1) -> int:
    """An integer field of the model's sidecar: a ModelError names the file, field and value when it is not one."""
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ModelError(f"{model.path.with_suffix('.json')}: {key} must be an integer >= {low}, got {value!r}")
    return value


class OnnxPlateDetector:
    """The project's ONNX detector with ROI cropping, tiling, decoding and NMS."""

    def __init__(self, model: OnnxModel, threshold: float, nms_iou: float, calibration: Any = None, zoom_out: bool = True):
        self.model = model
        self.threshold = threshold
        self.nms_iou = nms_iou
        self.calibration = calibration
        side = model.sidecar
        inp = side.get("input", {})
        self.input_hw = (_sidecar_int(model, inp, "height", DEFAULT_INPUT_HW[0]), _sidecar_int(model, inp, "width", DEFAULT_INPUT_HW[1]))
        self.pad = _sidecar_int(model, inp, "pad_value", DEFAULT_PAD, low=0)
        self.stride = _sidecar_int(model, side, "stride", 4)
        self.name = f"onnx:{model.name}-{model.version}"
        self.models = {model.path.name: model.sha256}
        self._plans: dict[tuple[int, int], tuple[list[Window], list | None, tuple[float, float] | None]] = {}
        self.zoom_out = zoom_out
        # A model saved with a free input height and width gets canvases trimmed to what each picture needs.
        self._free_hw: tuple[str, str] | None = getattr(model, "free_hw", None)

    def plan(self, frame_w: int, frame_h: int) -> tuple[list[Window], list | None, tuple[float, float] | None]:
        """Windows, ROI polygon and plate widths for frames of this size (cached: the camera keeps its size)."""
        key = (frame_w, frame_h)
        if key not in self._plans:
            roi, widths = _scaled_calibration(self.calibration, frame_w, frame_h)
            if roi and _roi_box(frame_w, frame_h, roi) is None:
                # Searching the whole frame only to drop every box outside the ROI would see nothing.
                log.warning("calibration ROI lies outside the %dx%d frame: the whole frame is searched", frame_w, frame_h)
                roi = None
            windows = plan_windows(frame_w, frame_h, self.input_hw, roi, widths)
            if len(windows) > 1:
                log.info("detector: %d tiles per %dx%d frame so %.0f px plates stay findable", len(windows), frame_w, frame_h, widths[0])
            self._plans[key] = (windows, roi, widths)
        return self._plans[key]

    def network(self, height: int, width: int) -> OnnxModel:
        """The model to run on a canvas of this size: for a free-size model, its session fixed to that size."""
        return self.model if self._free_hw is None else self.model.sized(**dict(zip(self._free_hw, (height, width))))

    def detect_window(self, image: np.ndarray, window: Window, shrink: float = 1.0, max_scale: float = math.inf) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (N,4), scores (N,), corners (N,4,2) in frame pixels for one window, before filtering and NMS."""
        crop = image[window.y : window.y + window.h, window.x : window.x + window.w]
        canvas, scale = letterbox(crop, self.input_hw, self.pad, shrink, max_scale, trim=self._free_hw is not None)
        tensor = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        heat, reg = self.network(canvas.shape[0], canvas.shape[1]).run(tensor)
        boxes, scores, corners = decode(heat[0, 0], reg[0], self.threshold, self.stride)
        # Drop what was found in the grey padding (no image there).
        inside = (boxes[:, 0] + boxes[:, 2] / 2 < crop.shape[1] * scale) & (boxes[:, 1] + boxes[:, 3] / 2 < crop.shape[0] * scale)
        boxes, scores, corners = boxes[inside], scores[inside], corners[inside]
        boxes = boxes.copy()
        boxes[:, :2] = unletterbox(boxes[:, :2], scale, window)
        boxes[:, 2:] /= scale
        return boxes, scores, unletterbox(corners, scale, window)

    def detect(self, image: np.ndarray) -> list[Detection]:
        image = bgr8(image)
        fh, fw = image.shape[:2]
        windows, roi, widths = self.plan(fw, fh)
        max_scale = PLATE_INPUT_PX / widths[0] if widths else math.inf
        parts = [self.detect_window(image, w, max_scale=max_scale) for w in windows]
        if len(windows) > 1:
            parts = _drop_cut_at_seams(parts, windows)
        elif self.zoom_out and widths is None and roi is None and not len(parts[0][1]):
            # Nothing found and no calibration to say how large plates are: a close-up (a plate wider
            # than about half the picture, larger than any the model was trained on) is looked for
            # again with the picture drawn at half size.
            parts = [self.detect_window(image, windows[0], ZOOM_OUT)]
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        corners = np.concatenate([p[2] for p in parts])
        # Clip to the frame; a box mostly outside it is noise.
        x0 = np.clip(boxes[:, 0], 0, fw)
        y0 = np.clip(boxes[:, 1], 0, fh)
        x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, fw)
        y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, fh)
        boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
        ok = (boxes[:, 2] >= 2) & (boxes[:, 3] >= 2)
        if widths:
            ok &= (boxes[:, 2] >= widths[0] * PLATE_WIDTH_TOLERANCE[0]) & (boxes[:, 2] <= widths[1] * PLATE_WIDTH_TOLERANCE[1])
        if roi:
            poly = np.asarray(roi, np.float32).reshape(-1, 1, 2)
            centres = boxes[:, :2] + boxes[:, 2:] / 2
            ok &= np.array([cv2.pointPolygonTest(poly, (float(cx), float(cy)), False) >= 0 for cx, cy in centres], bool)
        boxes, scores, corners = boxes[ok], scores[ok], corners[ok]
        keep = nms(boxes, scores, self.nms_iou)
        return [_detection(boxes[i], scores[i], corners[i], fw, fh) for i in keep]


def _drop_cut_at_seams(parts: list[tuple[np.ndarray, ...]], windows: list[Window], margin: float = 2.0) -> list[tuple[np.ndarray, ...]]:
    """Drop boxes touching a tile edge inside the frame: tiles overlap by the largest plate, so that
    plate is whole in a neighbouring tile, and the cut half would survive NMS as a second box."""
    x_lo, y_lo = min(w.x for w in windows), min(w.y for w in windows)
    x_hi, y_hi = max(w.x + w.w for w in windows), max(w.y + w.h for w in windows)
    kept = []
    for (boxes, scores, corners), w in zip(parts, windows):
        cut = np.zeros(len(boxes), bool)
        if w.x > x_lo:
            cut |= boxes[:, 0] <= w.x + margin
        if w.y > y_lo:
            cut |= boxes[:, 1] <= w.y + margin
        if w.x + w.w < x_hi:
            cut |= boxes[:, 0] + boxes[:, 2] >= w.x + w.w - margin
        if w.y + w.h < y_hi:
            cut |= boxes[:, 1] + boxes[:, 3] >= w.y + w.h - margin
        kept.append((boxes[~cut], scores[~cut], corners[~cut]))
    return kept


def _detection(box: np.ndarray, score: float, corners: np.ndarray, fw: int, fh: int) -> Detection:
    c: Corners | None = None  # NaN corners (a broken model's output) would crash the crop: it cuts the box instead
    if np.isfinite(corners).all():
        pts = np.clip(corners, [0, 0], [fw - 1, fh - 1])
        c = tuple((float(x), float(y)) for x, y in pts)  # type: ignore[assignment]
    return Detection(Box(float(box[0]), float(box[1]), float(box[2]), float(box[3])), float(min(1.0, max(0.0, score))), c)


def load_detector(cfg: CameraConfig, calibration: Any = None) -> PlateDetector:
    """The camera's detector; a missing or broken model file raises ModelError naming it."""
    path: Path = cfg.model_path(cfg.detector.model)
    model = load_model(path, threads=cfg.detector.threads)
    detector = OnnxPlateDetector(model, cfg.detector.threshold, cfg.detector.nms_iou, calibration)
    h, w = detector.input_hw
    sidecar = path.with_suffix(".json")
    # The input size comes from the sidecar, or is the default when there is none: name whichever it was.
    where = str(sidecar) if sidecar.is_file() else f"{path}: no sidecar {sidecar.name}, so the default"
    if h % NET_STRIDE or w % NET_STRIDE:
        raise ModelError(f"{where}: input {h}x{w} (height x width) does not fit the model {path}: both must be multiples of {NET_STRIDE}")
    fixed = list(model.session.get_inputs()[0].shape[2:])
    if all(isinstance(d, int) for d in fixed) and fixed != [h, w]:
        raise ModelError(f"{where}: input {h}x{w} (height x width) does not fit the model {path}, which takes {fixed[0]}x{fixed[1]}")
    # A warm-up on a blank frame of the camera's size opens the sessions its frames will use (and the
    # close-up retry's), so the first real frame is not slowed by onnxruntime's lazy initialisation.
    size = getattr(calibration, "image_size", None)
    fw, fh = (int(size[0]), int(size[1])) if size else (w, h)
    try:
        detector.detect(np.full((fh, fw, 3), DEFAULT_PAD, np.uint8))
    except Exception as err:  # onnxruntime's untyped errors: a model that is not this detector's kind
        raise ModelError(f"{where}: input {h}x{w} (height x width) does not fit the model {path}: {err}") from None
    return detector
