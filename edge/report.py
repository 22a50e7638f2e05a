"""The HTML report of `edge bench --report OUT`: one self-contained folder.

OUT/index.html holds the tables and the plots (inline SVG drawn here: accuracy by
plate height, latency histogram), and links thumbnails of every miss in
OUT/misses/<backend>/, each with the label's box and text (green) and the engine's
box and reading (red) drawn on it. Nothing is fetched from elsewhere, so the folder
can be zipped and mailed.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from edge.bench import BenchResult, ImageOutcome, PlateOutcome, decode

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
MAX_THUMBS = 1000  # per backend: bounds the report's size on a big folder (the count of misses is always given)
THUMB_W = 320
GREEN, RED = (40, 160, 40), (30, 30, 220)  # BGR


def write_report(out: str | Path, results: Sequence[BenchResult]) -> Path:
    """Write OUT/index.html and the miss thumbnails; returns the index path. OSError (naming the file) when one cannot be written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts = [_head(results), _summary_table(results), _height_plot(results), _latency_plot(results), _stage_table(results),
             _sequence_table(results), _confusions(results)]
    for r in results:
        parts.append(_misses(out, r))
    parts.append("</body></html>")
    index = out / "index.html"
    # errors="replace": a file name that is not UTF-8 shows as "?" in a caption instead of failing the report
    index.write_text("\n".join(p for p in parts if p), encoding="utf-8", errors="replace")
    return index


# ----------------------------------------------------------------------------- tables

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}h2{margin-top:1.6em}.thumbs{display:flex;flex-wrap:wrap;gap:8px}
.thumbs figure{margin:0;font-size:12px;width:320px}.thumbs img{width:320px;display:block}svg{background:#fff}
.small{color:#666;font-size:13px}"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _head(results: Sequence[BenchResult]) -> str:
    folder = results[0].folder if results else ""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    models = {k: v for r in results for k, v in (r.summary.get("models") or {}).items()}
    model_list = ", ".join(f"{_esc(k)} {_esc(v)}" for k, v in models.items()) or "n/a"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>edge bench: {_esc(folder)}</title>"
            f"<style>{_CSS}</style></head><body><h1>edge bench: {_esc(folder)}</h1>"
            f"<p class='small'>{_esc(when)}; split {_esc(results[0].summary.get('split', 'all') if results else '')}; "
            f"mode {_esc(results[0].summary.get('mode', '') if results else '')}; models: {model_list}</p>")


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    th = "".join(f"<th>{_esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{float(x):.1%}"


def _summary_table(results: Sequence[BenchResult]) -> str:
    rows = [
        ("images", "images", str), ("labelled plates", "plates", str),
        ("detection recall (IoU 0.5)", "det_recall", _pct), ("detection precision", "det_precision", _pct),
        ("blank images (their labels cannot be found)", "blank_images", str),
        ("detection recall, blank images left out", "det_recall_visible", _pct),
        ("false positives per image", "false_pos_per_image", lambda x: f"{x:.3f}"),
        ("false positives with a legible reading per image", "false_reads_per_image", lambda x: f"{x:.3f}"),
        ("exact plate (end to end)", "read_exact", _pct), ("exact plate, detected plates", "read_exact_detected", _pct),
        ("character accuracy", "char_acc", _pct),
        ("median ms per image (end to end)", "median_ms", lambda x: f"{x:.1f}"),
        ("p95 / p99 ms", None, None),
        ("decode median ms", "decode_median_ms", lambda x: f"{x:.1f}"),
        ("end to end / decode", "ratio_to_decode", lambda x: f"{x:.2f}"),
        ("frames per second (1 / mean ms)", "fps", lambda x: f"{x:.1f}"),
        ("frames per second (wall clock)", "wall_fps", lambda x: f"{x:.1f}"),
        ("peak memory MB", "peak_rss_mb", lambda x: f"{x:.0f}"),
        ("machine load average (1 min) at the end", "load_avg_1m", lambda x: f"{x:.2f}" if x is not None else "n/a"),
    ]
    table_rows = []
    for label, key, fmt in rows:
        if key is None:
            table_rows.append([label, *(f"{r.summary.get('p95_ms', 0):.1f} / {r.summary.get('p99_ms', 0):.1f}" for r in results)])
        else:
            table_rows.append([label, *(fmt(r.summary.get(key, 0)) for r in results)])
    return "<h2>Summary</h2>" + _table(["", *(r.backend for r in results)], table_rows)


def _stage_table(results: Sequence[BenchResult]) -> str:
    rows = []
    for r in results:
        for stage, p in r.summary.get("stages_ms", {}).items():
            rows.append([r.backend, stage, f"{p['median']:.2f}", f"{p['p95']:.2f}", f"{p['p99']:.2f}", f"{p['mean']:.2f}", f"{p['max']:.2f}"])
    return "<h2>Time per stage (ms per image)</h2>" + _table(["backend", "stage", "median", "p95", "p99", "mean", "max"], rows)


def _sequence_table(results: Sequence[BenchResult]) -> str:
    rows = [[r.backend, s["passes"], s["tracks"], s["passes_read_once"], _pct(s["pass_accuracy"]), " ".join(s["track_texts"])]
            for r in results if (s := r.summary.get("sequence"))]
    if not rows:
        return ""
    return ("<h2>Vehicle passes (sequence.json)</h2><p class='small'>Each true pass should give exactly one track whose voted "
            "reading is its plate.</p>" + _table(["backend", "passes", "tracks", "read once", "pass accuracy", "track readings"], rows))


def _confusions(results: Sequence[BenchResult]) -> str:
    parts = ["<h2>Most common character confusions</h2><p class='small'>truth → read; _ is a missing or extra character</p>"]
    for r in results:
        conf = r.summary.get("confusions") or []
        parts.append(f"<h3>{_esc(r.backend)}</h3>" + (_table(["truth", "read", "count"], [[c["truth"] or "_", c["read"] or "_", c["count"]] for c in conf])
                                                     if conf else "<p>none</p>"))
    return "".join(parts)


# ----------------------------------------------------------------------------- plots (SVG)


def _height_plot(results: Sequence[BenchResult]) -> str:
    """Grouped bars: detection recall and exact plate per plate-height bin, one colour per backend."""
    bins: list[str] = []
    for r in results:
        for b in r.summary.get("by_height", []):
            if b["height_px"] not in bins:
                bins.append(b["height_px"])
    if not bins:
        return ""
    bins.sort(key=lambda s: int(s.split("-")[0].rstrip("+")))
    series = []
    for r in results:
        by = {b["height_px"]: b for b in r.summary.get("by_height", [])}
        colour = len(series) // 2
        series.append((f"{r.backend} detection", [by.get(b, {}).get("det_recall", 0.0) for b in bins], 0.4, colour))
        series.append((f"{r.backend} exact plate", [by.get(b, {}).get("read_exact", 0.0) for b in bins], 1.0, colour))
    counts = [sum(b["plates"] for b in results[0].summary.get("by_height", []) if b["height_px"] == name) for name in bins]
    labels = [f"{b} px (n={n})" for b, n in zip(bins, counts)]
    rows = [[b["height_px"], b["plates"], _pct(b["det_recall"]), _pct(b["read_exact"]), _pct(b["char_acc"])]
            for b in results[0].summary.get("by_height", [])]
    return ("<h2>Accuracy by plate height</h2>" + svg_bars(labels, series, y_max=1.0, y_label="fraction")
            + f"<p class='small'>{_esc(results[0].backend)}:</p>"
            + _table(["plate height px", "plates", "detection recall", "exact plate", "character accuracy"], rows))


def _latency_plot(results: Sequence[BenchResult]) -> str:
    totals = [[im.timings_ms.get("total", 0.0) for im in r.images if not im.error] for r in results]
    if not any(totals):
        return ""
    hi = max(max(t) for t in totals if t)
    edges = np.linspace(0, hi * 1.02 + 1e-6, 25)
    series = []
    for i, (r, t) in enumerate(zip(results, totals)):
        hist, _ = np.histogram(t, bins=edges)
        series.append((r.backend, [int(h) for h in hist], 0.85, i))
    labels = [f"{edges[i]:.0f}" for i in range(len(edges) - 1)]
    return ("<h2>Latency per image, end to end (ms)</h2>"
            + svg_bars(labels, series, y_max=max(max(s[1]) for s in series) or 1, y_label="images", x_label="ms (bin start)"))


Series = tuple[str, Sequence[float], float, int]  # name, one value per label, opacity, colour index


def svg_bars(labels: Sequence[str], series: Sequence[Series], *, y_max: float,
             y_label: str = "", x_label: str = "", width: int = 900, height: int = 300) -> str:
    """A grouped bar chart as inline SVG: one group per label, one bar per series."""
    left, right, top, bottom = 50, 10, 20, 70
    pw, ph = width - left - right, height - top - bottom
    n_groups, n_series = max(len(labels), 1), max(len(series), 1)
    group_w = pw / n_groups
    bar_w = group_w * 0.8 / n_series
    y_max = y_max or 1.0
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height + 20 * math.ceil(n_series / 3)}' font-size='11'>"]
    for k in range(5):  # grid and y ticks
        v = y_max * k / 4
        y = top + ph - ph * k / 4
        out.append(f"<line x1='{left}' x2='{left + pw}' y1='{y:.1f}' y2='{y:.1f}' stroke='#ddd'/>"
                   f"<text x='{left - 4}' y='{y + 4:.1f}' text-anchor='end'>{_tick(v)}</text>")
    for si, (name, values, opacity, ci) in enumerate(series):
        colour = COLOURS[ci % len(COLOURS)]
        for gi, v in enumerate(values):
            h = ph * min(float(v), y_max) / y_max
            x = left + gi * group_w + group_w * 0.1 + si * bar_w
            out.append(f"<rect x='{x:.1f}' y='{top + ph - h:.1f}' width='{max(bar_w - 1, 1):.1f}' height='{h:.1f}' "
                       f"fill='{colour}' fill-opacity='{opacity}'><title>{_esc(name)} {_esc(labels[gi])}: {_tick(v)}</title></rect>")
    for gi, lab in enumerate(labels):
        x = left + gi * group_w + group_w / 2
        out.append(f"<text x='{x:.1f}' y='{top + ph + 12}' text-anchor='end' transform='rotate(-35 {x:.1f} {top + ph + 12})'>{_esc(lab)}</text>")
    out.append(f"<text x='12' y='{top + ph / 2:.0f}' transform='rotate(-90 12 {top + ph / 2:.0f})' text-anchor='middle'>{_esc(y_label)}</text>")
    if x_label:
        out.append(f"<text x='{left + pw / 2:.0f}' y='{height - 8}' text-anchor='middle'>{_esc(x_label)}</text>")
    for si, (name, _values, opacity, ci) in enumerate(series):  # legend
        colour = COLOURS[ci % len(COLOURS)]
        lx, ly = left + (si % 3) * 280, height + 20 * (si // 3) + 4
        out.append(f"<rect x='{lx}' y='{ly - 9}' width='12' height='10' fill='{colour}' fill-opacity='{opacity}'/>"
                   f"<text x='{lx + 16}' y='{ly}'>{_esc(name)}</text>")
    out.append("</svg>")
    return "".join(out)


def _tick(v: float) -> str:
    return f"{v:.2f}" if abs(v) < 10 and v != int(v) else f"{v:.0f}"


# ----------------------------------------------------------------------------- misses


def is_miss(p: PlateOutcome) -> bool:
    """Not found, or found but not read exactly (a box-only label misses only when not found)."""
    return not p.detected or (bool(p.truth) and p.read != p.truth)


def _misses(out: Path, r: BenchResult) -> str:
    folder = out / "misses" / _safe(r.backend)
    folder.mkdir(parents=True, exist_ok=True)
    figures, count = [], 0
    for n, im in enumerate(r.images):
        misses = [p for p in im.plates if is_miss(p)]
        if not misses and not im.error:
            continue
        count += len(misses) or 1
        if len(figures) >= MAX_THUMBS:
            continue
        # Decoded as bench decoded it: cv2.imread crashes the process on a name that is not UTF-8.
        image = decode(Path(im.image))[0] if Path(im.image).is_file() else None
        if image is None:
            figures.append(f"<figure><figcaption>{_esc(Path(im.image).name)}: {_esc(im.error or 'unreadable')}</figcaption></figure>")
            continue
        for k, p in enumerate(misses):
            thumb = miss_thumbnail(image, p, im)
            name = f"{n:05d}_{k}.jpg"
            # Encoded, then written by Python: cv2.imwrite returns False on a full disk, and the report would link a missing file.
            (folder / name).write_bytes(cv2.imencode(".jpg", thumb, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
            caption = f"{Path(im.image).name}: truth {p.truth or '(box only)'}, read {p.read if p.read is not None else ('not detected' if not p.detected else 'nothing legible')}"
            figures.append(f"<figure><img src='misses/{_safe(r.backend)}/{name}' alt='{_esc(caption)}' loading='lazy'>"
                           f"<figcaption>{_esc(caption)}</figcaption></figure>")
    shown = f" (first {MAX_THUMBS} shown)" if count > len(figures) else ""
    return (f"<h2>Misses: {_esc(r.backend)}: {count}{shown}</h2><p class='small'>green: label box and truth; red: the engine's "
            f"box and reading</p><div class='thumbs'>{''.join(figures)}</div>")


def miss_thumbnail(image: np.ndarray, p: PlateOutcome, im: ImageOutcome) -> np.ndarray:
    """The plate's neighbourhood (or the whole crop), boxes drawn, truth and reading written underneath."""
    h, w = image.shape[:2]
    view = image[0:0]  # stays empty for a crop: the whole image is shown
    if p.box is not None:
        x, y, bw, bh = p.box
        mx, my = max(bw * 1.5, 60), max(bh * 3, 50)
        x0, y0 = int(max(0, x - mx)), int(max(0, y - my))
        x1, y1 = int(min(w, x + bw + mx)), int(min(h, y + bh + my))
        view = image[y0:y1, x0:x1].copy()
    if view.size:  # empty when the label box lies outside the image (e.g. labelled before EXIF rotation): show it whole
        scale = THUMB_W / max(view.shape[1], 1)
        view = cv2.resize(view, (THUMB_W, max(1, int(view.shape[0] * scale))), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)

        def rect(b: list[int], colour: tuple[int, int, int]) -> None:
            bx0, by0 = int((b[0] - x0) * scale), int((b[1] - y0) * scale)
            cv2.rectangle(view, (bx0, by0), (int(bx0 + b[2] * scale), int(by0 + b[3] * scale)), colour, 2)

        rect(p.box, GREEN)
        if p.det_box is not None:
            rect(p.det_box, RED)
    else:
        scale = THUMB_W / max(w, 1)
        view = cv2.resize(image, (THUMB_W, max(1, int(h * scale))))
    strip = np.full((44, view.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, f"truth {p.truth or '-'}", (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, GREEN, 1, cv2.LINE_AA)
    read = p.read if p.read is not None else ("not detected" if not p.detected else "illegible")
    cv2.putText(strip, f"read  {read}", (4, 38), cv2.FONT_HERSHEY_SIMPLEX, 0.55, RED, 1, cv2.LINE_AA)
    return np.vstack([view, strip])


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


AMBER, GREY = (0, 160, 240), (150, 150, 150)  # BGR
WEAK = 0.5  # readings below this confidence are drawn in amber: worth a person's look


def draw_plates(image: np.ndarray, plates: Sequence[dict[str, Any]], illegible: Sequence[Sequence[int]] = (),
                crop: bool = False) -> np.ndarray:
    """A copy of `image` (8-bit BGR) with plates drawn, as `edge read --json` reports them.

    Each plate read: its corners (or box) and "TEXT 0.97" above it, green, or amber when the
    confidence is below WEAK; plates found but illegible: grey boxes. A crop (`crop`) gets its
    readings on a white strip underneath instead, since the box is the whole image."""
    from edge.detect import bgr8

    view = bgr8(image).copy()
    h, w = view.shape[:2]
    scale = max(0.4, min(1.5, max(h, w) / 1600))  # labels readable on a 320 px crop and a 4K frame alike
    thick = max(1, round(2 * scale))
    if crop:
        strip = np.full((int(28 * scale) * max(1, len(plates)) + 8, w, 3), 255, np.uint8)
        for k, p in enumerate(plates):
            colour = GREEN if p["confidence"] >= WEAK else AMBER
            cv2.putText(strip, f"{p['text']} {p['confidence']:.2f}", (4, int(28 * scale) * (k + 1)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, colour, thick, cv2.LINE_AA)
        return np.vstack([view, strip])
    for box in illegible:
        x, y, bw, bh = (int(v) for v in box)
        cv2.rectangle(view, (x, y), (x + bw, y + bh), GREY, thick)
    for p in plates:
        colour = GREEN if p["confidence"] >= WEAK else AMBER
        x, y, bw, bh = (int(v) for v in p["box"])
        if p.get("corners"):
            cv2.polylines(view, [np.round(np.array(p["corners"])).astype(np.int32)], True, colour, thick, cv2.LINE_AA)
        else:
            cv2.rectangle(view, (x, y), (x + bw, y + bh), colour, thick)
        label = f"{p['text']} {p['confidence']:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, thick)
        ty = y - 6 if y - th - base - 6 >= 0 else min(h - base, y + bh + th + 6)  # above the plate, else below
        tx = min(max(0, x), max(0, w - tw))
        cv2.rectangle(view, (tx, ty - th - base // 2 - 2), (tx + tw, ty + base), colour, -1)
        cv2.putText(view, label, (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (255, 255, 255), thick, cv2.LINE_AA)
    return view
