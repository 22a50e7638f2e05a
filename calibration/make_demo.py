"""Regenerate calibration/demo.toml, the demo camera's calibration, with the project's own commands.

    python3 calibration/make_demo.py            # from anywhere; work files go to .cache/calibration/demo/

The demo camera is the one sample_frames/seq_day_front was rendered with (1280x720,
6 m up, looking along a two-lane road; sequence.json gives its mount, pitch and field
of view). Each section is made by the `edge calibrate` command a site engineer would run:

1. lens: checkerboard photos rendered through that camera (calibration/render_checkerboards.py),
   then `edge calibrate lens`.
2. scene: `edge calibrate scene` on the sequence's first frame, with points typed on the
   command line. The road points are "surveyed": four marks at known road positions
   (metres), their pixels taken from the sequence's camera the way an engineer reads them
   off a frame (to 0.1 px). ROI and lanes are the road and its two lanes.
3. plate-size: `edge calibrate plate-size` over the sequence's frames, with the detector
   when models/detector.onnx exists, else the labelled boxes (the file's made_by says which).
4. confidence: when a reader is available, `edge calibrate confidence` on a labelled folder
   of plates rendered by sample_frames/generate.py with seeds other than the committed one
   (about 10 minutes the first time; the folder is kept in .cache).

Every command is printed before it runs; the same inputs give the same file.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
SEQUENCE = Path("sample_frames/seq_day_front")
OUT = Path("calibration/demo.toml")
WORK = Path(".cache/calibration/demo")
LANE_W_M = 3.65  # sample_frames/generate.py: two lanes of 3.65 m, centred on the camera
CONFIDENCE_SEEDS = range(101, 191)  # 90 x ~21 single frames: ~1900 plates, ~600 of them held back


def edge(*args: str) -> dict:
    """Run `edge ARGS` from the repository root, echo it, and return its last stdout line (JSON)."""
    cmd = [sys.executable, "-m", "edge", "-q", *args]
    print("$ edge " + shlex.join(args), flush=True)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"edge {args[0]} {args[1]} failed (exit {proc.returncode})")
    last = proc.stdout.strip().splitlines()[-1]
    print("  " + last, flush=True)
    return json.loads(last)


def script(path: str, *args: str) -> None:
    print("$ python3 " + shlex.join([path, *args]), flush=True)
    subprocess.run([sys.executable, path, *args], cwd=REPO, check=True, stdout=subprocess.DEVNULL)


class SequenceCamera:
    """The pinhole camera of sample_frames/generate.py (X right, Y along the road, Z up; metres)."""

    def __init__(self, meta: dict):
        self.w, self.h = int(meta["width"]), int(meta["height"])
        cam = meta["camera"]
        self.mount = float(cam["mount_m"])
        self.pitch = math.radians(float(cam["pitch_deg"]))
        self.f = (self.w / 2) / math.tan(math.radians(float(cam["hfov_deg"])) / 2)

    def project(self, world) -> np.ndarray:
        v = np.asarray(world, dtype=np.float64) - np.array([0.0, 0.0, self.mount])
        down = -math.sin(self.pitch) * v[:, 1] - math.cos(self.pitch) * v[:, 2]
        depth = math.cos(self.pitch) * v[:, 1] - math.sin(self.pitch) * v[:, 2]
        return np.stack([self.w / 2 + self.f * v[:, 0] / depth, self.h / 2 + self.f * down / depth], axis=1)

    def ground_y_at_row(self, row: float) -> float:
        angle = self.pitch + math.atan((row - self.h / 2) / self.f)
        return self.mount / math.tan(angle)

    def road_polygon(self, x0: float, x1: float, y0: float, y1: float) -> list[tuple[float, float]]:
        """A road rectangle as a frame polygon, clipped to the frame, to whole pixels (as typed)."""
        quad = self.project([[x0, y0, 0], [x1, y0, 0], [x1, y1, 0], [x0, y1, 0]]).astype(np.float32)
        frame = np.array([[0, 0], [self.w - 1, 0], [self.w - 1, self.h - 1], [0, self.h - 1]], np.float32)
        area, clipped = cv2.intersectConvexConvex(quad, frame)
        if area <= 0 or clipped is None:
            raise SystemExit(f"road area x {x0}..{x1} m, y {y0}..{y1} m is not in the frame")
        return [(float(round(x)), float(round(y))) for x, y in clipped.reshape(-1, 2)]


def points_arg(points) -> str:
    return " ".join(f"{x:g},{y:g}" for x, y in points)


def lens_section() -> None:
    boards = WORK / "checkerboards"
    script(
        "calibration/render_checkerboards.py",
        "--sequence", str(SEQUENCE / "sequence.json"), "--out", str(boards), "--count", "15", "--seed", "7",
    )  # fmt: skip
    edge("calibrate", "lens", "--images", str(boards), "--board", "9x6", "--square-mm", "30",
         "--out", str(OUT), "--camera-id", "demo")  # fmt: skip


def scene_section(cam: SequenceCamera) -> None:
    near, far = cam.ground_y_at_row(cam.h), cam.ground_y_at_row(0)
    # Four surveyed marks on the lane centres, about 1 m inside the nearest and farthest road seen.
    marks = [(-1.8, near + 1.0), (1.8, near + 1.0), (1.8, far - 2.0), (-1.8, far - 2.0)]
    pixels = cam.project([[x, y, 0.0] for x, y in marks])
    road_points = " ".join(f"{px:.1f},{py:.1f}={x:g},{y:.2f}" for (px, py), (x, y) in zip(pixels, marks))
    roi = cam.road_polygon(-LANE_W_M, LANE_W_M, near * 0.8, far * 1.5)
    lane1 = cam.road_polygon(-LANE_W_M, 0.0, near * 0.8, far * 1.5)
    lane2 = cam.road_polygon(0.0, LANE_W_M, near * 0.8, far * 1.5)
    frame = sorted(SEQUENCE.glob("*_t0000.jpg"))[0]
    edge(
        "calibrate", "scene", "--frame", str(frame), "--out", str(OUT),
        "--roi", points_arg(roi), "--lane", "1:" + points_arg(lane1), "--lane", "2:" + points_arg(lane2),
        "--direction", "towards", "--road-points", road_points, "--picture", str(WORK / "scene.png"),
    )  # fmt: skip


def plate_size_section() -> None:
    source = "detector" if (REPO / "models" / "detector.onnx").is_file() else "labels"
    if source == "labels":
        print("  (no models/detector.onnx: plate widths come from the labelled boxes)", flush=True)
    edge("calibrate", "plate-size", "--frames", str(SEQUENCE), "--source", source, "--out", str(OUT))


def reader_available() -> bool:
    probe = "from edge.read import load_reader; from edge.config import load_camera_config; load_reader(load_camera_config(None))"
    return subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True).returncode == 0


def confidence_labels() -> Path:
    """A labelled folder of rendered single frames (seeds other than the committed 7), names prefixed by seed."""
    folder = WORK / f"confidence_labels_{CONFIDENCE_SEEDS.start}-{CONFIDENCE_SEEDS.stop - 1}"
    if (folder / "labels.csv").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in CONFIDENCE_SEEDS:
        tmp = WORK / f"render_{seed}"
        if not (REPO / tmp / "singles" / "labels.csv").is_file():
            script("sample_frames/generate.py", "--seed", str(seed), "--out", str(tmp), "--sets", "singles")
        with open(REPO / tmp / "singles" / "labels.csv", newline="") as f:
            for row in csv.DictReader(f):
                name = f"s{seed}_{row['image']}"
                src = REPO / tmp / "singles" / row["image"]
                if not (REPO / folder / name).exists():
                    (REPO / folder / name).write_bytes(src.read_bytes())
                rows.append([name, row["plate"], row["x"], row["y"], row["w"], row["h"]])
    with open(REPO / folder / "labels.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["image", "plate", "x", "y", "w", "h"])
        w.writerows(rows)
    return folder


def confidence_section() -> None:
    if not reader_available():
        print("  (no reader available yet: the confidence section is left out)", flush=True)
        return
    edge("calibrate", "confidence", "--labels", str(confidence_labels()), "--out", str(OUT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--skip-confidence", action="store_true", help="leave the confidence section out (it runs the reader)")
    args = p.parse_args(argv)
    (REPO / WORK).mkdir(parents=True, exist_ok=True)
    (REPO / OUT).unlink(missing_ok=True)  # a clean rebuild: every section from its command
    cam = SequenceCamera(json.loads((REPO / SEQUENCE / "sequence.json").read_text()))
    lens_section()
    scene_section(cam)
    plate_size_section()
    if not args.skip_confidence:
        confidence_section()
    edge_ok = subprocess.run([sys.executable, "-c", f"from edge.calibrate.file import load_calibration; load_calibration({str(OUT)!r})"], cwd=REPO)
    return edge_ok.returncode


if __name__ == "__main__":
    sys.exit(main())
