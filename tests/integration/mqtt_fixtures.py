"""Pieces shared by the test_mqtt_* files: a back-office receiver and a publisher wired to a test broker."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge.config import MqttSection
from edge.publish import Publisher, tls_context
from edge.receive import Receiver
from edge.spool import Spool
from tests.integration.conftest import BACKOFFICE, Broker, Pki
from tests.integration.helpers import wait_for


def start_receiver(broker: Broker, pki: Pki, out: Path, prefix: str, rows: list | None = None, **kw: Any) -> Receiver:
    rec = Receiver(
        broker.url, out, topics=(f"{prefix}/+/reads/#",), client_id=kw.pop("client_id", f"bo-{prefix}-{out.name}"),
        username=BACKOFFICE, password_file=pki.password_file(BACKOFFICE), ca_file=pki.ca_file,
        reconnect_max_s=0.5, on_read=(rows.append if rows is not None else None), **kw,
    )
    rec.start()
    wait_for(rec.connected.is_set, 10, "the receiver to subscribe")
    return rec


def mqtt_cfg(broker: Broker, pki: Pki, user: str, prefix: str, **over: Any) -> MqttSection:
    values: dict[str, Any] = dict(
        broker=broker.url, topic_prefix=prefix, username=user, password_file=pki.password_file(user),
        ca_file=pki.ca_file, heartbeat_s=1.0, drain_rate_per_s=5000, max_inflight=50,
    )
    values.update(over)
    return MqttSection(**values)


def make_publisher(cfg: MqttSection, camera: str, spool: Spool, **kw: Any) -> Publisher:
    kw = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "retry_refused_s": 0.3, **kw}
    return Publisher(cfg, camera, spool, status=lambda: {"fps": 12.5, "dropped_frames": 3, "models": {"reader": "test"}}, **kw)


def stored_ids(rec: Receiver) -> list[str]:
    return rec.store.read_ids()


def retained_status(broker: Broker, pki: Pki, topic: str, predicate=lambda s: True, timeout_s: float = 10) -> dict:
    """The newest status on `topic` that satisfies `predicate` (retained or live)."""
    got: list[dict] = []
    ready = threading.Event()

    def on_message(client, userdata, msg):
        try:
            obj = json.loads(msg.payload)
        except ValueError:
            return
        if predicate(obj):
            got.append(obj)
            ready.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.tls_set_context(tls_context(pki.ca_file, None, None))
    c.username_pw_set(BACKOFFICE, f"{BACKOFFICE}-secret")
    c.on_message = on_message
    c.on_connect = lambda client, *a: client.subscribe(topic, 1)
    c.connect("localhost", broker.port)
    c.loop_start()
    try:
        wait_for(ready.is_set, timeout_s, f"a status message on {topic}")
    finally:
        c.loop_stop()
        c.disconnect()
    return got[-1]
