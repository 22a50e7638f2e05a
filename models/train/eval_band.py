"""Measure `edge.plates.image.plate_band` (the green flash / blue band / none classifier).

    python -m models.train.eval_band                                  # rendered plates, about 30 s
    python -m models.train.eval_band --real ../shared/datasets        # plus real crops (EU, US, BR scenes)

Rendered: UK plates (front white and rear yellow, one and two lines) drawn until there are
`--gb` of them, a third each with the green flash, a blue UK/GB band and no band, plus `--eu`
European plates (the renderer gives most of them the blue EU band). Each goes through what a
camera and the engine do to it: into a car-body surround under perspective (models.train.augment),
found by a detector with a few percent of error in its corners, cut by edge.read.crop_plate
(rectified from the corners, or the box alone), scaled to 8-60 px characters and spoiled (blur,
infrared grey, shadow, dirt, exposure, noise, JPEG). The truth is the band the renderer drew; crops
made grey by the infrared step are counted in rows of their own, since no colour survives there.

Real: the labelled scenes' crops, cut by crop_plate from the labelled box and from the
detector's own detections (models/detector.onnx). The EU scenes carry blue EU bands, the US and BR
plates none; none is a UK plate, so a GREEN there is a false alarm. No image is written anywhere.

Cost: plate_band and plate_colour (for scale) timed interleaved on the same crops, medians.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from edge.plates.image import plate_band, plate_colour
from edge.read import crop_plate
from edge.types import Box, Detection, PlateBand
from models.train.augment import spoil, warp_into_scene
from models.train.render import EU_BAND_CODES, random_plate

PREDICTED = [b.value for b in PlateBand]
REAL_FOLDERS = ("openalpr_benchmarks_eu", "openalpr_benchmarks_us", "openalpr_benchmarks_br")


def _probe(shape: tuple[int, ...]) -> np.ndarray:
    """Half red, half green: strongly coloured, and not flat (the infrared step may stretch levels)."""
    img = np.zeros(shape, np.uint8)
    img[:, : shape[1] // 2, 2] = 255
    img[:, shape[1] // 2 :, 1] = 255
    return img


def _is_grey(probe: np.ndarray) -> bool:
    """A spoiled probe loses its colour only if the infrared step ran (noise leaves a little)."""
    spread = probe.max(axis=2).astype(np.int16) - probe.min(axis=2)
    return float(np.median(spread)) < 60


def camera_view(rng: np.random.Generator, plate: np.ndarray) -> tuple[np.ndarray, bool]:
    """The crop the reader would get of a front-on rendered plate, and whether it came out grey."""
    scene, corners = warp_into_scene(rng, plate, margin=0.4)
    ph = float(corners[:, 1].max() - corners[:, 1].min())
    pw = float(corners[:, 0].max() - corners[:, 0].min())
    # A detector's corners are off by a few percent of the plate's size.
    noisy = corners + rng.normal(0, 0.025, corners.shape).astype(np.float32) * np.float32([pw, ph])
    x0, y0 = noisy.min(axis=0)
    x1, y1 = noisy.max(axis=0)
    box = Box(float(x0), float(y0), float(max(1.0, x1 - x0)), float(max(1.0, y1 - y0)))
    quad = tuple((float(x), float(y)) for x, y in noisy) if rng.random() < 0.7 else None
    crop = crop_plate(scene, Detection(box, 0.9, quad))
    # Characters 8-60 px tall (log-uniform): the crop is about 1.2 plate heights, characters 0.7 of a plate.
    char_px = float(np.exp(rng.uniform(np.log(8), np.log(60))))
    target_h = char_px / 0.7 * 1.2
    if target_h < crop.shape[0]:
        s = target_h / crop.shape[0]
        crop = cv2.resize(crop, (max(4, round(crop.shape[1] * s)), max(4, round(crop.shape[0] * s))), interpolation=cv2.INTER_AREA)
    probe_rng = copy.deepcopy(rng)  # spoil's random draws depend only on the image's shape
    probe = spoil(probe_rng, _probe(crop.shape))
    return spoil(rng, crop), _is_grey(probe)


def rendered_crops(seed: int, gb: int, eu: int) -> list[tuple[str, str, np.ndarray]]:
    """(truth band, group, crop) for `gb` UK plates (a third per band) and `eu` European plates."""
    rng = np.random.default_rng(seed)
    want = {"green": gb // 3, "blue": gb // 3, "none": gb - 2 * (gb // 3)}
    out = []
    while any(want.values()):
        p = random_plate(rng, "GB")
        if want.get(p.band, 0) == 0:
            continue  # rejection sampling: the renderer's own odds give few green flashes
        want[p.band] -= 1
        crop, grey = camera_view(rng, p.image)
        out.append((p.band, f"GB {p.colour} {p.lines}-line" + (" grey" if grey else ""), crop))
    eu_countries = sorted(EU_BAND_CODES)
    for _ in range(eu):
        p = random_plate(rng, eu_countries[int(rng.integers(len(eu_countries)))])
        crop, grey = camera_view(rng, p.image)
        out.append((p.band, "EU" + (" grey" if grey else ""), crop))
    return out


def confusion(rows: list[tuple[str, str]]) -> str:
    """A table: one row per truth, one column per predicted band."""
    counts = Counter(rows)
    truths = sorted({t for t, _ in rows})
    head = f"| truth \\ predicted | {' | '.join(PREDICTED)} | n |"
    lines = [head, "|" + "---|" * (len(PREDICTED) + 2)]
    for t in truths:
        n = sum(counts[(t, p)] for p in PREDICTED)
        lines.append(f"| {t} | {' | '.join(str(counts[(t, p)]) for p in PREDICTED)} | {n} |")
    return "\n".join(lines)


def timing(crops: list[np.ndarray], rounds: int = 20) -> tuple[float, float]:
    """Median microseconds per crop of plate_band and plate_colour, interleaved crop by crop."""
    band, colour = [], []
    for _ in range(rounds):
        for c in crops:
            t0 = time.perf_counter()
            plate_band(c)
            t1 = time.perf_counter()
            plate_colour(c)
            t2 = time.perf_counter()
            band.append(t1 - t0)
            colour.append(t2 - t1)
    return statistics.median(band) * 1e6, statistics.median(colour) * 1e6


def real_crops(datasets: Path, split: str | None) -> list[tuple[str, str, np.ndarray]]:
    """(folder, source, crop): every labelled plate cut from its box, and every detection of the detector."""
    from edge.detect import OnnxPlateDetector
    from edge.labels import load_labelled_folder
    from edge.onnx import load_model

    root = Path(__file__).resolve().parents[2]
    detector = OnnxPlateDetector(load_model(root / "models" / "detector.onnx", threads=1), 0.5, 0.5)
    out = []
    for folder in REAL_FOLDERS:
        for item in load_labelled_folder(datasets / folder):
            if split and item.split != split:
                continue
            image = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
            if image is None:
                continue
            for plate in item.plates:
                if plate.box is not None:
                    out.append((folder, "labelled box", crop_plate(image, Detection(plate.box, 1.0))))
            for det in detector.detect(image):
                out.append((folder, "detector", crop_plate(image, det)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gb", type=int, default=600, help="UK plates, a third each green flash, blue band, no band")
    ap.add_argument("--eu", type=int, default=200, help="European plates (most with the blue EU band)")
    ap.add_argument("--real", type=Path, default=None, help="the shared datasets folder: also count bands on real crops")
    ap.add_argument("--split", choices=("test", "train", "all"), default="all", help="real crops from this split")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    samples = rendered_crops(args.seed, args.gb, args.eu)
    results = [(truth, group, plate_band(crop).value) for truth, group, crop in samples]
    print(f"Rendered plates (seed {args.seed}): {len(samples)} crops, heights {min(c.shape[0] for *_, c in samples)}-"
          f"{max(c.shape[0] for *_, c in samples)} px\n")
    print("Colour crops, UK and EU:")
    print(confusion([(("EU " if g.startswith("EU") else "GB ") + t, p) for t, g, p in results if not g.endswith("grey")]))
    print("\nGrey (infrared) crops: no colour survives, so UNKNOWN (or NONE) is the right answer:")
    print(confusion([(t, p) for t, g, p in results if g.endswith("grey")]))
    small = [(t, p) for (t, g, p), (*_, c) in zip(results, samples) if c.shape[0] >= 12 and not g.endswith("grey")]
    hits = sum(t == p for t, p in small)
    print(f"\nColour crops at least 12 px tall: {hits}/{len(small)} right ({100 * hits / max(1, len(small)):.1f}%)")
    false_green = sum(p == "green" and t != "green" for t, _, p in results)
    print(f"GREEN false alarms (truth blue or none, any crop): {false_green}/{sum(t != 'green' for t, _, _ in results)}")
    band_us, colour_us = timing([c for *_, c in samples[:200]])
    print(f"\nCost per crop (median, interleaved, 200 crops x 20 rounds): plate_band {band_us:.1f} us, "
          f"plate_colour {colour_us:.1f} us")
    if args.real:
        crops = real_crops(args.real, None if args.split == "all" else args.split)
        print(f"\nReal crops ({args.split} split): predicted band per folder and crop source")
        table = Counter((f"{folder} ({src})", plate_band(c).value) for folder, src, c in crops)
        keys = sorted({k for k, _ in table})
        print(f"| crops | {' | '.join(PREDICTED)} | n |")
        print("|" + "---|" * (len(PREDICTED) + 2))
        for k in keys:
            print(f"| {k} | {' | '.join(str(table[(k, p)]) for p in PREDICTED)} | {sum(table[(k, p)] for p in PREDICTED)} |")
        print(f"GREEN false alarms on real crops (none is a UK plate): {sum(table[(k, 'green')] for k in keys)}/{len(crops)}")
        band_us, colour_us = timing([c for *_, c in crops], rounds=10)
        print(f"Cost per real crop (median, interleaved, {len(crops)} crops x 10 rounds): plate_band {band_us:.1f} us, "
              f"plate_colour {colour_us:.1f} us")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
