"""What a roadside camera does to a plate, applied to clean rendered plates and to real crops.

`camera_crop(rng, plate_image)` puts a front-on plate into a surround, warps it (perspective,
rotation), crops it loosely or tightly as a detector would, scales it so the characters are
8 to 60 px tall, and spoils it (motion and focus blur, infrared-like grey, exposure, shadows,
dirt, noise, JPEG). `spoil(rng, crop)` applies only the photometric part, for real crops.
All randomness comes from the generator passed in, so a seed reproduces a sample exactly.
"""

from __future__ import annotations

import cv2
import numpy as np


def _surround(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A plausible car-body / bumper background: a flat colour, gradient and texture."""
    base = rng.integers(0, 256, 3).astype(np.float32) * rng.uniform(0.2, 1.0)
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    # Texture drawn at a quarter of the size and scaled up: cheaper, and blotchier like real paint.
    noise = rng.normal(0, rng.uniform(2, 14), (max(1, h // 4), max(1, w // 4))).astype(np.float32)
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    img = base + (yy - 0.5) * rng.uniform(-80, 80) + noise
    if rng.random() < 0.5:  # bumper edges, grille bars
        for _ in range(int(rng.integers(1, 5))):
            y = int(rng.integers(0, h))
            cv2.line(img, (0, y), (w, y + int(rng.integers(-5, 6))), tuple(float(v) for v in rng.integers(0, 256, 3)),
                     int(rng.integers(1, 4)))
    return np.clip(img, 0, 255).astype(np.uint8)


def warp_into_scene(rng: np.random.Generator, plate: np.ndarray, margin: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """The plate drawn into a larger surround under a random perspective; returns (scene, 4 corners)."""
    ph, pw = plate.shape[:2]
    mx, my = int(pw * margin), int(ph * margin * 2)
    H, W = ph + 2 * my, pw + 2 * mx
    scene = _surround(rng, H, W)
    src = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    # Perspective: yaw squeezes one side, pitch the top or bottom; plus in-plane rotation.
    yaw = rng.normal(0, 0.08)
    pitch = rng.normal(0, 0.06)
    dst = src.copy()
    dst[[1, 2], 1] += np.float32([-yaw * ph, yaw * ph])
    dst[[0, 3], 1] += np.float32([yaw * ph, -yaw * ph]) * 0.3
    dst[[0, 1], 0] += np.float32([pitch * pw, -pitch * pw]) * 0.5
    angle = np.deg2rad(rng.normal(0, 4) if rng.random() < 0.9 else rng.uniform(-12, 12))
    c, s = np.cos(angle), np.sin(angle)
    centre = dst.mean(axis=0)
    dst = (dst - centre) @ np.float32([[c, s], [-s, c]]) + centre
    dst += np.float32([mx, my])
    M = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), M, (W, H))
    warped = cv2.warpPerspective(plate, M, (W, H), flags=cv2.INTER_LINEAR)
    m = cv2.GaussianBlur(mask, (3, 3), 0)[..., None].astype(np.float32) / 255
    scene = (warped * m + scene * (1 - m)).astype(np.uint8)
    return scene, dst.astype(np.float32)


def detector_crop(rng: np.random.Generator, scene: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """An axis-aligned crop around the corners, as loose or tight as detectors' boxes are."""
    x0, y0 = corners.min(axis=0)
    x1, y1 = corners.max(axis=0)
    w, h = x1 - x0, y1 - y0
    loose = rng.random() < 0.3
    lo, hi = (-0.03, 0.25) if loose else (-0.04, 0.1)
    l, r = rng.uniform(lo, hi, 2) * w
    t, b = rng.uniform(lo, hi * 1.5, 2) * h
    X0, Y0 = int(max(0, x0 - l)), int(max(0, y0 - t))
    X1, Y1 = int(min(scene.shape[1], x1 + r)), int(min(scene.shape[0], y1 + b))
    if X1 - X0 < 4 or Y1 - Y0 < 4:
        return scene
    return scene[Y0:Y1, X0:X1]


def rescale_to_char_height(rng: np.random.Generator, crop: np.ndarray, plate_h_frac: float,
                           lo_px: float = 8, hi_px: float = 60) -> np.ndarray:
    """Shrink (then, as a camera's scaler would, leave) the crop so the characters are lo..hi px tall."""
    char_h = rng.uniform(np.log(lo_px), np.log(hi_px))
    char_h = float(np.exp(char_h))
    current = crop.shape[0] * plate_h_frac
    s = char_h / max(current, 1)
    if s >= 1:
        return crop
    w = max(4, int(round(crop.shape[1] * s)))
    h = max(4, int(round(crop.shape[0] * s)))
    interp = cv2.INTER_AREA if rng.random() < 0.6 else cv2.INTER_LINEAR
    return cv2.resize(crop, (w, h), interpolation=interp)


def _motion_blur(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    k = int(rng.integers(3, max(4, img.shape[0] // 12) + 1))
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2, :] = 1.0 / k
    rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(-30, 30), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (k, k))
    kernel /= max(kernel.sum(), 1e-6)
    return cv2.filter2D(img, -1, kernel)


def _shadow(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    pts = np.int32([[rng.integers(-w, w), 0], [rng.integers(0, 2 * w), 0],
                    [rng.integers(0, 2 * w), h], [rng.integers(-w, w), h]])
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(mask, [pts], 1.0)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.5, w * 0.02))
    k = rng.uniform(0.35, 0.8)
    return (img * (1 - mask[..., None] * (1 - k))).astype(np.uint8)


def _dirt(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    out = img.astype(np.float32)
    colour = np.float32(rng.integers(40, 140, 3))
    for _ in range(int(rng.integers(2, 12))):
        mask = np.zeros((h, w), np.float32)
        cv2.circle(mask, (int(rng.integers(0, w)), int(rng.integers(0, h))),
                   int(max(1, rng.uniform(0.02, 0.12) * w)), 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), max(0.5, w * 0.01))[..., None] * rng.uniform(0.1, 0.5)
        out = out * (1 - mask) + colour * mask
    return out.astype(np.uint8)


def spoil(rng: np.random.Generator, img: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Photometric damage: blur, grey IR look, exposure, shadow, dirt, noise, JPEG (each by chance)."""
    p = strength
    if rng.random() < 0.2 * p:
        img = _motion_blur(rng, img)
    if rng.random() < 0.25 * p:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.4 + 0.008 * img.shape[0]))
    if rng.random() < 0.3:
        # Infrared cameras: grey, plate background bright whatever its colour, ink dark.
        g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        if rng.random() < 0.5:
            g = cv2.normalize(g, None, 0, 255, cv2.NORM_MINMAX)
        img = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
    if rng.random() < 0.2 * p:
        img = _shadow(rng, img)
    if rng.random() < 0.15 * p:
        img = _dirt(rng, img)
    if rng.random() < 0.6:  # exposure and contrast
        gamma = float(np.exp(rng.normal(0, 0.35 * p)))
        lut = np.clip(((np.arange(256) / 255.0) ** gamma) * 255 * rng.uniform(0.7, 1.25) + rng.uniform(-40, 40), 0, 255)
        img = cv2.LUT(img, lut.astype(np.uint8))
    if rng.random() < 0.5:
        img = np.clip(img + rng.normal(0, rng.uniform(1, 10 * p), img.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.6:
        q = int(rng.integers(8, 90))
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return img


def random_char_height(rng: np.random.Generator, lo_px: float = 8, hi_px: float = 60) -> float:
    """Character heights log-uniform in [lo, hi]: small, distant plates are as common as close ones."""
    return float(np.exp(rng.uniform(np.log(lo_px), np.log(hi_px))))


def camera_crop(rng: np.random.Generator, plate: np.ndarray, char_frac: float = 0.7,
                char_px: float | None = None) -> np.ndarray:
    """A clean rendered plate as a roadside camera and detector would hand it to the reader.

    `char_frac` is the characters' height as a fraction of the plate's; `char_px` the wanted
    character height in the result (random when None).
    """
    char_px = char_px or random_char_height(rng)
    # Work at about the final size (plus some headroom so the last resize still smooths).
    s = min(1.0, char_px * rng.uniform(1.1, 1.6) / (char_frac * plate.shape[0]))
    if s < 1.0:
        plate = cv2.resize(plate, (max(8, int(plate.shape[1] * s)), max(4, int(plate.shape[0] * s))),
                           interpolation=cv2.INTER_AREA)
    scene, corners = warp_into_scene(rng, plate)
    crop = detector_crop(rng, scene, corners)
    plate_h = corners[:, 1].max() - corners[:, 1].min()
    frac = char_frac * plate_h / max(crop.shape[0], 1)
    crop = rescale_to_char_height(rng, crop, frac, char_px * 0.9, char_px * 1.1)
    return spoil(rng, crop)


def jitter_box(rng: np.random.Generator, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """A real plate cut from its photo with a detector-like random box error (and a small rotation)."""
    x, y, w, h = box
    if rng.random() < 0.3:
        angle = rng.normal(0, 3)
        cx, cy = x + w / 2, y + h / 2
        M = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        image = cv2.warpAffine(image, M, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)
    l, r = rng.uniform(-0.04, 0.12, 2) * w
    t, b = rng.uniform(-0.06, 0.2, 2) * h
    X0, Y0 = int(max(0, x - l)), int(max(0, y - t))
    X1, Y1 = int(min(image.shape[1], x + w + r)), int(min(image.shape[0], y + h + b))
    if X1 - X0 < 4 or Y1 - Y0 < 4:
        X0, Y0, X1, Y1 = int(x), int(y), int(x + w), int(y + h)
    return image[Y0:Y1, X0:X1]
