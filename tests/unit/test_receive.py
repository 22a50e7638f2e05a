"""The reference receiver: a malformed message is refused on its own, it does not stop the receiver."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

from edge.receive import Receiver


def _message(topic: str, payload: bytes, mid: int) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, payload=payload, mid=mid, qos=1)


def test_a_malformed_record_is_refused_and_acknowledged_not_a_crash(tmp_path: Path) -> None:
    # Unacknowledged, a message that crashes the receiver comes back after every restart and
    # stops every later read from being stored: it must be refused and acknowledged instead.
    receiver = Receiver("mqtt://127.0.0.1:1", tmp_path)
    client = SimpleNamespace(disconnect=lambda: None)
    jpeg = base64.b64encode(b"\xff\xd8\xff" + b"x" * 20).decode()
    inline = {"read_id": "r1", "images": ["patch"], "image_data": {"patch": jpeg}}
    receiver._on_message(client, None, _message("anpr/cam1/reads", json.dumps(inline).encode(), 1))
    later_image = {"read_id": "r2", "images": ["patch"]}
    receiver._on_message(client, None, _message("anpr/cam1/reads", json.dumps(later_image).encode(), 2))
    receiver._on_message(client, None, _message("anpr/cam1/reads/images/r2/patch", b"\xff\xd8\xff", 3))
    assert [mid for mid, _ in receiver._to_ack] == [1, 2, 3]
    receiver.store.close()
