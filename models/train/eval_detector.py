"""Measure the plate detector on the TEST split of the real labelled scenes.

    python -m models.train.eval_detector --datasets ../shared/datasets --json runs/detector/eval.json
    python -m models.train.eval_detector --model models/detector_int8.onnx --latency-frames 50
    python -m models.train.eval_detector --reader onnx          # also end-to-end exact-plate accuracy

Per dataset: recall at IoU >= 0.5, false positives per image (raw: every unmatched
detection) and the same counting only detections that overlap no plate-sized
region a person marked as a plate... which we cannot know: the openalpr scenes
label ONE plate per image, so an unmatched detection there is often a real,
unlabelled plate. `--fp-sheet DIR` writes each unmatched detection as a crop on a
contact sheet per dataset so a person can count the true false positives.

Latency: full 1920x1080 frames (test photos resized to 1080p), `detect()` end to end
(letterbox resize, inference on one onnxruntime thread, decoding, NMS), median and p95.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.detect import OnnxPlateDetector
from edge.labels import LabelledImage, load_labelled_folder
from edge.onnx import load_model
from edge.types import Box, Detection
from models.train.alterations import ALTERATIONS

# End to end, each set is read with the plate grammars a camera in its country would be configured
# with (`[reader] countries`), as scripts/figures.py does; before session 4 every set was read as GB,
# which cost foreign plates their format's ranking and understated end-to-end accuracy.
COUNTRIES = {"openalpr_benchmarks_eu": ("SK", "CZ"), "openalpr_benchmarks_br": ("BR",), "openalpr_benchmarks_us": ("US",)}

TEST_FOLDERS = (
    "openalpr_benchmarks_eu",
    "openalpr_benchmarks_us",
    "openalpr_benchmarks_br",
    "romanian_lp_detection_subset",
    "romanian_lp_detection_extra",
)


@dataclass
class Tally:
    images: int = 0
    plates: int = 0
    found: int = 0
    blank_plates: int = 0  # labelled plates on blank images (one pixel value everywhere): unfindable
    false_pos: int = 0
    read_total: int = 0
    read_exact: int = 0
    read_exact_gt_box: int = 0
    # With a reader, as the product sees detections: only those with a legible reading count.
    read_all: bool = False  # whether a reader read every detection (the two counts below)
    found_legible: int = 0
    false_reads: int = 0
    misses: list[str] = field(default_factory=list)

    def row(self) -> dict:
        return {
            "images": self.images,
            "plates": self.plates,
            "recall": round(self.found / self.plates, 4) if self.plates else None,
            "blank_plates": self.blank_plates,
            "recall_visible": round(self.found / (self.plates - self.blank_plates), 4) if self.plates > self.blank_plates else None,
            "fp_per_image": round(self.false_pos / self.images, 3) if self.images else None,
            "false_pos": self.false_pos,
            "read_exact": round(self.read_exact / self.read_total, 4) if self.read_total else None,
            "read_exact_on_labelled_box": round(self.read_exact_gt_box / self.read_total, 4) if self.read_total else None,
            "read_total": self.read_total,
            "recall_legible": round(self.found_legible / self.plates, 4) if self.read_all and self.plates else None,
            "false_reads_per_image": round(self.false_reads / self.images, 3) if self.read_all and self.images else None,
            "missed": self.misses,
        }


def match(gt: list[Box], found: list[Box], iou: float = 0.5) -> tuple[set[int], set[int]]:
    """Greedy one-to-one matching by IoU: (matched ground-truth indices, matched detection indices)."""
    pairs = sorted(((g.iou(d), i, j) for i, g in enumerate(gt) for j, d in enumerate(found)), reverse=True)
    used_g: set[int] = set()
    used_d: set[int] = set()
    for v, i, j in pairs:
        if v < iou:
            break
        if i not in used_g and j not in used_d:
            used_g.add(i)
            used_d.add(j)
    return used_g, used_d


def _same_plate(truth: str, text: str, folder: str) -> bool:
    if "_us" in folder or "_br" in folder:  # US labels never use O: O and 0 are both written 0
        truth, text = truth.replace("O", "0"), text.replace("O", "0")
    return truth == text


def evaluate(detector: OnnxPlateDetector, datasets: Path, folders: tuple[str, ...], reader_for=None, fp_sheet: Path | None = None, use_corners: bool = True, alter=None) -> dict:
    """Per-folder figures; `reader_for(folder)` gives the reader for end-to-end accuracy (None: detection only);
    `alter(image)`, one of ALTERATIONS, is applied to every photo first."""
    results = {}
    total = Tally(read_all=reader_for is not None)
    for folder in folders:
        if not (datasets / folder).is_dir():
            continue
        reader = reader_for(folder) if reader_for is not None else None
        tally = Tally(read_all=reader is not None)
        fp_crops: list[np.ndarray] = []
        for item in load_labelled_folder(datasets / folder):
            if item.split != "test":
                continue
            image = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
            if image is None:
                continue
            if alter is not None:
                image = alter(image)
            dets = detector.detect(image)
            gt = [p.box for p in item.plates if p.box is not None]
            matched_g, matched_d = match(gt, [d.box for d in dets])
            tally.images += 1
            tally.plates += len(gt)
            tally.blank_plates += len(gt) if image.min() == image.max() else 0
            tally.found += len(matched_g)
            tally.false_pos += len(dets) - len(matched_d)
            tally.misses += [f"{item.path.name}:{[round(v) for v in (b.x, b.y, b.w, b.h)]}" for i, b in enumerate(gt) if i not in matched_g]
            if fp_sheet is not None:
                for j, d in enumerate(dets):
                    if j not in matched_d:
                        fp_crops.append(_crop(image, d.box, f"{d.score:.2f}"))
            if reader is not None:
                legible = _read_tally(tally, reader, image, item, dets, folder, use_corners)
                tally.found_legible += sum(1 for j in matched_d if legible[j])
                tally.false_reads += sum(1 for j, ok in enumerate(legible) if ok and j not in matched_d)
        if fp_sheet is not None and fp_crops:
            fp_sheet.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(fp_sheet / f"{folder}_fp.jpg"), _sheet(fp_crops))
        results[folder] = tally.row()
        for k in ("images", "plates", "found", "blank_plates", "false_pos", "read_total", "read_exact", "read_exact_gt_box", "found_legible", "false_reads"):
            setattr(total, k, getattr(total, k) + getattr(tally, k))
    results["all"] = {k: v for k, v in total.row().items() if k != "missed"}
    return results


def _read_tally(tally: Tally, reader, image: np.ndarray, item: LabelledImage, dets, folder: str, use_corners: bool = True) -> list[bool]:
    """End to end: a labelled plate counts as read when some detection's reading equals its text.
    Returns, per detection, whether its reading is legible."""
    from edge.read import crop_plate

    if not use_corners:
        dets = [Detection(d.box, d.score, None) for d in dets]
    crops = [crop_plate(image, d) for d in dets]
    readings = reader.read(crops) if crops else []
    legible = [r is not None for r in readings]
    texts = [p.plate for p in item.plates if p.plate]
    if not texts:
        return legible
    got = [r.text for r in readings if r is not None]
    # The reader alone, on the labelled boxes: separates reader errors from detector errors.
    truth_crops = [crop_plate(image, Detection(p.box, 1.0)) for p in item.plates if p.plate and p.box is not None]
    truth_got = [r.text for r in (reader.read(truth_crops) if truth_crops else []) if r is not None]
    for t in texts:
        tally.read_total += 1
        tally.read_exact += any(_same_plate(t, g, folder) for g in got)
        tally.read_exact_gt_box += any(_same_plate(t, g, folder) for g in truth_got)
    return legible


def _crop(image: np.ndarray, box: Box, label: str) -> np.ndarray:
    x0, y0 = max(0, int(box.x - box.w * 0.3)), max(0, int(box.y - box.h * 0.6))
    x1, y1 = int(box.x + box.w * 1.3), int(box.y + box.h * 1.6)
    crop = cv2.resize(image[y0:y1, x0:x1], (200, 100))
    cv2.putText(crop, label, (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 255), 1)
    return crop


def _sheet(crops: list[np.ndarray], cols: int = 6) -> np.ndarray:
    while len(crops) % cols:
        crops.append(np.zeros_like(crops[0]))
    return np.vstack([np.hstack(crops[i : i + cols]) for i in range(0, len(crops), cols)])


def latency(detector: OnnxPlateDetector, datasets: Path, frames: int) -> dict:
    """detect() on 1920x1080 frames, one thread: median and p95 in ms, plus the model call alone."""
    cv2.setNumThreads(1)  # one core means OpenCV's resize too, not only onnxruntime
    images = []
    for folder in TEST_FOLDERS:
        if (datasets / folder).is_dir():
            images += [i.path for i in load_labelled_folder(datasets / folder) if i.split == "test"]
    images = images[:: max(1, len(images) // frames)][:frames] or []
    frames_1080 = [cv2.resize(cv2.imread(str(p)), (1920, 1080)) for p in images]
    if not frames_1080:
        frames_1080 = [np.full((1080, 1920, 3), 100, np.uint8)]
    for f in frames_1080[:3]:
        detector.detect(f)
    full, model_only = [], []
    tensor = np.zeros((1, 3, *detector.input_hw), np.float32)
    network = detector.network(*detector.input_hw)  # what detect() runs on a 1080p frame
    for f in frames_1080:
        t0 = time.perf_counter()
        detector.detect(f)
        t1 = time.perf_counter()
        network.run(tensor)
        t2 = time.perf_counter()
        full.append((t1 - t0) * 1e3)
        model_only.append((t2 - t1) * 1e3)
    q = lambda xs, p: float(np.percentile(xs, p))  # noqa: E731
    return {
        "frames": len(full),
        "detect_median_ms": round(statistics.median(full), 2),
        "detect_p95_ms": round(q(full, 95), 2),
        "model_median_ms": round(statistics.median(model_only), 2),
        "model_p95_ms": round(q(model_only, 95), 2),
    }


def size_sweep(model, datasets: Path, widths: list[int], threshold: float, nms_iou: float) -> list[dict]:
    """Recall against plate width: each test plate is rescaled to `width` px and placed in a 1920x1080 frame.

    Runs once with one window (no calibration) and once as a calibrated camera would, with
    plate_width_px = (0.85 x width, max(300, 1.5 x width)) so the detector tiles the frame.
    """
    from types import SimpleNamespace

    items = []
    for folder in TEST_FOLDERS:
        if (datasets / folder).is_dir():
            items += [(i, p.box) for i in load_labelled_folder(datasets / folder) if i.split == "test" for p in i.plates[:1] if p.box]
    images = {i.path: cv2.imread(str(i.path), cv2.IMREAD_COLOR) for i, _ in items}
    rows = []
    for width in widths:
        row: dict = {"plate_width_1080p": width}
        for mode, cal in (("one_window", None), ("tiled", SimpleNamespace(roi=None, plate_width_px=(0.85 * width, max(300.0, 1.5 * width))))):
            detector = OnnxPlateDetector(model, threshold, nms_iou, cal)
            hits = n = 0
            times = []
            for k, (item, box) in enumerate(items):
                image = images[item.path]
                if image is None or image.max() < 30:  # unreadable, or the all-black frame: nothing to find
                    continue
                f = width / box.w
                small = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
                # Spread plates over the frame (tile seams included), not only at its centre,
                # but keep each plate whole inside it.
                pw, ph = box.w * f, box.h * f
                cx = min(max(960 + (k % 5 - 2) * 300, pw / 2), 1920 - pw / 2)
                cy = min(max(540 + (k % 3 - 1) * 250, ph / 2), 1080 - ph / 2)
                ox = int(cx - (box.x + box.w / 2) * f)
                oy = int(cy - (box.y + box.h / 2) * f)
                frame = np.full((1080, 1920, 3), 114, np.uint8)
                x0, y0, x1, y1 = max(0, ox), max(0, oy), min(1920, ox + small.shape[1]), min(1080, oy + small.shape[0])
                frame[y0:y1, x0:x1] = small[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
                truth = Box(box.x * f + ox, box.y * f + oy, box.w * f, box.h * f)
                t0 = time.perf_counter()
                found = detector.detect(frame)
                times.append((time.perf_counter() - t0) * 1e3)
                n += 1
                hits += any(d.box.iou(truth) >= 0.5 for d in found)
            row[mode] = {"windows": len(detector.plan(1920, 1080)[0]), "recall": round(hits / max(n, 1), 4), "plates": n, "detect_median_ms": round(statistics.median(times), 1) if times else None}
        rows.append(row)
    return rows


def rotation_sweep(detector: OnnxPlateDetector, datasets: Path, angles: list[float]) -> list[dict]:
    """Recall against camera roll: each test photo rotated about its centre (grey corners).

    A rotated plate's label is the bounding box of its rotated label box, looser than a detector's
    box of a tilted plate, so a hit needs IoU 0.4 here, not 0.5.
    """
    items = []
    for folder in TEST_FOLDERS:
        if (datasets / folder).is_dir():
            items += [(i, [p.box for p in i.plates if p.box]) for i in load_labelled_folder(datasets / folder) if i.split == "test"]
    rows = []
    for angle in angles:
        hits = n = 0
        for item, boxes in items:
            image = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
            if image is None or image.max() < 30 or not boxes:  # unreadable, or the all-black frame
                continue
            h, w = image.shape[:2]
            m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
            found = detector.detect(cv2.warpAffine(image, m, (w, h), borderValue=(114, 114, 114)))
            for b in boxes:
                q = np.array([[b.x, b.y], [b.x + b.w, b.y], [b.x + b.w, b.y + b.h], [b.x, b.y + b.h]], np.float32) @ m[:, :2].T + m[:, 2]
                (x0, y0), (x1, y1) = q.min(0), q.max(0)
                truth = Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0))
                n += 1
                hits += any(d.box.iou(truth) >= 0.4 for d in found)
        rows.append({"degrees": angle, "plates": n, "recall_iou_0.4": round(hits / max(n, 1), 4)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.train.eval_detector", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/detector.onnx"))
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--folders", nargs="*", default=list(TEST_FOLDERS))
    parser.add_argument("--threshold", type=float, default=0.4, help="detection score threshold (config detector.threshold)")
    parser.add_argument("--nms-iou", type=float, default=0.45)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--latency-frames", type=int, default=0, help="also time detect() on this many 1080p frames")
    parser.add_argument("--size-sweep", type=int, nargs="*", metavar="PX", help="also recall vs plate width: test plates rescaled to these widths in a 1080p frame (e.g. 40 60 90 120 150)")
    parser.add_argument("--alter", choices=sorted(ALTERATIONS), help="alter every photo first (exposure, colour, compression, blur)")
    parser.add_argument("--rotate", type=float, nargs="*", metavar="DEG", help="also recall vs camera roll: test photos rotated by these angles (e.g. 0 10 -15 25)")
    parser.add_argument("--reader", choices=["onnx", "tesseract"], help="also measure end-to-end exact-plate accuracy with this reader backend")
    parser.add_argument("--no-corners", action="store_true", help="end to end: crop plates by box only, not rectified by the predicted corners")
    parser.add_argument("--fp-sheet", type=Path, help="write unmatched detections as contact sheets here, to count real false positives by eye")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    model = load_model(args.model, threads=args.threads)
    detector = OnnxPlateDetector(model, args.threshold, args.nms_iou)
    reader_for = None
    if args.reader:
        from edge.config import CameraConfig
        from edge.read import load_reader

        def reader_for(folder: str):
            countries = list(COUNTRIES.get(folder, ("GB",)))
            return load_reader(CameraConfig().with_overrides(reader={"backend": args.reader, "countries": countries}))
    out = {"model": str(args.model), "sha256": model.sha256, "threshold": args.threshold, "reader": args.reader}
    out["alter"] = args.alter
    out["datasets"] = evaluate(detector, args.datasets, tuple(args.folders), reader_for, args.fp_sheet, not args.no_corners, ALTERATIONS.get(args.alter))
    if args.size_sweep:
        cv2.setNumThreads(1)
        out["size_sweep"] = size_sweep(model, args.datasets, args.size_sweep, args.threshold, args.nms_iou)
    if args.rotate:
        out["rotation_sweep"] = rotation_sweep(detector, args.datasets, args.rotate)
    if args.latency_frames:
        out["latency_1080p_one_thread"] = latency(detector, args.datasets, args.latency_frames)
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
