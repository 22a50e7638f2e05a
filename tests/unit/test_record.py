"""The read record: schema, identity, canonical form."""

from __future__ import annotations

import json
import math
from datetime import timedelta, timezone, datetime

import jsonschema
import pytest

from edge.cli import main
from edge.context import build_read
from edge.record import canonical_bytes, iso_ms, load_schema, model_entries, read_id_for
from edge.signing import Signer

from tests.unit import read_fixtures as F


def validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_signed_record_validates_against_schema(tmp_path):
    read = build_read(F.track(), F.config(tmp_path), models=F.MODELS, clock_synced=True, processing_ms=41.5)
    record = Signer.generate("cam-1").sign(read.record)
    errors = sorted(validator().iter_errors(json.loads(json.dumps(record))), key=str)
    assert errors == []
    # The fields the public interface promises.
    for key in ("read_id", "camera_id", "plate", "confidence", "timestamp"):
        assert key in record
    assert record["timestamp"].endswith("Z") and record["plate"] == "AB12CDE"


def test_schema_rejects_a_record_that_breaks_it(tmp_path):
    record = build_read(F.track(), F.config(tmp_path, imagery={"level": "none"}), models=F.MODELS).record
    v = validator()
    assert v.is_valid(record)
    assert not v.is_valid({**record, "plate": "ab12 cde"})
    assert not v.is_valid({**record, "timestamp": "2026-11-23 01:02:03"})
    assert not v.is_valid({k: val for k, val in record.items() if k != "read_id"})
    # A pseudonymised record may not carry the plate: the schema itself says so.
    # (Nor anything else off its allow-list: tests/unit/test_pseudonymised_fields.py checks each field.)
    from edge.privacy import PSEUDONYMISED_KEPT

    pseudo = {k: val for k, val in record.items() if k in PSEUDONYMISED_KEPT}
    pseudo |= {"feed_kind": "pseudonymised", "plate_hmac": {"alg": "HMAC-SHA256", "key_id": "0" * 16, "value": "1" * 64},
               "timestamp": record["timestamp"][:19] + ".000Z", "times": {"clock_synced": None}, "confidence": 0.9}
    assert v.is_valid(pseudo)
    assert not v.is_valid({**pseudo, "plate": "AB12CDE"})


def test_read_id_is_stable_for_a_track_and_differs_between_tracks():
    t = F.T0
    assert read_id_for("cam-1", t, 7) == read_id_for("cam-1", t.astimezone(timezone(timedelta(hours=2))), 7)
    assert read_id_for("cam-1", t, 7) != read_id_for("cam-1", t, 8)
    assert read_id_for("cam-1", t, 7) != read_id_for("cam-2", t, 7)
    assert read_id_for("cam-1", t, 7) != read_id_for("cam-1", t + timedelta(microseconds=1), 7)


def test_same_track_built_twice_gives_same_read_id(tmp_path):
    cfg = F.config(tmp_path, imagery={"level": "none"})
    a = build_read(F.track(), cfg, models=F.MODELS).record
    b = build_read(F.track(), cfg, models=F.MODELS).record
    assert a["read_id"] == b["read_id"]


def test_canonical_bytes_ignore_key_order_and_survive_a_json_round_trip():
    record = {"b": 0.1 + 0.2, "a": [1, {"z": "é", "y": None}], "signature": {"x": 1}, "image_data": {"patch": "AA=="}}
    shuffled = {"a": [1, {"y": None, "z": "é"}], "image_data": {}, "b": 0.30000000000000004}
    assert canonical_bytes(record) == canonical_bytes(shuffled)
    assert canonical_bytes(json.loads(json.dumps(record))) == canonical_bytes(record)
    assert canonical_bytes(record) == '{"a":[1,{"y":null,"z":"é"}],"b":0.30000000000000004}'.encode()


def test_canonical_bytes_refuse_nan():
    with pytest.raises(ValueError, match="confidence"):
        canonical_bytes({"confidence": math.nan})


def test_iso_ms_is_utc_with_milliseconds():
    assert iso_ms(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=1)))) == "2026-01-02T02:04:05.678Z"
    with pytest.raises(ValueError):
        iso_ms(datetime(2026, 1, 2))


def test_model_entries_accept_name_at_hash_and_bare_forms():
    h = "ab" * 32
    assert model_entries({"reader": f"reader.onnx@{h}", "detector": h, "ocr": "tesseract"}) == [
        {"role": "detector", "name": "detector", "sha256": h},
        {"role": "ocr", "name": "tesseract", "sha256": None},
        {"role": "reader", "name": "reader.onnx", "sha256": h},
    ]


def test_edge_schema_prints_the_shipped_schema(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == load_schema()
