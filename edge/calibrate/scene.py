"""The scene: region of interest, lanes, direction of travel, and the road-plane homography.

Set by hand with `edge calibrate scene` (points on a frame, given on the command
line because roadside units are headless). The detector searches only the region of
interest (edge.detect, which scales it to the frame); the rest of the runtime asks:

- `lane_of`: which lane polygon holds a point?
- `to_road` / `speed_kmh`: where on the road (metres) and how fast (km/h, with 1-sigma uncertainty)?
- `direction_of`: towards, away, left or right?

The homography maps frame pixels to a flat road plane in metres. A plate is not on
the road but ~0.3-0.6 m above it, so its road-plane position is pushed away from the
camera by a factor H/(H - h) for camera height H; when the lens is calibrated too,
the camera height is recovered from the homography and speeds are corrected for it.
"""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np

from edge.calibrate.file import Calibration
from edge.errors import ConfigError

Point = tuple[float, float]

PIXEL_SIGMA = 1.5  # 1-sigma error of a tracked plate point, pixels (box jitter from frame to frame)
TIME_SIGMA_S = 0.005  # 1-sigma error of a frame timestamp (capture jitter)
# Height above the road of the tracked point: the camera loop tracks the bottom centre of the
# plate box; UK car plates sit with their centre ~0.3-0.6 m up, so the bottom edge ~0.25-0.55 m.
PLATE_HEIGHT_M = 0.35
PLATE_HEIGHT_SIGMA_M = 0.10


# ---------------------------------------------------------------- fitting


def fit_homography(image_points, road_points) -> np.ndarray:
    """The 3x3 map from frame pixels to road metres through >= 4 point pairs (exact for 4, least squares beyond)."""
    src = np.asarray(image_points, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(road_points, dtype=np.float64).reshape(-1, 2)
    if len(src) != len(dst) or len(src) < 4:
        raise ConfigError(f"a road homography needs at least 4 image/road point pairs, got {len(src)}")
    if len(src) == 4:
        # Three points on one line leave the map undetermined; say which instead of returning garbage.
        for pts, what in ((src, "image"), (dst, "road")):
            scale = max(1.0, float(np.ptp(pts)) ** 2)
            for a, b, c in itertools.combinations(pts, 3):
                area = abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])) / 2
                if area < 1e-6 * scale:
                    raise ConfigError(f"road points: the {what} points {a.tolist()}, {b.tolist()}, {c.tolist()} are on one line")
    if len(src) == 4:
        h = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    else:
        h, _ = cv2.findHomography(src, dst, 0)
        if h is None:
            raise ConfigError("road points: no homography fits these points")
    return h / h[2, 2]


# ---------------------------------------------------------------- regions


def _inside(polygon: tuple[Point, ...], xy: Point) -> bool:
    contour = np.asarray(polygon, dtype=np.float32).reshape(-1, 1, 2)
    return cv2.pointPolygonTest(contour, (float(xy[0]), float(xy[1])), False) >= 0


def lane_of(cal: Calibration, xy: Point) -> str | None:
    """The name of the first lane whose polygon holds the point, or None."""
    for lane in cal.lanes:
        if _inside(lane.polygon, xy):
            return lane.name
    return None


# ---------------------------------------------------------------- road plane


def to_road(cal: Calibration, points_px) -> np.ndarray:
    """Frame pixels -> road-plane metres, (N, 2). Needs the homography."""
    if cal.homography is None:
        raise ConfigError("this calibration has no road homography (run `edge calibrate scene --road-points ...`)")
    p = np.asarray(points_px, dtype=np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(p, cal.homography).reshape(-1, 2)


def _jacobian(h: np.ndarray, x: float, y: float) -> np.ndarray:
    """d(road)/d(pixel) at (x, y): how a pixel of error becomes metres there (2x2)."""
    u = h[0, 0] * x + h[0, 1] * y + h[0, 2]
    v = h[1, 0] * x + h[1, 1] * y + h[1, 2]
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    return np.array(
        [
            [(h[0, 0] * w - u * h[2, 0]) / w**2, (h[0, 1] * w - u * h[2, 1]) / w**2],
            [(h[1, 0] * w - v * h[2, 0]) / w**2, (h[1, 1] * w - v * h[2, 1]) / w**2],
        ]
    )


def camera_height_m(cal: Calibration) -> float | None:
    """Height of the camera above the road plane, from the homography and the lens matrix (None without both).

    The road->image map is K [r1 r2 t] up to scale; r1 has unit length, which fixes the
    scale, and the camera centre is -R^T t.
    """
    if cal.homography is None or cal.camera_matrix is None:
        return None
    g = np.linalg.inv(cal.homography)  # road metres -> pixels
    m = np.linalg.solve(cal.camera_matrix, g)
    scale = (np.linalg.norm(m[:, 0]) + np.linalg.norm(m[:, 1])) / 2
    r1, r2, t = m[:, 0] / scale, m[:, 1] / scale, m[:, 2] / scale
    r3 = np.cross(r1, r2)
    centre = -np.stack([r1, r2, r3]) @ t
    height = abs(float(centre[2]))
    return height if math.isfinite(height) and height > 0 else None


def speed_kmh(
    cal: Calibration,
    points_px,
    times_s,
    pixel_sigma: float = PIXEL_SIGMA,
    time_sigma_s: float = TIME_SIGMA_S,
    plate_height_m: float | None = PLATE_HEIGHT_M,
) -> tuple[float, float] | None:
    """Speed (km/h) of a track and its 1-sigma uncertainty, or None without a homography or two points.

    Road positions are fitted with a straight line in time (least squares); the speed is
    its slope. The uncertainty adds in quadrature: pixel noise carried through the
    homography (larger far from the camera, where a pixel covers more road), timestamp
    jitter, the scatter about the line when it exceeds the pixel noise, and, when the
    plate-height correction is applied, the spread of plate heights.
    """
    if cal.homography is None:
        return None
    px = np.asarray(points_px, dtype=np.float64).reshape(-1, 2)
    t = np.asarray(times_s, dtype=np.float64).ravel()
    if len(px) < 2 or len(px) != len(t):
        return None
    span = float(t.max() - t.min())
    if span <= 0:
        return None
    road = to_road(cal, px)
    tc = t - t.mean()
    stt = float(tc @ tc)
    vel = (tc @ (road - road.mean(axis=0))) / stt  # (vx, vy) m/s
    speed = float(np.linalg.norm(vel))
    heading = vel / speed if speed > 0 else np.array([1.0, 0.0])

    # Position noise along the direction of motion, per point, from pixel noise.
    along = np.array([heading @ _jacobian(cal.homography, x, y) for x, y in px])
    pos_var = float(np.mean(np.sum(along**2, axis=1))) * pixel_sigma**2
    if len(px) > 2:
        resid = (road - road.mean(axis=0)) - np.outer(tc, vel)
        pos_var = max(pos_var, float(np.sum((resid @ heading) ** 2)) / (len(px) - 2))
    var = pos_var / stt + (speed * time_sigma_s) ** 2 * 2 / span**2

    height = camera_height_m(cal) if plate_height_m is not None else None
    if height is not None and height > plate_height_m + 0.5:
        # The plate point projects onto the road beyond where the plate is; shrink by (H - h) / H.
        factor = (height - plate_height_m) / height
        var = var * factor**2 + (speed * PLATE_HEIGHT_SIGMA_M / height) ** 2
        speed *= factor
    return speed * 3.6, math.sqrt(var) * 3.6


# ---------------------------------------------------------------- direction


def _road_axes(cal: Calibration) -> tuple[np.ndarray, np.ndarray] | None:
    """Unit road vectors for 'towards the camera' and 'to the image right', from the lower image.

    Points lower in a roadside view are nearer the camera, so the road vector from an
    upper to a lower image point runs towards it; left to right likewise.
    """
    if cal.homography is None or cal.image_size is None:
        return None
    w, h = cal.image_size
    probe = np.array([[w / 2, 0.6 * h], [w / 2, 0.95 * h], [0.3 * w, 0.8 * h], [0.7 * w, 0.8 * h]])
    hw = cal.homography[2] @ np.hstack([probe, np.ones((4, 1))]).T
    if not (np.all(hw > 0) or np.all(hw < 0)):
        return None  # part of the probe lies beyond the horizon: no sensible axes
    r = to_road(cal, probe)
    towards, right = r[1] - r[0], r[3] - r[2]
    if np.linalg.norm(towards) == 0 or np.linalg.norm(right) == 0:
        return None
    return towards / np.linalg.norm(towards), right / np.linalg.norm(right)


def direction_of(cal: Calibration, first_xy: Point, last_xy: Point, first_width: float, last_width: float) -> str:
    """'towards', 'away', 'left' or 'right' from a track's first and last plate centre and width.

    With a homography the motion is measured on the road; without, from the image: a plate
    growing (or moving down) comes towards the camera, one shrinking (or moving up) goes away,
    and one that keeps its size while moving sideways crosses left or right.
    """
    axes = _road_axes(cal)
    if axes is not None:
        a, b = to_road(cal, [first_xy, last_xy])
        move = b - a
        towards, right = float(move @ axes[0]), float(move @ axes[1])
        if abs(towards) >= abs(right):
            return "towards" if towards > 0 else "away"
        return "right" if right > 0 else "left"
    dx, dy = last_xy[0] - first_xy[0], last_xy[1] - first_xy[1]
    growth = math.log(last_width / first_width) if first_width > 0 and last_width > 0 else 0.0
    # Growth in width by a fraction g moves the plate about as much as g * width pixels of travel.
    radial = dy + growth * max(first_width, last_width) * 4
    if abs(radial) >= abs(dx) * 0.5:
        return "towards" if radial > 0 else "away"
    return "right" if dx > 0 else "left"


_OPPOSITE = {"towards": "away", "away": "towards", "left": "right", "right": "left"}


def is_wrong_way(cal: Calibration, direction: str) -> bool:
    """Whether a track's direction is opposite to the scene's expected direction of travel."""
    return cal.travel_direction is not None and _OPPOSITE.get(direction) == cal.travel_direction


# ---------------------------------------------------------------- command-line parsing


def _finite(*values: float) -> None:
    """float() takes 'nan' and 'inf': refused here, they would only fail (with a traceback) when the file is written."""
    if not all(math.isfinite(v) for v in values):
        raise ValueError("not a finite number")


def parse_points(text: str, what: str) -> tuple[Point, ...]:
    """'x,y x,y ...' -> ((x, y), ...); errors name the option and the bad token."""
    out = []
    for token in text.replace(";", " ").split():
        try:
            x, y = (float(v) for v in token.split(","))
            _finite(x, y)
        except ValueError:
            raise ConfigError(f"{what}: {token!r} is not a point 'x,y'") from None
        out.append((x, y))
    return tuple(out)


def parse_lane(text: str) -> tuple[str, tuple[Point, ...]]:
    """'name:x,y x,y x,y ...' -> (name, polygon)."""
    name, sep, pts = text.partition(":")
    if not sep or not name.strip():
        raise ConfigError(f"--lane {text!r}: expected 'NAME:x,y x,y x,y ...'")
    return name.strip(), parse_points(pts, f"--lane {name.strip()}")


def parse_road_points(text: str) -> tuple[np.ndarray, np.ndarray]:
    """'px,py=X,Y ...' (pixel = road metres) -> (image points, road points)."""
    img, road = [], []
    for token in text.replace(";", " ").split():
        left, sep, right = token.partition("=")
        try:
            if not sep:
                raise ValueError
            px, py = (float(v) for v in left.split(","))
            rx, ry = (float(v) for v in right.split(","))
            _finite(px, py, rx, ry)
        except ValueError:
            raise ConfigError(f"--road-points: {token!r} is not 'px,py=X,Y' (pixels = metres)") from None
        img.append((px, py))
        road.append((rx, ry))
    return np.array(img), np.array(road)


# ---------------------------------------------------------------- picture


def draw_scene(image: np.ndarray, cal: Calibration, road_points_px=None) -> np.ndarray:
    """A copy of the frame with the ROI, lanes, road points, a 1 m road grid and the direction drawn on it."""
    out = image.copy()
    if cal.homography is not None:
        _draw_grid(out, cal)
    if cal.roi is not None:
        cv2.polylines(out, [np.round(np.array(cal.roi)).astype(np.int32)], True, (0, 255, 255), 2, cv2.LINE_AA)
    colours = [(255, 128, 0), (0, 200, 0), (200, 0, 200), (0, 128, 255)]
    for i, lane in enumerate(cal.lanes):
        poly = np.round(np.array(lane.polygon)).astype(np.int32)
        overlay = out.copy()
        cv2.fillPoly(overlay, [poly], colours[i % len(colours)])
        cv2.addWeighted(overlay, 0.25, out, 0.75, 0, out)
        cx, cy = poly.mean(axis=0).astype(int)
        cv2.putText(out, f"lane {lane.name}", (int(cx) - 30, int(cy)), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    if road_points_px is not None:
        for x, y in np.asarray(road_points_px):
            cv2.circle(out, (int(round(x)), int(round(y))), 6, (0, 0, 255), 2, cv2.LINE_AA)
    label = f"travel: {cal.travel_direction or 'not set'}"
    cv2.putText(out, label, (12, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(out, label, (12, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def _draw_grid(out: np.ndarray, cal: Calibration) -> None:
    """Road lines every metre over the area the frame sees, to show whether the homography is right."""
    h, w = out.shape[:2]
    inv = np.linalg.inv(cal.homography)
    road = None
    for top in (0.0, 0.25 * h, 0.5 * h, 0.75 * h):  # the highest band of the frame that is all below the horizon
        corners = np.array([[0, top], [w, top], [0, h], [w, h]], dtype=np.float64)
        hw = cal.homography[2] @ np.hstack([corners, np.ones((4, 1))]).T
        if np.all(hw > 0) or np.all(hw < 0):
            road = to_road(cal, corners)
            break
    if road is None:
        return
    (x0, y0), (x1, y1) = np.floor(road.min(axis=0)), np.ceil(road.max(axis=0))
    if (x1 - x0) * (y1 - y0) > 40000:
        return  # a wildly large area means a bad homography; the points drawn will show it
    for x in np.arange(x0, x1 + 1):
        _road_line(out, inv, (x, y0), (x, y1))
    for y in np.arange(y0, y1 + 1):
        _road_line(out, inv, (x0, y), (x1, y))


def _road_line(out: np.ndarray, inv: np.ndarray, a, b) -> None:
    pts = np.linspace(a, b, 50).reshape(-1, 1, 2)
    px = cv2.perspectiveTransform(pts, inv).reshape(-1, 2)
    ok = np.all(np.isfinite(px), axis=1) & (np.abs(px) < 1e5).all(axis=1)
    if ok.sum() >= 2:
        cv2.polylines(out, [np.round(px[ok]).astype(np.int32)], False, (200, 200, 200), 1, cv2.LINE_AA)
