"""Regression floors on real photographs the models never trained on (the test split of
../shared/datasets). The figures themselves are measured by `scripts/figures.py` and recorded in
the README; these floors only catch a change that breaks reading or detection outright."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT.parent / "shared" / "datasets"

pytestmark = pytest.mark.shared_data


@pytest.mark.skipif(not (DATASETS / "openalpr_benchmarks_eu").is_dir(), reason="../shared/datasets not present")
def test_european_test_split_end_to_end(tmp_path: Path):
    cfg = tmp_path / "sk.toml"
    cfg.write_text('[reader]\ncountries = ["SK", "CZ"]\n')
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "-q", "bench", str(DATASETS / "openalpr_benchmarks_eu"), "--split", "test", "--config", str(cfg), "--json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["images"] >= 20
    assert summary["det_recall"] >= 0.95  # measured 1.00
    assert summary["read_exact"] >= 0.90  # measured 0.964
    assert summary["char_acc"] >= 0.95  # measured 0.985
