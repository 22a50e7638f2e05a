"""Render checkerboard photos as a camera of known matrix and distortion would take them.

    python3 calibration/render_checkerboards.py --sequence sample_frames/seq_day_front/sequence.json \\
        --out .cache/calibration/demo/checkerboards

The camera is either the one a sample sequence was rendered with (--sequence: its
width, height and horizontal field of view; a pinhole, principal point at the image
centre, no distortion) or given outright (--width --height --fx --fy --cx --cy --dist).
The truth is written beside the images as truth.json so a calibration can be checked
against it. The same arguments give byte-identical images (seeded, PNG).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere: `edge` must import
    sys.path.insert(0, str(REPO_ROOT))

from edge.calibrate.lens import render_views  # noqa: E402  (needs the path set above)


def camera_from_sequence(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The pinhole camera of a sample sequence (sample_frames/generate.py: f = (w/2) / tan(hfov/2))."""
    seq = json.loads(path.read_text())
    w, h = int(seq["width"]), int(seq["height"])
    f = (w / 2) / math.tan(math.radians(float(seq["camera"]["hfov_deg"])) / 2)
    k = np.array([[f, 0.0, w / 2], [0.0, f, h / 2], [0.0, 0.0, 1.0]])
    return k, np.zeros(5), (w, h)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for the PNGs and truth.json")
    p.add_argument("--sequence", type=Path, help="take the camera from a sample sequence's sequence.json")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fx", type=float, default=1000.0)
    p.add_argument("--fy", type=float)
    p.add_argument("--cx", type=float)
    p.add_argument("--cy", type=float)
    p.add_argument("--dist", default="0,0,0,0,0", help="k1,k2,p1,p2,k3")
    p.add_argument("--board", default="9x6", help="inner corners COLSxROWS")
    p.add_argument("--square-mm", type=float, default=30.0)
    p.add_argument("--count", type=int, default=15, help="number of views")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)

    if args.sequence is not None:
        k, dist, size = camera_from_sequence(args.sequence)
    else:
        size = (args.width, args.height)
        k = np.array(
            [
                [args.fx, 0.0, args.cx if args.cx is not None else size[0] / 2],
                [0.0, args.fy or args.fx, args.cy if args.cy is not None else size[1] / 2],
                [0.0, 0.0, 1.0],
            ]
        )
        dist = np.array([float(v) for v in args.dist.split(",")])
    cols, rows = (int(v) for v in args.board.lower().split("x"))

    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("board_*.png"):
        old.unlink()
    for i, view in enumerate(render_views(k, dist, size, cols, rows, args.square_mm, args.count, args.seed)):
        cv2.imwrite(str(args.out / f"board_{i:02d}.png"), view)
    truth = {
        "camera_matrix": k.tolist(),
        "dist_coeffs": dist.tolist(),
        "width": size[0],
        "height": size[1],
        "board": f"{cols}x{rows}",
        "square_mm": args.square_mm,
        "views": args.count,
        "seed": args.seed,
    }
    (args.out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(json.dumps({"out": str(args.out), "fx": k[0, 0], "fy": k[1, 1], "cx": k[0, 2], "cy": k[1, 2]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
