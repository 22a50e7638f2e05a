"""The camera's privacy policy, enforced: which feed gets which fields and images, and for how long reads are kept.

Feeds (`[[privacy.feeds]]` in the camera file), each on its own MQTT topic:

- full: the whole record and the imagery the camera's imagery level allows;
- pseudonymised: for traffic statistics and journey times between cameras. The plate is
  replaced by a keyed HMAC-SHA256, so equal plates can be counted and matched without the
  plate text, and the record is cut down to what such a consumer needs (data minimisation,
  below). It carries no imagery, whatever the feed's `imagery` says: a patch shows the
  plate, and an overview may show this plate and other vehicles' plates too. The read id
  is derived per feed with the secret key, so it cannot be joined to the full feed's id;
- hits_only: only reads whose voted plate is on the feed's hotlist file, with the hotlist's
  name and content hash. Alternatives do not make a hit: a hit on a misread would send a
  vehicle that is not on the list.

Every record is signed separately for its feed. Every read released to a feed, every
retention purge and every configuration change is written to the audit log.

What a pseudonymised record carries, field by field. It is built from an allow-list
(`PSEUDONYMISED_FIELDS`), not by deleting known fields, so a field added to the full
record later stays off this feed until someone decides it belongs here (and a test fails
until the decision is written down).

Kept, because a statistics or journey-time consumer needs it and it says nothing about
the plate:
  plate_hmac (the pseudonym and its key id), read_id (keyed, see above), feed, feed_kind,
  schema, schema_version, engine (to parse the record), camera_id, site_id, location,
  heading_deg (where the camera is: what a journey runs between; the same for every read
  of a camera), lane, direction, wrong_way (the movement counted), images (always empty;
  the signature covers it), signature (added when signed, so the record can be verified).
Coarsened, because the consumer needs the value but not its precision, and a value that
is exactly the same in the full feed's record joins the two (with the full record comes
the plate):
  timestamp: to the whole second (".000Z"). Journey times between cameras need seconds,
    not milliseconds; a millisecond time is close to unique per camera.
  times: only `clock_synced` (whether the time can be trusted). first_seen, last_seen and
    best_frame are three more millisecond times of the same pass.
  confidence: to 2 decimals (enough to filter on; 4 decimals nearly identify the read).
  speed: kmh and uncertainty_kmh to whole km/h.
Dropped:
  plate, alternatives, char_confidences (the text, other readings, and the plate's length);
  country, plate_format (a foreign or old-format plate is rare on a UK road: it narrows
    the plates a pseudonym can stand for to a few, sometimes to one vehicle);
  colour (the background: "other" picks out foreign and historic plates; yellow or white
    only repeats the direction);
  band (a green zero-emission flash or a blue identifier band: few vehicles carry either, so
    it narrows the plates a pseudonym can stand for);
  plate_box, plate_corners, frame_size, frames (exact pixel positions and the track's
    length: they match a record to imagery or to the full record of the same pass, and
    the box's size tells one plate style from another);
  models, reader_backend, calibration, processing_ms (how the camera worked: not needed to
    count or match vehicles; processing_ms is a per-read value the full record shares);
  imagery_level, redaction (about images this feed never carries; redaction.regions counts
    the people and other plates in that pass's overview);
  hotlist, image_data, and every field not named above.
Whoever receives this feed and a feed with plates can still often link a record to its
plate through camera, lane and second: journey times need those. `edge privacy-report`
says so.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import stat
import threading
import unicodedata
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from pydantic_core import PydanticSerializationError

from edge.audit import HOTLIST_LOADED, READ_PUBLISHED, RETENTION_PURGE, AuditLog
from edge.config import CameraConfig, FeedConfig, FeedKind, ImageryLevel
from edge.errors import ConfigError
from edge.record import feed_read_id, sha256_hex, to_json_line
from edge.signing import Signer
from edge.types import OutboundRead, utc_now

if TYPE_CHECKING:
    from edge.context import Read

log = logging.getLogger(__name__)

FULL_FEED = "reads"
MIN_HMAC_KEY_BYTES = 16
# What a hotlist entry may be once normalised: the plate text of a read (A-Z, 0-9), and no
# longer than any plate the grammars know (Irish "191-D-12345" is 9). Anything else can never match.
HOTLIST_ENTRY = re.compile(r"[A-Z0-9]{1,10}")


def normalise_plate(text: str) -> str:
    """Hotlist and HMAC form of a plate: upper case, letters and digits only ("ab12 cde" -> "AB12CDE").

    NFKC first, so full-width or compatibility forms pasted from a word processor
    ("ＡＢ１２ ＣＤＥ") become the plain letters they look like. Letters of other alphabets
    that merely look alike (Cyrillic "А") are kept, so they never match a plate by accident;
    `Hotlist` reports them.
    """
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).upper() if ch.isalnum())


def camera_dir(cfg: CameraConfig, spool_dir: Path | None = None) -> Path:
    """The camera's own folder under the spool folder (`--spool` overrides the config's)."""
    return (spool_dir or cfg.spool.dir) / cfg.camera.id


def audit_log_path(cfg: CameraConfig, spool_dir: Path | None = None) -> Path:
    return cfg.resolve(cfg.privacy.audit_log) or camera_dir(cfg, spool_dir) / "audit.log"


def signing_key_path(cfg: CameraConfig, spool_dir: Path | None = None) -> Path:
    return cfg.resolve(cfg.signing.key_file) or camera_dir(cfg, spool_dir) / "signing.key"


def config_digest(cfg: CameraConfig) -> str:
    """SHA-256 of the validated configuration (defaults included), for the audit log."""
    try:
        data = cfg.model_dump_json()
    except PydanticSerializationError:  # a path that is not valid UTF-8 (kept by Python as surrogates)
        data = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)  # ensure_ascii escapes the stray bytes
    return sha256_hex(data.encode("utf-8"))


def open_audit(cfg: CameraConfig, spool_dir: Path | None = None) -> AuditLog:
    """The camera's audit log, with this start's configuration recorded (and a change flagged)."""
    audit = AuditLog(audit_log_path(cfg, spool_dir))
    source = str(cfg.source_file) if cfg.source_file else "(built-in defaults)"
    if audit.note_config(config_digest(cfg), source):
        log.warning("configuration changed since the last start; recorded in %s", audit.path)
    return audit


# --- pseudonyms -----------------------------------------------------------------------------


def _read_secret(path: Path, what: str) -> bytes:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes().strip()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read {what}: {err.strerror}") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: {what} is accessible to group or others (mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}")
    if len(data) < MIN_HMAC_KEY_BYTES:
        raise ConfigError(
            f"{path}: {what} has {len(data)} bytes, at least {MIN_HMAC_KEY_BYTES} are needed "
            f"(make one with: head -c 32 /dev/urandom | base64 > {path}; chmod 600 {path})"
        )
    return data


@dataclass(frozen=True)
class Pseudonymiser:
    key: bytes

    @property
    def key_id(self) -> str:
        # An HMAC of a fixed label: names the key for rotation without revealing anything about it.
        return hmac.new(self.key, b"edge-anpr pseudonym key id", hashlib.sha256).hexdigest()[:16]

    def pseudonym(self, plate: str) -> str:
        return hmac.new(self.key, normalise_plate(plate).encode("utf-8"), hashlib.sha256).hexdigest()

    def read_id(self, full_read_id: str, feed: str) -> str:
        """The read's id on this feed: a UUIDv5 in a namespace derived from the secret key.

        Stable across retries (same read, same key), but without the key nobody can compute it
        from the full feed's read id, so the two records cannot be joined by id. (The unkeyed
        `feed_read_id` can be recomputed by anyone who knows the feed's name.)
        """
        namespace = uuid.UUID(bytes=hmac.new(self.key, b"edge-anpr read id namespace", hashlib.sha256).digest()[:16])
        return str(uuid.uuid5(namespace, f"{full_read_id}|{feed}"))


# --- hotlists -------------------------------------------------------------------------------


class Hotlist:
    """Plates of interest, one per line ('#' starts a comment); re-read when the file changes.

    Lines that cannot be a plate (other alphabets' look-alike letters, a spreadsheet's extra
    columns run together) would silently never match: they are skipped and reported by line
    number. Error messages and logs never quote a line, as it holds a plate of interest.
    """

    def __init__(self, path: Path, on_load: Callable[[Hotlist], None] | None = None) -> None:
        """`on_load` is called with each version of the list before it is used (to audit it); if it
        raises, that version is not used and the next lookup tries again."""
        self.path = Path(path)
        self.on_load = on_load
        self._lock = threading.Lock()
        self._stamp: tuple[int, ...] | None = None
        self._warned_mode = False
        self._plates: frozenset[str] = frozenset()
        self.sha256 = ""
        self.bad_lines: tuple[int, ...] = ()
        self.refresh()

    def refresh(self) -> None:
        try:
            st = self.path.stat()
            # The inode and ctime too: a list replaced by rename (the safe way to update it) may
            # keep the old size and, copied with its times (cp -p, rsync -t), the old mtime.
            stamp = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
            if stamp == self._stamp:
                return
            data = self.path.read_bytes()
        except OSError as err:
            raise ConfigError(f"{self.path}: cannot read hotlist: {err.strerror}") from None
        if os.name == "posix" and st.st_mode & stat.S_IRWXO and not self._warned_mode:
            # Used all the same (its folder may shut others out), but it names the vehicles someone is looking for.
            self._warned_mode = True
            log.warning("hotlist %s is readable by other users (mode %04o): it names the vehicles being looked for. "
                        "Run: chmod o-rwx %s", self.path, stat.S_IMODE(st.st_mode), self.path)
        plates, bad = set(), []
        for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
            plate = normalise_plate(line.split("#", 1)[0])
            if not plate:
                continue
            if HOTLIST_ENTRY.fullmatch(plate):
                plates.add(plate)
            else:
                bad.append(n)
        with self._lock:
            old = (self._plates, self._stamp, self.sha256, self.bad_lines)
            self._plates, self._stamp, self.sha256, self.bad_lines = frozenset(plates), stamp, sha256_hex(data), tuple(bad)
            if self.on_load is not None:
                try:
                    self.on_load(self)
                except Exception:
                    self._plates, self._stamp, self.sha256, self.bad_lines = old
                    raise
        log.info("hotlist %s: %d plates", self.path, len(plates))
        if bad:
            log.error(
                "hotlist %s: %s not a plate (letters A-Z and digits only, at most 10; a look-alike letter of "
                "another alphabet never matches) and skipped: %s",
                self.path, "line is" if len(bad) == 1 else f"{len(bad)} lines are", _line_numbers(bad),
            )
        if not plates:
            log.warning("hotlist %s holds no plates: its hits-only feed will send nothing", self.path)

    def __contains__(self, plate: str) -> bool:
        try:
            self.refresh()
        except ConfigError as err:  # keep matching against the last good list rather than stop the camera
            log.error("%s; matching against the previous list", err)
        return normalise_plate(plate) in self._plates

    def __len__(self) -> int:
        return len(self._plates)


def _line_numbers(lines: list[int], most: int = 10) -> str:
    shown = ", ".join(map(str, lines[:most]))
    return shown + (f" and {len(lines) - most} more" if len(lines) > most else "")


# --- feeds ----------------------------------------------------------------------------------


def _feed_images(feed: FeedConfig, images: dict[str, bytes]) -> dict[str, bytes]:
    if feed.kind is FeedKind.PSEUDONYMISED or not feed.imagery:
        return {}
    return dict(images)


# The fields a pseudonymised record may carry (the module docstring says why each is here).
# Copied as they are:
PSEUDONYMISED_KEPT = frozenset({
    "schema", "schema_version", "read_id", "feed", "feed_kind", "engine", "camera_id", "site_id", "location",
    "heading_deg", "lane", "direction", "wrong_way", "images",
})
# Coarsened by `_pseudonymise`; plate_hmac replaces the plate; signature is added when signed.
PSEUDONYMISED_COARSENED = frozenset({"timestamp", "times", "confidence", "speed"})
PSEUDONYMISED_FIELDS = PSEUDONYMISED_KEPT | PSEUDONYMISED_COARSENED | {"plate_hmac", "signature"}
_ISO_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def _to_the_second(timestamp: str) -> str:
    """`2026-11-23T01:02:03.456Z` -> `2026-11-23T01:02:03.000Z` (cut, not rounded: the second it happened in)."""
    if not _ISO_MS.fullmatch(timestamp):
        raise ValueError(f"record field timestamp is {timestamp!r}, not the form edge.record.iso_ms writes")
    return timestamp[:19] + ".000Z"


def _coarse_speed(speed: dict[str, Any] | None) -> dict[str, Any] | None:
    if speed is None:
        return None
    unc = speed.get("uncertainty_kmh")
    return {"kmh": round(speed["kmh"]), "uncertainty_kmh": None if unc is None else round(unc)}


def _pseudonymise(record: dict[str, Any], p: Pseudonymiser) -> dict[str, Any]:
    """The pseudonymised form of a (full) record: an allow-list of its fields, some coarsened, and the pseudonym."""
    out = {k: v for k, v in record.items() if k in PSEUDONYMISED_KEPT}
    out["images"] = {}  # never imagery on this feed; route() fills in only what the feed carries
    out["plate_hmac"] = {"alg": "HMAC-SHA256", "key_id": p.key_id, "value": p.pseudonym(record["plate"])}
    out["timestamp"] = _to_the_second(record["timestamp"])
    out["times"] = {"clock_synced": (record.get("times") or {}).get("clock_synced")}
    out["confidence"] = round(float(record["confidence"]), 2)
    if "speed" in record:
        out["speed"] = _coarse_speed(record["speed"])
    return out


class FeedRouter:
    """Turns one read into what each feed should carry, signed for that feed."""

    def __init__(self, cfg: CameraConfig, signer: Signer, audit: AuditLog | None = None) -> None:
        self.cfg = cfg
        self.signer = signer
        self.audit = audit
        self._pseudonymisers: dict[str, Pseudonymiser] = {}
        self._hotlists: dict[str, Hotlist] = {}
        for feed in cfg.privacy.feeds:
            if feed.kind is FeedKind.PSEUDONYMISED:
                path = cfg.resolve(feed.hmac_key_file)
                self._pseudonymisers[feed.name] = Pseudonymiser(_read_secret(path, f"HMAC key of feed {feed.name!r}"))
                if feed.imagery and cfg.imagery.level is not ImageryLevel.NONE:
                    log.info("feed %r is pseudonymised: it carries no imagery (images can show plates)", feed.name)
            elif feed.kind is FeedKind.HITS_ONLY:
                self._hotlists[feed.name] = Hotlist(cfg.resolve(feed.hotlist_file), self._hotlist_auditor(feed.name))
        if audit is not None:
            keys = {"signing": signer.key_id, **{f"pseudonym:{name}": p.key_id for name, p in self._pseudonymisers.items()}}
            if audit.note_keys(keys):
                log.warning("a signing or pseudonym key changed since the last start; recorded in %s", audit.path)

    def _hotlist_auditor(self, feed: str) -> Callable[[Hotlist], None] | None:
        if self.audit is None:
            return None
        audit = self.audit

        def record(hotlist: Hotlist) -> None:
            audit.append(HOTLIST_LOADED, feed=feed, file=hotlist.path.name, sha256=hotlist.sha256,
                         plates=len(hotlist), bad_lines=len(hotlist.bad_lines))

        return record

    def route(self, read: Read) -> list[OutboundRead]:
        """One OutboundRead per feed that should carry this read (none for a hits-only feed without a hit)."""
        out = []
        for feed in self.cfg.privacy.feeds:
            record = self._record_for(feed, read.record)
            if record is None:
                continue
            images = _feed_images(feed, read.images)
            record["images"] = {k: v for k, v in read.record.get("images", {}).items() if k in images}
            signed = self.signer.sign(record)
            data = to_json_line(signed).encode("utf-8")
            out.append(OutboundRead(read_id=signed["read_id"], feed=feed.name, record=data, images=images, created_at=utc_now()))
            if self.audit is not None:
                # Logged when released to the feed's outbound queue; from there delivery is the spool's job.
                self.audit.append(
                    READ_PUBLISHED, read_id=signed["read_id"], feed=feed.name, kind=feed.kind.value,
                    images=sorted(images), record_sha256=sha256_hex(data),
                )
        return out

    def _record_for(self, feed: FeedConfig, base: dict[str, Any]) -> dict[str, Any] | None:
        record = dict(base)
        record["feed"], record["feed_kind"] = feed.name, feed.kind.value
        if feed.kind is FeedKind.PSEUDONYMISED:
            p = self._pseudonymisers[feed.name]
            record["read_id"] = p.read_id(base["read_id"], feed.name)
            return _pseudonymise(record, p)
        if feed.name != FULL_FEED:
            record["read_id"] = feed_read_id(base["read_id"], feed.name)
        if feed.kind is FeedKind.HITS_ONLY:
            hotlist = self._hotlists[feed.name]
            if base.get("plate", "") not in hotlist:
                return None
            record["hotlist"] = {"name": hotlist.path.name, "sha256": hotlist.sha256}
        return record


# --- retention ------------------------------------------------------------------------------


class _Purgeable(Protocol):
    def purge_older_than(self, age_s: float) -> int: ...


# Purges done but not yet in the audit log (its write failed), per log: added to its next purge entry.
_unaudited_purges: weakref.WeakKeyDictionary[AuditLog, int] = weakref.WeakKeyDictionary()


def apply_retention(spool: _Purgeable, cfg: CameraConfig, audit: AuditLog | None) -> int:
    """Delete spooled reads and images older than the retention limit; audit what went. Returns how many.

    The deletion cannot be undone, so when its audit entry cannot be written (a full disk)
    the count is kept and goes into the next purge entry that can be: a deletion is never
    left out of the audit log just because the retry found nothing more to delete.
    """
    age_s = cfg.privacy.retention_hours * 3600.0
    removed = int(spool.purge_older_than(age_s))
    if removed:
        log.info("retention: deleted %d spooled reads older than %g h", removed, cfg.privacy.retention_hours)
    if audit is not None:
        total = removed + _unaudited_purges.pop(audit, 0)
        if total:
            try:
                audit.append(RETENTION_PURGE, removed=total, older_than_hours=cfg.privacy.retention_hours)
            except Exception:
                _unaudited_purges[audit] = total
                raise
    return removed


# --- the plain-language summary for a DPIA ------------------------------------------------


def _imagery_text(cfg: CameraConfig) -> list[str]:
    im = cfg.imagery
    if im.level is ImageryLevel.NONE:
        return ["No images leave this camera: records hold text and numbers only."]
    lines = [
        f"Plate patch: the plate and a margin of {im.patch_margin:.0%} around it, at the camera's own resolution, "
        f"JPEG quality {im.patch_jpeg_quality} (typically a few kB). It is not searched for faces: whatever its "
        "margin shows is sent as captured."
    ]
    if im.level is ImageryLevel.OVERVIEW:
        lines.append(
            f"Overview: the whole scene from the same frame, scaled to {im.overview_width} pixels wide, "
            f"JPEG quality {im.overview_jpeg_quality} (about 25 kB at the defaults of 640 px and quality 60)."
        )
        if im.redact_bystanders:
            lines.append(
                "Bystander redaction is ON: faces found in the overview are pixelated on the camera before the image "
                "is encoded, so their unblurred pixels never leave it; the plate being read is never blurred. "
                f"Limits: the detector (OpenCV's LBP frontal-face cascade) finds roughly frontal faces at least about "
                f"{_smallest_face_text(cfg)}; faces in profile and whole bodies are not detected, "
                "and a missed face is sent unblurred. Number plates of other vehicles that the detector found in the "
                "same frame are pixelated too; a plate it missed (too small, hidden, unlike a plate) is sent as captured."
            )
        else:
            lines.append("Bystander redaction is OFF: people and other vehicles' number plates visible in the overview "
                         "are sent as captured.")
    else:
        lines.append("No overview image is sent.")
    lines.append("Both images come from the frame whose reading was chosen, and their SHA-256 hashes are in the signed record.")
    return lines


def _smallest_face_text(cfg: CameraConfig) -> str:
    # Faces are searched on the frame scaled down to detection_width(), never scaled up: in
    # narrower frames the smallest face found is the cascade's window, MIN_FACE_PX frame pixels.
    from edge.context import detection_width
    from edge.redaction import MIN_FACE_PX

    im = cfg.imagery
    text = f"{im.redact_min_face_px} pixels high in the overview"
    if im.redact_min_face_px < MIN_FACE_PX:
        text += (f" when the camera's frames are at least {detection_width(cfg)} pixels wide (in narrower frames, "
                 f"faces smaller than {MIN_FACE_PX} frame pixels are missed)")
    return text


def _feed_text(cfg: CameraConfig, feed: FeedConfig, n: int) -> list[str]:
    topic = f"{cfg.mqtt.topic_prefix}/{cfg.camera.id}/{feed.name}"
    carries_images = feed.imagery and cfg.imagery.level is not ImageryLevel.NONE
    imagery = {
        ImageryLevel.PATCH: "the plate patch",
        ImageryLevel.OVERVIEW: "the plate patch and the overview",
    }.get(cfg.imagery.level, "no images")
    head = f"{n}. Feed '{feed.name}' ({feed.kind.value}), MQTT topic {topic}:"
    if feed.kind is FeedKind.FULL:
        return [head, f"   every read, with all the fields above; images: {imagery if carries_images else 'none'}."]
    if feed.kind is FeedKind.PSEUDONYMISED:
        key = cfg.resolve(feed.hmac_key_file)
        try:
            _read_secret(key, "HMAC key")
            state = ""
        except ConfigError as err:  # the camera refuses to start like this: say so rather than describe a feed that cannot run
            state = f" (NOT USABLE NOW, the camera will not start: {err})"
        return [
            head,
            "   every read, but the plate text is replaced by a keyed hash (HMAC-SHA256) made with the secret key in "
            f"{key}{state}. Equal plates give equal hashes, so vehicles can be counted and matched between cameras that share "
            "the key, without the plate text.",
            "   Sent: the hash, the camera and site ids, the camera's location and heading, the lane, the direction of "
            "travel (and whether it is the wrong way), the time to the whole second and whether the clock was "
            "synchronised, the speed in whole km/h where measured, the confidence to 2 decimals, and the signature.",
            "   Removed: the plate text, the alternative readings, the per-character confidences (they give the plate's "
            "length), the plate's country, format and colour and its left band (a foreign or old-style plate, or a "
            "green flash, is rare enough to narrow the hash down to a few vehicles), the plate's position and size in the frame, the number of frames, the "
            "exact first, last and chosen-frame times, the models, the processing time, the redaction details and all "
            "images (a patch shows the plate; an overview can show this and other plates), whatever the feed's "
            "'imagery' setting says. Fields added to the full record in future are not sent here unless added to "
            "this feed's list on purpose.",
            "   The read id is derived from the full feed's with the secret key, so the two cannot be joined by id; "
            "but the camera, lane and second are the same in both, so whoever receives this feed and a feed with "
            "plates can often still link a record to its plate.",
            "   Whoever holds the key can test whether a given plate passed: the key is personal data to protect.",
        ]
    hot = cfg.resolve(feed.hotlist_file)
    try:
        hotlist = Hotlist(hot)
        count = f"{len(hotlist)} plate{'' if len(hotlist) == 1 else 's'} now"
        if hotlist.bad_lines:
            count += f"; lines {_line_numbers(list(hotlist.bad_lines))} are not plates and are ignored"
    except ConfigError as err:
        count = f"NOT READABLE NOW: {err}"
    return [
        head,
        f"   only reads whose plate is on the hotlist {hot} ({count}; re-read when the file changes), with all the "
        f"fields above and the hotlist's name and hash; images: {imagery if carries_images else 'none'}. "
        "Reads of other vehicles are not sent on this feed. Alternative readings do not count as a hit.",
    ]


def privacy_report(cfg: CameraConfig) -> str:
    """What leaves this camera, to whom, with which images, kept how long: plain English for a DPIA."""
    cam, mq = cfg.camera, cfg.mqtt
    source = str(cfg.source_file) if cfg.source_file else "built-in defaults"
    where = ", ".join(
        p for p in (
            f"latitude {cam.latitude}, longitude {cam.longitude}" if cam.latitude is not None and cam.longitude is not None else "",
            f"looking along {cam.heading_deg:g} degrees" if cam.heading_deg is not None else "",
        ) if p
    ) or "location not configured"
    if mq.broker is None:
        transport = "No broker is configured: reads are written to standard output and kept in the spool on the camera."
    elif mq.broker.startswith("mqtts://"):
        transport = f"Reads are published to {mq.broker} over TLS (encrypted in transit)."
    else:
        transport = f"Reads are published to {mq.broker} WITHOUT encryption (mqtt://): use mqtts:// outside a closed network."
    out = [
        f"Privacy summary for camera '{cam.id}' at site '{cam.site_id}' ({where})",
        f"Configuration: {source} (SHA-256 {config_digest(cfg)[:16]}…)",
        "",
        "WHAT THIS CAMERA DOES",
        "It reads the number plates of passing vehicles. Each vehicle pass becomes one read record.",
        transport,
        "",
        "WHAT A FULL READ RECORD HOLDS",
        "- a read id; the camera and site ids; the camera's location and heading; the lane and direction of travel;",
        "- when the vehicle was first and last seen and when the chosen frame was taken (UTC, to the millisecond),",
        "  and whether the camera's clock was synchronised;",
        f"- the plate text, its country and format, the confidence overall and per character, and up to "
        f"{cfg.reader.max_alternatives} alternative readings;",
        "- the plate's colour and position in the frame, the number of frames, the speed where measured;",
        "- the names and content hashes of the models used, and the processing time.",
        "",
        "IMAGES",
        *_imagery_text(cfg),
        "",
        "WHO RECEIVES WHAT (FEEDS)",
    ]
    for n, feed in enumerate(cfg.privacy.feeds, start=1):
        out += _feed_text(cfg, feed, n)
    out += [
        "",
        "KEPT ON THE CAMERA, AND FOR HOW LONG",
        f"Reads and images wait in the spool ({camera_dir(cfg)}, or under `edge run --spool DIR`) until the broker "
        "confirms receipt, then are deleted"
        + (" (with no broker configured, nothing confirms receipt: they stay until the retention limit). " if mq.broker is None else ". ")
        + f"Anything older than {cfg.privacy.retention_hours:g} hours is deleted even if it was never delivered "
        "(checked every 5 minutes while the camera runs, and when it starts again).",
        f"An audit log ({audit_log_path(cfg)}) records each read released to a feed (read id, feed, record hash; no "
        "plate text), each retention deletion, each configuration change, the ids of the signing and pseudonym keys "
        "in use (and when they change) and each version of a hotlist (its hash and size, never its plates). "
        "Its entries are hash-chained, so "
        f"editing or removing one is detected by `edge audit verify {audit_log_path(cfg)}`. "
        "The audit log is not trimmed by the retention limit: it holds no plate text, and a trimmed chain could "
        "no longer prove that nothing was removed.",
        "",
        "INTEGRITY",
        f"Every record is signed (Ed25519) with this camera's key ({signing_key_path(cfg)}, readable by its owner only; "
        "created on first start if missing, its fingerprint logged). The signature covers the image hashes. "
        "A receiver checks records and images with `edge verify --keys DIR`.",
        "",
        "NOT DECIDED HERE",
        "How long receivers keep reads, who may search them, and the hotlist's lawful basis are set by the back "
        "office and must be covered by its own part of the DPIA.",
    ]
    return "\n".join(out) + "\n"
