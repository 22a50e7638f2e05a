"""The product path end to end: `edge run --broker` on sample frames -> mosquitto (TLS, passwords,
ACL) -> the back-office receiver, which ends with every vehicle pass exactly once, signed and
with its images."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import Broker, Pki
from tests.integration.helpers import wait_for
from tests.integration.mqtt_fixtures import start_receiver, stored_ids

ROOT = Path(__file__).resolve().parents[2]
SEQUENCE = ROOT / "sample_frames" / "seq_day_rear"


def camera_config(tmp: Path, broker: Broker, pki: Pki, camera: str, prefix: str) -> Path:
    cfg = tmp / f"{camera}.toml"
    cfg.write_text(
        f'[camera]\nid = "{camera}"\n'
        f'[mqtt]\nbroker = "{broker.url}"\ntopic_prefix = "{prefix}"\nusername = "{camera}"\n'
        f'password_file = "{pki.password_file(camera)}"\nca_file = "{pki.ca_file}"\n'
    )
    return cfg


def edge_run(cfg: Path, camera: str, spool: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge", "run", "--config", str(cfg), "--source", str(SEQUENCE), "--camera", camera,
         "--spool", str(spool), "--once", "--flush-timeout", "20", *extra],
        capture_output=True, text=True, timeout=180, cwd=ROOT,
    )


def passes() -> list[str]:
    return sorted(p["plate"] for p in json.loads((SEQUENCE / "sequence.json").read_text())["passes"])


def stored(out: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(out / "reads.sqlite") as db:
        return sorted(db.execute("SELECT plate, verified FROM reads"))


def test_edge_run_delivers_each_pass_once_signed_with_images(broker: Broker, pki: Pki, tmp_path: Path):
    out = tmp_path / "backoffice"
    rec = start_receiver(broker, pki, out, "e2e")
    try:
        proc = edge_run(camera_config(tmp_path, broker, pki, "cam1", "e2e"), "cam1", tmp_path / "spool")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout == ""  # with a broker, reads go to the broker, not stdout
        wait_for(lambda: len(stored_ids(rec)) >= len(passes()), 20, "the reads at the back office")
    finally:
        rec.stop()
    rows = stored(out)
    assert [plate for plate, _ in rows] == passes()
    assert all(verified == 1 for _, verified in rows)
    for read_id in stored_ids(rec):
        assert {p.stem for p in (out / "images" / read_id).iterdir()} == {"patch", "overview"}


def test_reads_spooled_while_the_broker_is_down_arrive_once_at_the_next_run(broker_factory, pki: Pki, tmp_path: Path):
    broker = broker_factory(start=False)
    cfg = camera_config(tmp_path, broker, pki, "cam2", "e2e2")
    spool = tmp_path / "spool"
    first = edge_run(cfg, "cam2", spool, "--flush-timeout", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "go at the next start" in first.stderr  # kept, not lost
    broker.start()
    out = tmp_path / "backoffice"
    rec = start_receiver(broker, pki, out, "e2e2")
    try:
        second = edge_run(cfg, "cam2", spool)  # the same frames again: the same read ids
        assert second.returncode == 0, second.stderr[-3000:]
        wait_for(lambda: len(stored_ids(rec)) >= len(passes()), 20, "the spooled reads at the back office")
    finally:
        rec.stop()
    assert [plate for plate, _ in stored(out)] == passes()  # each pass once: retries de-duplicated
