"""INTERFACES.md's `edge run --source SRC --camera ID --broker URL --once`, as written there:
with the default topic prefix, reads arrive on `anpr/<camera-id>/reads` as JSON objects with
`read_id`, `camera_id`, `plate`, `confidence` and an ISO 8601 UTC `timestamp`, and nothing
is printed on stdout. The broker is the test suite's mosquitto (TLS, passwords, per-camera ACL).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt

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
