"""Synthetic detector scenes: rendered plates composited onto varied backgrounds.

A scene is drawn directly at the detector's input size (no 1080p intermediate,
so the 16 data workers stay ahead of the GPU). Each plate is warped by a random
perspective, lit, blurred and optionally mounted on a crude vehicle front (body,
grille, headlights) so the model learns plates in context. Every scene also gets
plate-like distractors that must NOT fire: road signs and van livery with text,
grilles, blank light rectangles, stripes, and text strips.

Labels are the four plate corners (top-left, top-right, bottom-right,
bottom-left) in scene pixels; the axis-aligned box is their bounding rectangle.

Plates come from `models.train.render.random_plate` (the project's renderer).
Real plate crops (train split of openalpr_us_plate_crops, carried by the
training data) may be passed in as extra plate images for real textures.
A small Hershey-font fallback keeps this module usable when the renderer is
absent (older checkouts, unit tests on a machine without the fonts).
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, field
from typing import Callable, Sequence

import cv2
import numpy as np

SCENE_SIZE = (384, 640)  # (height, width): the detector input
MIN_PLATE_W = 12.0  # smallest plate width drawn, in scene pixels
MAX_PLATE_W = 300.0

_WORDS = (
    "STOP", "SLOW", "GIVE WAY", "BUS LANE", "PLUMBING", "LTD", "DELIVERY", "CITY CENTRE",
    "A40", "M25", "EXIT 12", "CAFE", "TAXI", "POLICE", "SALE", "0800 123 456", "HIRE", "PARKING",
    "BUILDERS", "www.example.co.uk", "NO ENTRY", "ONE WAY", "OXFORD 12", "LONDON", "SCHOOL",
)


@dataclass
class PlacedPlate:
    corners: np.ndarray  # 4x2 float32, scene pixels, TL TR BR BL
    text: str = ""

    @property
    def box(self) -> tuple[float, float, float, float]:
        x0, y0 = self.corners.min(axis=0)
        x1, y1 = self.corners.max(axis=0)
        return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


@dataclass
class Scene:
    image: np.ndarray  # BGR uint8
    plates: list[PlacedPlate] = field(default_factory=list)


# --------------------------------------------------------------------------- plates


def _fallback_plate(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A plain UK-proportioned plate drawn with OpenCV's Hershey font (used only without the renderer)."""
    h = 110
    w = int(h * rng.choice([4.7, 4.7, 2.0, 1.6]))
    colour = (0, 204, 255) if rng.random() < 0.5 else (240, 240, 240)
    img = np.full((h, w, 3), colour, np.uint8)
    text = "".join(rng.choice(list(string.ascii_uppercase + string.digits), size=int(rng.integers(5, 8))))
    scale = h / 40
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, 6)
    scale *= min(1.0, 0.9 * w / tw)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, 6)
    cv2.putText(img, text, ((w - tw) // 2, (h + th) // 2), cv2.FONT_HERSHEY_DUPLEX, scale, (20, 20, 20), 6, cv2.LINE_AA)
    cv2.rectangle(img, (2, 2), (w - 3, h - 3), (30, 30, 30), 2)
    return img, text


def make_plate_source(real_crops: Sequence[np.ndarray] = (), real_fraction: float = 0.2) -> Callable[[np.random.Generator], tuple[np.ndarray, str]]:
    """A function rng -> (plate image BGR, text): the renderer, sometimes a real crop, else the fallback."""
    try:
        from models.train.render import random_plate  # noqa: PLC0415 - optional while the renderer is young
    except ImportError:
        random_plate = None

    def source(rng: np.random.Generator) -> tuple[np.ndarray, str]:
        if real_crops and rng.random() < real_fraction:
            return real_crops[int(rng.integers(len(real_crops)))], ""
        if random_plate is not None:
            try:
                p = random_plate(rng, height_px=int(rng.choice([48, 80, 110])))
                return p.image, p.text
            except Exception:  # a renderer bug must not stop a training run: fall back, the count is small
                pass
        return _fallback_plate(rng)

    return source


# --------------------------------------------------------------------------- backgrounds


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    small = rng.random((max(2, cells * h // w), cells, 3)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def random_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Procedural backgrounds: road-like scenes, textures, clutter."""
    kind = rng.integers(4)
    base = rng.uniform(20, 230, 3)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    img += (_smooth_noise(rng, h, w, int(rng.integers(2, 12))) - 0.5) * rng.uniform(30, 160)
    if kind == 0:  # road: sky, horizon, tarmac with lane marks
        horizon = int(rng.uniform(0.2, 0.6) * h)
        img[horizon:] = rng.uniform(60, 130) + (img[horizon:] - img[horizon:].mean()) * 0.3
        for _ in range(int(rng.integers(1, 5))):
            x0 = rng.uniform(0, w)
            x1 = x0 + rng.uniform(-w, w)
            cv2.line(img, (int(x0), horizon), (int(x1), h), (220, 220, 220), int(rng.integers(1, 8)))
    elif kind == 1:  # fine texture (foliage, gravel, brick)
        img += (rng.random((h, w, 1)).astype(np.float32) - 0.5) * rng.uniform(10, 80)
        if rng.random() < 0.5:  # brick courses
            step = int(rng.integers(6, 30))
            img[::step] *= 0.5
    elif kind == 2:  # clutter of shapes
        for _ in range(int(rng.integers(5, 40))):
            c = rng.uniform(0, 255, 3).tolist()
            x, y = int(rng.uniform(0, w)), int(rng.uniform(0, h))
            if rng.random() < 0.5:
                cv2.rectangle(img, (x, y), (x + int(rng.uniform(5, w / 3)), y + int(rng.uniform(5, h / 3))), c, -1)
            else:
                cv2.circle(img, (x, y), int(rng.uniform(3, h / 4)), c, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- distractors


def _put_text(img: np.ndarray, text: str, x: int, y: int, height: float, colour: tuple[int, ...], thick: int) -> None:
    font = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN][len(text) % 4]
    cv2.putText(img, text, (x, y), font, max(0.2, height / 22), colour, max(1, thick), cv2.LINE_AA)


_EMBLEMS = ("TDI", "GTI", "SK", "CZ", "D", "405", "SPORT", "4x4", "HYBRID", "A4", "V6", "RS", "ECO", "GB", "TAXI")


def _timestamp(rng: np.random.Generator) -> str:
    return f"20{rng.integers(10, 30)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d} {rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:{rng.integers(0, 60):02d}"


def _overlaps(box: tuple[int, int, int, int], keep_out: Sequence[tuple[float, float, float, float]]) -> bool:
    x, y, w, h = box
    return any(x < kx + kw + 2 and kx < x + w + 2 and y < ky + kh + 2 and ky < y + h + 2 for kx, ky, kw, kh in keep_out)


def add_distractors(rng: np.random.Generator, img: np.ndarray, count: int, keep_out: Sequence[tuple[float, float, float, float]] = ()) -> None:
    """Things that look a little like plates and must not be detected (seen as false positives on real photos)."""
    h, w = img.shape[:2]
    for _ in range(count):
        kind = int(rng.integers(11))
        bw = int(rng.uniform(15, w / 2.5))
        bh = int(bw * rng.uniform(0.15, 1.0))
        x, y = int(rng.uniform(-bw / 4, w - bw * 0.75)), int(rng.uniform(-bh / 4, h - bh * 0.75))
        if _overlaps((x, y, bw, bh), keep_out):
            continue
        fg = tuple(int(v) for v in rng.uniform(0, 255, 3))
        bg = tuple(int(v) for v in rng.uniform(0, 255, 3))
        words = str(rng.choice(_WORDS))
        if kind == 0:  # road sign: coloured panel, border, white text
            bg = [(160, 60, 0), (40, 110, 0), (255, 255, 255), (0, 200, 255), (30, 30, 200)][int(rng.integers(5))]
            cv2.rectangle(img, (x, y), (x + bw, y + bh), bg, -1)
            cv2.rectangle(img, (x, y), (x + bw, y + bh), (255, 255, 255) if sum(bg) < 600 else (0, 0, 0), max(1, bh // 20))
            for i in range(int(rng.integers(1, 4))):
                _put_text(img, str(rng.choice(_WORDS)), x + bw // 10, y + (i + 1) * bh // 4, bh / 5, (255, 255, 255) if sum(bg) < 600 else (0, 0, 0), bh // 25)
        elif kind == 1:  # van livery: big text straight on a body colour
            _put_text(img, words, x, y + bh, bh * 0.6, fg, int(rng.integers(1, 6)))
        elif kind == 2:  # grille: parallel bars
            cv2.rectangle(img, (x, y), (x + bw, y + bh), bg, -1)
            step = int(rng.integers(3, 10))
            for yy in range(y, y + bh, step):
                cv2.line(img, (x, yy), (x + bw, yy), fg, max(1, step // 2))
        elif kind == 3:  # blank light rectangle (a plate without characters is not a plate we can read)
            c = (int(rng.uniform(180, 255)),) * 3 if rng.random() < 0.6 else (0, int(rng.uniform(160, 230)), 255)
            cv2.rectangle(img, (x, y), (x + bw, y + int(bw * rng.uniform(0.18, 0.5))), c, -1)
        elif kind == 4:  # text strip: shop fronts, stickers, dealer frames
            cv2.rectangle(img, (x, y), (x + bw, y + bh // 3 + 2), bg, -1)
            _put_text(img, words, x + 2, y + bh // 3 - 1, bh / 3.5, fg, 1)
        elif kind == 5:  # CCTV date/time overlay: light digits with a dark outline, no plate behind them
            th = float(rng.uniform(6, 22))
            text = _timestamp(rng) if rng.random() < 0.7 else f"CAM {rng.integers(1, 20)}"
            lines = [text] if rng.random() < 0.5 else text.split(" ", 1)
            shade = int(rng.uniform(170, 255))
            for i, line in enumerate(lines):
                yy = int(y + th * 1.4 * (i + 1))
                if _overlaps((x, yy - int(th), int(th * 0.9 * len(line)), int(th * 1.3)), keep_out):
                    break
                _put_text(img, line, x, yy, th, (0, 0, 0), max(2, int(th / 5)))
                _put_text(img, line, x, yy, th, (shade,) * 3, max(1, int(th / 10)))
        elif kind == 6:  # badge or emblem: chrome oval, short model name
            ew, eh = max(6, bw // 3), max(4, bw // 7)
            cv2.ellipse(img, (x + ew, y + eh), (ew, eh), 0, 0, 360, (200, 200, 200) if rng.random() < 0.5 else bg, -1)
            cv2.ellipse(img, (x + ew, y + eh), (ew, eh), 0, 0, 360, (90, 90, 90), max(1, eh // 6))
            _put_text(img, str(rng.choice(_EMBLEMS)), x + ew // 3, y + int(eh * 1.5), eh * 1.1, fg, max(1, eh // 5))
        elif kind == 7:  # chrome lettering on a body panel (TDI, SPORT, 405)
            _put_text(img, str(rng.choice(_EMBLEMS)), x, y + bh // 3, bh / 3, (int(rng.uniform(150, 240)),) * 3, max(1, bh // 15))
        elif kind == 8:  # rear lamp: red or amber block with a row of bright LEDs
            lw, lh = bw // 2 + 4, max(3, bw // 8)
            cv2.rectangle(img, (x, y), (x + lw, y + lh), (20, 20, int(rng.uniform(150, 255))), -1)
            for i in range(int(rng.integers(3, 10))):
                cv2.circle(img, (x + (i + 1) * lw // 11, y + lh // 2), max(1, lh // 4), (180, 200, 255), -1)
        elif kind == 9:  # railings, fences, barcodes: repeated vertical bars
            step = int(rng.integers(2, 9))
            for xx in range(x, x + bw, step):
                cv2.line(img, (xx, y), (xx, y + bh // 2), fg, max(1, step // 3))
        else:  # headlights, wheels
            cv2.ellipse(img, (x, y), (max(2, bw // 4), max(2, bh // 4)), 0, 0, 360, fg, -1)


# --------------------------------------------------------------------------- compositing


def _vehicle_front(rng: np.random.Generator, img: np.ndarray, cx: float, cy: float, pw: float, ph: float) -> None:
    """A crude car front around a plate: body, grille above, two lamps."""
    bw, bh = pw * rng.uniform(2.5, 5.0), ph * rng.uniform(4.0, 9.0)
    body = tuple(int(v) for v in rng.uniform(0, 255, 3))
    x0, y0 = int(cx - bw / 2), int(cy - bh * rng.uniform(0.55, 0.8))
    cv2.rectangle(img, (x0, y0), (int(x0 + bw), int(y0 + bh)), body, -1)
    if rng.random() < 0.7:
        gy = int(cy - ph * rng.uniform(1.5, 3.0))
        gh = max(2, int(ph * rng.uniform(0.6, 1.5)))
        dark = tuple(int(v * 0.3) for v in body)
        cv2.rectangle(img, (int(cx - pw * 0.9), gy - gh), (int(cx + pw * 0.9), gy), dark, -1)
        step = max(2, gh // int(rng.integers(2, 6)))
        for yy in range(gy - gh, gy, step):
            cv2.line(img, (int(cx - pw * 0.9), yy), (int(cx + pw * 0.9), yy), body, 1)
    lamp = (int(rng.uniform(180, 255)),) * 3
    for side in (-1, 1):
        lx = int(cx + side * bw * 0.38)
        cv2.ellipse(img, (lx, int(cy - ph * 2)), (max(2, int(pw * 0.3)), max(1, int(ph * 0.6))), 0, 0, 360, lamp, -1)


def _plate_quad(rng: np.random.Generator, cx: float, cy: float, pw: float, ph: float) -> np.ndarray:
    """Corners of a plate of about pw x ph centred at (cx, cy), with roll, yaw-like foreshortening and pitch."""
    half = np.array([[-pw / 2, -ph / 2], [pw / 2, -ph / 2], [pw / 2, ph / 2], [-pw / 2, ph / 2]], np.float32)
    yaw = rng.uniform(-0.35, 0.35)  # one side nearer: taller
    half[[1, 2], 1] *= 1 + yaw
    half[[0, 3], 1] *= 1 - yaw
    pitch = rng.uniform(-0.15, 0.15)  # top edge shorter or longer
    half[[0, 1], 0] *= 1 + pitch
    half[:, 0] += half[:, 1] * rng.uniform(-0.25, 0.25)  # shear from a high camera to the side
    a = math.radians(rng.normal(0, 5))
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], np.float32)
    return (half @ rot.T + [cx, cy]).astype(np.float32)


def paste_plate(rng: np.random.Generator, img: np.ndarray, plate: np.ndarray, quad: np.ndarray) -> None:
    """Warp `plate` onto `quad` of `img` in place, with lighting, shadow and a little blur."""
    h, w = img.shape[:2]
    ph, pw = plate.shape[:2]
    # Downscale first so the warp does not alias (a 110 px plate drawn 8 px tall).
    target_h = max(2.0, float(np.linalg.norm(quad[3] - quad[0])))
    if ph > 2 * target_h:
        f = 2 * target_h / ph
        plate = cv2.resize(plate, (max(2, int(pw * f)), max(2, int(ph * f))), interpolation=cv2.INTER_AREA)
        ph, pw = plate.shape[:2]
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    m = cv2.getPerspectiveTransform(src, quad)
    x0, y0 = np.floor(quad.min(0)).astype(int) - 2
    x1, y1 = np.ceil(quad.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
    m = shift @ m
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpPerspective(plate, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), m, size, flags=cv2.INTER_LINEAR)
    warped = warped.astype(np.float32)
    gain = rng.uniform(0.35, 1.25)
    gradient = np.linspace(rng.uniform(0.7, 1.3), rng.uniform(0.7, 1.3), size[0], dtype=np.float32)[None, :, None]
    warped = warped * gain * gradient + rng.uniform(-25, 25, 3)
    if rng.random() < 0.3:  # dirt and a colour cast
        warped = warped * rng.uniform(0.8, 1.1, 3)
    alpha = mask.astype(np.float32)[..., None] / 255.0
    roi = img[y0:y1, x0:x1].astype(np.float32)
    img[y0:y1, x0:x1] = np.clip(roi * (1 - alpha) + warped * alpha, 0, 255).astype(np.uint8)


def _free(box: tuple[float, float, float, float], taken: list[tuple[float, float, float, float]]) -> bool:
    x, y, w, h = box
    for tx, ty, tw, th in taken:
        if x < tx + tw + 4 and tx < x + w + 4 and y < ty + th + 4 and ty < y + h + 4:
            return False
    return True


def photometric(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Whole-image camera effects: exposure, gamma, blur (focus or motion), noise, JPEG.

    Tone changes go through one 256-entry lookup table and noise through cv2, so this
    costs a few milliseconds per scene rather than dominating the data workers.
    """
    gain = rng.uniform(0.5, 1.4) * (rng.uniform(0.2, 0.5) if rng.random() < 0.3 else 1.0)  # 30 %: night
    ramp = np.clip(np.arange(256, dtype=np.float32) * gain + rng.uniform(-30, 30), 0, 255)
    lut = (255.0 * (ramp / 255.0) ** rng.uniform(0.7, 1.4)).astype(np.uint8)
    out = cv2.LUT(img, lut)
    r = rng.random()
    if r < 0.25:
        k = int(rng.choice([3, 5]))
        out = cv2.GaussianBlur(out, (k, k), 0)
    elif r < 0.4:  # horizontal or vertical motion blur
        k = int(rng.integers(3, 9))
        kern = np.zeros((k, k), np.float32)
        if rng.random() < 0.5:
            kern[k // 2] = 1.0 / k
        else:
            kern[:, k // 2] = 1.0 / k
        out = cv2.filter2D(out, -1, kern)
    if rng.random() < 0.5:
        noise = np.empty(out.shape, np.int16)
        cv2.randn(noise, 0, float(rng.uniform(2, 10)))
        out = np.clip(out.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 95))])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def compose_scene(
    rng: np.random.Generator,
    plate_source: Callable[[np.random.Generator], tuple[np.ndarray, str]] | None = None,
    *,
    size: tuple[int, int] = SCENE_SIZE,
    background: np.ndarray | None = None,
    keep_out: Sequence[tuple[float, float, float, float]] = (),
    max_plates: int = 4,
    distractors: int | None = None,
) -> Scene:
    """One synthetic scene of `size` (h, w) with 0..max_plates plates.

    `background`, when given, must already be `size`; `keep_out` are boxes (x, y, w, h) already
    in it (real labelled plates) that new plates and distractors must not cover.
    """
    h, w = size
    source = plate_source or make_plate_source()
    img = background.copy() if background is not None else random_background(rng, h, w)
    add_distractors(rng, img, int(rng.integers(2, 9)) if distractors is None else distractors, keep_out)
    taken = list(keep_out)
    plates: list[PlacedPlate] = []
    n = int(rng.choice(np.arange(max_plates + 1), p=_count_probs(max_plates)))
    for _ in range(n * 4):  # a few tries per plate to find free space
        if len(plates) >= n:
            break
        plate, text = source(rng)
        aspect = plate.shape[1] / plate.shape[0]
        pw = float(np.exp(rng.uniform(np.log(MIN_PLATE_W), np.log(min(MAX_PLATE_W, w * 0.6)))))
        ph = pw / aspect * rng.uniform(0.9, 1.1)
        if ph * 1.5 > h:  # a tall (square) plate this wide cannot stand in the scene; numpy >= 2.4 refuses the range
            continue
        cx, cy = rng.uniform(pw * 0.4, w - pw * 0.4), rng.uniform(ph, h - ph * 0.5)
        quad = _plate_quad(rng, cx, cy, pw, ph)
        placed = PlacedPlate(quad, text)
        bx, by, bw, bh = placed.box
        if bx < 0 or by < 0 or bx + bw > w or by + bh > h or not _free(placed.box, taken):
            continue
        if rng.random() < 0.6 and not keep_out:
            _vehicle_front(rng, img, cx, cy, pw, ph)
        paste_plate(rng, img, plate, quad)
        taken.append(placed.box)
        plates.append(placed)
    return Scene(photometric(rng, img), plates)


def _count_probs(max_plates: int) -> np.ndarray:
    # Mostly one plate per scene as at a roadside camera, some empty scenes to learn "nothing here".
    p = np.array([0.12, 0.5, 0.2, 0.1, 0.08][: max_plates + 1] + [0.05] * max(0, max_plates - 4))
    return p / p.sum()
