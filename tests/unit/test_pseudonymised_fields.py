"""Data minimisation on the pseudonymised feed: only what counting and journey times need, nothing that narrows the plate.

The field lists here are written out, not imported from edge.privacy, on purpose: a field
added to the pseudonymised record (or a field dropped from the list) makes these tests fail
until the decision is made here too and written in edge/privacy.py's docstring.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jsonschema
import pytest

from edge.context import build_read
from edge.privacy import FeedRouter
from edge.receive import ReadStore
from edge.record import load_schema
from edge.signing import Signer, verify_record
from tests.unit import read_fixtures as F

# Everything a pseudonymised record may carry.
ALLOWED = {
    "schema", "schema_version", "read_id", "feed", "feed_kind", "engine", "camera_id", "site_id", "location",
    "heading_deg", "lane", "direction", "wrong_way", "images", "timestamp", "times", "confidence", "speed",
    "plate_hmac", "signature",
}
# Fields of the full record that could spell the plate, narrow it down, match the record to imagery, or
# join it to the full feed's record of the same pass. None may reappear on the pseudonymised feed.
RE_IDENTIFYING = [
    "plate", "alternatives", "char_confidences", "country", "plate_format", "colour", "band", "plate_box", "plate_corners",
    "frame_size", "frames", "models", "reader_backend", "calibration", "processing_ms", "imagery_level", "redaction",
    "hotlist", "image_data",
]
# Placeholders for the fields the test read does not carry itself.
PLACEHOLDERS: dict[str, Any] = {
    "calibration": {"file": "scene.json", "sha256": "ef" * 32},
    "hotlist": {"name": "hot.txt", "sha256": "12" * 32},
    "image_data": {"patch": "AAAA"},
}


@pytest.fixture
def routed(tmp_path):
    """The full and the pseudonymised record of one read with every field filled in (speed and calibration too)."""
    key = tmp_path / "hmac.key"
    key.write_bytes(b"k" * 32)
    os.chmod(key, 0o600)
    cfg = F.config(tmp_path, imagery={"level": "patch_and_overview"},
                   feeds=[{"name": "reads", "kind": "full"}, {"name": "counts", "kind": "pseudonymised", "hmac_key_file": "hmac.key"}])
    track = dataclasses.replace(F.track("AB12CDE", alternatives=("AB12COE", "A812CDE")), speed_kmh=48.37,
                                speed_uncertainty_kmh=2.64)
    read = build_read(track, cfg, models=F.MODELS, clock_synced=True, processing_ms=41.5,
                      calibration={"name": "scene", "file": "scene.json", "sha256": "ef" * 32})
    signer = Signer.generate("cam-1")
    full_item, pseudo_item = FeedRouter(cfg, signer).route(read)
    return json.loads(full_item.record), json.loads(pseudo_item.record), pseudo_item, signer


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def test_a_pseudonymised_record_carries_exactly_the_allowed_fields(routed) -> None:
    full, pseudo, item, _ = routed
    assert set(pseudo) == ALLOWED
    assert set(full) >= set(RE_IDENTIFYING) - set(PLACEHOLDERS)  # the test read really has what must go
    assert item.images == {} and pseudo["images"] == {}
    assert pseudo["feed_kind"] == "pseudonymised" and pseudo["camera_id"] == full["camera_id"]
    assert (pseudo["lane"], pseudo["direction"], pseudo["location"]) == (full["lane"], full["direction"], full["location"])


@pytest.mark.parametrize("field", RE_IDENTIFYING)
def test_a_re_identifying_field_is_neither_sent_nor_accepted_by_the_schema(routed, field: str) -> None:
    full, pseudo, _, _ = routed
    assert field not in pseudo
    validator = jsonschema.Draft202012Validator(load_schema())
    assert validator.is_valid(pseudo)
    assert not validator.is_valid({**pseudo, field: full.get(field, PLACEHOLDERS.get(field))})


def test_no_value_of_a_dropped_field_is_left_anywhere_in_the_record(routed) -> None:
    """Not under another name either: no model name or hash, no image hash, no exact time of the pass."""
    full, pseudo, _, _ = routed
    leaves = {json.dumps(v) for v in _leaves(pseudo)}
    dropped = [full["plate"], full["country"], full["plate_format"], full["colour"], full["read_id"],
               *[a["plate"] for a in full["alternatives"]], *[m["name"] for m in full["models"]],
               *[m["sha256"] for m in full["models"]], *[i["sha256"] for i in full["images"].values()],
               full["timestamp"], *[t for k, t in full["times"].items() if k != "clock_synced"],
               full["processing_ms"], full["speed"]["kmh"]]
    assert full["images"], "the full record should list images, or this test checks nothing about their hashes"
    assert [v for v in dropped if json.dumps(v) in leaves] == []
    text = json.dumps(pseudo)
    assert "AB12CDE" not in text and "AB12COE" not in text and "onnx" not in text


def test_times_confidence_and_speed_are_coarsened(routed) -> None:
    full, pseudo, _, _ = routed
    assert full["timestamp"] == "2026-11-23T01:02:03.856Z"
    assert pseudo["timestamp"] == "2026-11-23T01:02:03.000Z"  # the second it happened in: cut, not rounded up
    assert pseudo["times"] == {"clock_synced": True}
    assert pseudo["confidence"] == 0.93 and full["confidence"] == 0.93  # 2 decimals (the fixture's is already)
    assert full["speed"] == {"kmh": 48.4, "uncertainty_kmh": 2.6}
    assert pseudo["speed"] == {"kmh": 48, "uncertainty_kmh": 3}


def test_a_field_new_to_the_full_record_stays_off_the_pseudonymised_feed(tmp_path) -> None:
    """An allow-list, not a deny-list: a field someone adds to the full record later is not sent here by default."""
    key = tmp_path / "hmac.key"
    key.write_bytes(b"k" * 32)
    os.chmod(key, 0o600)
    cfg = F.config(tmp_path, feeds=[{"name": "reads", "kind": "full"}, {"name": "counts", "kind": "pseudonymised", "hmac_key_file": "hmac.key"}])
    read = build_read(F.track(), cfg, models=F.MODELS)
    read.record["vehicle_make"] = "Ford"
    read.record["confidence"] = 0.93456
    full, pseudo = (json.loads(i.record) for i in FeedRouter(cfg, Signer.generate("cam-1")).route(read))
    assert full["vehicle_make"] == "Ford" and "vehicle_make" not in pseudo
    assert pseudo["confidence"] == 0.93


def test_the_minimised_record_is_signed_and_a_receiver_stores_it_verified(routed, tmp_path) -> None:
    _, pseudo, _, signer = routed
    assert verify_record(pseudo) == []
    assert verify_record({**pseudo, "timestamp": "2026-11-23T01:02:04.000Z"}) != []  # the coarse time is what is signed
    store = ReadStore(tmp_path / "bo", trusted_keys={signer.key_id: signer.public_raw})
    store.begin()
    row = store.add_record("anpr/cam-1/counts", "counts", dict(pseudo))
    store.commit()
    assert row is not None and row["verified"] == 1 and row["plate"] is None and row["problems"] == []
    store.close()


def test_the_privacy_report_lists_what_the_pseudonymised_feed_sends_and_drops(tmp_path) -> None:
    from edge.privacy import privacy_report

    cfg = F.config(tmp_path, feeds=[{"name": "counts", "kind": "pseudonymised", "hmac_key_file": "hmac.key"}])
    text = " ".join(privacy_report(cfg).split())
    assert "the time to the whole second" in text and "the speed in whole km/h" in text
    assert "the plate's country, format and colour" in text and "the plate's position and size in the frame" in text
    assert "the camera, lane and second are the same in both" in text  # the linkage that remains is stated
