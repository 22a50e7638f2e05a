"""Labelled folders (`labels.csv`: image,plate,x,y,w,h) and the project's fixed train/test split.

The split is by a hash of the image name (and, for video frames, of the video it
came from), so it never changes as files are added and every tool agrees on it:
training code reads only `split == "train"`, every figure we publish comes from
`split == "test"`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ConfigError
from edge.types import Box

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
TEST_FRACTION = 0.3


@dataclass(frozen=True)
class LabelledPlate:
    plate: str  # may be empty when only the box is known
    box: Box | None  # None when unknown (e.g. a crop: the whole image)


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    plates: tuple[LabelledPlate, ...]

    @property
    def split(self) -> str:
        return split_of(self.path.name)


def group_key(name: str) -> str:
    """Frames close in time in one video share a group so near-duplicates never straddle the split.

    'dayride_type1_001_t1115.jpg' -> 'dayride_type1_001@3' (300-frame windows); other names are their own group.
    """
    stem = Path(name).stem
    m = re.match(r"^(.*)_t(\d+)$", stem)
    return f"{m.group(1)}@{int(m.group(2)) // 300}" if m else stem


def split_of(name: str) -> str:
    digest = hashlib.sha256(group_key(name).encode()).digest()
    return "test" if digest[0] / 256 < TEST_FRACTION else "train"


def _int_or_none(row: dict[str, str], key: str, where: str) -> float | None:
    raw = (row.get(key) or "").strip()
    if raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{where}: field {key!r} = {raw!r} is not a number") from None
    if not math.isfinite(value):  # float() takes "nan" and "inf"; a box of them breaks every overlap later
        raise ConfigError(f"{where}: field {key!r} = {raw!r} is not a finite number")
    return value


def _box(xywh: list[float | None], where: str) -> Box | None:
    """The plate's box; None when unknown (all four fields empty, or a zero width or height)."""
    given = [v is not None for v in xywh]
    if not any(given):
        return None
    if not all(given):  # one field lost (a cut or shifted column): the box would silently become "unknown"
        empty = ", ".join(k for k, g in zip("xywh", given) if not g)
        raise ConfigError(f"{where}: box field(s) {empty} empty: give all of x,y,w,h or none (box unknown)")
    x, y, w, h = xywh
    for key, value in (("w", w), ("h", h)):
        if value < 0:  # e.g. x2 - x1 with the corners swapped
            raise ConfigError(f"{where}: field {key!r} = {value:g} is negative (a width or height in pixels; 0 = box unknown)")
    return Box(x, y, w, h) if w > 0 and h > 0 else None


def load_labelled_folder(folder: str | Path) -> list[LabelledImage]:
    """All images of a labelled folder with their plates, sorted by file name."""
    folder = Path(folder)
    csv_path = folder / "labels.csv"
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder")
    if not csv_path.is_file():
        raise ConfigError(f"{folder}: not a labelled folder (no labels.csv; expected header image,plate,x,y,w,h)")
    try:  # utf-8-sig: Excel's "CSV UTF-8" starts with a byte order mark, which would hide the 'image' column
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{csv_path}: not UTF-8 text ({err}); save it as CSV UTF-8") from None
    by_image: dict[str, list[LabelledPlate]] = {}
    first_line: dict[tuple[str, LabelledPlate], int] = {}
    with io.StringIO(text, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"image", "plate", "x", "y", "w", "h"} - set(reader.fieldnames or ())
        if missing:
            raise ConfigError(f"{csv_path}: header lacks {', '.join(sorted(missing))} (expected image,plate,x,y,w,h)")
        for n, row in enumerate(reader, start=2):
            where = f"{csv_path}:{n}"
            image = (row["image"] or "").strip()
            if not image:
                raise ConfigError(f"{where}: empty 'image' field")
            plate = re.sub(r"\s+", "", row["plate"] or "").upper()
            if plate and not re.fullmatch(r"[A-Z0-9]+", plate):
                raise ConfigError(f"{where}: plate {row['plate']!r} must be letters and digits")
            label = LabelledPlate(plate, _box([_int_or_none(row, k, where) for k in ("x", "y", "w", "h")], where))
            key = (image, label)
            if key in first_line:  # counted twice, the copy would be a plate the engine can never find
                raise ConfigError(f"{where}: repeats line {first_line[key]} (same image, plate and box)")
            first_line[key] = n
            by_image.setdefault(image, []).append(label)
    images = []
    for name in sorted(by_image):
        path = folder / name
        if not path.is_file():
            raise ConfigError(f"{csv_path}: image {name!r} is listed but not in the folder")
        images.append(LabelledImage(path, tuple(by_image[name])))
    return images


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
