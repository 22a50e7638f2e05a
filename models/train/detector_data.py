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


def find_unlabelled(data_dir: Path, model: Path, threshold: float = 0.3) -> dict[str, int]:
    """Add to `real.json` the plates the labels leave out, as regions training ignores.

    The openalpr scenes label one plate per image and the Romanian frames skip far plates: trained as
    they are, every other real plate in view is taught as background, which costs recall on exactly
    the small and far plates the detector misses. A detection (of `model`, at `threshold`) that
    matches no label and that the reader reads as 5-8 characters mixing letters and digits at a
    confidence of at least 0.3 is taken for such a plate. Badges, signs, clocks and grilles read as
    letters only, digits only or at confidences under 0.1 (checked by eye on the 24 candidates of a
    looser rule, models/detector.md).
    Train split only: these are the files `prepare` wrote."""
    from edge.config import CameraConfig
    from edge.detect import load_detector
    from edge.read import crop_plate, load_reader

    cfg = CameraConfig().with_overrides(detector={"model": str(model.resolve()), "threshold": threshold})
    detector, reader = load_detector(cfg), load_reader(cfg)
    index = data_dir / "real.json"
    records = json.loads(index.read_text())
    found = 0
    for rec in records:
        img = cv2.imread(str(data_dir / "real" / rec["image"]), cv2.IMREAD_COLOR)
        if img is None:
            continue
        labels = [np.array(b, np.float32) for b in rec["boxes"]]
        extra = []
        for d in detector.detect(img):
            b = np.array(d.box.as_list(), np.float32)
            if any(_iou(b, lab) >= 0.3 for lab in labels):
                continue
            r = reader.read([crop_plate(img, d)])[0]
            if r is not None and _plate_like(r.text) and r.confidence >= 0.3:
                extra.append([float(v) for v in b])
        rec["ignore"] = extra
        found += len(extra)
    index.write_text(json.dumps(records))
    return {"images": len(records), "unlabelled_plates": found, "with_any": sum(1 for r in records if r.get("ignore"))}


def _plate_like(text: str) -> bool:
    """5-8 characters mixing letters and digits, as nearly every plate does; badges and signs read as
    letters only, clocks and fleet numbers as digits only."""
    return 5 <= len(text) <= 8 and any(c.isalpha() for c in text) and any(c.isdigit() for c in text)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return float(inter / max(a[2] * a[3] + b[2] * b[3] - inter, 1e-6))


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
    ignore: bool = False  # an unlabelled real plate (see `ignore` below): neither a plate nor background


def encode(targets: list[Target], out_hw: tuple[int, int] = OUT_HW, stride: int = STRIDE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense targets: heat (1,H,W), reg (12,H,W), mask (3,H,W) = (box regression weight, corner weight,
    background weight of the heat loss: 0 over ignored regions, 1 elsewhere)."""
    oh, ow = out_hw
    heat = np.zeros((1, oh, ow), np.float32)
    reg = np.zeros((REG_CHANNELS, oh, ow), np.float32)
    mask = np.zeros((3, oh, ow), np.float32)
    mask[2] = 1.0
    for t in targets:
        if t.ignore:  # the box and one cell round it: the model is neither rewarded nor punished there
            x, y, w, h = t.box
            i0, j0 = max(0, int(y / stride) - 1), max(0, int(x / stride) - 1)
            i1, j1 = min(oh, int((y + h) / stride) + 2), min(ow, int((x + w) / stride) + 2)
            mask[2, i0:i1, j0:j1] = 0.0
    targets = [t for t in targets if not t.ignore]
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
    ignore: list[tuple[float, float, float, float]] = None  # type: ignore[assignment]  # unlabelled plates (`ignore`)

    def __post_init__(self) -> None:
        self.ignore = list(self.ignore or [])


def load_prepared(data_dir: Path) -> tuple[list[RealImage], list[np.ndarray]]:
    """The real images with boxes and the real plate crops written by `prepare`."""
    reals: list[RealImage] = []
    index = data_dir / "real.json"
    if index.is_file():
        for rec in json.loads(index.read_text()):
            img = cv2.imread(str(data_dir / "real" / rec["image"]), cv2.IMREAD_COLOR)
            if img is not None:
                reals.append(RealImage(img, [tuple(b) for b in rec["boxes"]], [tuple(b) for b in rec.get("ignore", [])]))
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
    for (bx, by, bw, bh), ignore in [(b, False) for b in real.boxes] + [(b, True) for b in real.ignore]:
        nx, ny = (bx - x0) * scale + dx, (by - y0) * scale + dy
        nw, nh = bw * scale, bh * scale
        cx0, cy0 = max(nx, 0), max(ny, 0)
        cx1, cy1 = min(nx + nw, INPUT_HW[1]), min(ny + nh, INPUT_HW[0])
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        if (cx1 - cx0) * (cy1 - cy0) < 0.6 * nw * nh:
            if not ignore:  # a plate cut by the window edge is no lesson either way
                targets.append(Target((cx0, cy0, cx1 - cx0, cy1 - cy0), None, ignore=True))
            continue
        targets.append(Target((cx0, cy0, cx1 - cx0, cy1 - cy0), None, ignore=ignore))
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
    u = sub.add_parser("ignore", help="mark real plates the labels leave out (found by a detector and the reader) as regions training ignores")
    u.add_argument("--data", type=Path, default=Path(".data/detector"))
    u.add_argument("--model", type=Path, default=Path("models/detector.onnx"))
    u.add_argument("--threshold", type=float, default=0.3)
    s = sub.add_parser("preview", help="write a grid of samples with their labels drawn, to check the data by eye")
    s.add_argument("--data", type=Path, default=Path(".data/detector"))
    s.add_argument("--out", type=Path, default=Path("runs/detector_preview.jpg"))
    s.add_argument("--count", type=int, default=12)
    s.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.cmd == "prepare":
        print(json.dumps(prepare(args.datasets, args.out)))
        return 0
    if args.cmd == "ignore":
        print(json.dumps(find_unlabelled(args.data, args.model, args.threshold)))
        return 0
    ds = DetectorDataset(args.data if args.data.is_dir() else None, args.count, args.seed)
    tiles = []
    for i in range(args.count):
        img, targets = ds.sample(i)
        img = img.copy()
        for t in targets:
            x, y, w, h = (int(round(v)) for v in t.box)
            cv2.rectangle(img, (x, y), (x + w, y + h), (255, 128, 0) if t.ignore else (0, 0, 255), 1)
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
