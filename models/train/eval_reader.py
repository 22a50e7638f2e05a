"""Reader benchmark on real plate crops of the TEST split (never trained on): accuracy and latency.

Crops are the label boxes of the openalpr scene sets (eu, br, us) whose image is in the test
split, plus the test split of openalpr_us_plate_crops (whole images). Each reader is run behind
the runtime interface (`edge.read`), grammar decoding included, with the countries a camera in
that region would be configured for. US labels never use the letter O (O and 0 are both written
0), so US predictions and labels are compared with O folded to 0.

    python -m models.train.eval_reader --datasets ../shared/datasets \
        --model models/reader.onnx --model models/reader_int8.onnx --tesseract --json runs/reader_eval.json

Latency: per crop, one thread, one crop per call (preprocessing + model + decoding), median.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from edge.onnx import load_model
from edge.plates.decode import best_path, decode
from edge.plates.image import batch_input
from edge.track import edit_distance
from models.train.alterations import ALTERATIONS
from models.train.reader_data import RealCrop, exact_crop, load_prepared, real_crops

COUNTRIES = {  # what a camera in that region would be configured with (other European formats are still tried)
    "openalpr_benchmarks_eu": ("SK", "CZ"),
    "openalpr_benchmarks_br": ("BR",),
    "openalpr_benchmarks_us": ("US",),
    "openalpr_us_plate_crops": ("US",),
    "synthetic_gb": ("GB",),
}
SHORT = {"openalpr_benchmarks_eu": "eu", "openalpr_benchmarks_br": "br", "openalpr_benchmarks_us": "us",
         "openalpr_us_plate_crops": "us_crops", "synthetic_gb": "gb_synth"}
SYNTHETIC_SEED = 9_000_000_000  # far from the training stream's seeds (about 2e13 and up)
VALIDATION_SEED = 8_000_000_000  # gb_val: a second held-out range, for model choices (test figures stay unseen)


def _norm(text: str, dataset: str) -> str:
    return text.replace("O", "0") if "us" in SHORT[dataset] else text


def score(pairs: list[tuple[str, str]]) -> dict[str, float]:
    """Exact-plate and character accuracy of (prediction, label) pairs."""
    exact = sum(p == t for p, t in pairs)
    chars = sum(len(t) for _, t in pairs)
    errors = sum(min(len(t), edit_distance(p, t)) for p, t in pairs)
    return {"n": len(pairs), "exact": exact / max(len(pairs), 1), "char_acc": 1 - errors / max(chars, 1)}


# Character heights (px) for the rendered UK plates' breakdown: 8 px is the renderer's floor,
# about 16 px what camera guides ask of a reading camera, 60 px its ceiling.
CHAR_PX_BINS = (8, 12, 16, 24, 36, 61)


def _char_bin(px: float) -> str:
    for lo, hi in zip(CHAR_PX_BINS, CHAR_PX_BINS[1:]):
        if px < hi:
            return f"{lo}-{hi - 1}"
    return f">={CHAR_PX_BINS[-1]}"


def evaluate(name: str, make_reader, crops, with_raw: bool = False, alter=None) -> dict:
    """Accuracy per dataset (and all together), per character height where known, and median latency for one backend.

    `alter(crop)`, one of ALTERATIONS, is applied to every crop first."""
    by_set: dict[str, list[tuple[str, str]]] = {}
    by_char_px: dict[str, list[tuple[str, str]]] = {}
    raw_by_set: dict[str, list[tuple[str, str]]] = {}
    misreads: list[tuple[str, str, str, str]] = []  # set, crop, label, reading
    times: list[float] = []
    readers = {ds: make_reader(COUNTRIES[ds]) for ds in COUNTRIES}
    for c in crops:
        reader = readers[c.dataset]
        img = exact_crop(c) if alter is None else alter(exact_crop(c))
        t0 = time.perf_counter()
        reading = reader.read([img])[0]
        times.append((time.perf_counter() - t0) * 1000)
        pred = reading.text if reading else ""
        pair = (_norm(pred, c.dataset), _norm(c.text, c.dataset))
        by_set.setdefault(c.dataset, []).append(pair)
        if pair[0] != pair[1]:
            misreads.append((SHORT[c.dataset], c.name, c.text, pred))
        if c.char_px is not None:
            by_char_px.setdefault(_char_bin(c.char_px), []).append((pred, c.text))
        if with_raw:  # the model's best path alone, no grammar: what the decoding adds
            raw = best_path(reader.frame_probabilities([img])[0]).text
            raw_by_set.setdefault(c.dataset, []).append((_norm(raw, c.dataset), _norm(c.text, c.dataset)))
    out = {"backend": name, "median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
           "sets": {SHORT[k]: score(v) for k, v in by_set.items()}, "misreads": misreads}
    out["sets"]["all"] = score([p for v in by_set.values() for p in v])
    if by_char_px:  # rendered plates: how accuracy grows with the characters' height in pixels
        bins = [_char_bin(lo) for lo in CHAR_PX_BINS]  # each bin's name, in order (the last: beyond the bins)
        out["gb_by_char_px"] = {k: score(by_char_px[k]) for k in bins if k in by_char_px}
    if with_raw:
        out["no_grammar"] = {SHORT[k]: score(v) for k, v in raw_by_set.items()}
    return out


def plain_latency(path: Path, crops, countries=("SK", "CZ"), passes: int = 3) -> dict[str, float]:
    """Preprocessing + model + decoding per crop, one thread, using only numpy, OpenCV and
    onnxruntime (no pydantic: runs on a bare machine). Leaves out the negated retry of weak
    readings and the colour estimate that `edge.read.OnnxReader` adds."""
    m = load_model(path, threads=1)
    h, w = m.sidecar.get("input", {}).get("shape", [1, 32, 128])[-2:]
    images = [exact_crop(c) for c in crops]
    for img in images[:30]:
        m.run(batch_input([img], h, w))
    ts = []
    for _ in range(passes):
        for img in images:
            t0 = time.perf_counter()
            decode(best_path(m.run(batch_input([img], h, w))[0][0]), countries)
            ts.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": float(np.median(ts)), "p90_ms": float(np.percentile(ts, 90))}


def model_latency(path: Path, runs: int = 300) -> float:
    """Model alone, one thread, batch of one: median ms."""
    m = load_model(path, threads=1)
    shape = m.sidecar.get("input", {}).get("shape", [1, 32, 128])
    x = np.random.default_rng(0).uniform(-1, 1, (1, *shape)).astype(np.float32)
    for _ in range(30):
        m.run(x)
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        m.run(x)
        ts.append((time.perf_counter() - t0) * 1000)
    return float(np.median(ts))


def synthetic_gb(n: int, first_seed: int = SYNTHETIC_SEED) -> list[RealCrop]:
    """Rendered UK plates as a camera sees them (no real UK crops with ground truth exist):
    seeds the training stream never draws, every GB format, the same augmentation as training."""
    from models.train import augment, render

    out = []
    for i in range(n):
        rng = np.random.default_rng(first_seed + i)
        char_px = augment.random_char_height(rng)
        plate = render.random_plate(rng, "GB", height_px=int(np.clip(char_px / 0.7 * 1.6, 40, 140)))
        crop = augment.camera_crop(rng, plate.image, 0.7 if plate.lines == 1 else 0.35, char_px)
        out.append(RealCrop(crop, None, plate.text, "synthetic_gb", f"gb{i:04d}_{plate.plate_format}", char_px))
    return out


def save_crops(crops, folder: Path) -> None:
    """The exact test crops as PNG files with an index (the `reader_data` layout, no context)."""
    import csv

    import cv2

    (folder / "crops").mkdir(parents=True, exist_ok=True)
    with open(folder / "crops.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "plate", "dataset", "x", "y", "w", "h"])
        for i, c in enumerate(crops):
            name = f"{i:04d}_{Path(c.name).stem}.png"
            cv2.imwrite(str(folder / "crops" / name), exact_crop(c))
            w.writerow([name, c.text, c.dataset, "", "", "", ""])
    print(f"{len(crops)} test crops in {folder}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--model", type=Path, action="append", default=[], help="ONNX reader(s) to measure")
    ap.add_argument("--tesseract", action="store_true", help="also measure the tesseract backend")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--errors", action="store_true", help="print every misread (label -> reading)")
    ap.add_argument("--save-crops", type=Path, help="write the test crops (PNG + crops.csv) here, e.g. to carry to "
                    "another machine for latency figures, and stop")
    ap.add_argument("--synthetic-gb", type=int, default=0, metavar="N",
                    help="also N rendered UK plates (held-out seeds), reported as gb_synth")
    ap.add_argument("--validation-gb", type=int, default=0, metavar="N",
                    help="ONLY N rendered UK plates from another held-out seed range (gb_val): for choosing between "
                         "models without looking at the test figures")
    ap.add_argument("--latency-only", action="store_true",
                    help="only time preprocessing + model + decoding per crop (numpy/OpenCV/onnxruntime alone)")
    ap.add_argument("--alter", choices=sorted(ALTERATIONS), help="alter every crop first (exposure, colour, compression, blur, negative)")
    ap.add_argument("--crops-dir", type=Path, help="read test crops written by --save-crops instead of --datasets")
    args = ap.parse_args()

    if args.validation_gb:
        crops = synthetic_gb(args.validation_gb, VALIDATION_SEED)  # reported under gb_synth: the only set in this mode
        print(f"validation mode: {len(crops)} rendered UK plates from seed {VALIDATION_SEED} (not the test seeds)")
    elif args.crops_dir:
        crops = [c for c in load_prepared(args.crops_dir)]
    else:
        crops = real_crops(args.datasets, "test")
    if args.synthetic_gb and not args.validation_gb:
        crops += synthetic_gb(args.synthetic_gb)
    if args.save_crops:
        save_crops(crops, args.save_crops)
        return
    if args.latency_only:
        for path in args.model:
            print(path.name, json.dumps(plain_latency(path, crops)))
        return
    from edge.read import OnnxReader, TesseractReader  # needs the full runtime (pydantic config)

    counts = {SHORT[k]: sum(c.dataset == k for c in crops) for k in COUNTRIES if any(c.dataset == k for c in crops)}
    print(f"test crops: {counts}")
    results = []
    for path in args.model:
        model = load_model(path, threads=1)

        def make(countries, model=model):
            return OnnxReader(model, countries)

        r = evaluate(path.name, make, crops, with_raw=True, alter=ALTERATIONS.get(args.alter))
        r["model_ms"] = model_latency(path)
        r["size_mb"] = path.stat().st_size / 1e6
        results.append(r)
        if args.errors:  # the misreads of the run just measured (altered crops included)
            for short, name, text, pred in r["misreads"]:
                print(f"  {path.name} {short} {name}: {text} -> {pred}")
    if args.tesseract:
        results.append(evaluate("tesseract", lambda countries: TesseractReader(countries), crops, alter=ALTERATIONS.get(args.alter)))
    for r in results:
        sets = "  ".join(f"{k} {v['exact']:.3f}/{v['char_acc']:.3f} (n={v['n']})" for k, v in r["sets"].items())
        extra = f"  model {r['model_ms']:.2f} ms" if "model_ms" in r else ""
        print(f"{r['backend']:20} exact/char: {sets}  median {r['median_ms']:.2f} ms/crop{extra}")
        if "gb_by_char_px" in r:
            print(f"{'':20} rendered UK by character height (px), exact/char: " + "  ".join(
                f"{k} {v['exact']:.3f}/{v['char_acc']:.3f} (n={v['n']})" for k, v in r["gb_by_char_px"].items()))
        if "no_grammar" in r:
            ng = "  ".join(f"{k} {v['exact']:.3f}" for k, v in r["no_grammar"].items())
            print(f"{'':20} without grammar, exact: {ng}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"test_crops": counts, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
