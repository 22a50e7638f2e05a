"""`edge bench DIR [--json] [--report OUT] [--backends onnx,onnx-int8,tesseract]`: accuracy and speed over a labelled folder.

With several backends, each runs in a fresh child process (`python -m edge bench ...`), so
its peak memory and its timings are its own, as in a camera process, and the results are
put side by side. With --json the last stdout line is one JSON summary: the first backend's
figures at the top level (det_recall, read_exact, char_acc, false_pos_per_image, median_ms,
...) and every backend's under "backends".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from edge.errors import ConfigError, EdgeError

BACKENDS = ("onnx", "onnx-int8", "tesseract")
INT8_SUFFIX = "_int8"  # models/detector.onnx -> models/detector_int8.onnx (sidecar detector_int8.json), as training writes it


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure accuracy and speed over a labelled folder",
        description="Accuracy (detection recall/precision at IoU 0.5, exact plate, character accuracy, by plate "
        "height, character confusions) and speed (per stage median/p95/p99, frames per second, peak memory) "
        "over a labelled folder (labels.csv: image,plate,x,y,w,h). In a folder whose labels have no boxes, small "
        "images (shorter side up to 320 px) are read whole as plate crops and larger ones as scenes whose plates "
        "are matched by text. A folder with sequence.json is also tracked and checked for one read per vehicle.",
    )
    p.add_argument("folder", type=Path, metavar="DIR", help="labelled folder")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (its last stdout line)")
    p.add_argument("--report", type=Path, metavar="OUT", help="write an HTML report (index.html, plots, thumbnails of misses) to OUT")
    p.add_argument("--backends", default=None, help=f"comma-separated, side by side: {', '.join(BACKENDS)} (default: the config's reader)")
    p.add_argument("--config", type=Path, help="camera config (detector, reader and tracking settings)")
    p.add_argument("--countries", help="override [reader] countries, comma-separated, most likely first (e.g. SK,CZ for Slovak scenes): "
                   "the plate grammars the readings are ranked by; the default config's are GB")
    p.add_argument("--split", choices=("all", "train", "test"), default="all", help="only images of this split (edge.labels.split_of); figures are published on 'test'")
    p.add_argument("--limit", type=positive_int, help="only the first N images (a quick look)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime and OpenCV threads (default 1: one core)")
    p.add_argument("--fold", default="", metavar="XY,...", help="treat X as Y when comparing text, e.g. O0 for US labels that write O as 0")
    p.add_argument("--repeat", type=positive_int, default=1, metavar="N", help="time N passes over the folder (accuracy from the first); steadier figures")
    p.add_argument("--no-track", action="store_true", help="do not track sequence folders")
    p.add_argument("--overlap", action="store_true", help="decode the next image on a second thread during inference (a camera's capture thread); see wall_fps")
    p.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)  # child processes hand their results back here
    p.set_defaults(func=run)


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (`--limit -1` dropped the last image, 0 meant no limit)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def parse_fold(spec: str) -> dict[str, str]:
    fold: dict[str, str] = {}
    for pair in filter(None, (s.strip().upper() for s in spec.split(","))):
        if len(pair) != 2 or not pair.isalnum():
            raise ConfigError(f"--fold: {pair!r} is not two characters XY (read X as Y), e.g. O0")
        fold[pair[0]] = pair[1]
    return fold


def parse_backends(spec: str | None, default: str) -> list[str]:
    names = [s.strip() for s in (spec or default).split(",") if s.strip()]
    bad = [n for n in names if n not in BACKENDS]
    if bad or not names:
        raise ConfigError(f"--backends: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(BACKENDS)}")
    return list(dict.fromkeys(names))


def int8_path(path: Path) -> Path:
    return path.with_name(path.stem + INT8_SUFFIX + path.suffix)


def pipeline_for(cfg: Any, backend: str) -> Any:
    """The image pipeline a backend name stands for."""
    from edge.pipeline import ImagePipeline

    if backend == "tesseract":
        return ImagePipeline.from_config(cfg, reader_backend="tesseract")
    if backend == "onnx":
        return ImagePipeline.from_config(cfg, reader_backend="onnx")
    # onnx-int8: the INT8 twin of each model where there is one (the summary's "models" names the files used)
    reader = int8_path(cfg.model_path(cfg.reader.model))
    detector = int8_path(cfg.model_path(cfg.detector.model))
    if not reader.is_file() and not detector.is_file():
        raise ConfigError(f"backend onnx-int8 needs {detector} or {reader} (the INT8 twin of an fp32 model, with its sidecar .json)")
    return ImagePipeline.from_config(cfg, reader_backend="onnx", reader_model=str(reader) if reader.is_file() else None,
                                     detector_model=str(detector) if detector.is_file() else None)


def run(args: argparse.Namespace) -> int:
    from edge.bench import format_table, select_images
    from edge.config import load_camera_config

    cfg = load_camera_config(args.config)
    if args.countries:
        cfg = cfg.with_overrides(reader={"countries": tuple(c.strip() for c in args.countries.split(",") if c.strip())})
    if args.threads != 1:
        cfg = cfg.with_overrides(detector={"threads": args.threads}, reader={"threads": args.threads})
    backends = parse_backends(args.backends, cfg.reader.backend.value)
    fold = parse_fold(args.fold)
    _check_folder(args.folder)
    if not select_images(args.folder, args.split, args.limit):  # a bad folder fails before models load
        raise ConfigError(f"{args.folder}: no labelled images (split {args.split})")
    if args.report is not None:  # an unusable report folder fails now, not after a run of hours
        _make_report_folder(args.report)
    if len(backends) == 1:
        results = [_run_one(args, cfg, backends[0], fold)]
    else:
        results = [_run_child(args, b) for b in backends]
    if args.result_file is not None:
        args.result_file.write_text(json.dumps(results[0].to_dict()))
        return 0
    failed = any(r.summary.get("errors") for r in results)
    if args.json:
        top = dict(results[0].summary)
        top["backends"] = {r.backend: r.summary for r in results}
        print(json.dumps(top, separators=(",", ":")))
    else:
        print(format_table(results))
    if args.report is not None:  # after the figures: a disk that fills while writing it does not lose them
        from edge.report import write_report

        try:
            index = write_report(args.report, results)
        except OSError as err:
            print(f"edge bench: error: --report {args.report}: cannot write {err.filename or args.report}: {err.strerror or err}",
                  file=sys.stderr)
            return 1
        print(f"report: {index}", file=sys.stderr)
    return 1 if failed else 0


def _make_report_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--report {folder}: cannot create the folder: {err.strerror or err}") from None


def _check_folder(folder: Path) -> None:
    """A parent of labelled folders (sample_frames/) is a common slip: name the ones inside."""
    if folder.is_dir() and not (folder / "labels.csv").is_file():
        inside = sorted(p.name for p in folder.iterdir() if (p / "labels.csv").is_file())
        if inside:
            raise ConfigError(f"{folder}: not a labelled folder itself; bench one of those in it: {', '.join(inside)}")


def _run_one(args: argparse.Namespace, cfg: Any, backend: str, fold: dict[str, str]) -> Any:
    import cv2

    from edge.bench import Progress, run_bench

    cv2.setNumThreads(args.threads)  # OpenCV's own pool would otherwise take every core
    pipeline = pipeline_for(cfg, backend)
    bar: Progress | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = Progress(total, f"{args.folder.name} {backend}")
        bar.update(done)

    try:
        return run_bench(args.folder, pipeline, backend=backend, split=args.split, limit=args.limit, fold=fold,
                         tracking=None if args.no_track else cfg.tracking, overlap=args.overlap, repeat=args.repeat, progress=progress)
    finally:
        if bar is not None:
            bar.close()


def _run_child(args: argparse.Namespace, backend: str) -> Any:
    """One backend in its own process: its memory peak and its caches are not the other backends'."""
    from edge.bench import BenchResult

    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "edge", "-q", "bench", str(args.folder), "--backends", backend,
               "--split", args.split, "--threads", str(args.threads), "--result-file", str(out)]
        for flag, value in (("--config", args.config), ("--countries", args.countries), ("--limit", args.limit), ("--fold", args.fold or None), ("--repeat", args.repeat)):
            if value is not None:
                cmd += [flag, str(value)]
        cmd += [flag for flag, on in (("--no-track", args.no_track), ("--overlap", args.overlap)) if on]
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=None, env=os.environ.copy())
        if proc.returncode != 0 or not out.is_file():
            raise EdgeError(f"backend {backend}: the benchmark child process failed (exit {proc.returncode}); see its message above")
        return BenchResult.from_dict(json.loads(out.read_text()))
