"""Blur bystanders in overview images: faces found by OpenCV's LBP frontal-face cascade, never the plate being read.

Why our own cascade evaluator: OpenCV 5 (the version this project installs) no longer
has `CascadeClassifier`, `HOGDescriptor` or the `cv2.data.haarcascades` files, and its
`FaceDetectorYN` needs a model file that no installed package ships. The cascade
itself is OpenCV's trained `lbpcascade_frontalface.xml` (Apache-2.0 / BSD, from the
OpenCV repository, also shipped by scikit-image), converted once to
`edge/data/lbpcascade_frontalface.json` by `cascade_from_opencv_xml`. The evaluation
below is OpenCV's multi-block LBP (MB-LBP) algorithm in numpy, vectorised over all
window positions of one scale, so no compiled extension or extra dependency is needed.
It finds exactly the windows a one-window-at-a-time evaluation finds (tests/unit/test_redaction.py
holds such a reference): about 0.16-0.2 s of one core for a 1080p frame searched at 1280 px.

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
DENSE_STAGES = 3  # stages run on whole maps (fast per window); after them about a seventh of windows are left
_DENSE_BAND_ROWS = 160  # window rows per band in the dense stages: long enough that numpy call overhead is small
_SPARSE_CHUNK = 4096  # windows per batch in the sparse stages: bounds their temporaries to a few MB
PIXEL_CELLS = 6  # a blurred region keeps at most this many cells across: no identity survives

Rect = tuple[int, int, int, int]  # x, y, w, h in pixels


class BystanderDetector(Protocol):
    name: str

    def detect(self, bgr: np.ndarray) -> list[Rect]: ...


# Positions of the 8 neighbour blocks in a row-major 3 x 3 grid, clockwise from the top-left.
_NEIGHBOURS = np.array([0, 1, 2, 5, 8, 7, 6, 3])
# Each block's bit in the LBP code, by row-major position (MSB first along _NEIGHBOURS; the centre has none).
_CODE_WEIGHTS = np.zeros((9, 1), dtype=np.uint8)
_CODE_WEIGHTS[_NEIGHBOURS, 0] = 1 << np.arange(7, -1, -1)
_LUT_ROWS = 256 * np.arange(16)[:, None]  # start of each weak classifier's row in a flattened weak x 256 table


@dataclass(frozen=True)
class _Stage:
    """One boosted stage. A window passes when the sum of its weak classifiers' leaves reaches
    `threshold`; each weak classifier picks one of two leaves from its feature's LBP code, so the
    stage's verdict is a function of a k-bit leaf pattern, tabulated once in `passes`. Evaluating
    a window is then integer work only: comparisons, table look-ups and bit ORs."""

    threshold: float
    rects: np.ndarray  # weak classifiers x 4: x, y, w, h of one block of its feature, in window pixels
    leaf_bits: np.ndarray  # weak x 256 uint16: 1 << i where weak classifier i takes its second leaf for that code, else 0
    passes: np.ndarray  # 2**weak uint8 (0/1): the stage's verdict for every leaf pattern

    @classmethod
    def build(cls, threshold: float, leaves: np.ndarray, second_leaf: np.ndarray, rects: np.ndarray) -> _Stage:
        """`leaves`: weak x 2 leaf values; `second_leaf`: weak x 256, True where a code selects the second."""
        k = len(leaves)
        if k > 16:
            raise ValueError(f"cascade stage with {k} weak classifiers: leaf patterns are at most 16 bits")
        weak = np.arange(k)
        patterns = (np.arange(2**k)[:, None] >> weak) & 1  # every leaf pattern: row p, column i = bit i of p
        # Summed as rows of a 2-D float64 array, exactly as the per-window evaluation summed them: some
        # patterns tie with the threshold to the last bit (stage 18 has one where a left-to-right sum and
        # numpy's row sum disagree), so float32 or another order would change which windows pass.
        scores = leaves[weak, patterns].sum(axis=1)
        return cls(
            threshold=threshold,
            rects=rects,
            leaf_bits=second_leaf.astype(np.uint16) << weak[:, None].astype(np.uint16),
            passes=(scores >= threshold).astype(np.uint8),
        )

    def byte_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """`leaf_bits` as uint8 and `passes` padded to 256 entries: the cv2.LUT tables of the dense stages."""
        if len(self.rects) > 8:
            raise ValueError(f"a dense cascade stage builds an 8-bit leaf pattern: {len(self.rects)} weak classifiers")
        return self.leaf_bits.astype(np.uint8), np.pad(self.passes, (0, 256 - len(self.passes)))

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


class _Phases:
    """An integral image split into step x step phases, each a flat array with rows `width` long.

    Phase (a, b) holds at [r * width + c] the integral-image value at (a + step * r, b + step * c).
    Every window-grid quantity below is a flat array indexed (window row) * width + (window column),
    so a shift by whole windows is a plain slice and every operation runs on one contiguous run
    (numpy compares contiguous int16 with SIMD; 2-D strided views cost 2-4x as much). The columns
    from the grid's width to `width` are windows that do not exist: computed and ignored.

    Values are int16: the integral image is taken modulo 2**16, so its differences wrap back to the
    exact block sums, which are below 2**15 (checked when the cascade is loaded).
    """

    def __init__(self, ii: np.ndarray, step: int, pad_rows: int) -> None:
        self.step = step
        h, w = -(-ii.shape[0] // step), -(-ii.shape[1] // step)
        self.width = w
        self.flat: dict[tuple[int, int], np.ndarray] = {}
        for a in range(step):
            for b in range(step):
                src = ii[a::step, b::step]
                phase = np.zeros((h + pad_rows, w), dtype=np.int16)
                phase[: src.shape[0], : src.shape[1]] = src  # int32 -> int16 wraps (modulo 2**16)
                self.flat[a, b] = phase.ravel()


class _BandSums:
    """Block sums at every window of a band of window rows (`rows` from grid row `gy0`), as flat arrays.

    The map for block size (fw, fh) and phase (py, px) holds at [i * width + j] the sum of the
    fw x fh block whose top-left pixel is (py + step * (gy0 + i), px + step * j). The block at
    (oy, ox) in every window of the band is then a slice of the map for phase (oy % step, ox % step),
    starting (oy // step) rows and (ox // step) columns in.
    """

    def __init__(self, phases: _Phases, gy0: int, rows: int, window_h: int) -> None:
        self.phases, self.gy0 = phases, gy0
        self.size = rows * phases.width
        self.length = (rows + window_h // phases.step + 1) * phases.width  # room for the farthest block
        self._maps: dict[tuple[int, int, int, int], np.ndarray] = {}

    def block(self, fw: int, fh: int, oy: int, ox: int) -> np.ndarray:
        """The sum of the fw x fh block at (oy, ox) in every window of the band."""
        st, w = self.phases.step, self.phases.width
        key = (fw, fh, oy % st, ox % st)
        m = self._maps.get(key)
        if m is None:
            m = self._maps[key] = self._map(*key)
        start = (oy // st) * w + ox // st
        return m[start : start + self.size]

    def _map(self, fw: int, fh: int, py: int, px: int) -> np.ndarray:
        st, w = self.phases.step, self.phases.width

        def corner(dy: int, dx: int) -> np.ndarray:
            y, x = py + dy, px + dx
            start = (y // st + self.gy0) * w + x // st
            return self.phases.flat[y % st, x % st][start : start + self.length]

        s = corner(fh, fw) - corner(0, fw)
        s -= corner(fh, 0)
        s += corner(0, 0)
        return s


def _dense_codes(sums: _BandSums, rect: np.ndarray, code: np.ndarray, bit: np.ndarray) -> None:
    """Write into `code` the LBP code of one feature at every window of the band (`bit`: scratch)."""
    fx, fy, fw, fh = (int(v) for v in rect)
    blocks = [sums.block(fw, fh, fy + r * fh, fx + c * fw) for r in range(3) for c in range(3)]
    centre = blocks[4]
    np.greater_equal(blocks[_NEIGHBOURS[0]], centre, out=code.view(np.bool_))
    for i in _NEIGHBOURS[1:]:  # most significant bit first; doubling is faster than << on uint8
        np.greater_equal(blocks[i], centre, out=bit.view(np.bool_))
        np.add(code, code, out=code)
        np.add(code, bit, out=code)


class LbpCascade:
    """An OpenCV LBP cascade evaluated with numpy; `detect` mirrors `CascadeClassifier.detectMultiScale`."""

    name = DETECTOR_NAME

    def __init__(self, spec: dict[str, Any]) -> None:
        self.window = tuple(spec["window"])
        features = spec["features"]
        if max(f[2] * f[3] for f in features) * 255 >= 2**15:
            raise ValueError("cascade blocks too large for int16 block sums")
        stages = []
        codes = np.arange(256)
        for st in spec["stages"]:
            second, leaves, rects = [], [], []
            for w in st["weak"]:
                words = np.array(w["subset"], dtype=np.int64) & 0xFFFFFFFF
                bit_set = (words[codes >> 5] >> (codes & 31)) & 1
                second.append(bit_set == 0)  # OpenCV: leafValues[subset bit set ? 0 : 1]
                leaves.append(w["leaves"])
                rects.append(features[w["feature"]])
            stages.append(_Stage.build(float(st["threshold"]), np.array(leaves, dtype=np.float64), np.array(second), np.array(rects, dtype=np.intp)))
        self.stages = tuple(stages)
        self._dense_tables = [s.byte_tables() for s in self.stages[:DENSE_STAGES]]

    def _windows(self, ii: np.ndarray, ny: int, nx: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-left corners (ys, xs) of the windows on an ny x nx grid (spacing `step`) that pass every stage."""
        wh = self.window[1]
        # Bands read block sums up to a window's height below their last row (and a row further for the
        # columns past the grid's width): padding the phases keeps every slice full length.
        phases = _Phases(ii, step, pad_rows=wh // step + 2)
        bands = [self._dense_stages(phases, gy0, min(_DENSE_BAND_ROWS, ny - gy0), nx) for gy0 in range(0, ny, _DENSE_BAND_ROWS)]
        gy, gx = np.concatenate([b[0] for b in bands]), np.concatenate([b[1] for b in bands])
        ii16 = ii.astype(np.int16)  # wraps modulo 2**16: block sums stay exact (see _Phases)
        base = self._sparse_stages(ii16, gy * step * ii.shape[1] + gx * step)
        return np.divmod(base, ii.shape[1])

    def _dense_stages(self, phases: _Phases, gy0: int, rows: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
        """Grid positions (gy, gx) of the windows in grid rows gy0 .. gy0 + rows that pass the first stages.

        These run on whole maps of a band of window rows (the band's block sums then cost a band's
        memory, not a frame's): each feature's LBP code at every window, its weak classifier's leaf
        bit by table look-up (cv2.LUT), ORed into the stage's leaf pattern, whose verdict is one more look-up.
        """
        sums = _BandSums(phases, gy0, rows, self.window[1])
        alive = np.ones(sums.size, dtype=np.uint8)
        code, bit, pattern = (np.empty(sums.size, dtype=np.uint8) for _ in range(3))
        for stage, (leaf_bits, passes) in zip(self.stages, self._dense_tables):
            pattern.fill(0)
            for rect, bits in zip(stage.rects, leaf_bits):
                _dense_codes(sums, rect, code, bit)
                pattern |= cv2.LUT(code, bits, dst=bit).ravel()
            alive &= cv2.LUT(pattern, passes, dst=bit).ravel()
        gy, gx = np.nonzero(alive.reshape(rows, phases.width)[:, :nx])
        return gy + gy0, gx

    def _sparse_stages(self, ii16: np.ndarray, base: np.ndarray) -> np.ndarray:
        """The windows (flat integral-image offsets) that pass the remaining stages.

        Few windows are left, so each stage gathers, for the windows still alive and all its weak
        classifiers at once, the 16 integral-image corners of each feature's 3 x 3 blocks, takes
        block sums, compares them with the centre block and packs the 8-bit LBP code (neighbours
        clockwise from the top-left, most significant bit first, as OpenCV orders them).
        """
        flat = ii16.ravel()
        for stage in self.stages[DENSE_STAGES:]:
            if len(base) == 0:
                break
            offsets = stage.corner_offsets(ii16.shape[1]).reshape(-1, 1)
            keep = [_sparse_stage(stage, flat, offsets, base[i : i + _SPARSE_CHUNK]) for i in range(0, len(base), _SPARSE_CHUNK)]
            base = base[np.concatenate(keep).view(np.bool_)]
        return base

    def detect(self, gray: np.ndarray, scale_factor: float = 1.1, min_neighbors: int = 3) -> list[Rect]:
        """Faces in a grey uint8 image: boxes in its pixels, grouped as OpenCV's groupRectangles does."""
        return group_rectangles(self.hits(gray, scale_factor), min_neighbors)

    def hits(self, gray: np.ndarray, scale_factor: float = 1.1) -> list[Rect]:
        """Every window, at every scale, that passes all stages (boxes in the image's pixels, before grouping)."""
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
        return hits


def _sparse_stage(stage: _Stage, flat: np.ndarray, offsets: np.ndarray, base: np.ndarray) -> np.ndarray:
    """1 (uint8) for each window at flat offset `base` that passes `stage`, else 0.

    Arrays are laid out weak classifier x ... x window, so every operation runs along long
    contiguous rows of windows (with windows innermost, numpy spent its time on 3- and 4-long loops).
    """
    k, n = len(stage.rects), len(base)
    corners = flat.take(offsets + base).reshape(k, 4, 4, n)
    strips = corners[:, 1:] - corners[:, :-1]  # int16 wrapping differences: exact (see _Phases)
    blocks = (strips[:, :, 1:] - strips[:, :, :-1]).reshape(k, 9, n)
    above = blocks >= blocks[:, 4:5]  # the centre too: cheaper than picking out the 8 neighbours; weighted 0
    codes = (above.view(np.uint8) * _CODE_WEIGHTS).sum(axis=1, dtype=np.uint8)
    pattern = stage.leaf_bits.ravel().take(codes + _LUT_ROWS[:k]).sum(axis=0)
    return stage.passes[pattern]


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
