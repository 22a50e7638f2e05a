"""Blur bystanders in overview images: faces found by OpenCV's LBP frontal-face cascade, never the plate being read.

Why our own cascade evaluator: OpenCV 5 (the version this project installs) no longer
has `CascadeClassifier`, `HOGDescriptor` or the `cv2.data.haarcascades` files, and its
`FaceDetectorYN` needs a model file that no installed package ships. The cascade
itself is OpenCV's trained `lbpcascade_frontalface.xml` (Apache-2.0 / BSD, from the
OpenCV repository, also shipped by scikit-image), converted once to
`edge/data/lbpcascade_frontalface.json` by `cascade_from_opencv_xml`. The evaluation
below is OpenCV's multi-block LBP (MB-LBP) algorithm in numpy, vectorised over all
window positions of one scale, so no compiled extension or extra dependency is needed.

Limits (said plainly, for the DPIA): this finds roughly frontal faces of at least
`MIN_FACE_PX` pixels in the detection image; profile faces and whole bodies are not
detected (OpenCV 5 ships no detector for them). `BystanderDetector` is the seam where
a stronger detector (an ONNX person model) plugs in.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

CASCADE_RESOURCE = "data/lbpcascade_frontalface.json"
DETECTOR_NAME = "opencv-lbp-frontalface"
MIN_FACE_PX = 24  # the cascade's window: smaller faces are found by detecting on a larger image
DETECT_MAX_WIDTH = 1280  # detection image width: faces >= ~24 px here, i.e. >= ~36 px in a 1080p frame
FACE_MARGIN = 0.3  # grow each face box by this fraction on every side: hair, ears, chin
DENSE_STAGES = 3  # stages run on whole maps (fast per window); after them about a tenth of windows are left
_DENSE_BAND_ROWS = 48  # window rows per band in the dense stages
PIXEL_CELLS = 6  # a blurred region keeps at most this many cells across: no identity survives

Rect = tuple[int, int, int, int]  # x, y, w, h in pixels


class BystanderDetector(Protocol):
    name: str

    def detect(self, bgr: np.ndarray) -> list[Rect]: ...


# Positions of the 8 neighbour blocks in a row-major 3 x 3 grid, clockwise from the top-left.
_NEIGHBOURS = np.array([0, 1, 2, 5, 8, 7, 6, 3])


@dataclass(frozen=True)
class _Stage:
    threshold: float
    luts: np.ndarray  # weak classifiers x 256: each one's leaf value for every LBP code
    rects: np.ndarray  # weak classifiers x 4: x, y, w, h of one block of its feature, in window pixels

    def corner_offsets(self, stride: int) -> np.ndarray:
        """weak x 16 flat offsets (in an integral image `stride` wide) of the 4 x 4 block corners."""
        x, y, w, h = (self.rects[:, i : i + 1] for i in range(4))
        steps = np.arange(4)
        rows = (y + steps * h)[:, :, None]
        cols = (x + steps * w)[:, None, :]
        return (rows * stride + cols).reshape(len(self.rects), 16)


def cascade_from_opencv_xml(path: Path) -> dict[str, Any]:
    """An OpenCV LBP cascade (new XML format) as the JSON-ready dict `LbpCascade` loads."""
    root = ET.parse(path).getroot().find("cascade")
    if root is None or (root.findtext("featureType") or "").strip() != "LBP":
        raise ValueError(f"{path}: not an OpenCV LBP cascade")
    features = [[int(v) for v in r.findtext("rect").split()] for r in root.find("features")]
    stages = []
    for st in root.find("stages"):
        weak = []
        for wc in st.find("weakClassifiers"):
            nodes = [int(v) for v in wc.findtext("internalNodes").split()]
            leaves = [float(v) for v in wc.findtext("leafValues").split()]
            # nodes: left, right, feature index, then 8 x 32-bit subset words (one bit per LBP code)
            weak.append({"feature": nodes[2], "subset": nodes[3:11], "leaves": leaves})
        stages.append({"threshold": float(st.findtext("stageThreshold")), "weak": weak})
    return {
        "source": "OpenCV data/lbpcascades/lbpcascade_frontalface.xml (Apache-2.0 / BSD-3-Clause, OpenCV contributors)",
        "window": [int(root.findtext("width")), int(root.findtext("height"))],
        "features": features,
        "stages": stages,
    }


def _dense_codes(ii: np.ndarray, sums: dict, ny: int, nx: int, step: int, rect: np.ndarray) -> np.ndarray:
    """The LBP code of one feature at every window of an ny x nx grid."""
    fx, fy, fw, fh = (int(v) for v in rect)
    s = sums.get((fw, fh))
    if s is None:  # the sum of every fw x fh block, indexed by its top-left pixel
        s = sums[(fw, fh)] = ii[fh:, fw:] - ii[:-fh, fw:] - ii[fh:, :-fw] + ii[:-fh, :-fw]
    blocks = [
        s[fy + r * fh : fy + r * fh + (ny - 1) * step + 1 : step, fx + c * fw : fx + c * fw + (nx - 1) * step + 1 : step]
        for r in range(3)
        for c in range(3)
    ]
    code = np.zeros((ny, nx), dtype=np.uint8)
    for bit, i in zip(range(7, -1, -1), _NEIGHBOURS):
        code |= (blocks[i] >= blocks[4]).view(np.uint8) << np.uint8(bit)  # bool viewed as 0/1 bytes: no copy
    return code


class LbpCascade:
    """An OpenCV LBP cascade evaluated with numpy; `detect` mirrors `CascadeClassifier.detectMultiScale`."""

    name = DETECTOR_NAME

    def __init__(self, spec: dict[str, Any]) -> None:
        self.window = tuple(spec["window"])
        features = spec["features"]
        stages = []
        codes = np.arange(256)
        for st in spec["stages"]:
            luts, rects = [], []
            for w in st["weak"]:
                words = np.array(w["subset"], dtype=np.int64) & 0xFFFFFFFF
                bit_set = (words[codes >> 5] >> (codes & 31)) & 1
                # OpenCV: leafValues[subset bit set ? 0 : 1]
                luts.append(np.where(bit_set == 1, w["leaves"][0], w["leaves"][1]))
                rects.append(features[w["feature"]])
            stages.append(_Stage(float(st["threshold"]), np.array(luts, dtype=np.float64), np.array(rects, dtype=np.intp)))
        self.stages = tuple(stages)

    def _windows(self, ii: np.ndarray, ny: int, nx: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-left corners (ys, xs) of the windows on an ny x nx grid (spacing `step`) that pass every stage.

        The first stages run densely on whole block-sum maps; each later stage is a handful
        of numpy operations over the windows still alive and all its weak classifiers at
        once: one gather of the 16 integral-image corners per feature, block sums,
        comparisons with the centre block, and `packbits` to make the 8-bit LBP code
        (neighbours clockwise from the top-left, most significant bit first, as OpenCV orders them).
        """
        # Dense stages run on bands of window rows: the cached block-sum maps then cost a band's
        # memory, not a frame's (about 75 MB less peak at 1280 px wide).
        found_y, found_x = [], []
        wh = self.window[1]
        for gy0 in range(0, ny, _DENSE_BAND_ROWS):
            rows = min(_DENSE_BAND_ROWS, ny - gy0)
            band = ii[gy0 * step : (gy0 + rows - 1) * step + wh + 1]
            sums: dict[tuple[int, int], np.ndarray] = {}
            alive = np.ones((rows, nx), dtype=bool)
            for stage in self.stages[:DENSE_STAGES]:
                score = np.zeros((rows, nx))
                for lut, rect in zip(stage.luts, stage.rects):
                    score += lut[_dense_codes(band, sums, rows, nx, step, rect)]
                alive &= score >= stage.threshold
            gy, gx = np.nonzero(alive)
            found_y.append((gy + gy0) * step)
            found_x.append(gx * step)
        ys, xs = np.concatenate(found_y), np.concatenate(found_x)
        stride = ii.shape[1]
        flat = ii.ravel()
        base = ys * stride + xs
        for stage in self.stages[DENSE_STAGES:]:
            if len(base) == 0:
                break
            k = len(stage.rects)
            corners = flat[base[:, None, None] + stage.corner_offsets(stride)[None]].reshape(len(base), k, 4, 4)
            blocks = (corners[..., 1:, 1:] - corners[..., :-1, 1:] - corners[..., 1:, :-1] + corners[..., :-1, :-1]).reshape(len(base), k, 9)
            above = blocks[..., _NEIGHBOURS] >= blocks[..., 4:5]
            codes = np.packbits(above, axis=-1)[..., 0]
            score = stage.luts[np.arange(k), codes].sum(axis=1)
            keep = score >= stage.threshold
            base, ys, xs = base[keep], ys[keep], xs[keep]
        return ys, xs

    def detect(self, gray: np.ndarray, scale_factor: float = 1.1, min_neighbors: int = 3) -> list[Rect]:
        """Faces in a grey uint8 image: boxes in its pixels, grouped as OpenCV's groupRectangles does."""
        ww, wh = self.window
        h0, w0 = gray.shape[:2]
        hits: list[Rect] = []
        scale = 1.0
        while w0 / scale >= ww and h0 / scale >= wh:
            sw, sh = int(round(w0 / scale)), int(round(h0 / scale))
            img = gray if scale == 1.0 else cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_LINEAR)
            ii = cv2.integral(img, sdepth=cv2.CV_32S)  # int32 holds 255 x 8M pixels
            step = 1 if scale > 2 else 2  # OpenCV's spacing: every other window at the finest scales
            ny, nx = (sh - wh) // step + 1, (sw - ww) // step + 1
            ys, xs = self._windows(ii, ny, nx, step)
            for y, x in zip(ys, xs):
                hits.append((int(round(x * scale)), int(round(y * scale)), int(round(ww * scale)), int(round(wh * scale))))
            scale *= scale_factor
        return group_rectangles(hits, min_neighbors)


def group_rectangles(rects: list[Rect], min_neighbors: int, eps: float = 0.2) -> list[Rect]:
    """Cluster similar boxes and keep clusters of more than `min_neighbors` (OpenCV's groupRectangles)."""
    n = len(rects)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        xi, yi, wi, hi = rects[i]
        for j in range(i + 1, n):
            xj, yj, wj, hj = rects[j]
            delta = eps * (min(wi, wj) + min(hi, hj)) * 0.5
            if (abs(xi - xj) <= delta and abs(yi - yj) <= delta
                    and abs(xi + wi - xj - wj) <= delta and abs(yi + hi - yj - hj) <= delta):
                parent[find(i)] = find(j)
    clusters: dict[int, list[Rect]] = {}
    for i, r in enumerate(rects):
        clusters.setdefault(find(i), []).append(r)
    out = []
    for members in clusters.values():
        if len(members) > min_neighbors:
            arr = np.array(members, dtype=np.float64).mean(axis=0)
            out.append(tuple(int(round(v)) for v in arr))
    return out


@lru_cache(maxsize=1)
def face_cascade() -> LbpCascade:
    text = resources.files("edge").joinpath(CASCADE_RESOURCE).read_text(encoding="utf-8")
    return LbpCascade(json.loads(text))


class FaceDetector:
    """Frontal faces in a BGR frame, found on a copy no wider than `max_width`."""

    name = DETECTOR_NAME

    def __init__(self, max_width: int = DETECT_MAX_WIDTH, min_neighbors: int = 3) -> None:
        self.max_width = max_width
        self.min_neighbors = min_neighbors

    def detect(self, bgr: np.ndarray) -> list[Rect]:
        """Faces in a BGR, BGRA or grey (H x W or H x W x 1: infrared cameras) image."""
        h, w = bgr.shape[:2]
        if h == 0 or w == 0:
            return []
        f = min(1.0, self.max_width / w)
        gray = _grey(bgr)
        if f < 1.0:
            gray = cv2.resize(gray, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
        return [tuple(int(round(v / f)) for v in r) for r in face_cascade().detect(gray, min_neighbors=self.min_neighbors)]


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[:, :, 0]
    return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)


def _grow(r: Rect, margin: float, width: int, height: int) -> Rect:
    x, y, w, h = r
    dx, dy = int(w * margin), int(h * margin)
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(width, x + w + dx), min(height, y + h + dy)
    return (x0, y0, x1 - x0, y1 - y0)


def pixelate(img: np.ndarray, r: Rect, cells: int = PIXEL_CELLS) -> None:
    """Replace a region (in place) by a coarse mosaic, then soften it: unlike a light blur, this cannot be undone."""
    x, y, w, h = r
    if w <= 0 or h <= 0:
        return
    roi = img[y : y + h, x : x + w]
    cw = max(1, min(cells, w))
    ch = max(1, round(cw * h / w))
    small = cv2.resize(roi, (cw, ch), interpolation=cv2.INTER_AREA)
    mosaic = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    k = max(3, (min(w, h) // 4) | 1)
    roi[:] = cv2.GaussianBlur(mosaic, (k, k), 0)


def redact(image: np.ndarray, faces: list[Rect], keep: list[Rect]) -> tuple[np.ndarray, int]:
    """A copy of `image` with each face (grown by FACE_MARGIN) pixelated, the `keep` boxes (the plate being read) untouched.

    Returns the copy and the number of regions redacted.
    """
    h, w = image.shape[:2]
    grown = (_grow(r, FACE_MARGIN, w, h) for r in faces)
    regions = [r for r in grown if r[2] > 0 and r[3] > 0]  # a box wholly outside the image redacts nothing: not counted
    out = image.copy()
    for r in regions:
        pixelate(out, r)
    for x, y, kw, kh in keep:  # the plate is evidence: restore it exactly, whatever overlapped it
        x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + kw), min(h, y + kh)
        out[y0:y1, x0:x1] = image[y0:y1, x0:x1]
    return out, len(regions)
