"""The read record: its fields, its identity and the one canonical serialisation that is signed.

A record is a plain JSON-ready dict (the schema is `edge/schema/read.schema.json`,
printed by `edge schema`). Building the dict from a track lives in `edge.context`;
this module holds what every producer and consumer of records must agree on:

- `read_id_for`: the read's id, derived from the camera, the track and its first
  sighting, so a retried or re-spooled read keeps its id and a back office can
  de-duplicate on it;
- `canonical_bytes`: the exact bytes a signature covers. Image *hashes* are part
  of the record, so a signature covers the images without carrying them;
- `iso_ms`: timestamps as ISO 8601 UTC with milliseconds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from typing import Any

SCHEMA_ID = "edge-anpr/read"
SCHEMA_VERSION = "1.1"  # 1.1: "band"; the pseudonymised feed narrowed to an allow-list of fields

# Fields a published read may carry that the signature does not cover. Inline
# imagery (base64) is covered through the hashes under "images" instead, so a
# receiver can drop or store the bytes elsewhere without breaking the signature.
SIGNATURE_FIELD = "signature"
INLINE_IMAGES_FIELD = "image_data"
UNSIGNED_FIELDS = frozenset({SIGNATURE_FIELD, INLINE_IMAGES_FIELD})

# UUIDv5 namespace of this project's read ids (a fixed random UUID; never change it,
# or the same track would get a new id after an upgrade).
READ_ID_NAMESPACE = uuid.UUID("6f1d3c52-8f0e-4b7a-9d8e-3a5c2b1e7f40")

_HEX64 = re.compile(r"[0-9a-f]{64}")


def iso_ms(ts: datetime) -> str:
    """`2026-11-23T01:02:03.456Z`: UTC, millisecond precision, the form every record time uses."""
    if ts.tzinfo is None:
        raise ValueError(f"timestamp {ts!r} has no time zone; record times must be UTC-aware")
    return ts.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def read_id_for(camera_id: str, first_seen: datetime, track_id: int) -> str:
    """A UUIDv5 of (camera, first sighting to the microsecond, track id): the same track always gets the same id."""
    name = f"{camera_id}|{first_seen.astimezone(timezone.utc).isoformat(timespec='microseconds')}|{track_id}"
    return str(uuid.uuid5(READ_ID_NAMESPACE, name))


def feed_read_id(read_id: str, feed: str) -> str:
    """The id a read carries on a feed other than the full one.

    Derived (so still stable across retries) but different per feed, so records on a
    pseudonymised or hits-only feed cannot be joined to the full feed by id alone, and a
    spool keyed on read ids keeps one entry per feed.
    """
    return str(uuid.uuid5(uuid.UUID(read_id), f"feed:{feed}"))


def _check_finite(value: Any, path: str = "") -> None:
    # JSON has no NaN or infinity, and their text forms differ between libraries,
    # which would break signatures; refuse them where they are made.
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"record field {path or '(root)'} is {value!r}; records hold finite numbers only")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite(v, f"{path}[{i}]")


def canonical_bytes(record: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the record less its unsigned fields, as compact sorted-key UTF-8 JSON.

    Sorted keys, no insignificant whitespace, non-ASCII kept as UTF-8, and floats in
    Python's shortest round-trip form (the form `json` writes and reads back unchanged),
    so a record that goes through JSON and back serialises to the same bytes.
    """
    body = {k: v for k, v in record.items() if k not in UNSIGNED_FIELDS}
    _check_finite(body)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def to_json_line(record: dict[str, Any]) -> str:
    """A record as one line of JSON (what `edge run` prints and `edge verify` reads)."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def parse_record(text: str | bytes) -> Any:
    """JSON as a published record is read back: a key repeated within one object is refused.

    json keeps the last of two equal keys, other parsers the first: a value put in front of a
    signed one would verify here and be what another subscriber reads. No camera writes that."""

    def refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                raise ValueError(f"key {key!r} appears twice in one object")
            obj[key] = value
        return obj

    return json.loads(text, object_pairs_hook=refuse_repeated_keys)


def with_inline_images(record: dict[str, Any], images: dict[str, bytes]) -> dict[str, Any]:
    """A signed record with its images inline as base64 under "image_data" (not signed; checked by hash)."""
    if not images:
        return record
    return {**record, INLINE_IMAGES_FIELD: {k: base64.b64encode(v).decode("ascii") for k, v in sorted(images.items())}}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def image_entry(data: bytes, width: int, height: int, content_type: str = "image/jpeg") -> dict[str, Any]:
    """What the record says about one image: enough to check it and to know what it is without opening it."""
    return {"sha256": sha256_hex(data), "bytes": len(data), "width": int(width), "height": int(height), "content_type": content_type}


def model_entries(models: dict[str, str]) -> list[dict[str, Any]]:
    """Models as `[{"role", "name", "sha256"}]`, sorted by role.

    `models` maps a role ("detector", "reader") to "NAME@SHA256", to a bare SHA-256
    (the role then names it), or to a bare name (hash unknown, recorded as null).
    """
    out = []
    for role, value in sorted(models.items()):
        name, sep, digest = value.rpartition("@")
        if not sep:
            name, digest = (role, value) if _HEX64.fullmatch(value) else (value, "")
        out.append({"role": role, "name": name, "sha256": digest.lower() if _HEX64.fullmatch(digest.lower()) else None})
    return out


@lru_cache(maxsize=1)
def load_schema_text() -> str:
    """The JSON Schema of a published read, as shipped in the package."""
    return resources.files("edge").joinpath("schema/read.schema.json").read_text(encoding="utf-8")


def load_schema() -> dict[str, Any]:
    return json.loads(load_schema_text())
