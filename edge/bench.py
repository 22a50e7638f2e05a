"""Accuracy and speed of the engine over a labelled folder (`edge bench`).

Accuracy, per labelled plate: a detection matches a label when their boxes overlap
at IoU >= 0.5 (one-to-one, best overlaps first); its reading is then compared with
the label's text. Labels without text count for detection only. In a folder whose
labels have no boxes, an image is a plate crop when it is small (shorter side at
most CROP_MAX_SIDE px), read whole with no detection; any other image is a scene,
and a label there without a box is an unlocated plate: each such label takes the detection that reads its text, or
else the most confident detection left (found, misread), and counts for reading
only. Unmatched detections are false positives (in the openalpr sets only one plate
per image is labelled, so some of them are real plates: a labelling gap, not an error);
`false_reads_per_image` counts those of them with a legible reading, the ones `edge read`
lists as plates (an illegible box is reported apart, as not read). An image that labels.csv
does not list is an image without plates: everything found there is a false positive.

Speed, per image: decode (cv2.imdecode of the file's bytes, the floor any engine
pays), the pipeline's own stages (detect, read, ...), and track (sequence folders:
the tracker fed every frame, as a camera would). End-to-end is their sum. Peak
memory is the process's maximum resident set size.

Sequence folders (a `sequence.json` beside labels.csv) also get the one-read-per-
vehicle check: the tracks the tracker emits compared with the true vehicle passes.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

from edge.errors import ConfigError
from edge.labels import LabelledImage, LabelledPlate, list_images, load_labelled_folder, split_of
from edge.types import Box, Frame, Observation

log = logging.getLogger(__name__)

MIN_IOU = 0.5
# Plate height bins in pixels (lower bound inclusive); the last is open-ended.
HEIGHT_BINS = (0, 12, 16, 20, 25, 32, 48, 64, 96)
TOP_CONFUSIONS = 12


class Pipeline(Protocol):
    """What bench needs of edge.pipeline.ImagePipeline (a stub in tests)."""

    last_timings_ms: dict[str, float]
    reader: Any

    def process(self, image: np.ndarray) -> list[Any]: ...  # list[PlateResult]


# ----------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class PlateOutcome:
    """One labelled plate and what the engine made of it."""

    truth: str  # "" when the label has a box only
    box: list[int] | None  # label box [x, y, w, h]; None for a crop
    detected: bool
    read: str | None  # text read from the matching detection; None: not detected or illegible
    det_box: list[int] | None = None
    iou: float = 0.0

    @property
    def height_px(self) -> float | None:
        return float(self.box[3]) if self.box else None

    @property
    def exact(self) -> bool:
        return bool(self.truth) and self.read == self.truth


@dataclass(frozen=True)
class FalsePositive:
    box: list[int]
    read: str | None


@dataclass(frozen=True)
class ImageOutcome:
    image: str  # path as given
    width: int
    height: int
    plates: tuple[PlateOutcome, ...]
    false_positives: tuple[FalsePositive, ...]
    timings_ms: dict[str, float]  # decode, detect, read, ..., track, total
    error: str | None = None
    blank: bool = False  # one pixel value everywhere (a dropped video frame): its labels cannot be found

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ImageOutcome:
        return ImageOutcome(
            image=d["image"], width=d["width"], height=d["height"],
            plates=tuple(PlateOutcome(**p) for p in d["plates"]),
            false_positives=tuple(FalsePositive(**f) for f in d["false_positives"]),
            timings_ms=d["timings_ms"], error=d.get("error"), blank=d.get("blank", False),
        )


@dataclass
class BenchResult:
    """Everything one backend's run produced: the summary and the per-image outcomes behind it."""

    backend: str
    folder: str
    summary: dict[str, Any]
    images: list[ImageOutcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "folder": self.folder, "summary": self.summary,
                "images": [asdict(i) for i in self.images]}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> BenchResult:
        return BenchResult(d["backend"], d["folder"], d["summary"], [ImageOutcome.from_dict(i) for i in d["images"]])


# ----------------------------------------------------------------------------- matching and text


def _box_list(box: Box) -> list[int]:
    return box.as_list()


def match_image(labels: Sequence[LabelledPlate], results: Sequence[Any], min_iou: float = MIN_IOU) -> tuple[list[PlateOutcome], list[FalsePositive]]:
    """Pair labelled plates with detections one-to-one, highest IoU first; the rest are misses and false positives.

    `results` are PlateResults (detection, reading|None). Labels without a box never match.
    """
    pairs = []
    for li, lab in enumerate(labels):
        if lab.box is None:
            continue
        for ri, res in enumerate(results):
            iou = lab.box.iou(res.detection.box)
            if iou >= min_iou:
                pairs.append((iou, li, ri))
    label_to: dict[int, tuple[int, float]] = {}
    used: set[int] = set()
    for iou, li, ri in sorted(pairs, reverse=True):
        if li in label_to or ri in used:
            continue
        label_to[li] = (ri, iou)
        used.add(ri)
    outcomes = []
    for li, lab in enumerate(labels):
        box = _box_list(lab.box) if lab.box is not None else None
        if li in label_to:
            ri, iou = label_to[li]
            res = results[ri]
            text = res.reading.text if res.reading is not None else None
            outcomes.append(PlateOutcome(lab.plate, box, True, text, _box_list(res.detection.box), round(iou, 4)))
        else:
            outcomes.append(PlateOutcome(lab.plate, box, False, None))
    fps = [
        FalsePositive(_box_list(r.detection.box), r.reading.text if r.reading is not None else None)
        for ri, r in enumerate(results) if ri not in used
    ]
    return outcomes, fps


def align(truth: str, read: str) -> list[tuple[str, str]]:
    """Levenshtein alignment as (truth char, read char) pairs; '' marks an inserted or deleted character."""
    n, m = len(truth), len(read)
    d = np.zeros((n + 1, m + 1), dtype=np.int32)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (truth[i - 1] != read[j - 1]))
    pairs: list[tuple[str, str]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (truth[i - 1] != read[j - 1]):
            pairs.append((truth[i - 1], read[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            pairs.append((truth[i - 1], ""))
            i -= 1
        else:
            pairs.append(("", read[j - 1]))
            j -= 1
    return pairs[::-1]


def char_errors(truth: str, read: str | None) -> int:
    """Edit distance, capped at the truth's length (a missed plate loses every character, no more)."""
    if not read:
        return len(truth)
    return min(len(truth), sum(1 for t, r in align(truth, read) if t != r))


def fold_text(text: str | None, fold: dict[str, str]) -> str | None:
    """Map characters a dataset does not tell apart (US labels write O as 0) before comparing."""
    if text is None or not fold:
        return text
    return "".join(fold.get(c, c) for c in text)


# ----------------------------------------------------------------------------- summary


def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"median": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0, "max": 0.0}
    a = np.asarray(values, dtype=np.float64)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"median": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3),
            "mean": round(float(a.mean()), 3), "max": round(float(a.max()), 3)}


def _ratio(num: float, den: float) -> float:
    return round(num / den, 4) if den else 0.0


def height_bin(h: float) -> str:
    lows = [b for b in HEIGHT_BINS if b <= h]
    lo = lows[-1]
    i = HEIGHT_BINS.index(lo)
    return f"{lo}-{HEIGHT_BINS[i + 1] - 1}" if i + 1 < len(HEIGHT_BINS) else f"{lo}+"


def accuracy(images: Sequence[ImageOutcome], fold: dict[str, str] | None = None) -> dict[str, Any]:
    """Detection and reading figures over the outcomes (see the module docstring for the rules)."""
    fold = fold or {}
    plates = [p for im in images for p in im.plates]
    boxed = [p for p in plates if p.box is not None]
    visible = [p for im in images if not im.blank for p in im.plates if p.box is not None]
    texted = [p for p in plates if p.truth]
    n_fp = sum(len(im.false_positives) for im in images)
    n_det = sum(1 for p in boxed if p.detected) + n_fp

    def exact(p: PlateOutcome) -> bool:
        return bool(p.truth) and fold_text(p.read, fold) == fold_text(p.truth, fold)

    def errors(p: PlateOutcome) -> int:
        return char_errors(fold_text(p.truth, fold) or "", fold_text(p.read, fold))

    n_chars = sum(len(p.truth) for p in texted)
    detected_texted = [p for p in texted if p.detected]  # a crop counts as detected (see _crop_outcomes)
    out: dict[str, Any] = {
        "images": len(images),
        "plates": len(plates),
        "plates_with_box": len(boxed),
        "plates_with_text": len(texted),
        # No boxes (a folder of crops): detection was not measured, which is not the same as 0.
        "det_recall": _ratio(sum(1 for p in boxed if p.detected), len(boxed)) if boxed else None,
        "det_precision": _ratio(sum(1 for p in boxed if p.detected), n_det) if boxed else None,
        # Labelled plates on blank images (a dropped frame, one value everywhere) no engine can find:
        # recall without them says what the detector missed among plates that were there to see.
        "blank_images": sum(1 for im in images if im.blank),
        "det_recall_visible": _ratio(sum(1 for p in visible if p.detected), len(visible)) if visible else None,
        "false_pos_per_image": _ratio(n_fp, len(images)),
        "false_reads_per_image": _ratio(sum(1 for im in images for fp in im.false_positives if fp.read), len(images)),
        "read_exact": _ratio(sum(1 for p in texted if exact(p)), len(texted)),
        "read_exact_detected": _ratio(sum(1 for p in detected_texted if exact(p)), len(detected_texted)),
        "char_acc": round(1 - sum(errors(p) for p in texted) / n_chars, 4) if n_chars else 0.0,
        "errors": sum(1 for im in images if im.error),
    }
    bins: dict[str, list[PlateOutcome]] = {}
    for p in sorted(boxed, key=lambda p: p.height_px or 0):
        bins.setdefault(height_bin(p.height_px or 0), []).append(p)
    out["by_height"] = [
        {
            "height_px": name,
            "plates": len(ps),
            "det_recall": _ratio(sum(1 for p in ps if p.detected), len(ps)),
            "read_exact": _ratio(sum(1 for p in ps if exact(p)), sum(1 for p in ps if p.truth)),
            "char_acc": _ratio(sum(len(p.truth) - errors(p) for p in ps if p.truth), sum(len(p.truth) for p in ps if p.truth)),
        }
        for name, ps in bins.items()
    ]
    out["confusions"] = confusions(texted, fold)
    return out


def confusions(plates: Iterable[PlateOutcome], fold: dict[str, str] | None = None, top: int = TOP_CONFUSIONS) -> list[dict[str, Any]]:
    """The most common character errors among plates that were read: truth -> read ('' = missing/extra)."""
    counts: Counter[tuple[str, str]] = Counter()
    for p in plates:
        read = fold_text(p.read, fold or {})
        if read:
            counts.update((t, r) for t, r in align(fold_text(p.truth, fold or {}) or "", read) if t != r)
    return [{"truth": t, "read": r, "count": c} for (t, r), c in counts.most_common(top)]


def speed(images: Sequence[ImageOutcome], wall_s: float, extra_timings: Sequence[dict[str, float]] = ()) -> dict[str, Any]:
    """Per-stage latency percentiles, end-to-end frames per second and the decode floor ratio."""
    timed = [im.timings_ms for im in images if not im.error] + list(extra_timings)
    stages: dict[str, list[float]] = {}
    for t in timed:
        for k, v in t.items():
            stages.setdefault(k, []).append(v)
    per_stage = {k: percentiles(v) for k, v in stages.items()}
    total = per_stage.get("total", percentiles([]))
    decode = per_stage.get("decode", percentiles([]))
    return {
        "timed_frames": len(timed),
        "median_ms": total["median"],
        "p95_ms": total["p95"],
        "p99_ms": total["p99"],
        "decode_median_ms": decode["median"],
        "ratio_to_decode": _ratio(total["median"], decode["median"]),
        "fps": round(1000.0 / total["mean"], 2) if total["mean"] else 0.0,
        "wall_fps": round(len(timed) / wall_s, 2) if wall_s > 0 else 0.0,
        "stages_ms": per_stage,
        "peak_rss_mb": peak_rss_mb(),
        # Timings from a machine shared with other work are slower than its quiet figures; say how busy it was.
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "cpu_count": os.cpu_count(),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports kilobytes)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024 if sys.platform != "darwin" else kb / 2**20, 1)


# ----------------------------------------------------------------------------- sequences


def load_sequence(folder: Path) -> dict[str, Any] | None:
    """The folder's sequence.json (frame rate and true vehicle passes), or None for a folder of stills."""
    path = folder / "sequence.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
        if not float(meta["fps"]) > 0:  # frame times are frame numbers / fps
            raise ValueError(f"fps {meta['fps']!r} is not positive")
        for p in meta.get("passes", []):
            str(p["plate"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{path}: not a valid sequence file (needs fps and passes[].plate): {err}") from None
    return meta


def frame_index(name: str, fallback: int) -> int:
    """Frame number from a '<name>_t<NNNN>.jpg' file name (the sample frames' pattern), else the position."""
    stem = Path(name).stem
    head, sep, tail = stem.rpartition("_t")
    return int(tail) if sep and tail.isdigit() else fallback


def pass_accuracy(meta: dict[str, Any], tracks: Sequence[Any]) -> dict[str, Any]:
    """Each true vehicle pass should give exactly one track whose voted text is its plate."""
    truth = [str(p["plate"]) for p in meta.get("passes", [])]
    texts = [t.reading.text for t in tracks]
    once = sum(1 for plate in truth if texts.count(plate) == 1)
    return {
        "passes": len(truth),
        "tracks": len(texts),
        "passes_read_once": once,
        "pass_accuracy": _ratio(once, len(truth)),
        "extra_tracks": max(0, len(texts) - once),
        "track_texts": texts,
    }


# ----------------------------------------------------------------------------- the run


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int, label: str = "", stream: Any = None) -> None:
        self.total, self.label = total, label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._first: tuple[float, int] | None = None  # (time, done) at the first update

    def update(self, done: int) -> None:
        if not self.enabled or self.total <= 0:
            return
        width = 30
        filled = int(width * done / self.total)
        now = time.perf_counter()
        # The rate is measured from the first update, not from when the bar was made: callers make it at
        # their first update, and one image over a few microseconds read as hundreds of thousands a second.
        if self._first is None:
            self._first = (now, done)
        t0, done0 = self._first
        rate = f"{(done - done0) / (now - t0):5.1f} img/s" if done > done0 and now > t0 else ""
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {rate}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def select_images(folder: Path, split: str = "all", limit: int | None = None) -> list[LabelledImage]:
    """The folder's images in name order: those labels.csv lists with their plates, and every other
    image with none. labels.csv has one row per plate, so a frame without a plate has no row; left out,
    the empty road between two vehicles would never count its false positives."""
    images = load_labelled_folder(folder)
    listed = {im.path.name for im in images}
    images = sorted(images + [LabelledImage(p, ()) for p in list_images(folder) if p.name not in listed], key=lambda im: im.path.name)
    if split != "all":
        images = [im for im in images if split_of(im.path.name) == split]
    return images[:limit] if limit else images


def decode(path: Path) -> tuple[np.ndarray | None, float]:
    """The image and the milliseconds cv2.imdecode took on the file's bytes (reading the file is not counted)."""
    from edge.capture import decode_image

    try:
        data = Path(path).read_bytes()
    except OSError:  # no read permission, gone since the listing, ...: that image's error, not the run's
        return None, 0.0
    t0 = time.perf_counter()
    image = decode_image(data)
    return image, (time.perf_counter() - t0) * 1e3


def decoded(images: Sequence[LabelledImage], overlap: bool = False) -> Iterator[tuple[LabelledImage, np.ndarray | None, float]]:
    """(labelled image, decoded image, decode ms) in order; with `overlap`, one image is decoded ahead on a thread.

    cv2.imdecode releases the GIL, so the look-ahead really runs beside inference on a second core.
    """
    if not overlap:
        for im in images:
            yield (im, *decode(im.path))
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-decode") as pool:
        ahead: Future | None = pool.submit(decode, images[0].path) if images else None
        for i, im in enumerate(images):
            image, ms = ahead.result()
            ahead = pool.submit(decode, images[i + 1].path) if i + 1 < len(images) else None
            yield im, image, ms


CROP_MAX_SIDE = 320  # an image without label boxes and no larger than this (shorter side) is a plate crop


def is_crop(im: LabelledImage, image: np.ndarray) -> bool:
    """A plate crop, to be read whole: its labels have no boxes and it is crop-sized."""
    return all(p.box is None for p in im.plates) and min(image.shape[:2]) <= CROP_MAX_SIDE


def might_be_crops(images: Sequence[LabelledImage]) -> bool:
    """No label has a box: the folder may be plate crops (decided per image, by size)."""
    return bool(images) and all(p.box is None for im in images for p in im.plates)


def match_unlocated(labels: Sequence[LabelledPlate], outcomes: list[PlateOutcome], false_pos: list[FalsePositive],
                    fold: dict[str, str] | None = None) -> tuple[list[PlateOutcome], list[FalsePositive]]:
    """Give labels with text but no box the unmatched detection reading their text, else the most
    confident one left (found, misread): an unlocated plate cannot be judged by overlap."""
    left = list(false_pos)  # most confident first, as the pipeline sorts them
    out = list(outcomes)
    for want_text in (True, False):
        for i, lab in enumerate(labels):
            if lab.box is not None or not lab.plate or out[i].detected or not left:
                continue
            pick = next((f for f in left if fold_text(f.read, fold or {}) == fold_text(lab.plate, fold or {})), None) if want_text else left[0]
            if pick is not None:
                left.remove(pick)
                out[i] = PlateOutcome(lab.plate, None, True, pick.read, pick.box)
    return out, left


def run_bench(
    folder: str | Path,
    pipeline: Pipeline,
    *,
    backend: str = "onnx",
    split: str = "all",
    limit: int | None = None,
    fold: dict[str, str] | None = None,
    tracking: Any = None,
    warmup: int = 1,
    repeat: int = 1,
    overlap: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> BenchResult:
    """Run the pipeline over a labelled folder and measure it.

    `tracking` is a TrackingSection: given one, a sequence folder is also tracked.
    `warmup` images are run once before timing starts (first-call allocations are not
    the steady state a camera lives in); they are then measured like the others.
    `repeat` runs the folder that many times for timing (accuracy is from the first pass).
    `overlap` decodes the next image on a second thread while this one is inferred, as a
    camera's capture thread does: per-stage times stay per image, `wall_fps` shows the gain.
    """
    folder = Path(folder)
    images = select_images(folder, split, limit)
    if not images:
        raise ConfigError(f"{folder}: no images to bench (split {split!r})")
    maybe_crops = might_be_crops(images)
    meta = load_sequence(folder) if not maybe_crops else None
    modes: set[str] = set()
    fps = float(meta["fps"]) if meta else 10.0
    t_origin = datetime(2024, 1, 1, tzinfo=timezone.utc)

    for im in images[:warmup]:
        img, _ = decode(im.path)
        if img is not None:
            _infer(pipeline, img, maybe_crops and is_crop(im, img))

    outcomes: list[ImageOutcome] = []
    tracks: list[Any] = []
    extra_timings: list[dict[str, float]] = []
    wall_s = 0.0
    for rep in range(max(1, repeat)):
        # Accuracy comes from the first pass; later passes only add timings (steadier figures on a busy machine).
        tracker = _make_tracker(tracking) if meta is not None and tracking is not None else None
        wall0 = time.perf_counter()
        for n, (im, image, decode_ms) in enumerate(decoded(images, overlap)):
            if progress is not None and n:  # counted here: unreadable images and repeat passes `continue` early
                progress(rep * len(images) + n, len(images) * max(1, repeat))
            if image is None:
                if rep == 0:
                    # Named here: the summary only counts errors, and exit status 1 alone would not say which image.
                    log.warning("%s: not a readable image (missing, empty, corrupt or truncated); its plates count as missed", im.path)
                    plates = tuple(PlateOutcome(p.plate, _box_list(p.box) if p.box else None, False, None) for p in im.plates)
                    outcomes.append(ImageOutcome(str(im.path), 0, 0, plates, (), {}, error="cannot decode image"))
                continue
            crop = maybe_crops and is_crop(im, image)
            t0 = time.perf_counter()
            results = _infer(pipeline, image, crop)
            infer_ms = (time.perf_counter() - t0) * 1e3
            timings = {"decode": decode_ms, **{k: float(v) for k, v in pipeline.last_timings_ms.items()}}
            track_ms = 0.0
            if tracker is not None:
                at = t_origin + timedelta(seconds=frame_index(im.path.name, n) / fps)
                frame = Frame(image, at, n, source=str(folder))
                obs = [Observation(frame, r.detection, r.reading) for r in results if r.reading is not None]
                t1 = time.perf_counter()
                finished = tracker.update(at, obs, (frame.width, frame.height))
                track_ms = (time.perf_counter() - t1) * 1e3
                timings["track"] = track_ms
                if rep == 0:
                    tracks += finished
            timings["total"] = decode_ms + infer_ms + track_ms
            timings = {k: round(v, 3) for k, v in timings.items()}
            if rep > 0:
                extra_timings.append(timings)
                continue
            modes.add("crops" if crop else "scenes")
            if crop:
                plates, false_pos = _crop_outcomes(im, results), []
            else:
                plates, false_pos = match_unlocated(im.plates, *match_image(im.plates, results), fold)
            h, w = image.shape[:2]
            blank = bool(image.min() == image.max())  # after timing: not part of the engine's cost
            outcomes.append(ImageOutcome(str(im.path), w, h, tuple(plates), tuple(false_pos), timings, blank=blank))
        wall_s += time.perf_counter() - wall0
        if progress is not None:
            progress((rep + 1) * len(images), len(images) * max(1, repeat))
        if tracker is not None and rep == 0:
            tracks += tracker.flush()

    summary: dict[str, Any] = {"backend": backend, "folder": str(folder), "split": split,
                               "mode": "mixed" if len(modes) > 1 else (modes.pop() if modes else "scenes"),
                               "overlap_decode": overlap, "repeat": max(1, repeat)}
    summary.update(accuracy(outcomes, fold))
    summary.update(speed(outcomes, wall_s, extra_timings))
    if meta is not None and tracking is not None:
        summary["sequence"] = pass_accuracy(meta, tracks)
    summary["models"] = dict(getattr(pipeline, "models", {}) or {})
    return BenchResult(backend, str(folder), summary, outcomes)


def _make_tracker(tracking: Any) -> Any:
    from edge.track import Tracker

    return Tracker(tracking)


def _infer(pipeline: Pipeline, image: np.ndarray, crops: bool) -> list[Any]:
    """Scenes go through the whole pipeline; a crop goes to the reader alone, timed as 'read'."""
    if not crops:
        return pipeline.process(image)
    t0 = time.perf_counter()
    readings = pipeline.reader.read([image])
    pipeline.last_timings_ms = {"read": (time.perf_counter() - t0) * 1e3}
    return readings


def _crop_outcomes(im: LabelledImage, readings: list[Any]) -> list[PlateOutcome]:
    reading = readings[0] if readings else None
    text = reading.text if reading is not None and reading.text else None
    return [PlateOutcome(p.plate, None, True, text) for p in im.plates]


# ----------------------------------------------------------------------------- text output


def format_table(results: Sequence[BenchResult]) -> str:
    """A plain-text summary, one column per backend."""
    rows = [
        ("images", "images", "{:d}"), ("plates", "plates", "{:d}"),
        ("detection recall", "det_recall", "{:.1%}"), ("detection precision", "det_precision", "{:.1%}"),
        ("blank images (labels unfindable)", "blank_images", "{:d}"),
        ("detection recall, blank images left out", "det_recall_visible", "{:.1%}"),
        ("false positives / image", "false_pos_per_image", "{:.3f}"),
        ("  of them read / image", "false_reads_per_image", "{:.3f}"),
        ("exact plate", "read_exact", "{:.1%}"), ("exact plate, detected", "read_exact_detected", "{:.1%}"),
        ("character accuracy", "char_acc", "{:.1%}"),
        ("median ms (end to end)", "median_ms", "{:.1f}"), ("p95 ms", "p95_ms", "{:.1f}"), ("p99 ms", "p99_ms", "{:.1f}"),
        ("decode median ms", "decode_median_ms", "{:.1f}"), ("x decode", "ratio_to_decode", "{:.2f}"),
        ("frames / s (1 / mean ms)", "fps", "{:.1f}"), ("frames / s (wall clock)", "wall_fps", "{:.1f}"),
        ("load average at the end", "load_avg_1m", "{:.2f}"), ("peak memory MB", "peak_rss_mb", "{:.0f}"),
    ]
    head = ["", *(r.backend for r in results)]
    lines = [head]
    for label, key, fmt in rows:
        lines.append([label, *("n/a" if r.summary.get(key) is None else fmt.format(r.summary[key]) for r in results)])
    stages = sorted({k for r in results for k in r.summary.get("stages_ms", {})} - {"total"}, key=_stage_order)
    for st in stages:
        lines.append([f"  {st} median / p95 ms", *(
            "{median:.1f} / {p95:.1f}".format(**r.summary["stages_ms"][st]) if st in r.summary.get("stages_ms", {}) else "-"
            for r in results)])
    for r in results:
        seq = r.summary.get("sequence")
        if seq:
            lines.append([f"  vehicle passes read once ({r.backend})", f"{seq['passes_read_once']}/{seq['passes']} ({seq['tracks']} tracks)"])
    widths = [max(len(str(row[i])) if i < len(row) else 0 for row in lines) for i in range(max(map(len, lines)))]
    out = ["  ".join(str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(row)) for row in lines]
    conf = results[0].summary.get("confusions") if results else None
    if conf:
        out.append("most common character confusions (truth->read, %s): " % results[0].backend
                   + ", ".join(f"{c['truth'] or '_'}->{c['read'] or '_'} {c['count']}" for c in conf[:8]))
    return "\n".join(out)


_STAGES = ("decode", "motion", "detect", "crop", "read", "track")


def _stage_order(name: str) -> tuple[int, str]:
    return (_STAGES.index(name) if name in _STAGES else len(_STAGES), name)
