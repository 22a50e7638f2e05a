"""INTERFACES.md's `edge run --source SRC --camera ID --broker URL --once`, as written there:
with the default topic prefix, reads arrive on `anpr/<camera-id>/reads` as JSON objects with
`read_id`, `camera_id`, `plate`, `confidence` and an ISO 8601 UTC `timestamp`, and nothing
is printed on stdout. The broker is the test suite's mosquitto (TLS, passwords, per-camera ACL).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge.publish import tls_context
from tests.integration.conftest import BACKOFFICE, Broker, Pki
from tests.integration.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
SEQUENCE = ROOT / "sample_frames" / "seq_day_rear"
CAMERA = "cam3"  # a broker account of the test ACL: it may publish under +/cam3/#


class Collector:
    """A back-office client subscribed to one topic filter, keeping (topic, payload) in arrival order."""

    def __init__(self, broker: Broker, pki: Pki, topic: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.tls_set_context(tls_context(pki.ca_file, None, None))
        self.client.username_pw_set(BACKOFFICE, f"{BACKOFFICE}-secret")
        self.client.on_connect = lambda client, *a: client.subscribe(topic, 1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = lambda client, userdata, msg: self.messages.append((msg.topic, msg.payload))
        self.client.connect("localhost", broker.port)
        self.client.loop_start()
        wait_for(self.subscribed.is_set, 10, "the collector's subscription")

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_reads_arrive_on_the_default_topic_with_the_promised_fields(broker: Broker, pki: Pki, tmp_path: Path):
    # Credentials and CA stay in the camera file (as a deployment has them); the broker comes from --broker.
    cfg = tmp_path / f"{CAMERA}.toml"
    cfg.write_text(f'[mqtt]\nusername = "{CAMERA}"\npassword_file = "{pki.password_file(CAMERA)}"\nca_file = "{pki.ca_file}"\n')
    collector = Collector(broker, pki, "anpr/+/reads")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "edge", "run", "--source", str(SEQUENCE), "--camera", CAMERA, "--config", str(cfg),
             "--broker", broker.url, "--spool", str(tmp_path / "spool"), "--once", "--flush-timeout", "20"],
            capture_output=True, text=True, timeout=180, cwd=ROOT,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout == ""  # with a broker, reads go to the broker
        passes = json.loads((SEQUENCE / "sequence.json").read_text())["passes"]
        wait_for(lambda: len(collector.messages) >= len(passes), 20, "the reads on anpr/cam3/reads")
    finally:
        collector.stop()
    assert {topic for topic, _ in collector.messages} == {f"anpr/{CAMERA}/reads"}
    reads = [json.loads(payload) for _, payload in collector.messages]
    assert len({r["read_id"] for r in reads}) == len(reads) == len(passes)
    for r in reads:
        assert r["camera_id"] == CAMERA and isinstance(r["plate"], str) and r["plate"]
        assert 0.0 <= r["confidence"] <= 1.0
        assert datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).utcoffset() == timedelta(0)


def test_what_edge_receive_prints_verifies_with_edge_verify(broker: Broker, pki: Pki, tmp_path: Path):
    # An integrator's chain: `edge receive ... > reads.jsonl`, then `edge verify reads.jsonl --keys K --images DIR/images`
    # (verify's --images help names "<read_id>/<kind>.jpg (as edge receive stores them)").
    camera = "cam4"
    cfg = tmp_path / f"{camera}.toml"
    cfg.write_text(f'[mqtt]\nusername = "{camera}"\npassword_file = "{pki.password_file(camera)}"\nca_file = "{pki.ca_file}"\n')
    out = tmp_path / "backoffice"
    # As deployed: the camera's key made beforehand, its .pub in the back office's trusted keys (`edge receive --keys`).
    key = tmp_path / "spool" / camera / "signing.key"
    made = subprocess.run([sys.executable, "-m", "edge", "keygen", "--camera", camera, "--out", str(key)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert made.returncode == 0, made.stderr
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / f"{camera}.pub").write_bytes((tmp_path / "spool" / camera / "signing.key.pub").read_bytes())
    receiver = subprocess.Popen(
        [sys.executable, "-m", "edge", "receive", "--broker", broker.url, "--out", str(out), "--username", BACKOFFICE,
         "--password-file", str(pki.password_file(BACKOFFICE)), "--ca-file", str(pki.ca_file), "--keys", str(keys)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(receiver.stderr), daemon=True).start()
    try:
        wait_for(lambda: any("subscribed" in line for line in log), 20, "the receiver's subscription")
        proc = subprocess.run(
            [sys.executable, "-m", "edge", "run", "--source", str(SEQUENCE), "--camera", camera, "--config", str(cfg),
             "--broker", broker.url, "--spool", str(tmp_path / "spool"), "--once", "--flush-timeout", "20"],
            capture_output=True, text=True, timeout=180, cwd=ROOT,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        passes = json.loads((SEQUENCE / "sequence.json").read_text())["passes"]
        wait_for(lambda: stored_count(out) >= len(passes), 20, "the reads at the back office")
    finally:
        receiver.terminate()
        receiver.wait(timeout=30)
    printed = receiver.stdout.read()
    assert len(printed.splitlines()) == len(passes)
    assert {json.loads(line)["received"]["key_trust"] for line in printed.splitlines()} == {"trusted"}
    verify = subprocess.run(
        [sys.executable, "-m", "edge", "verify", "--keys", str(keys), "--images", str(out / "images"), "--require-images", "-"],
        input=printed, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert verify.returncode == 0, verify.stdout[-2000:]


def stored_count(out: Path) -> int:
    """Reads committed to the receiver's database so far (0 before it exists)."""
    if not (out / "reads.sqlite").is_file():
        return 0
    try:
        with sqlite3.connect(out / "reads.sqlite") as db:
            return db.execute("SELECT COUNT(*) FROM reads").fetchone()[0]
    except sqlite3.Error:
        return 0
