#!/usr/bin/env python3
"""Measure what the imagery defaults cost: overview and patch sizes, face-redaction time.

    python3 scripts/measure_imagery.py            # synthetic frames and sample_frames/
    python3 scripts/measure_imagery.py --shared   # also real photos from ../shared/datasets (figures only)

Overview: the frame scaled to [imagery] overview_width (640) and JPEG-encoded at
overview_jpeg_quality (60), the target being about 25 kB (the Met DPIA's figure).
Real photos are first resized to 1920 px wide so every figure is for a 1080p-class frame.
Redaction: CPU time of the face search on a 1920 x 1080 frame at the detection widths
that redact_min_face_px = 12, 16 and 24 give (1280, 960, 640 px).
"""

from __future__ import annotations

import argparse
import glob
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.context import encode_jpeg, plate_patch  # noqa: E402
from edge.redaction import MIN_FACE_PX, FaceDetector  # noqa: E402
from tests.unit import read_fixtures as F  # noqa: E402


def overview_bytes(img: np.ndarray, width: int, quality: int) -> int:
    h, w = img.shape[:2]
    small = cv2.resize(img, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
    return len(encode_jpeg(small, quality))


def summary(sizes: list[int]) -> str:
    return f"median {statistics.median(sizes) / 1000:.1f} kB ({min(sizes) / 1000:.1f}-{max(sizes) / 1000:.1f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", action="store_true", help="include real photos from ../shared/datasets")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--qualities", default="50,60,70")
    args = ap.parse_args()

    sets = {"synthetic 1920x1080 (test scene)": [F.plate_frame(seed=s)[0].image for s in range(5)]}
    frames = sorted(glob.glob(str(ROOT / "sample_frames/**/*.jpg"), recursive=True))
    if frames:
        sets[f"sample_frames ({len(frames)} rendered 1280x720)"] = [cv2.imread(f) for f in frames]
    if args.shared:
        for sub in ("openalpr_benchmarks_eu", "openalpr_benchmarks_us"):
            imgs = [cv2.imread(f) for f in sorted(glob.glob(str(ROOT / f"../shared/datasets/{sub}/*.jpg")))[:40]]
            imgs = [cv2.resize(i, (1920, round(i.shape[0] * 1920 / i.shape[1]))) for i in imgs if i is not None]
            if imgs:
                sets[f"{sub} ({len(imgs)} real photos at 1920 wide)"] = imgs
    for q in (int(v) for v in args.qualities.split(",")):
        for name, imgs in sets.items():
            print(f"overview {args.width} px q{q}, {name}: {summary([overview_bytes(i, args.width, q) for i in imgs])}")

    frame, box = F.plate_frame()
    patch = plate_patch(frame.image, box, 0.15)
    print(f"plate patch {patch.shape[1]}x{patch.shape[0]} px (320 px plate + 15% margin) q85: {len(encode_jpeg(patch, 85)) / 1000:.1f} kB")

    img = frame.image
    for min_face in (12, 16, 24):
        det = FaceDetector(max_width=round(args.width * MIN_FACE_PX / min_face))
        det.detect(img)  # load the cascade
        runs = []
        for _ in range(3):
            t = time.process_time()
            det.detect(img)
            runs.append(time.process_time() - t)
        print(f"face search, redact_min_face_px={min_face} (detection width {det.max_width}): "
              f"{min(runs) * 1000:.0f} ms CPU per 1920x1080 frame (best of 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
