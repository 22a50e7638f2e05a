"""`edge read [--crops] [--json] [--config FILE] PATH...`: read plates in still images.

PATH is an image or a folder (its images, sorted). Without --crops each image is searched for
plates first (the detector), then every plate found is read; with --crops each image is one
plate crop. With --json, stdout holds one JSON object per image and nothing else:

    {"image": "a.jpg", "width": 640, "height": 480, "plates": [{"text": "AB12CDE", "confidence": 0.97,
     "box": [x, y, w, h], ...}], "ms": 12.3}

An unreadable image gives {"image": ..., "error": "..."} and exit status 1; the run goes on.
With --annotate DIR, each image is also written to DIR with every plate found drawn on it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench import decode
from edge.config import load_camera_config
from edge.errors import ConfigError, EdgeError
from edge.labels import IMAGE_SUFFIXES, list_images
from edge.types import PlateReading


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "read",
        help="read number plates in still images (or in plate crops with --crops)",
        description="Read plates in images or folders of images. Exit 0 when every image could be read "
        "(whether or not it held a plate), 1 when some could not, 2 on bad usage or configuration.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders of images")
    p.add_argument("--crops", action="store_true", help="each image is a plate crop: no detection, read the whole image")
    p.add_argument("--json", action="store_true", help="one JSON object per image on stdout, nothing else")
    p.add_argument("--config", type=Path, help="camera configuration (TOML); default: the embedded one")
    p.add_argument("--backend", choices=["onnx", "tesseract"], help="override [reader] backend")
    p.add_argument("--model", type=Path, help="override [reader] model: a name in models/ (e.g. reader_int8.onnx) or a path")
    p.add_argument("--countries", help="override [reader] countries, comma-separated (e.g. GB,IE)")
    p.add_argument("--annotate", type=Path, metavar="DIR",
                   help="also write each image to DIR with its plates drawn: box or corners, reading and confidence")
    p.set_defaults(func=run)


def _expand(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            images = list_images(p)
            if not images:  # otherwise nothing is printed and the exit status is 0, as if every image was read
                raise ConfigError(f"{p}: no images in folder (looked for {', '.join(IMAGE_SUFFIXES)})")
            out.extend(images)
        elif p.exists() or p.suffix.lower() in IMAGE_SUFFIXES:
            out.append(p)  # a missing or broken file is reported per image, not fatal
        else:
            raise ConfigError(f"{p}: no such file or folder")
    return out


def _plate_json(reading: PlateReading, box: list[int], score: float | None, corners: Any = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "text": reading.text,
        "confidence": round(reading.confidence, 4),
        "box": box,
        "char_confidences": [round(c, 4) for c in reading.char_confidences],
        "alternatives": [{"text": a.text, "confidence": round(a.confidence, 4)} for a in reading.alternatives],
        "country": reading.country,
        "format": reading.plate_format,
        "colour": reading.colour.value,
        "band": reading.band.value,
        "backend": reading.backend,
    }
    if score is not None:
        d["detection_score"] = round(score, 4)
    if corners is not None:  # the plate's quadrilateral (TL, TR, BR, BL) in image pixels
        d["corners"] = [[round(float(x), 1), round(float(y), 1)] for x, y in corners]
    return d


class _Engine:
    """Reader (and detector, outside --crops) loaded once for the whole run."""

    def __init__(self, args: argparse.Namespace):
        from edge.detect import load_detector
        from edge.pipeline import ImagePipeline
        from edge.read import load_reader

        cfg = load_camera_config(args.config)
        overrides: dict[str, Any] = {}
        if args.backend:
            overrides["backend"] = args.backend
        if args.model:
            # A bare name is a model in models/ (as in a config); a path with a folder is the user's, from here,
            # not from models/ or the config file's folder.
            overrides["model"] = args.model if len(args.model.parts) == 1 else args.model.absolute()
        if args.countries:
            overrides["countries"] = tuple(c.strip() for c in args.countries.split(",") if c.strip())
        if overrides:
            cfg = cfg.with_overrides(reader=overrides)
        import cv2

        cv2.setNumThreads(cfg.detector.threads)  # as a camera does (edge run): `ms` is then one camera's time
        self.reader = load_reader(cfg)
        # Whole images go through the same detect -> crop -> read as the camera (no calibration: stills
        # come from anywhere, so a camera's region of interest and lens do not apply to them).
        self.pipeline = None if args.crops else ImagePipeline(load_detector(cfg), self.reader)

    def plates(self, image: np.ndarray) -> tuple[list[dict[str, Any]], list[list[int]]]:
        """The plates read (as JSON objects, most confident first) and the boxes of plates found but illegible."""
        h, w = image.shape[:2]
        if self.pipeline is None:
            readings = self.reader.read([image])
            found = [(r, [0, 0, w, h], None, None) for r in readings if r is not None]
            illegible = []
        else:
            results = self.pipeline.process(image)
            found = [(r.reading, r.detection.box.as_list(), r.detection.score, r.detection.corners) for r in results if r.reading is not None]
            illegible = [r.detection.box.as_list() for r in results if r.reading is None]
        plates = [_plate_json(*f) for f in found]
        plates.sort(key=lambda p: p["confidence"], reverse=True)
        return plates, illegible


def _read_one(engine: _Engine, path: Path, annotate: _Annotator | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    # Decoded from the file's bytes as bench does: cv2.imread crashes the process on a name that is not UTF-8.
    image = decode(path)[0] if path.is_file() else None
    if image is None:
        why = "no such file" if not path.exists() else "not a readable image"
        return {"image": str(path), "error": f"{path}: {why}"}
    plates, illegible = engine.plates(image)
    ms = (time.perf_counter() - start) * 1000
    if annotate is not None:
        annotate.write(path, image, plates, illegible, crop=engine.pipeline is None)
    return {"image": str(path), "width": int(image.shape[1]), "height": int(image.shape[0]), "plates": plates,
            "ms": round(ms, 2)}


class _Annotator:
    """Writes each image to a folder with its plates drawn (see edge.report.draw_plates), one file per image."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.used: set[str] = set()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"--annotate {folder}: cannot create the folder: {err.strerror or err}") from None

    def write(self, source: Path, image: np.ndarray, plates: list[dict[str, Any]], illegible: list[list[int]], crop: bool) -> None:
        import cv2

        from edge.report import draw_plates

        name = f"{source.stem}.jpg"
        n = 1
        while name in self.used:  # a.png and a.jpg, or the same name in two folders
            n += 1
            name = f"{source.stem}_{n}.jpg"
        self.used.add(name)
        ok, data = cv2.imencode(".jpg", draw_plates(image, plates, illegible, crop=crop), [cv2.IMWRITE_JPEG_QUALITY, 90])
        out = self.folder / name
        try:
            if not ok:
                raise OSError(f"JPEG encoding of {source} failed")
            out.write_bytes(data.tobytes())
        except OSError as err:  # a full disk or a read-only folder: stop, naming the file
            raise EdgeError(f"--annotate: cannot write {out}: {err.strerror or err}") from None


def _human(result: dict[str, Any]) -> str:
    if "error" in result:  # the JSON message names the image itself, for a reader of that line alone
        why = result["error"].removeprefix(f"{result['image']}: ")
        return f"{result['image']}: error: {why}"
    if not result["plates"]:
        return f"{result['image']}: no plate read ({result['ms']:.1f} ms)"
    parts = []
    for p in result["plates"]:
        where = f" {p['country']}/{p['format']}" if p["country"] else " (no known format)"
        alts = ", ".join(a["text"] for a in p["alternatives"])
        parts.append(f"{p['text']} {p['confidence']:.2f}{where}" + (f" [alternatives: {alts}]" if alts else ""))
    return f"{result['image']}: " + "; ".join(parts) + f" ({result['ms']:.1f} ms)"


def _printable(text: str) -> str:
    """Undecodable bytes of a file name (kept by Python as surrogates) as U+FFFD: a strict UTF-8 stdout rejects them."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def run(args: argparse.Namespace) -> int:
    paths = _expand(args.paths)
    engine = _Engine(args)
    annotate = _Annotator(args.annotate) if args.annotate else None
    show_progress = sys.stderr.isatty()
    failed = 0
    for n, path in enumerate(paths, start=1):
        if show_progress:
            bar = f"[{n}/{len(paths)}] {path.name[:60]:60}"
            print("\r" + bar, end="", file=sys.stderr, flush=True)
        result = _read_one(engine, path, annotate)
        failed += "error" in result
        if show_progress:  # erased before the result: on a terminal stdout and stderr share its line
            print("\r" + " " * len(bar) + "\r", end="", file=sys.stderr, flush=True)
        print(json.dumps(result) if args.json else _printable(_human(result)), flush=True)
    return 1 if failed else 0
