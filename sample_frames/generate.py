"""Make the sample frames: synthetic roadside scenes with UK plates, as labelled folders.

    python3 sample_frames/generate.py --seed 7          # rewrites every set under sample_frames/

Everything is drawn by this file and the project's plate renderer (models/train/render.py):
a road seen by a camera mounted about 6 m up and looking along it, vehicles drawn as
simple 3D shells (body, glass, lights, grille, wheels, shadow), the plate warped onto
the vehicle with the camera's true perspective, then blur, sensor noise and JPEG.
Night sets imitate an infrared camera: grey, dark scene, retro-reflective plates.

Each set is a labelled folder (labels.csv: image,plate,x,y,w,h; the box is the axis-
aligned box of the plate's projected corners). A sequence set also has sequence.json
with its frame rate, camera id and the truth of every vehicle pass (plate, first and
last frame, direction) so an end-to-end test can check "one read per vehicle".

The same seed gives byte-identical files (numpy's seeded generator, OpenCV's JPEG).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere: `models` must import
    sys.path.insert(0, str(REPO_ROOT))

from models.train.render import random_plate  # noqa: E402  (needs the path set above)

OUT_DIR = Path(__file__).resolve().parent
JPEG_QUALITY = 85

# Physical plate widths in metres: standard one-line UK plate 520 x 111 mm; two-line
# (square) plates are about 280 mm wide. Height follows the rendered image's aspect.
ONE_LINE_WIDTH_M = 0.52
TWO_LINE_WIDTH_M = 0.28


# ----------------------------------------------------------------------------- camera

@dataclass(frozen=True)
class Camera:
    """A pinhole camera above the road. World: X right, Y along the road away from the camera, Z up (metres)."""

    width: int
    height: int
    mount_m: float = 6.0
    pitch_deg: float = 17.0  # looking down
    hfov_deg: float = 30.0
    x_m: float = 0.0  # lateral position of the mast

    @property
    def focal_px(self) -> float:
        return (self.width / 2) / math.tan(math.radians(self.hfov_deg) / 2)

    def project(self, pts: np.ndarray) -> np.ndarray:
        """World points (N, 3) to pixel coordinates (N, 2); points behind the camera get NaN."""
        p = math.radians(self.pitch_deg)
        v = np.asarray(pts, dtype=np.float64) - np.array([self.x_m, 0.0, self.mount_m])
        x = v[:, 0]
        y = -math.sin(p) * v[:, 1] - math.cos(p) * v[:, 2]  # image "down"
        z = math.cos(p) * v[:, 1] - math.sin(p) * v[:, 2]  # depth along the optical axis
        z = np.where(z > 0.1, z, np.nan)
        f = self.focal_px
        return np.stack([self.width / 2 + f * x / z, self.height / 2 + f * y / z], axis=1)

    def ground_y_at_row(self, row: float) -> float:
        """Distance along the road of the ground point seen at an image row (rows below the horizon)."""
        p = math.radians(self.pitch_deg)
        angle = p + math.atan((row - self.height / 2) / self.focal_px)  # below horizontal
        return self.mount_m / math.tan(max(angle, 1e-3))


# ----------------------------------------------------------------------------- drawing helpers

def _warp_into(canvas: np.ndarray, texture: np.ndarray, quad: np.ndarray, alpha: np.ndarray | None = None) -> None:
    """Warp `texture` so its corners land on `quad` (TL, TR, BR, BL), drawing only inside the quad's box.

    Warping into the quad's bounding box rather than the whole frame keeps a 1080p scene cheap.
    """
    h, w = canvas.shape[:2]
    x0, y0 = np.floor(quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    th, tw = texture.shape[:2]
    src = np.float32([[0, 0], [tw, 0], [tw, th], [0, th]])
    dst = np.float32(quad - [x0, y0])
    m = cv2.getPerspectiveTransform(src, dst)
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpPerspective(texture, m, size, flags=cv2.INTER_AREA if _shrinks(tw, quad) else cv2.INTER_LINEAR)
    mask_src = np.full((th, tw), 255, np.uint8) if alpha is None else alpha
    mask = cv2.warpPerspective(mask_src, m, size, flags=cv2.INTER_LINEAR).astype(np.float32)[..., None] / 255.0
    roi = canvas[y0:y1, x0:x1]
    roi[:] = (warped * mask + roi * (1.0 - mask)).astype(np.uint8)


def _shrinks(texture_w: int, quad: np.ndarray) -> bool:
    return np.linalg.norm(quad[1] - quad[0]) < texture_w


def _poly(canvas: np.ndarray, pts: np.ndarray, colour: tuple[int, int, int]) -> None:
    if np.isnan(pts).any():
        return
    cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], colour, lineType=cv2.LINE_AA, shift=4)


def _shade(colour: tuple[int, int, int], k: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * k, 0, 255)) for c in colour)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int, amp: float) -> np.ndarray:
    """Low-frequency texture (asphalt, grass): coarse noise upscaled, cheap to draw and to compress."""
    small = rng.normal(0, amp, (max(h // cell, 2), max(w // cell, 2))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


# ----------------------------------------------------------------------------- road scene

@dataclass(frozen=True)
class Lighting:
    night: bool
    sun: float = 1.0  # overall brightness by day
    shadow_dx: float = 0.6  # shadow offset across the road (metres per metre of height)


LANE_W = 3.65


def draw_road(rng: np.random.Generator, cam: Camera, light: Lighting, lanes: int = 2) -> np.ndarray:
    """The empty scene: asphalt, lane markings, kerbs and verges, seen from the camera."""
    h, w = cam.height, cam.width
    img = np.empty((h, w, 3), np.float32)
    verge = np.array([70, 120, 95]) if not light.night else np.array([22, 22, 22])
    img[:] = verge * (0.8 + 0.2 * rng.random())
    img += _smooth_noise(rng, h, w, 24, 10 if not light.night else 3)[..., None]
    half = lanes * LANE_W / 2
    far = cam.ground_y_at_row(-50) * 1.5 if cam.ground_y_at_row(-50) > 0 else 400.0
    far = min(far, 400.0)

    def ground_quad(x0: float, x1: float, y0: float = 2.0, y1: float = far) -> np.ndarray:
        return cam.project(np.array([[x0, y1, 0], [x1, y1, 0], [x1, y0, 0], [x0, y0, 0]]))

    canvas = np.clip(img, 0, 255).astype(np.uint8)
    asphalt = int((95 if not light.night else 38) * light.sun)
    _poly(canvas, ground_quad(-half - 1.8, half + 1.8), (asphalt + 35,) * 3)  # pavement
    _poly(canvas, ground_quad(-half, half), (asphalt, asphalt, asphalt + 3))
    road = canvas.astype(np.float32)
    road += _smooth_noise(rng, h, w, 6, 5)[..., None] + rng.normal(0, 1.5, (h, w, 1)).astype(np.float32)
    canvas = np.clip(road, 0, 255).astype(np.uint8)
    paint = (225, 225, 225) if not light.night else (120, 120, 120)
    for x in (-half + 0.2, half - 0.2):  # edge lines
        _poly(canvas, ground_quad(x - 0.05, x + 0.05), paint)
    for k in range(1, lanes):  # dashed lane lines: 3 m paint, 6 m gap
        x = -half + k * LANE_W
        start = rng.uniform(0, 9)
        for y in np.arange(start, far, 9.0):
            _poly(canvas, ground_quad(x - 0.05, x + 0.05, y, y + 3.0), paint)
    return canvas


# ----------------------------------------------------------------------------- vehicles

# Side profiles, (distance from the face the camera sees, height) in metres, walking over the top.
# The first segment is the face towards the camera (rear when driving away, front when coming).
PROFILES: dict[str, list[tuple[float, float]]] = {
    "hatch_rear": [(0.0, 0.22), (0.0, 0.92), (0.12, 1.0), (0.55, 1.42), (2.6, 1.46), (3.2, 1.0), (4.0, 0.88), (4.1, 0.22)],
    "saloon_rear": [(0.0, 0.25), (0.0, 0.88), (0.45, 0.98), (1.1, 1.40), (2.9, 1.42), (3.5, 0.98), (4.6, 0.82), (4.7, 0.25)],
    "van_rear": [(0.0, 0.30), (0.0, 1.95), (0.05, 2.02), (3.6, 2.02), (4.1, 1.2), (4.9, 0.95), (5.0, 0.30)],
    "hatch_front": [(0.0, 0.22), (0.0, 0.78), (0.85, 0.92), (1.55, 1.42), (3.4, 1.44), (3.95, 1.0), (4.05, 0.22)],
    "suv_front": [(0.0, 0.30), (0.0, 0.95), (0.95, 1.10), (1.60, 1.70), (4.1, 1.72), (4.5, 1.15), (4.6, 0.30)],
}
GLASS_SEGMENTS = {"hatch_rear": {2}, "saloon_rear": {3}, "van_rear": set(), "hatch_front": {2}, "suv_front": {2}}

BODY_COLOURS = [(40, 40, 40), (200, 200, 200), (230, 230, 232), (120, 120, 125), (30, 30, 140), (140, 60, 25),
                (20, 60, 20), (25, 25, 110), (160, 150, 140), (60, 90, 150)]  # BGR


@dataclass
class Vehicle:
    profile: str
    plate_image: np.ndarray  # BGR, as rendered
    plate_text: str
    x_m: float  # lane centre
    y_m: float  # distance of the face the camera sees
    width_m: float = 1.78
    colour: tuple[int, int, int] = (200, 200, 200)
    plate_z_m: float = 0.40  # height of the plate centre above the road
    plate_width_m: float = ONE_LINE_WIDTH_M
    speed_mps: float = 13.0
    towards: bool = False  # front face towards the camera, driving towards it
    extras: dict = field(default_factory=dict)

    @property
    def near_face_height(self) -> tuple[float, float]:
        prof = PROFILES[self.profile]
        return prof[0][1], prof[1][1]

    def plate_corners(self) -> np.ndarray:
        """World corners TL, TR, BR, BL of the plate on the near face (a hair in front of it)."""
        ph, pw = self.plate_image.shape[:2]
        w = self.plate_width_m
        hgt = w * ph / pw
        y = self.y_m - 0.01
        x0, x1 = self.x_m - w / 2, self.x_m + w / 2
        z0, z1 = self.plate_z_m - hgt / 2, self.plate_z_m + hgt / 2
        return np.array([[x0, y, z1], [x1, y, z1], [x1, y, z0], [x0, y, z0]])


def _face_texture(v: Vehicle, light: Lighting, px_per_m: int = 200) -> np.ndarray:
    """The face the camera sees, drawn flat: body panel, bumper, lights, grille (front), badge."""
    z0, z1 = v.near_face_height
    w, h = int(v.width_m * px_per_m), int((z1 - z0) * px_per_m)
    tex = np.empty((h, w, 3), np.uint8)
    tex[:] = v.colour
    # vertical gradient: panels catch light at the top
    grad = np.linspace(1.12, 0.85, h, dtype=np.float32)[:, None, None]
    tex = np.clip(tex * grad, 0, 255).astype(np.uint8)

    def zy(z: float) -> int:  # height above the road to texture row
        return int((z1 - z) * px_per_m)

    bumper_top = zy(z0 + 0.22)
    cv2.rectangle(tex, (0, bumper_top), (w, h), _shade(v.colour, 0.55) if v.colour[0] > 60 else (25, 25, 25), -1)
    lamp_w, lamp_h = int(0.32 * px_per_m), int(0.14 * px_per_m)
    lamp_y = zy(z1 - 0.12) if not v.towards else zy(z0 + 0.52)
    lit = light.night
    if v.towards:
        lamp = (235, 235, 225) if not lit else (255, 255, 255)
        grille_top, grille_bot = zy(v.plate_z_m + 0.32), zy(v.plate_z_m + 0.10)
        cv2.rectangle(tex, (int(0.3 * w), grille_top), (int(0.7 * w), grille_bot), (28, 28, 30), -1)
        for yy in range(grille_top + 6, grille_bot, 9):
            cv2.line(tex, (int(0.3 * w) + 3, yy), (int(0.7 * w) - 3, yy), (70, 70, 72), 2)
    else:
        lamp = (30, 30, 170) if not lit else (140, 140, 255)
    for x in (int(0.03 * w), w - int(0.03 * w) - lamp_w):
        cv2.rectangle(tex, (x, lamp_y), (x + lamp_w, lamp_y + lamp_h), lamp, -1)
        cv2.rectangle(tex, (x, lamp_y), (x + lamp_w, lamp_y + lamp_h), _shade(lamp, 0.6), 3)
    if not v.towards:  # badge and boot line above the plate
        cv2.line(tex, (int(0.1 * w), zy(v.plate_z_m + 0.2)), (int(0.9 * w), zy(v.plate_z_m + 0.2)), _shade(v.colour, 0.7), 2)
        cv2.ellipse(tex, (w // 2, zy(v.plate_z_m + 0.3)), (14, 8), 0, 0, 360, (190, 190, 190), -1)
    return tex


def draw_vehicle(canvas: np.ndarray, cam: Camera, v: Vehicle, light: Lighting) -> np.ndarray:
    """Draw one vehicle; returns the plate's projected corners (4, 2)."""
    prof = PROFILES[v.profile]
    half = v.width_m / 2
    def pt(dy: float, z: float, side: float, inset: float = 0.0) -> list[float]:
        # profiles run away from the camera (+Y) whichever way the vehicle drives
        return [v.x_m + side * (half - inset), v.y_m + dy, z]

    # ground shadow: the footprint pushed sideways by the sun (a dark, soft patch)
    length = prof[-1][0]
    if not light.night:
        sh = cam.project(np.array([pt(-0.1, 0, -1, -0.15), pt(-0.1, 0, 1, -0.15 - light.shadow_dx),
                                   pt(length + 0.2, 0, 1, -0.15 - light.shadow_dx), pt(length + 0.2, 0, -1, -0.15)]))
        layer = canvas.copy()
        _poly(layer, sh, (20, 20, 22))
        cv2.addWeighted(layer, 0.55, canvas, 0.45, 0, dst=canvas)
    # wheels under the near face
    for side in (-1, 1):
        q = cam.project(np.array([pt(0.35, 0.5, side, 0.05), pt(0.35, 0.5, side, 0.28), pt(0.35, 0.0, side, 0.28), pt(0.35, 0.0, side, 0.05)]))
        _poly(canvas, q, (18, 18, 18))
    # the shell: the side nearest the mast, then the top segments far to near, then the near face
    inner = -1.0 if v.x_m > cam.x_m else 1.0
    side_pts = cam.project(np.array([pt(d, z, inner, 0.12 if z > 1.1 else 0.0) for d, z in prof]))
    _poly(canvas, side_pts, _shade(v.colour, 0.7))
    glass = GLASS_SEGMENTS[v.profile]
    segs = list(range(1, len(prof) - 1))
    for i in sorted(segs, key=lambda i: -(prof[i][0] + prof[i + 1][0])):
        (da, za), (db, zb) = prof[i], prof[i + 1]
        taper = 0.12 if max(za, zb) > 1.1 else 0.0  # cabins narrow towards the roof
        ia, ib = (taper if za > 1.1 else 0.0), (taper if zb > 1.1 else 0.0)
        quad = cam.project(np.array([pt(db, zb, -1, ib), pt(db, zb, 1, ib), pt(da, za, 1, ia), pt(da, za, -1, ia)]))
        if i in glass:
            col = (45, 40, 38) if not light.night else (15, 15, 15)
            if not light.night:  # sky reflection on the glass
                col = _shade((110, 100, 90), 0.6 + 0.3 * ((i * 37) % 7) / 7)
        else:
            col = _shade(v.colour, 1.15 if abs(za - zb) < 0.2 else 0.95)
        _poly(canvas, quad, col)
    # near face: its texture with perspective, then the plate on it
    z0, z1 = v.near_face_height
    face = cam.project(np.array([pt(0, z1, -1), pt(0, z1, 1), pt(0, z0, 1), pt(0, z0, -1)]))
    if not np.isnan(face).any():
        _warp_into(canvas, _face_texture(v, light), face)
    corners = cam.project(v.plate_corners())
    if not np.isnan(corners).any():
        plate = v.plate_image
        if light.night:  # retro-reflective under IR: bright ground, black characters
            g = cv2.cvtColor(plate, cv2.COLOR_BGR2GRAY)
            g = cv2.normalize(g, None, 15, 245, cv2.NORM_MINMAX)
            plate = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
        _warp_into(canvas, plate, corners)
    if light.night and v.towards:  # headlight glare
        _glare(canvas, cam, v)
    return corners


def _glare(canvas: np.ndarray, cam: Camera, v: Vehicle) -> None:
    z0, _ = v.near_face_height
    for side in (-1, 1):
        c = cam.project(np.array([[v.x_m + side * (v.width_m / 2 - 0.2), v.y_m - 0.02, z0 + 0.6]]))[0]
        if np.isnan(c).any():
            continue
        r = max(3, int(0.25 * cam.focal_px / max(v.y_m, 1)))
        layer = np.zeros_like(canvas)
        cv2.circle(layer, (int(c[0]), int(c[1])), r, (255, 255, 255), -1, cv2.LINE_AA)
        layer = cv2.GaussianBlur(layer, (0, 0), r / 2)
        cv2.add(canvas, layer, dst=canvas)


# ----------------------------------------------------------------------------- camera effects

def finish(img: np.ndarray, rng: np.random.Generator, light: Lighting, motion_px: float = 0.0) -> np.ndarray:
    """Optics and sensor: a little blur, motion smear, noise; night frames become grey (IR)."""
    out = cv2.GaussianBlur(img, (0, 0), 0.7)
    if motion_px >= 1.5:
        k = int(min(motion_px, 9)) | 1
        kernel = np.zeros((k, k), np.float32)
        kernel[:, k // 2] = 1.0 / k  # vehicles move along the image's vertical
        out = cv2.filter2D(out, -1, kernel)
    if light.night:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    noise = rng.normal(0, 2.5 if light.night else 1.5, out.shape[:2]).astype(np.float32)[..., None]
    return np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def encode(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY, cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


# ----------------------------------------------------------------------------- plates and vehicles

def make_plate(rng: np.random.Generator, *, rear: bool, text: str | None = None, country: str | None = "GB",
               lines: int | None = None) -> tuple[np.ndarray, str, int]:
    colour = ("yellow" if rear else "white") if country == "GB" else None
    plate = random_plate(rng, country, text=text, colour=colour, lines=lines)
    return plate.image, plate.text, int(plate.lines)


def make_vehicle(rng: np.random.Generator, *, towards: bool, x_m: float, y_m: float, speed_mps: float,
                 text: str | None = None, country: str | None = "GB", lines: int | None = 1) -> Vehicle:
    image, plate_text, n_lines = make_plate(rng, rear=not towards, text=text, country=country, lines=lines)
    names = [n for n in PROFILES if n.endswith("_front" if towards else "_rear")]
    profile = names[int(rng.integers(len(names)))]
    colour = BODY_COLOURS[int(rng.integers(len(BODY_COLOURS)))]
    z0, z1 = PROFILES[profile][0][1], PROFILES[profile][1][1]
    width = ONE_LINE_WIDTH_M if n_lines == 1 else TWO_LINE_WIDTH_M
    plate_h = width * image.shape[0] / image.shape[1]
    plate_z = float(np.clip(z0 + 0.16 + plate_h / 2 + rng.uniform(0, 0.08), z0 + plate_h / 2 + 0.05, z1 - plate_h / 2 - 0.1))
    return Vehicle(profile=profile, plate_image=image, plate_text=plate_text, x_m=x_m, y_m=y_m,
                   width_m=2.0 if profile.startswith(("van", "suv")) else float(rng.uniform(1.7, 1.85)),
                   colour=colour, plate_z_m=plate_z, plate_width_m=width, speed_mps=speed_mps, towards=towards)


def plate_box(corners: np.ndarray, width: int, height: int, min_h: float = 8.0) -> tuple[int, int, int, int] | None:
    """Axis-aligned box of the projected plate, or None when it is not wholly in the frame or too small to label."""
    x0, y0 = corners.min(axis=0)
    x1, y1 = corners.max(axis=0)
    if x0 < 0 or y0 < 0 or x1 > width - 1 or y1 > height - 1 or (y1 - y0) < min_h:
        return None
    return int(math.floor(x0)), int(math.floor(y0)), int(math.ceil(x1 - x0)), int(math.ceil(y1 - y0))


def render_scene(rng: np.random.Generator, cam: Camera, light: Lighting, vehicles: list[Vehicle],
                 background: np.ndarray | None = None, motion_px: float = 0.0):
    """One frame: the road, the vehicles far to near, camera effects. Returns (image, [(vehicle, box|None)])."""
    canvas = (background if background is not None else draw_road(rng, cam, light)).copy()
    boxes = []
    for v in sorted(vehicles, key=lambda v: -v.y_m):
        corners = draw_vehicle(canvas, cam, v, light)
        boxes.append((v, None if np.isnan(corners).any() else plate_box(corners, cam.width, cam.height)))
    return finish(canvas, rng, light, motion_px), boxes


# ----------------------------------------------------------------------------- sets

@dataclass(frozen=True)
class SequenceSpec:
    name: str
    width: int
    height: int
    frames: int
    fps: float
    night: bool
    towards: bool
    texts: tuple[str, ...]  # one per vehicle: similar plates so tracking must keep them apart
    lanes_x: tuple[float, ...]
    entry_frame: tuple[float, ...]  # frame at which each plate enters the view (negative: already in it)
    pace: tuple[float, ...]  # speed, as the number of frames the plate would take to cross the whole view
    hfov_deg: float = 30.0


SEQUENCES = (
    SequenceSpec("seq_day_rear", 1920, 1080, 16, 10.0, night=False, towards=False,
                 texts=("BD51SMR", "BD51SMB"), lanes_x=(-1.8, 1.8), entry_frame=(-1.0, 3.0), pace=(17.0, 14.0),
                 hfov_deg=20.0),
    SequenceSpec("seq_night_front", 1280, 720, 14, 10.0, night=True, towards=True,
                 texts=("LR69XKE", "LR69XKF"), lanes_x=(-1.8, 1.8), entry_frame=(0.0, 2.5), pace=(13.0, 12.0),
                 hfov_deg=14.0),
    SequenceSpec("seq_day_front", 1280, 720, 12, 12.5, night=False, towards=True,
                 texts=("YK17HNU",), lanes_x=(-1.8,), entry_frame=(0.5,), pace=(11.0,), hfov_deg=16.0),
)


def write_labelled(folder: Path, frames: list[tuple[str, bytes, list[tuple[str, tuple[int, int, int, int]]]]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.jpg"):  # a set is rewritten whole: no stale frames from a longer run
        old.unlink()
    with open(folder / "labels.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["image", "plate", "x", "y", "w", "h"])
        for name, data, plates in frames:
            (folder / name).write_bytes(data)
            for text, (x, y, bw, bh) in plates:
                w.writerow([name, text, x, y, bw, bh])


def make_sequence(spec: SequenceSpec, rng: np.random.Generator, out: Path, scale: float = 1.0, frames: int | None = None) -> None:
    width, height = int(spec.width * scale) // 2 * 2, int(spec.height * scale) // 2 * 2
    cam = Camera(width, height, pitch_deg=float(rng.uniform(15, 19)), hfov_deg=spec.hfov_deg)
    light = Lighting(night=spec.night, sun=float(rng.uniform(0.85, 1.15)), shadow_dx=float(rng.uniform(-0.8, 0.8)))
    dt = 1.0 / spec.fps
    # The view along the road where a plate (about 0.4 m up) is in frame, near and far edge.
    near = cam.ground_y_at_row(height) * (1 - 0.4 / cam.mount_m)
    far = cam.ground_y_at_row(0) * (1 - 0.4 / cam.mount_m)
    vehicles = []
    for t, x, entry, pace in zip(spec.texts, spec.lanes_x, spec.entry_frame, spec.pace):
        speed = (far - near) / (pace * dt) * float(rng.uniform(0.95, 1.05))
        edge = far if spec.towards else near
        start = edge + speed * dt * entry if spec.towards else edge - speed * dt * entry
        vehicles.append(make_vehicle(rng, towards=spec.towards, x_m=x, y_m=start, speed_mps=speed, text=t))
    road = draw_road(rng, cam, light)
    n = frames or spec.frames
    out_frames = []
    seen: dict[str, list[int]] = {v.plate_text: [] for v in vehicles}
    for i in range(n):
        for v in vehicles:
            v.y_m = _position(v, i * dt)
        motion = max(v.speed_mps * dt * cam.focal_px / max(v.y_m, 1.0) * 0.05 for v in vehicles)
        img, boxes = render_scene(rng, cam, light, vehicles, road, motion_px=motion)
        name = f"{spec.name}_t{i:04d}.jpg"
        labels = [(v.plate_text, b) for v, b in boxes if b is not None]
        for v, b in boxes:
            if b is not None:
                seen[v.plate_text].append(i)
        out_frames.append((name, encode(img), labels))
    write_labelled(out / spec.name, out_frames)
    passes = [
        {"plate": t, "first_frame": fr[0], "last_frame": fr[-1], "frames_labelled": len(fr),
         "direction": "towards" if spec.towards else "away"}
        for t, fr in seen.items() if fr
    ]
    meta = {
        "fps": spec.fps, "camera_id": spec.name.replace("_", "-"), "frames": n,
        "image_pattern": f"{spec.name}_tNNNN.jpg (NNNN = frame index from 0)",
        "width": width, "height": height, "night": spec.night,
        "camera": {"mount_m": cam.mount_m, "pitch_deg": round(cam.pitch_deg, 2), "hfov_deg": cam.hfov_deg},
        "passes": passes,
    }
    (out / spec.name / "sequence.json").write_text(json.dumps(meta, indent=2) + "\n")


def _position(v: Vehicle, t: float) -> float:
    start = v.extras.setdefault("start_y", v.y_m)
    return start - v.speed_mps * t if v.towards else start + v.speed_mps * t


SINGLES_SIZES = ((1920, 1080), (1280, 720), (1280, 720), (1024, 768))


def make_singles(rng: np.random.Generator, out: Path, count: int = 24, scale: float = 1.0) -> None:
    """Single frames: day and night, front white and rear yellow, a few two-line and foreign plates, varied zoom."""
    frames = []
    for i in range(count):
        w, h = SINGLES_SIZES[int(rng.integers(len(SINGLES_SIZES)))]
        w, h = int(w * scale) // 2 * 2, int(h * scale) // 2 * 2
        night = i % 3 == 2
        towards = i % 2 == 0
        cam = Camera(w, h, pitch_deg=float(rng.uniform(12, 22)), hfov_deg=float(rng.uniform(12, 28)),
                     x_m=float(rng.uniform(-1.0, 1.0)))
        light = Lighting(night=night, sun=float(rng.uniform(0.75, 1.2)), shadow_dx=float(rng.uniform(-0.8, 0.8)))
        kind = i % 8
        country: str | None = "GB"
        lines = 1
        if kind == 5:
            lines = 2  # square UK plate (rear of imports, some 4x4s)
        elif kind == 7:
            country = None  # a plate of another country from the renderer
            lines = None
        # put the vehicle where the camera looks: 35-70 % down the frame
        y = cam.ground_y_at_row(h * float(rng.uniform(0.4, 0.7)))
        lane = float(rng.choice([-1.8, 1.8])) if rng.random() < 0.6 else float(rng.uniform(-1.0, 1.0))
        vehicles = [make_vehicle(rng, towards=towards, x_m=lane, y_m=y, speed_mps=0.0, country=country, lines=lines)]
        if rng.random() < 0.35:  # a second vehicle in the other lane, further away
            y2 = y + float(rng.uniform(6, 14))
            vehicles.append(make_vehicle(rng, towards=towards, x_m=-lane if abs(lane) > 1 else 1.8, y_m=y2, speed_mps=0.0))
        img, boxes = render_scene(rng, cam, light, vehicles, motion_px=float(rng.uniform(0, 3)))
        name = f"single_{i:03d}_{'night' if night else 'day'}_{'front' if towards else 'rear'}.jpg"
        frames.append((name, encode(img), [(v.plate_text, b) for v, b in boxes if b is not None]))
    write_labelled(out / "singles", frames)


SETS = ("singles",) + tuple(s.name for s in SEQUENCES)


def generate(out: Path = OUT_DIR, seed: int = 7, sets: tuple[str, ...] = SETS, tiny: bool = False) -> list[Path]:
    """Write the chosen sets under `out`; `tiny` makes small, short sets (for tests). Returns the folders written."""
    unknown = set(sets) - set(SETS)
    if unknown:
        raise ValueError(f"unknown set(s) {', '.join(sorted(unknown))}; choose from {', '.join(SETS)}")
    # One independent stream per set: regenerating one set leaves the others byte-identical.
    streams = dict(zip(SETS, np.random.SeedSequence(seed).spawn(len(SETS))))
    written = []
    scale = 0.25 if tiny else 1.0
    for name in sets:
        rng = np.random.default_rng(streams[name])
        if name == "singles":
            make_singles(rng, out, count=3 if tiny else 20, scale=scale)
        else:
            spec = next(s for s in SEQUENCES if s.name == name)
            make_sequence(spec, rng, out, scale=scale, frames=3 if tiny else None)
        written.append(out / name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7, help="random seed (the committed frames use 7)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the set folders go (default: beside this file)")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated sets to write (default all: {','.join(SETS)})")
    parser.add_argument("--tiny", action="store_true", help="small, 3-frame sets (tests)")
    args = parser.parse_args(argv)
    sets = tuple(s.strip() for s in args.sets.split(",") if s.strip())
    for folder in generate(args.out, args.seed, sets, tiny=args.tiny):
        size = sum(p.stat().st_size for p in folder.iterdir())
        n = len(list(folder.glob("*.jpg")))
        print(f"{folder}: {n} frames, {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
