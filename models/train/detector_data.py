"""Training data for the plate detector: synthetic scenes plus the real train-split photos.

Two steps:

1. `python -m models.train.detector_data prepare --datasets ../shared/datasets --out .data/detector`
   copies what training needs into one git-ignored folder that can travel to a GPU machine:
   the TRAIN split (edge.labels.split_of) of the labelled scene folders, downscaled so the long
   side is at most 960 px, with their boxes in `real.json`; the train split of the real plate
   crops (pasted into synthetic scenes for real plate textures); and the renderer's font files
   (point $EDGE_FONT_DIR at `<out>/fonts` there). Nothing from the test split is copied.

2. `DetectorDataset` makes samples on the fly: each index gives the same sample for a given seed
   (one numpy Generator per index), so a run is reproducible whatever the worker count.

A sample is the detector input (a 384x640 letterboxed BGR image, as at run time) and dense
CenterNet-style targets at stride 4: a Gaussian heat map peaking at plate centres and, in the
3x3 cells round each centre, regression targets (centre offset, log size, four corners).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.detect import resize
from edge.labels import load_labelled_folder, split_of
from models.train import scenes

INPUT_HW = scenes.SCENE_SIZE  # (384, 640)
STRIDE = 4
OUT_HW = (INPUT_HW[0] // STRIDE, INPUT_HW[1] // STRIDE)
REG_CHANNELS = 12  # dx, dy, log w, log h, 4 corners x (dx, dy) relative to the box
PAD_VALUE = 114  # letterbox padding grey, the same at run time (edge/detect.py)

SCENE_FOLDERS = (
    "openalpr_benchmarks_eu",
    "openalpr_benchmarks_us",
    "openalpr_benchmarks_br",
    "romanian_lp_detection_subset",
    "romanian_lp_detection_extra",
)
CROP_FOLDER = "openalpr_us_plate_crops"
MAX_SIDE = 960


# --------------------------------------------------------------------------- preparation


def prepare(datasets: Path, out: Path) -> dict[str, int]:
    """Write the train split (downscaled), plate crops and fonts to `out`; returns counts."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "real").mkdir(exist_ok=True)
    records = []
    for folder in SCENE_FOLDERS:
        if not (datasets / folder).is_dir():
            continue
        for item in load_labelled_folder(datasets / folder):
            if item.split != "train":
                continue
            img = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
            if img is None:
                continue
            f = min(1.0, MAX_SIDE / max(img.shape[:2]))
            if f < 1.0:
                img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            name = f"{folder}__{item.path.stem}.jpg"
            cv2.imwrite(str(out / "real" / name), img, [cv2.IMWRITE_JPEG_QUALITY, 85])
            boxes = [[p.box.x * f, p.box.y * f, p.box.w * f, p.box.h * f] for p in item.plates if p.box is not None]
            records.append({"image": name, "boxes": boxes, "dataset": folder})
    (out / "real.json").write_text(json.dumps(records))

    (out / "crops").mkdir(exist_ok=True)
    n_crops = 0
    if (datasets / CROP_FOLDER).is_dir():
        for item in load_labelled_folder(datasets / CROP_FOLDER):
            if split_of(item.path.name) != "train":
                continue
            crop = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
            if crop is None:
                continue
            # Scenes draw plates at most ~300 px wide; smaller files keep the carried folder light.
            f = min(1.0, 200 / crop.shape[1])
            crop = cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if f < 1 else crop
            cv2.imwrite(str(out / "crops" / f"{item.path.stem}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
            n_crops += 1

    (out / "fonts").mkdir(exist_ok=True)
    try:
        from models.train.render import font_paths

        for p in font_paths():
            shutil.copy(p, out / "fonts" / Path(p).name)
    except (ImportError, RuntimeError):
        pass
    return {"real_images": len(records), "crops": n_crops, "fonts": len(list((out / "fonts").iterdir()))}


# --------------------------------------------------------------------------- letterbox


def letterbox_params(src_hw: tuple[int, int], dst_hw: tuple[int, int] = INPUT_HW) -> tuple[float, int, int]:
    """Scale and (left, top) offset that fit src into dst keeping aspect; the image sits top-left."""
    scale = min(dst_hw[0] / src_hw[0], dst_hw[1] / src_hw[1])
    return scale, 0, 0


def place(image: np.ndarray, scale: float, dx: int, dy: int, dst_hw: tuple[int, int] = INPUT_HW) -> np.ndarray:
    """Resize `image` by `scale` and paste it at (dx, dy) on a grey canvas of dst_hw."""
    h, w = image.shape[:2]
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = resize(image, nw, nh)  # the runtime's resize, so training sees the same resampling
    canvas = np.full((dst_hw[0], dst_hw[1], 3), PAD_VALUE, np.uint8)
    x0, y0 = max(0, dx), max(0, dy)
    x1, y1 = min(dst_hw[1], dx + nw), min(dst_hw[0], dy + nh)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = small[y0 - dy : y1 - dy, x0 - dx : x1 - dx]
    return canvas


# --------------------------------------------------------------------------- targets


@dataclass
class Target:
    box: tuple[float, float, float, float]  # x, y, w, h in input pixels
    corners: np.ndarray | None  # 4x2 input pixels, or None when unknown (real photos)


def encode(targets: list[Target], out_hw: tuple[int, int] = OUT_HW, stride: int = STRIDE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense targets: heat (1,H,W), reg (12,H,W), mask (2,H,W) = (box regression weight, corner weight)."""
    oh, ow = out_hw
    heat = np.zeros((1, oh, ow), np.float32)
    reg = np.zeros((REG_CHANNELS, oh, ow), np.float32)
    mask = np.zeros((2, oh, ow), np.float32)
    ys, xs = np.mgrid[0:oh, 0:ow].astype(np.float32)
    # Small plates first so a big plate's regression wins where their 3x3 neighbourhoods meet.
    for t in sorted(targets, key=lambda t: -t.box[2] * t.box[3]):
        x, y, w, h = t.box
        cx, cy = (x + w / 2) / stride, (y + h / 2) / stride
        sx, sy = max(0.6, w / stride / 6), max(0.6, h / stride / 6)
        g = np.exp(-((xs - cx + 0.5) ** 2) / (2 * sx * sx) - ((ys - cy + 0.5) ** 2) / (2 * sy * sy))
        heat[0] = np.maximum(heat[0], g)
        ci, cj = int(cy), int(cx)
        if 0 <= ci < oh and 0 <= cj < ow:
            heat[0, ci, cj] = 1.0
        for i in range(ci - 1, ci + 2):
            for j in range(cj - 1, cj + 2):
                if not (0 <= i < oh and 0 <= j < ow):
                    continue
                reg[0, i, j] = cx - j
                reg[1, i, j] = cy - i
                reg[2, i, j] = math.log(max(w, 1.0) / stride)
                reg[3, i, j] = math.log(max(h, 1.0) / stride)
                mask[0, i, j] = 1.0 if (i, j) == (ci, cj) else 0.5
                if t.corners is not None:
                    rel = (t.corners - [x + w / 2, y + h / 2]) / [w, h]
                    reg[4:12, i, j] = rel.reshape(-1)
                    mask[1, i, j] = mask[0, i, j]
    return heat, reg, mask


# --------------------------------------------------------------------------- samples


@dataclass
class RealImage:
    image: np.ndarray
    boxes: list[tuple[float, float, float, float]]


def load_prepared(data_dir: Path) -> tuple[list[RealImage], list[np.ndarray]]:
    """The real images with boxes and the real plate crops written by `prepare`."""
    reals: list[RealImage] = []
    index = data_dir / "real.json"
    if index.is_file():
        for rec in json.loads(index.read_text()):
            img = cv2.imread(str(data_dir / "real" / rec["image"]), cv2.IMREAD_COLOR)
            if img is not None:
                reals.append(RealImage(img, [tuple(b) for b in rec["boxes"]]))
    crops = []
    for p in sorted((data_dir / "crops").glob("*.jpg")) if (data_dir / "crops").is_dir() else []:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is not None:
            # The crops carry a few pixels of car round the plate: trim a little so the label hugs the plate.
            h, w = img.shape[:2]
            crops.append(img[int(h * 0.04) : h - int(h * 0.04), int(w * 0.03) : w - int(w * 0.03)])
    return reals, crops


def real_sample(rng: np.random.Generator, real: RealImage) -> tuple[np.ndarray, list[Target]]:
    """A real photo as the runtime would see it: whole frame letterboxed, or a zoomed region (an ROI crop)."""
    img = real.image
    h, w = img.shape[:2]
    if rng.random() < 0.5 or not real.boxes:
        x0, y0, cw, ch = 0.0, 0.0, float(w), float(h)
    else:  # a random window holding one labelled plate, 30-100 % of the frame
        bx, by, bw, bh = real.boxes[int(rng.integers(len(real.boxes)))]
        f = rng.uniform(0.3, 1.0)
        cw, ch = max(w * f, bw * 1.5), max(h * f, bh * 1.5)
        cw, ch = min(cw, w), min(ch, h)
        x0 = rng.uniform(max(0, bx + bw - cw), min(bx, w - cw) + 1e-3)
        y0 = rng.uniform(max(0, by + bh - ch), min(by, h - ch) + 1e-3)
    scale = min(INPUT_HW[0] / ch, INPUT_HW[1] / cw) * rng.uniform(0.7, 1.15)
    dx = int(rng.uniform(min(0, INPUT_HW[1] - cw * scale), max(0, INPUT_HW[1] - cw * scale) + 1))
    dy = int(rng.uniform(min(0, INPUT_HW[0] - ch * scale), max(0, INPUT_HW[0] - ch * scale) + 1))
    # Place the whole image so that the window's corner lands at (dx, dy).
    canvas = place(img, scale, int(round(dx - x0 * scale)), int(round(dy - y0 * scale)))
    targets = []
    for bx, by, bw, bh in real.boxes:
        nx, ny = (bx - x0) * scale + dx, (by - y0) * scale + dy
        nw, nh = bw * scale, bh * scale
        cx0, cy0 = max(nx, 0), max(ny, 0)
        cx1, cy1 = min(nx + nw, INPUT_HW[1]), min(ny + nh, INPUT_HW[0])
        if cx1 <= cx0 or cy1 <= cy0 or (cx1 - cx0) * (cy1 - cy0) < 0.6 * nw * nh:
            continue
        targets.append(Target((cx0, cy0, cx1 - cx0, cy1 - cy0), None))
    return canvas, targets


class DetectorDataset:
    """Indexable samples (image uint8 CHW, heat, reg, mask), deterministic per (seed, epoch, index)."""

    def __init__(self, data_dir: Path | None, length: int, seed: int = 0, real_fraction: float = 0.35):
        self.reals, self.crops = load_prepared(data_dir) if data_dir is not None else ([], [])
        self.length = length
        self.seed = seed
        self.epoch = 0
        self.real_fraction = real_fraction if self.reals else 0.0
        self.plate_source = scenes.make_plate_source(self.crops, real_fraction=0.15 if self.crops else 0.0)

    def __len__(self) -> int:
        return self.length

    def sample(self, index: int) -> tuple[np.ndarray, list[Target]]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if rng.random() < self.real_fraction:
            real = self.reals[int(rng.integers(len(self.reals)))]
            img, targets = real_sample(rng, real)
            if rng.random() < 0.4:  # more plates and distractors on the real photo
                keep = [t.box for t in targets]
                scene = scenes.compose_scene(rng, self.plate_source, background=img, keep_out=keep, max_plates=2, distractors=int(rng.integers(0, 5)))
                return scene.image, targets + [Target(p.box, p.corners) for p in scene.plates]
            return scenes.photometric(rng, img) if rng.random() < 0.5 else img, targets
        scene = scenes.compose_scene(rng, self.plate_source)
        return scene.image, [Target(p.box, p.corners) for p in scene.plates]

    def __getitem__(self, index: int):
        img, targets = self.sample(index)
        heat, reg, mask = encode(targets)
        return np.ascontiguousarray(img.transpose(2, 0, 1)), heat, reg, mask


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.train.detector_data", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="copy the train split, plate crops and fonts into one folder for training")
    p.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    p.add_argument("--out", type=Path, default=Path(".data/detector"))
    s = sub.add_parser("preview", help="write a grid of samples with their labels drawn, to check the data by eye")
    s.add_argument("--data", type=Path, default=Path(".data/detector"))
    s.add_argument("--out", type=Path, default=Path("runs/detector_preview.jpg"))
    s.add_argument("--count", type=int, default=12)
    s.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.cmd == "prepare":
        print(json.dumps(prepare(args.datasets, args.out)))
        return 0
    ds = DetectorDataset(args.data if args.data.is_dir() else None, args.count, args.seed)
    tiles = []
    for i in range(args.count):
        img, targets = ds.sample(i)
        img = img.copy()
        for t in targets:
            x, y, w, h = (int(round(v)) for v in t.box)
            cv2.rectangle(img, (x, y), (x + w, y + h), (0, 0, 255), 1)
            if t.corners is not None:
                cv2.polylines(img, [t.corners.astype(np.int32)], True, (0, 255, 0), 1)
        tiles.append(img)
    while len(tiles) % 3:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.vstack([np.hstack(tiles[i : i + 3]) for i in range(0, len(tiles), 3)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), grid)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
