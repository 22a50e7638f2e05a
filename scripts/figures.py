"""The README's accuracy and speed table: `edge bench --json` over the sample frames and the
test split of every shared dataset that is present, one Markdown row each.

    python3 scripts/figures.py [--datasets ../shared/datasets] [--repeat 3] > runs/figures.md

Each folder runs in its own `edge bench` process (its own peak memory), one core.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ["seq_day_rear", "seq_day_front", "seq_night_front", "singles"]
# Each set is read with the plate grammars a camera in that country would be configured with
# (`[reader] countries`); the sample frames use the default (GB). US labels write O as 0.
SHARED = [
    ("openalpr_benchmarks_eu", ["SK", "CZ"], []),
    ("openalpr_benchmarks_br", ["BR"], []),
    ("openalpr_benchmarks_us", ["US"], ["--fold", "O0"]),
    ("openalpr_us_plate_crops", ["US"], ["--fold", "O0"]),
    ("romanian_lp_detection_extra", ["GB"], []),  # boxes only: detection figures
]


def bench(folder: Path, extra: list[str], repeat: int) -> dict:
    cmd = [sys.executable, "-m", "edge", "-q", "bench", str(folder), "--json", "--repeat", str(repeat), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def num(v: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def row(name: str, split: str, s: dict) -> str:
    if s.get("mode") == "crops":  # nothing to detect
        s = {**s, "false_pos_per_image": None, "false_reads_per_image": None}
    if not s.get("plates_with_text"):  # boxes only: nothing to read
        s = {**s, "read_exact": None, "char_acc": None}
    seq = s.get("sequence")
    passes = f"{seq['passes_read_once']}/{seq['passes']}" if seq else "-"
    return "| " + " | ".join([
        name, split, str(s["images"]), pct(s.get("det_recall")), pct(s.get("det_precision")),
        num(s.get("false_pos_per_image"), "{:.2f}"), num(s.get("false_reads_per_image"), "{:.2f}"), pct(s.get("read_exact")), pct(s.get("char_acc")),
        num(s.get("median_ms")), num(s.get("p95_ms")), num(s.get("decode_median_ms")),
        num(s.get("ratio_to_decode")), num(s.get("fps"), "{:.0f}"), num(s.get("peak_rss_mb"), "{:.0f}"), passes,
    ]) + " |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print("| set | split | images | det. recall | precision | FP/img | FP read/img | exact plate | char acc | median ms | p95 ms | decode ms | ×decode | fps | peak MB | passes read once |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in SAMPLES:
        print(row(f"sample_frames/{name}", "all", bench(ROOT / "sample_frames" / name, [], args.repeat)), flush=True)
    for name, countries, extra in SHARED:
        folder = args.datasets / name
        if folder.is_dir():
            s = bench(folder, ["--split", "test", "--countries", ",".join(countries), *extra], args.repeat)
            print(row(f"{name} ({','.join(countries)})", "test", s), flush=True)
    load = os.getloadavg()[0]
    print(f"\n(one core per process; load average {load:.1f} on {os.cpu_count()} cores when it finished)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
