"""Training and evaluation samples for the plate reader.

Two sources, mixed in every batch:
- synthetic: `render.random_plate` through `augment.camera_crop` (every format, colour, layout);
- real: plates cut from the labelled folders in ../shared/datasets, TRAIN split only
  (`edge.labels.split_of`), each time with a new detector-like box error and photometric damage.

`prepare` copies what training needs into one folder (default .data/reader, git-ignored) so it
can travel to a GPU machine: the real train crops with some context around each box, an index,
and the font files. Evaluation cuts its TEST crops straight from the datasets (`real_crops`).

    python -m models.train.reader_data --datasets ../shared/datasets --out .data/reader
"""

from __future__ import annotations

import argparse
import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.labels import load_labelled_folder, split_of
from edge.plates.image import plate_input
from models.train import augment, render

# Scene folders whose label boxes give plate crops, and folders that already are crops.
SCENE_SETS = ("openalpr_benchmarks_eu", "openalpr_benchmarks_br", "openalpr_benchmarks_us")
CROP_SETS = ("openalpr_us_plate_crops",)
CONTEXT = 0.5  # margin kept around a training box, as a fraction of its size, for box jitter


@dataclass
class RealCrop:
    image: np.ndarray  # BGR, the plate with some context (scenes) or the whole crop
    box: tuple[float, float, float, float] | None  # plate box inside `image`; None: the whole image
    text: str
    dataset: str
    name: str
    char_px: float | None = None  # rendered plates: the character height drawn (real crops: unknown)


def real_crops(datasets: Path, split: str, context: float = 0.0) -> list[RealCrop]:
    """Labelled plates of one split, cut from the scene sets' boxes (plus `context`) and the crop sets."""
    out: list[RealCrop] = []
    for ds in SCENE_SETS + CROP_SETS:
        folder = datasets / ds
        if not (folder / "labels.csv").is_file():
            continue
        for item in load_labelled_folder(folder):
            if item.split != split:
                continue
            img = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
            if img is None:
                continue
            for plate in item.plates:
                if not plate.plate:
                    continue
                if plate.box is None or ds in CROP_SETS:
                    out.append(RealCrop(img, None, plate.plate, ds, item.path.name))
                    continue
                b = plate.box
                mx, my = b.w * context, b.h * context
                x0, y0 = int(max(0, b.x - mx)), int(max(0, b.y - my))
                x1 = int(min(img.shape[1], b.x + b.w + mx))
                y1 = int(min(img.shape[0], b.y + b.h + my))
                out.append(RealCrop(img[y0:y1, x0:x1].copy(), (b.x - x0, b.y - y0, b.w, b.h), plate.plate, ds,
                                    item.path.name))
    return out


def exact_crop(c: RealCrop) -> np.ndarray:
    """The plate as labelled: the box itself, or the whole image for crop sets."""
    if c.box is None:
        return c.image
    x, y, w, h = (int(round(v)) for v in c.box)
    return c.image[max(0, y) : y + h, max(0, x) : x + w]


def prepare(datasets: Path, out: Path) -> None:
    """Write the train-split crops (with context), their index and the fonts under `out`."""
    crops_dir = out / "crops"
    if crops_dir.exists():
        shutil.rmtree(crops_dir)
    crops_dir.mkdir(parents=True)
    rows = []
    for i, c in enumerate(real_crops(datasets, "train", CONTEXT)):
        name = f"{i:04d}_{c.dataset.split('_')[-1]}_{Path(c.name).stem}.jpg"
        img = c.image
        scale = 1.0
        if img.shape[0] > 160:  # keep the carried folder small: plates are never needed taller than this
            scale = 160 / img.shape[0]
            img = cv2.resize(img, (max(1, int(img.shape[1] * scale)), 160), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(crops_dir / name), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        box = ["", "", "", ""] if c.box is None else [f"{v * scale:.1f}" for v in c.box]
        rows.append([name, c.text, c.dataset, *box])
    with open(out / "crops.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "plate", "dataset", "x", "y", "w", "h"])
        w.writerows(rows)
    fonts = out / "fonts"
    fonts.mkdir(exist_ok=True)
    for p in render.font_paths():
        shutil.copy(p, fonts / p.name)
    print(f"{len(rows)} train crops and {len(list(fonts.iterdir()))} fonts in {out}")


def load_prepared(folder: Path) -> list[RealCrop]:
    items = []
    with open(folder / "crops.csv", newline="") as f:
        for row in csv.DictReader(f):
            img = cv2.imread(str(folder / "crops" / row["file"]), cv2.IMREAD_COLOR)
            box = None if not row["x"] else tuple(float(row[k]) for k in ("x", "y", "w", "h"))
            items.append(RealCrop(img, box, row["plate"], row["dataset"], row["file"]))
    return items


class SampleMaker:
    """Makes one (input array, text) pair from a seed: the same seed always gives the same sample."""

    def __init__(self, real: list[RealCrop], height: int, width: int, real_fraction: float = 0.35):
        self.real = real
        self.height, self.width = height, width
        self.real_fraction = real_fraction
        by_set: dict[str, list[int]] = {}
        for i, c in enumerate(real):
            by_set.setdefault(c.dataset, []).append(i)
        self.by_set = list(by_set.values())

    def synthetic(self, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        char_px = augment.random_char_height(rng)
        # Render near the size it will be seen at (fast), never so small that the band text vanishes.
        height = int(np.clip(char_px / 0.7 * rng.uniform(1.3, 2.0), 40, 140))
        plate = render.random_plate(rng, height_px=height)
        crop = augment.camera_crop(rng, plate.image, char_frac=0.7 if plate.lines == 1 else 0.35, char_px=char_px)
        return crop, plate.text

    def real_sample(self, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        group = self.by_set[int(rng.integers(len(self.by_set)))]  # each dataset equally often
        c = self.real[group[int(rng.integers(len(group)))]]
        crop = c.image if c.box is None else augment.jitter_box(rng, c.image, c.box)
        if c.box is None and rng.random() < 0.5:  # crop sets: trim or pad a little
            h, w = crop.shape[:2]
            t, b, l, r = (int(v) for v in rng.uniform(0, 0.08, 4) * [h, h, w, w])
            crop = crop[t : h - b or h, l : w - r or w]
        if rng.random() < 0.5:
            crop = augment.rescale_to_char_height(rng, crop, 0.6, 8, 60)
        return augment.spoil(rng, crop, strength=0.6), c.text

    def __call__(self, seed: int) -> tuple[np.ndarray, str]:
        rng = np.random.default_rng(seed)
        if self.real and rng.random() < self.real_fraction:
            crop, text = self.real_sample(rng)
        else:
            crop, text = self.synthetic(rng)
        return plate_input(crop, self.height, self.width), text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--out", type=Path, default=Path(".data/reader"))
    ap.add_argument("--preview", type=Path, help="also write a sheet of training samples to this PNG")
    args = ap.parse_args()
    prepare(args.datasets, args.out)
    if args.preview:
        maker = SampleMaker(load_prepared(args.out), 32, 128)
        tiles = []
        for s in range(48):
            x, text = maker(s)
            tile = np.full((46, 128), 0, np.uint8)
            tile[:32] = ((x + 1) * 127.5).astype(np.uint8)
            cv2.putText(tile, text, (1, 44), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 255, 1)
            tiles.append(tile)
        cv2.imwrite(str(args.preview), np.vstack([np.hstack(tiles[i : i + 6]) for i in range(0, 48, 6)]))


if __name__ == "__main__":
    main()
