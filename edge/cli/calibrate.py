"""`edge calibrate lens|scene|plate-size|confidence`: fill one section of a camera's calibration file.

Each subcommand updates its own section of `--out` and keeps the others, records the
command that made it in the file, and prints a JSON summary as its last stdout line.
Everything is given on the command line: roadside units are headless.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from edge.calibrate.file import Calibration, Lane, load_or_empty, provenance, save_calibration
from edge.capture import load_image
from edge.errors import ConfigError, EdgeError, ModelError

log = logging.getLogger("edge.calibrate")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="calibrate a camera: lens, scene, plate size, confidence",
        description="Fill one section of a camera's calibration file (TOML), keeping the others. "
        "See calibration/README.md for the whole procedure.",
    )
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])  # usage error: stdout is for machine output
    cmds = p.add_subparsers(dest="calibrate_command", metavar="STEP")

    lens = cmds.add_parser(
        "lens",
        help="camera matrix and distortion from checkerboard photos",
        description="Find a checkerboard in each image and fit the camera matrix and distortion. "
        "The last stdout line is JSON with fx, fy, cx, cy, rms (pixels).",
    )
    lens.add_argument("--images", type=Path, required=True, metavar="DIR", help="folder of checkerboard photos, one resolution")
    lens.add_argument("--board", required=True, metavar="COLSxROWS", help="INNER corners of the board, e.g. 9x6")
    lens.add_argument("--square-mm", type=float, required=True, metavar="S", help="side of one square in millimetres")
    lens.add_argument(
        "--distortion",
        choices=("auto", "radial", "radial-tangential", "full"),
        default="auto",
        help="distortion terms to fit: radial k1,k2; radial-tangential adds p1,p2; full adds k3; "
        "auto (default): radial for lenses narrower than 40 degrees, radial-tangential otherwise",
    )
    _common(lens, out_required=False)
    lens.set_defaults(func=run_lens)

    scene = cmds.add_parser(
        "scene",
        help="region of interest, lanes, direction of travel and road homography, from points on a frame",
        description="Points are frame pixels 'x,y' separated by spaces. Writes an annotated PNG next to --out "
        "(or to --picture) to show what was set; check it before deploying.",
    )
    scene.add_argument("--frame", type=Path, required=True, help="a frame from the camera, at its working resolution")
    scene.add_argument("--roi", metavar="'x,y x,y x,y ...'", help="polygon outside which nothing is detected")
    scene.add_argument("--lane", action="append", default=[], metavar="'NAME:x,y x,y x,y ...'", help="a lane polygon (repeat per lane)")
    scene.add_argument("--direction", choices=("towards", "away", "left", "right"), help="expected direction of travel")
    scene.add_argument(
        "--road-points",
        metavar="'px,py=X,Y ...'",
        help="at least 4 frame points with their road-plane position in metres (measured on site), for speed",
    )
    scene.add_argument("--picture", type=Path, help="annotated PNG to write (default: OUT with .png)")
    _common(scene)
    scene.set_defaults(func=run_scene)

    size = cmds.add_parser(
        "plate-size",
        help="range of plate widths (pixels) from detections on sample frames",
        description="Run the detector over sample frames from this camera and store the range of plate widths "
        "it finds, widened by a margin. --source labels takes the boxes of labels.csv instead (when no detector is available).",
    )
    size.add_argument("--frames", type=Path, nargs="+", required=True, metavar="DIR", help="folders of frames from this camera")
    size.add_argument("--source", choices=("detector", "labels"), default="detector", help="where the plate boxes come from")
    size.add_argument("--config", type=Path, help="camera config naming the detector model")
    _common(size)
    size.set_defaults(func=run_plate_size)

    conf = cmds.add_parser(
        "confidence",
        help="map the reader's raw score to the probability that a read is exactly right",
        description="Read every labelled plate of DIR (crops of the labelled boxes, or whole images when boxes "
        "are empty), fit an isotonic map on the train split and report the expected calibration error (ECE) "
        "before and after on the test split.",
    )
    conf.add_argument("--labels", type=Path, required=True, metavar="DIR", help="labelled folder (labels.csv)")
    conf.add_argument("--config", type=Path, help="camera config naming the reader")
    _common(conf)
    conf.set_defaults(func=run_confidence)


def _common(p: argparse.ArgumentParser, out_required: bool = True) -> None:
    p.add_argument("--out", type=Path, required=out_required, metavar="FILE", help="calibration file to update (created if absent)")
    p.add_argument("--camera-id", help="camera id stored in the file")


_REPEATED = {"lane"}  # options given once per value (action="append")


def _made_by(step: str, args: argparse.Namespace, keys: list[str]) -> str:
    """The command line that made a section, rebuilt from the parsed options, for the file's `made_by`."""
    parts = ["edge", "calibrate", step]
    for key in keys:
        value = getattr(args, key)
        if value is None or value == []:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif value is False:
            continue
        elif key in _REPEATED:
            for v in value:
                parts += [flag, str(v)]
        elif isinstance(value, list):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, str(value)]
    return provenance(shlex.join(parts))


def _update(
    args: argparse.Namespace, section: str, new: Calibration, made_by: str, image_size: tuple[int, int] | None
) -> None:
    """Write `new` (one section) into --out, checking the resolution agrees with what is there."""
    old = load_or_empty(args.out)
    image_size = image_size or old.image_size
    if old.image_size is not None and tuple(old.image_size) != tuple(image_size):
        raise ConfigError(
            f"{args.out}: image_size is {old.image_size[0]}x{old.image_size[1]} but these images are "
            f"{image_size[0]}x{image_size[1]}; calibrate every section at the camera's working resolution"
        )
    new = replace(new, image_size=image_size, camera_id=args.camera_id or old.camera_id, made_by={section: made_by})
    save_calibration(new, args.out)


def _print(summary: dict) -> None:
    print(json.dumps(summary, sort_keys=True))


# ---------------------------------------------------------------- lens


def run_lens(args: argparse.Namespace) -> int:
    from edge.calibrate.lens import calibrate_lens_folder

    m = re.fullmatch(r"(\d+)[xX](\d+)", args.board)
    if not m:
        raise ConfigError(f"--board {args.board!r}: expected COLSxROWS inner corners, e.g. 9x6")
    if not args.square_mm > 0:
        raise ConfigError(f"--square-mm {args.square_mm}: must be positive")
    cols, rows = int(m.group(1)), int(m.group(2))
    fit = calibrate_lens_folder(args.images, cols, rows, args.square_mm, args.distortion)
    if fit.skipped:
        log.warning("no complete board in %d of %d images: %s", len(fit.skipped), len(fit.skipped) + len(fit.used), ", ".join(fit.skipped))
    summary = fit.summary()
    if args.out is not None:
        cal = Calibration(
            camera_matrix=np.round(fit.camera_matrix, 3),
            dist_coeffs=np.round(fit.dist_coeffs, 6),
            reprojection_rms=round(fit.rms, 4),
        )
        _update(args, "lens", cal, _made_by("lens", args, ["images", "board", "square_mm", "distortion"]), fit.image_size)
        summary["out"] = str(args.out)
    _print(summary)
    return 0


# ---------------------------------------------------------------- scene


def run_scene(args: argparse.Namespace) -> int:
    from edge.calibrate import scene

    frame = load_image(args.frame)
    if frame is None:
        raise ConfigError(f"--frame {args.frame}: not a readable image")
    size = (frame.shape[1], frame.shape[0])
    if not (args.roi or args.lane or args.direction or args.road_points):
        raise ConfigError("give at least one of --roi, --lane, --direction, --road-points")
    roi = scene.parse_points(args.roi, "--roi") if args.roi else None
    lanes = tuple(Lane(*scene.parse_lane(text)) for text in args.lane)
    homography = None
    road_px = None
    summary: dict[str, object] = {"width": size[0], "height": size[1]}
    if args.road_points:
        road_px, road_m = scene.parse_road_points(args.road_points)
        homography = scene.fit_homography(road_px, road_m)
        back = scene.to_road(Calibration(homography=homography), road_px)
        summary["road_points_error_m"] = round(float(np.max(np.linalg.norm(back - road_m, axis=1))), 4)
    # Keep earlier scene settings not given this time (e.g. redo only the homography).
    old = load_or_empty(args.out)
    cal = Calibration(
        roi=roi if roi is not None else old.roi,
        lanes=lanes or old.lanes,
        travel_direction=args.direction or old.travel_direction,
        homography=np.round(homography, 9) if homography is not None else old.homography,
    )
    _update(args, "scene", cal, _made_by("scene", args, ["frame", "roi", "lane", "direction", "road_points"]), size)

    from edge.calibrate.file import load_calibration

    saved = load_calibration(args.out)
    height = scene.camera_height_m(saved)
    if height is not None:
        summary["camera_height_m"] = round(height, 2)  # a sanity check: should match the mast
    picture = args.picture or args.out.with_suffix(".png")
    # imencode and write the bytes: cv2.imwrite crashes (OpenCV 5) on file names that are not UTF-8.
    try:
        ok, encoded = cv2.imencode(picture.suffix or ".png", scene.draw_scene(frame, saved, road_px))
        if not ok:
            raise OSError
        picture.write_bytes(encoded.tobytes())
    except (OSError, cv2.error):  # cv2.error: no encoder for that extension
        raise EdgeError(f"--picture {picture}: cannot write (use a .png or .jpg name in a writable folder)") from None
    summary.update(
        out=str(args.out),
        picture=str(picture),
        roi_points=len(saved.roi or ()),
        lanes=[ln.name for ln in saved.lanes],
        direction=saved.travel_direction,
        homography=saved.homography is not None,
    )
    _print(summary)
    return 0


# ---------------------------------------------------------------- plate size


def _widths_from_labels(folders: list[Path]) -> tuple[list[tuple[float, int]], tuple[int, int] | None]:
    from edge.labels import load_labelled_folder

    out, size = [], None
    for folder in folders:
        for item in load_labelled_folder(folder):
            boxes = [p.box for p in item.plates if p.box is not None]
            if not boxes:
                continue
            img = load_image(item.path, cv2.IMREAD_UNCHANGED)
            if img is None:
                raise ConfigError(f"{item.path}: not a readable image")
            h, w = img.shape[:2]
            size = size or (w, h)
            out += [(b.w, w) for b in boxes]
    return out, size


def _widths_from_detector(folders: list[Path], config: Path | None) -> tuple[list[tuple[float, int]], tuple[int, int] | None]:
    from edge.config import load_camera_config
    from edge.detect import load_detector
    from edge.labels import list_images

    cfg = load_camera_config(config)
    try:
        detector = load_detector(cfg, None)
    except ModelError as err:
        raise ModelError(f"{err} (or take the widths from labels.csv with --source labels)") from None
    out, size = [], None
    for folder in folders:
        if not folder.is_dir():
            raise ConfigError(f"--frames {folder}: not a folder")
        for path in list_images(folder):
            img = load_image(path)
            if img is None:
                raise ConfigError(f"{path}: not a readable image")
            size = size or (img.shape[1], img.shape[0])
            out += [(d.box.w, img.shape[1]) for d in detector.detect(img)]
    return out, size


def run_plate_size(args: argparse.Namespace) -> int:
    from edge.calibrate.platesize import fit_plate_width

    if args.source == "labels":
        found, size = _widths_from_labels(args.frames)
    else:
        found, size = _widths_from_detector(args.frames, args.config)
    old = load_or_empty(args.out)
    target = old.image_size or size
    if target is None:
        raise ConfigError(f"--frames {' '.join(map(str, args.frames))}: no plates found")
    # Frames of another resolution count at the calibrated one: widths scale with image width.
    widths = [w * target[0] / frame_w for w, frame_w in found]
    lo, hi = fit_plate_width(widths)
    made_by = _made_by("plate-size", args, ["frames", "source", "config"])
    _update(args, "plate_size", Calibration(plate_width_px=(lo, hi)), made_by, target)
    _print(
        {
            "out": str(args.out),
            "plates": len(widths),
            "source": args.source,
            "observed_px": [round(min(widths), 1), round(float(np.median(widths)), 1), round(max(widths), 1)],
            "width_px": [lo, hi],
        }
    )
    return 0


# ---------------------------------------------------------------- confidence


def _crop(image: np.ndarray, box) -> np.ndarray:
    from edge.read import crop_plate
    from edge.types import Detection

    return crop_plate(image, Detection(box=box, score=1.0))


def run_confidence(args: argparse.Namespace) -> int:
    from edge.calibrate.confidence import fit_confidence
    from edge.config import load_camera_config
    from edge.labels import load_labelled_folder
    from edge.read import load_reader

    reader = load_reader(load_camera_config(args.config))
    scores: dict[str, list[float]] = {"train": [], "test": []}
    correct: dict[str, list[float]] = {"train": [], "test": []}
    unread = 0
    for item in load_labelled_folder(args.labels):
        image = load_image(item.path)
        if image is None:
            raise ConfigError(f"{item.path}: not a readable image")
        plates = [p for p in item.plates if p.plate]
        crops = [image if p.box is None else _crop(image, p.box) for p in plates]
        if not crops:
            continue
        for plate, reading in zip(plates, reader.read(crops)):
            if reading is None:  # nothing legible: not published, so not part of what confidence describes
                unread += 1
                continue
            scores[item.split].append(reading.confidence)
            correct[item.split].append(float(reading.text == plate.plate))
    for split in ("train", "test"):
        if len(scores[split]) < 10:
            raise ConfigError(f"--labels {args.labels}: only {len(scores[split])} reads in the {split} split; need at least 10")
    fit = fit_confidence(scores["train"], correct["train"], scores["test"], correct["test"])
    made_by = _made_by("confidence", args, ["labels", "config"])
    # The map belongs to one reader: name it, so a new model is seen to need a new fit.
    models = getattr(reader, "models", {}) or {}
    which = ", ".join(f"{name} sha256 {digest[:12]}" for name, digest in sorted(models.items())) or type(reader).__name__
    made_by += f"; reader {which}; held-back ECE {fit.ece_raw:.3f} raw -> {fit.ece_calibrated:.3f} calibrated"
    _update(args, "confidence", Calibration(confidence_knots=fit.knots), made_by, None)
    if fit.ece_calibrated >= fit.ece_raw:
        log.warning("confidence: on the held-back reads the map is no better than the raw scores (ECE %.3f raw, %.3f "
                    "mapped): the reader is already calibrated for these reads; the [confidence] section of %s may be "
                    "deleted", fit.ece_raw, fit.ece_calibrated, args.out)
    summary = fit.summary()
    summary.update(out=str(args.out), unread=unread)
    _print(summary)
    return 0
