"""Lens calibration from checkerboard photos, and undistortion of plate crops at run time.

Fitting is OpenCV's Zhang method (`cv2.calibrateCamera`) on sub-pixel checkerboard
corners. At run time only the plate crop is undistorted: a remap is built for the
patch area alone, which costs well under a millisecond per plate instead of a full-frame
remap per frame.

`render_checkerboard` makes views of a board through a known camera (matrix and
distortion) so the fit can be checked against the truth; the project's demo
calibration and the tests use it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.calibrate.file import Calibration
from edge.capture import load_image
from edge.errors import ConfigError
from edge.labels import list_images

log = logging.getLogger(__name__)

_SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)
MIN_VIEWS = 3


@dataclass(frozen=True)
class LensFit:
    camera_matrix: np.ndarray  # 3x3
    dist_coeffs: np.ndarray  # (k1, k2, p1, p2, k3)
    rms: float  # reprojection error over all corners, pixels
    image_size: tuple[int, int]  # (width, height)
    used: tuple[str, ...]  # images whose board was found
    skipped: tuple[str, ...]  # images without a complete board
    distortion: str = "full"  # the distortion terms fitted (see calibrate_lens)

    def summary(self) -> dict[str, object]:
        k, d = self.camera_matrix, self.dist_coeffs.ravel()
        return {
            "fx": round(float(k[0, 0]), 3),
            "fy": round(float(k[1, 1]), 3),
            "cx": round(float(k[0, 2]), 3),
            "cy": round(float(k[1, 2]), 3),
            "rms": round(self.rms, 4),
            "dist": [round(float(v), 6) for v in d],
            "width": self.image_size[0],
            "height": self.image_size[1],
            "views": len(self.used),
            "distortion": self.distortion,
            "skipped": list(self.skipped),
        }


def board_points(cols: int, rows: int, square_mm: float) -> np.ndarray:
    """The board's inner corners in its own plane (z = 0), millimetres, row by row: (cols*rows, 3)."""
    grid = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2).astype(np.float32)
    return np.hstack([grid * square_mm, np.zeros((len(grid), 1), np.float32)])


def find_corners(gray: np.ndarray, cols: int, rows: int) -> np.ndarray | None:
    """Sub-pixel inner corners of a cols x rows board, or None when the whole board is not seen."""
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    found, corners = cv2.findChessboardCorners(gray, (cols, rows), flags=flags)
    if not found:
        return None
    # The search window must stay clear of the neighbouring corners, or they pull this one off:
    # up to 7 px each side, less on a board that is small in the frame.
    grid = corners.reshape(rows, cols, 2)
    spacing = min(np.linalg.norm(np.diff(grid, axis=0), axis=2).min(), np.linalg.norm(np.diff(grid, axis=1), axis=2).min())
    half = int(np.clip(spacing / 2 - 1, 2, 7))
    return cv2.cornerSubPix(gray, corners, (half, half), (-1, -1), _SUBPIX_CRITERIA)


DISTORTION_MODELS = ("auto", "radial", "radial-tangential", "full")
NARROW_HFOV_DEG = 40.0


def _flags(model: str) -> int:
    radial = cv2.CALIB_FIX_K3 | cv2.CALIB_ZERO_TANGENT_DIST
    return {"radial": radial, "radial-tangential": cv2.CALIB_FIX_K3, "full": 0}[model]


def calibrate_lens(images: list[Path], cols: int, rows: int, square_mm: float, distortion: str = "auto") -> LensFit:
    """Fit the camera matrix and distortion to checkerboard photos (all of one size).

    `distortion` picks the terms fitted: "radial" (k1, k2), "radial-tangential" (k1, k2,
    p1, p2), "full" (and k3), or "auto": radial-tangential for lenses wider than
    NARROW_HFOV_DEG, radial for narrower ones. On a narrow (roadside, telephoto) lens
    the tangential terms and k3 are barely constrained: they trade off against the
    principal point and soak up corner noise, moving it by 1-2% of the frame.
    """
    if distortion not in DISTORTION_MODELS:
        raise ConfigError(f"distortion model {distortion!r}: use one of {', '.join(DISTORTION_MODELS)}")
    if cols < 3 or rows < 3:
        raise ConfigError(f"--board {cols}x{rows}: a board needs at least 3x3 inner corners")
    obj = board_points(cols, rows, square_mm)
    obj_points, img_points, used, skipped = [], [], [], []
    size: tuple[int, int] | None = None
    for path in images:
        gray = load_image(path, cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise ConfigError(f"{path}: not a readable image")
        this_size = (gray.shape[1], gray.shape[0])
        if size is not None and this_size != size:
            raise ConfigError(f"{path}: is {this_size[0]}x{this_size[1]}, the others {size[0]}x{size[1]}; use one resolution")
        size = this_size
        corners = find_corners(gray, cols, rows)
        if corners is None:
            log.info("%s: no complete %dx%d board, skipped", path, cols, rows)
            skipped.append(path.name)
            continue
        obj_points.append(obj)
        img_points.append(corners)
        used.append(path.name)
    if len(used) < MIN_VIEWS:
        raise ConfigError(
            f"a complete {cols}x{rows} board was found in {len(used)} of {len(images)} images; need at least "
            f"{MIN_VIEWS} (is --board the count of INNER corners, columns x rows?)"
        )
    assert size is not None
    model = distortion
    # OpenCV's threaded solver sums in varying order (last digits differ run to run); one
    # thread makes the fit, and so the calibration file, reproducible.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        if model == "auto":
            # A first, radial-only fit is stable enough to tell a narrow lens from a wide one.
            _, k0, _, _, _ = cv2.calibrateCamera(obj_points, img_points, size, None, None, flags=_flags("radial"))
            hfov = math.degrees(2 * math.atan(size[0] / 2 / k0[0, 0]))
            model = "radial" if hfov < NARROW_HFOV_DEG else "radial-tangential"
            log.info("horizontal field of view %.1f deg: fitting %s distortion", hfov, model)
        rms, k, d, _, _ = cv2.calibrateCamera(obj_points, img_points, size, None, None, flags=_flags(model))
    finally:
        cv2.setNumThreads(threads)
    return LensFit(k, np.asarray(d, dtype=np.float64).ravel()[:5], float(rms), size, tuple(used), tuple(skipped), model)


def calibrate_lens_folder(folder: Path, cols: int, rows: int, square_mm: float, distortion: str = "auto") -> LensFit:
    if not folder.is_dir():
        raise ConfigError(f"--images {folder}: not a folder")
    images = list_images(folder)
    if not images:
        raise ConfigError(f"--images {folder}: holds no images")
    return calibrate_lens(images, cols, rows, square_mm, distortion)


# ---------------------------------------------------------------- run time


def _camera_for(cal: Calibration, image_size: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Camera matrix and distortion for frames of `image_size` (w, h); the matrix scales with resolution."""
    if cal.camera_matrix is None or cal.dist_coeffs is None:
        return None
    k = cal.camera_matrix.astype(np.float64).copy()
    if image_size is not None and cal.image_size is not None and tuple(image_size) != tuple(cal.image_size):
        sx, sy = image_size[0] / cal.image_size[0], image_size[1] / cal.image_size[1]
        k[0] *= sx
        k[1] *= sy
    return k, cal.dist_coeffs.astype(np.float64).ravel()


def undistort_points(cal: Calibration, pts, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """Pixel points of the raw frame -> where an ideal (distortion-free) camera with the same matrix puts them."""
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    cam = _camera_for(cal, image_size)
    if cam is None or len(p) == 0:
        return p.copy()
    k, d = cam
    return cv2.undistortPoints(p.reshape(-1, 1, 2), k, d, P=k).reshape(-1, 2)


def distort_points(k: np.ndarray, d: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Ideal pixel points -> where the real lens puts them (the inverse of undistort_points).

    OpenCV's forward model (k1, k2, p1, p2, k3) written out in numpy: it is closed-form,
    and for a patch's few thousand pixels much cheaper than a round trip through projectPoints.
    """
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    k1, k2, p1, p2, k3 = (list(np.asarray(d, dtype=np.float64).ravel()) + [0.0] * 5)[:5]
    fx, fy, cx, cy, skew = k[0, 0], k[1, 1], k[0, 2], k[1, 2], k[0, 1]
    y = (p[:, 1] - cy) / fy
    x = (p[:, 0] - cx - skew * y) / fx
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([fx * xd + skew * yd + cx, fy * yd + cy], axis=1)


def patch_region(k: np.ndarray, d: np.ndarray, box_xywh, margin: float) -> tuple[float, float, int, int]:
    """Where the undistorted patch of a raw-frame box lies in the ideal image: (x0, y0, width, height).

    The box's outline (corners and edge midpoints) is undistorted, and its bounding
    rectangle widened by `margin` of its size on each side.
    """
    x, y, w, h = (float(v) for v in box_xywh)
    outline = np.array(
        [[x + fx * w, y + fy * h] for fx, fy in ((0, 0), (0.5, 0), (1, 0), (1, 0.5), (1, 1), (0.5, 1), (0, 1), (0, 0.5))]
    )
    ideal = cv2.undistortPoints(outline.reshape(-1, 1, 2), k, d, P=k).reshape(-1, 2)
    (ux0, uy0), (ux1, uy1) = ideal.min(axis=0), ideal.max(axis=0)
    bw, bh = ux1 - ux0, uy1 - uy0
    return (
        float(ux0 - bw * margin),
        float(uy0 - bh * margin),
        max(1, int(round(bw * (1 + 2 * margin)))),
        max(1, int(round(bh * (1 + 2 * margin)))),
    )


def undistort_patch(cal: Calibration, image: np.ndarray, box_xywh, margin: float = 0.15) -> np.ndarray:
    """The plate crop (box of the raw frame, plus `margin` of its size on each side), undistorted.

    Only the patch is resampled: the patch's pixels in the ideal image are mapped back
    through the lens model to the raw frame and read with bilinear interpolation.
    Without a lens section this is a plain crop.
    """
    h_img, w_img = image.shape[:2]
    x, y, w, h = (float(v) for v in box_xywh)
    mx, my = w * margin, h * margin
    cam = _camera_for(cal, (w_img, h_img))
    if cam is None:
        x0, y0 = max(0, int(round(x - mx))), max(0, int(round(y - my)))
        x1, y1 = min(w_img, int(round(x + w + mx))), min(h_img, int(round(y + h + my)))
        return image[y0:y1, x0:x1].copy()
    k, d = cam
    ux0, uy0, pw, ph = patch_region(k, d, (x, y, w, h), margin)
    gx, gy = np.meshgrid(ux0 + np.arange(pw, dtype=np.float64), uy0 + np.arange(ph, dtype=np.float64))
    raw = distort_points(k, d, np.stack([gx.ravel(), gy.ravel()], axis=1))
    map_x = raw[:, 0].reshape(ph, pw).astype(np.float32)
    map_y = raw[:, 1].reshape(ph, pw).astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# ---------------------------------------------------------------- synthetic views


def look_at_pose(rng: np.random.Generator, cols: int, rows: int, square_mm: float, k: np.ndarray, size: tuple[int, int]):
    """A random but sensible board pose (rvec, tvec): tilted up to ~40 degrees, filling 30-70% of the view."""
    w, h = size
    board_w = (cols + 1) * square_mm
    # Distance at which the board spans the chosen fraction of the image width.
    fill = rng.uniform(0.35, 0.7)
    z = k[0, 0] * board_w / (fill * w)
    angles = np.deg2rad(rng.uniform(-40, 40, size=3) * np.array([1.0, 1.0, 0.4]))
    rvec = angles.reshape(3, 1)
    r, _ = cv2.Rodrigues(rvec)
    centre_board = np.array([(cols - 1) * square_mm / 2, (rows - 1) * square_mm / 2, 0.0])
    # Put the board centre on a ray through a random point of the central part of the image.
    u, v = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    ray = np.linalg.solve(k, np.array([u, v, 1.0]))
    centre_cam = ray / ray[2] * z
    tvec = (centre_cam - r @ centre_board).reshape(3, 1)
    return rvec, tvec


def pixel_rays(k: np.ndarray, dist: np.ndarray, size: tuple[int, int], supersample: int) -> np.ndarray:
    """The ray (x, y, 1) in camera coordinates seen by each (sub)pixel, through the lens; one row per pixel."""
    w, h = size
    s = supersample
    xs = (np.arange(w * s, dtype=np.float64) + 0.5) / s - 0.5
    ys = (np.arange(h * s, dtype=np.float64) + 0.5) / s - 0.5
    gx, gy = np.meshgrid(xs, ys)
    norm = cv2.undistortPoints(np.stack([gx.ravel(), gy.ravel()], 1).reshape(-1, 1, 2), k, dist).reshape(-1, 2)
    return np.hstack([norm, np.ones((len(norm), 1))])


def render_checkerboard(
    k: np.ndarray,
    dist: np.ndarray,
    size: tuple[int, int],
    cols: int,
    rows: int,
    square_mm: float,
    rvec: np.ndarray,
    tvec: np.ndarray,
    rng: np.random.Generator | None = None,
    supersample: int = 2,
    rays: np.ndarray | None = None,
) -> np.ndarray:
    """A grey image of a checkerboard (cols x rows inner corners) seen by camera (k, dist) at pose (rvec, tvec).

    Each output pixel is traced back through the lens (undistorted to a ray), intersected
    with the board plane and coloured by the square it lands in, on a supersampled grid
    so edges are anti-aliased like a real photo. Light sensor noise is added when `rng` is given.
    """
    w, h = size
    s = supersample
    d = pixel_rays(k, dist, size, s) if rays is None else rays
    r, _ = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64))
    t = np.asarray(tvec, dtype=np.float64).ravel()
    # Ray d = (x, y, 1) in camera coordinates; board plane: points r @ [X, Y, 0] + t.
    # Solve for (X, Y, lambda): r[:, 0] X + r[:, 1] Y - lambda d = -t.
    n = r[:, 2]  # board normal in camera coordinates
    lam = (n @ t) / (d @ n)
    pts_cam = d * lam[:, None]
    board = (pts_cam - t) @ r  # into board coordinates (r is orthonormal: inverse is transpose)
    bx, by = board[:, 0] / square_mm, board[:, 1] / square_mm
    # Inner corner (0, 0) is at board origin; squares run from -1 to cols (a one-square border of squares).
    inside = (bx >= -1) & (bx < cols) & (by >= -1) & (by < rows) & (lam > 0)
    black = ((np.floor(bx) + np.floor(by)) % 2 == 0) & inside
    margin = (bx >= -2) & (bx < cols + 1) & (by >= -2) & (by < rows + 1) & (lam > 0)  # white paper around it
    img = np.full(len(bx), 90.0)  # background wall
    img[margin] = 235.0
    img[black] = 25.0
    img = img.reshape(h * s, w * s)
    if s > 1:
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    if rng is not None:
        img = img + rng.normal(0, 2.0, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def render_views(
    k: np.ndarray,
    dist: np.ndarray,
    size: tuple[int, int],
    cols: int,
    rows: int,
    square_mm: float,
    count: int,
    seed: int = 0,
) -> list[np.ndarray]:
    """`count` checkerboard views from random poses; same seed, same images."""
    rng = np.random.default_rng(seed)
    rays = pixel_rays(k, dist, size, 2)  # the same for every view: trace the lens once
    views = []
    for _ in range(count):
        rvec, tvec = look_at_pose(rng, cols, rows, square_mm, k, size)
        views.append(render_checkerboard(k, dist, size, cols, rows, square_mm, rvec, tvec, rng, 2, rays))
    return views
