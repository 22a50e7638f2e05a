"""Camera and site configuration: load a TOML file, validate it, explain what is wrong.

Every field has a default, bounds and a description; unknown keys are refused so
a typo fails loudly instead of being ignored. `load_camera_config` is the only
way the engine reads a camera file, and its errors name the file, the key, the
bad value and what is allowed.
"""

from __future__ import annotations

import re
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from edge.errors import ConfigError
from edge.logs import redact

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parent
MODELS_DIR = PROJECT_ROOT / "models"

# MQTT topic levels may not hold '/', '+', '#' or NUL; ids also name files, so keep them plain.
CAMERA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# A camera's context thread can spend 30 s on one step (a full-disk retry), and beats stop only after a
# whole watchdog period of that: a shorter watchdog would restart a camera that is merely waiting.
MIN_WATCHDOG_S = 35.0
CAMERA_ID_RULE = "1 to 64 characters: letters, digits, '_', '-' and '.', starting with a letter or digit"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_empty_path(cls, v: Any, info: ValidationInfo) -> Any:
        # "" would become Path("."), the config file's own folder, and fail later as a folder taken for a file.
        if v == "" and cls.model_fields[info.field_name].annotation in (Path, Path | None):
            raise ValueError("empty path: leave the key out for its default")
        return v


def repeated(names: list[str]) -> list[str]:
    """The names that occur more than once, sorted (for "must be unique" errors)."""
    return sorted({n for n in names if names.count(n) > 1})


def check_camera_id(value: str) -> str:
    if not CAMERA_ID.fullmatch(value):  # match() would let "$" pass a trailing newline
        raise ValueError(f"camera id {value!r} is not allowed: use {CAMERA_ID_RULE}")
    return value


class CameraSection(_Section):
    id: str = Field("camera", description="Camera id: names MQTT topics, spool and key files. " + CAMERA_ID_RULE)
    site_id: str = Field("site", description="Site (roadside unit) id carried in every read")
    latitude: float | None = Field(None, ge=-90, le=90, description="Camera latitude, WGS84 degrees")
    longitude: float | None = Field(None, ge=-180, le=180, description="Camera longitude, WGS84 degrees")
    heading_deg: float | None = Field(None, ge=0, lt=360, description="Compass bearing the camera looks along")
    calibration: Path | None = Field(None, description="Calibration file (TOML) made by `edge calibrate`; relative to this file")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return check_camera_id(v)


class CaptureSection(_Section):
    source: str | None = Field(None, description="Folder, video file, rtsp:// or http(s):// URL, /dev/videoN or index; `--source` (or `$EDGE_SOURCE`, which keeps a stream password out of `ps`) overrides")
    fps: float = Field(10.0, gt=0, le=240, description="Frame rate assumed for a folder of frames (timestamps) when file times are not used")
    use_file_times: bool = Field(False, description="Folder sources: take timestamps from file modification times")
    reconnect_initial_s: float = Field(1.0, gt=0, le=60, description="First wait before reopening a dropped stream")
    reconnect_max_s: float = Field(30.0, gt=0, le=600, description="Longest wait between reopen attempts (exponential backoff)")
    open_timeout_s: float = Field(10.0, gt=0, le=120, description="Give up opening a stream after this long, then retry")
    queue_frames: int = Field(2, ge=1, le=8, description="Frames held between capture and inference for live sources; older ones are dropped and counted")

    @model_validator(mode="after")
    def _backoff_order(self) -> CaptureSection:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError(f"reconnect_max_s = {self.reconnect_max_s} must be at least reconnect_initial_s = {self.reconnect_initial_s}")
        return self


class DetectorSection(_Section):
    model: Path = Field(Path("detector.onnx"), description="Detector ONNX file; a bare name is looked up in models/, a path with a folder is relative to this file")
    threshold: float = Field(0.4, ge=0.01, le=0.99, description="Minimum detection score")
    nms_iou: float = Field(0.45, ge=0.05, le=0.95, description="Overlap above which the weaker of two boxes is dropped")
    motion_gating: bool = Field(True, description="Skip detection when the scene has not changed since the last detection")
    motion_threshold: float = Field(0.002, ge=0, le=0.1, description="Fraction of changed pixels (on a small grey thumbnail) that counts as motion; above 0.1 (a near vehicle's share) detection would almost never run")
    threads: int = Field(1, ge=1, le=16, description="onnxruntime intra-op threads for this camera's detector; also OpenCV's threads for its image work")


class ReaderBackend(str, Enum):
    ONNX = "onnx"
    TESSERACT = "tesseract"


class ReaderSection(_Section):
    backend: ReaderBackend = Field(ReaderBackend.ONNX, description="'onnx' (the project's model) or 'tesseract'")
    model: Path = Field(Path("reader.onnx"), description="Reader ONNX file; a bare name is looked up in models/, a path with a folder is relative to this file")
    countries: tuple[str, ...] = Field(("GB",), description="Plate grammars to prefer, most likely first (ISO 3166 alpha-2, e.g. GB, IE, FR)")
    min_confidence: float = Field(0.3, ge=0, le=1, description="Readings below this (calibrated) confidence are not published")
    max_alternatives: int = Field(3, ge=0, le=10, description="Ranked alternative readings kept per read")
    threads: int = Field(1, ge=1, le=16, description="onnxruntime intra-op threads for this camera")

    @field_validator("countries")
    @classmethod
    def _upper(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from edge.plates.grammars import COUNTRIES

        out = tuple(c.upper() for c in v)
        for c in out:
            if c not in COUNTRIES:
                raise ValueError(f"no plate grammar for country {c!r}; known: {', '.join(COUNTRIES)}")
        return out


class TrackingSection(_Section):
    timeout_s: float = Field(1.5, gt=0, le=60, description="A track with no new observation for this long is finished and emitted")
    min_iou: float = Field(0.05, ge=0, le=1, description="Least box overlap (after motion prediction) to join a track")
    min_text_similarity: float = Field(0.5, ge=0, le=1, description="Least text similarity to join a track when boxes overlap weakly")
    min_frames: int = Field(1, ge=1, le=50, description="Tracks seen in fewer frames are dropped as noise")
    max_tracks: int = Field(32, ge=1, le=1000, description="Open tracks held at once; the oldest is finished first")


class ImageryLevel(str, Enum):
    NONE = "none"
    PATCH = "patch"
    OVERVIEW = "patch_and_overview"


class ImagerySection(_Section):
    level: ImageryLevel = Field(ImageryLevel.OVERVIEW, description="'none', 'patch' or 'patch_and_overview'")
    overview_width: int = Field(640, ge=160, le=3840, description="Overview image width in pixels (height keeps the aspect)")
    overview_jpeg_quality: int = Field(60, ge=10, le=100, description="JPEG quality of the overview (about 25 kB at the defaults)")
    patch_jpeg_quality: int = Field(85, ge=10, le=100, description="JPEG quality of the plate patch")
    patch_margin: float = Field(0.15, ge=0, le=1, description="Margin around the plate box in the patch, as a fraction of its size")
    redact_bystanders: bool = Field(True, description="Pixelate bystanders' faces and other vehicles' plates in the overview (never the plate being read)")
    redact_min_face_px: int = Field(12, ge=6, le=48, description="Smallest face, in overview pixels, that redaction looks for; larger is faster (about 0.2 s per 1080p read at 12, 0.06 s at 24 on one core) but misses smaller faces")


class FeedKind(str, Enum):
    FULL = "full"
    PSEUDONYMISED = "pseudonymised"
    HITS_ONLY = "hits_only"


RESERVED_FEED_NAMES = frozenset({"status"})


class FeedConfig(_Section):
    name: str = Field(description="Feed name; its MQTT topic is <prefix>/<camera>/<name> ('reads' is the full feed's)")
    kind: FeedKind = Field(description="'full', 'pseudonymised' (keyed HMAC instead of plate) or 'hits_only' (hotlist matches)")
    imagery: bool = Field(True, description="Send imagery on this feed (within the camera's imagery level)")
    hmac_key_file: Path | None = Field(None, description="Secret key for pseudonymised plates (required for 'pseudonymised')")
    hotlist_file: Path | None = Field(None, description="Plates of interest, one per line (required for 'hits_only')")

    @field_validator("name")
    @classmethod
    def _topic_safe(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", v):
            raise ValueError(f"feed name {v!r} must be 1-32 lower-case letters, digits, '_' or '-'")
        if v in RESERVED_FEED_NAMES:
            # A feed's reads go to <prefix>/<camera>/<name>: one named "status" would send plates to the
            # heartbeat topic, which monitoring accounts may read (deploy/mosquitto/edge.acl).
            raise ValueError(f"feed name {v!r} is reserved for the camera's {v} topic; choose another name")
        return v

    @model_validator(mode="after")
    def _needs(self) -> FeedConfig:
        if self.kind is FeedKind.PSEUDONYMISED and self.hmac_key_file is None:
            raise ValueError("a 'pseudonymised' feed needs hmac_key_file")
        if self.kind is FeedKind.HITS_ONLY and self.hotlist_file is None:
            raise ValueError("a 'hits_only' feed needs hotlist_file")
        return self


class PrivacySection(_Section):
    feeds: tuple[FeedConfig, ...] = Field(
        (FeedConfig(name="reads", kind=FeedKind.FULL),), description="Feeds this camera publishes; see [[privacy.feeds]]"
    )
    retention_hours: float = Field(72.0, gt=0, le=24 * 366, description="Spooled reads and images older than this are deleted (the audit log holds no plate text and is never trimmed, so its chain stays provable)")
    audit_log: Path | None = Field(None, description="Append-only hash-chained audit log; default <spool>/<camera>/audit.log")

    @field_validator("feeds")
    @classmethod
    def _unique(cls, v: tuple[FeedConfig, ...]) -> tuple[FeedConfig, ...]:
        dupes = repeated([f.name for f in v])
        if dupes:
            raise ValueError(f"feed names must be unique, repeated: {', '.join(dupes)}")
        return v


class SigningSection(_Section):
    key_file: Path | None = Field(None, description="Ed25519 private key (PEM, mode 0600); default <spool>/<camera>/signing.key, created on first start")


class MqttSection(_Section):
    broker: str | None = Field(None, description="mqtt://host:port or mqtts://host:port; `--broker` overrides; none: reads go to stdout and the spool")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version")
    qos: Literal[1, 2] = Field(1, description="Quality of service for reads")
    topic_prefix: str = Field("anpr", description="First topic level")
    client_id: str | None = Field(None, description="MQTT client id; default edge-<camera id>")
    username: str | None = Field(None, description="Broker user name")
    password_file: Path | None = Field(None, description="File holding the broker password (keeps it out of configs and logs)")
    ca_file: Path | None = Field(None, description="CA certificate that signed the broker's certificate (TLS)")
    cert_file: Path | None = Field(None, description="Client certificate (TLS client authentication)")
    key_file: Path | None = Field(None, description="Client certificate's private key")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive interval")
    heartbeat_s: float = Field(30.0, ge=1, le=3600, description="Status heartbeat interval")
    imagery_mode: Literal["inline", "separate"] = Field("separate", description="Imagery as base64 in the record or as binary messages on <topic>/images/<read_id>/<kind>")
    drain_rate_per_s: float = Field(50.0, gt=0, le=10000, description="Most spooled backlog reads sent per second after an outage")
    max_inflight: int = Field(20, ge=1, le=1000, description="Unacknowledged messages in flight")

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v or any(c in v for c in "+#\0") or v.startswith("/") or v.endswith("/"):
            raise ValueError(f"topic prefix {v!r} may not be empty, hold '+', '#' or start/end with '/'")
        return v

    @field_validator("broker")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        # The publisher logs in with username and password_file only; it would drop these silently.
        if parts.username is not None:
            raise ValueError("broker may not hold a user name or password: use mqtt.username and mqtt.password_file")
        try:
            port = parts.port
        except ValueError:  # not a number, or over 65535
            port = -1
        if not re.match(r"^mqtts?://[^/\s]+/?$", v) or not parts.hostname or (port is not None and not 1 <= port <= 65535):
            raise ValueError(f"broker must look like mqtt://host:port or mqtts://host:port (port 1-65535), got {v!r}")
        return v

    @model_validator(mode="after")
    def _cert_pair(self) -> MqttSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.password_file is not None and not self.username:  # the publisher logs in only with a user name
            raise ValueError(f"password_file = '{self.password_file}' needs username (the broker login name)")
        # The publisher sets up TLS for mqtts:// only; with mqtt:// these would be ignored and traffic sent in clear.
        if self.broker is not None and self.broker.startswith("mqtt://") and (self.ca_file or self.cert_file):
            raise ValueError(f"ca_file, cert_file and key_file are for TLS, but broker = {self.broker!r}: use mqtts://")
        return self


class SpoolSection(_Section):
    dir: Path = Field(Path("spool"), description="Spool folder (SQLite, WAL); relative to the working directory")
    max_mb: float = Field(512.0, ge=1, le=1_000_000, description="Spool size cap; imagery is dropped before reads when it is reached")


class CameraConfig(_Section):
    """One camera: everything its process needs."""

    camera: CameraSection = CameraSection()
    capture: CaptureSection = CaptureSection()
    detector: DetectorSection = DetectorSection()
    reader: ReaderSection = ReaderSection()
    tracking: TrackingSection = TrackingSection()
    imagery: ImagerySection = ImagerySection()
    privacy: PrivacySection = PrivacySection()
    signing: SigningSection = SigningSection()
    mqtt: MqttSection = MqttSection()
    spool: SpoolSection = SpoolSection()
    # Where the file was read from, so relative paths in it resolve against its folder.
    source_file: Path | None = Field(None, exclude=True)

    def resolve(self, path: Path | None) -> Path | None:
        """A path from the config, relative to the config file's folder."""
        if path is None or path.is_absolute() or self.source_file is None:
            return path
        return self.source_file.parent / path

    def missing_files(self) -> list[str]:
        """One line per file the configuration names that does not exist, naming the key, its value and
        where it was looked for (what `edge run` would refuse at start; checked by `edge validate-config`)."""
        named: list[tuple[str, Path | None]] = [("camera.calibration", self.camera.calibration)]
        for i, feed in enumerate(self.privacy.feeds):
            named += [(f"privacy.feeds[{i}].hmac_key_file", feed.hmac_key_file), (f"privacy.feeds[{i}].hotlist_file", feed.hotlist_file)]
        named += [(f"mqtt.{k}", getattr(self.mqtt, k)) for k in ("password_file", "ca_file", "cert_file", "key_file")]
        where = f"{self.source_file}: " if self.source_file is not None else ""
        return [
            f"{where}{key} = '{value}': {self.resolve(value)} not found"
            for key, value in named
            if value is not None and not self.resolve(value).is_file()  # type: ignore[union-attr]
        ]

    def require_files(self) -> None:
        """Raise ConfigError naming every missing file (see missing_files)."""
        missing = self.missing_files()
        if missing:
            raise ConfigError("\n".join(missing))

    def model_path(self, path: Path) -> Path:
        """A model path: absolute, relative to the config file, or a bare name in models/."""
        if path.is_absolute():
            return path
        if self.source_file is not None and len(path.parts) > 1:
            return self.source_file.parent / path
        return MODELS_DIR / path

    def with_overrides(self, **sections: dict[str, Any]) -> CameraConfig:
        """A copy with some fields replaced (from the command line), validated again."""
        data = self.model_dump()
        for section, values in sections.items():
            data[section].update({k: v for k, v in values.items() if v is not None})
        return _validate(CameraConfig, data, self.source_file, "command line")


class SiteCamera(_Section):
    config: Path = Field(description="Camera config file, relative to the site file")
    source: str | None = Field(None, description="Overrides the camera file's capture.source")


class SiteConfig(_Section):
    """`edge serve`: several cameras, one process each."""

    cameras: tuple[SiteCamera, ...] = Field(min_length=1, description="[[cameras]] tables")
    restart_initial_s: float = Field(1.0, gt=0, le=60, description="First wait before restarting a crashed camera process")
    restart_max_s: float = Field(60.0, gt=0, le=3600, description="Longest wait between restarts")
    stop_timeout_s: float = Field(15.0, gt=0, le=300, description="Time a camera has to flush and exit on SIGTERM before it is killed")
    camera_watchdog_s: float = Field(60.0, ge=0, le=3600, description=f"A camera process that sends no watchdog beat for this long is taken as hung, killed and restarted (0: off; else at least {MIN_WATCHDOG_S:g}: a full-disk retry holds a camera's context thread on one step for up to 30 s)")
    source_file: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _backoff_order(self) -> SiteConfig:
        if self.restart_max_s < self.restart_initial_s:
            raise ValueError(f"restart_max_s = {self.restart_max_s} must be at least restart_initial_s = {self.restart_initial_s}")
        if 0 < self.camera_watchdog_s < MIN_WATCHDOG_S:
            raise ValueError(f"camera_watchdog_s = {self.camera_watchdog_s} must be 0 (off) or at least {MIN_WATCHDOG_S:g}")
        return self


def format_validation_errors(err: ValidationError, where: str, what: str = "configuration") -> str:
    """One line per error: key, bad value, what is allowed (shared with calibration files)."""
    lines = [f"{where}: invalid {what}"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (misspelt, or in the wrong [section]?)"
        value = e.get("input")
        shown = "" if e["type"] in ("missing", "extra_forbidden") or isinstance(value, dict) else f" = {value!r}"
        lines.append(redact(f"  {key}{shown}: {msg}"))  # a bad broker or stream URL may hold a password
    return "\n".join(lines)


def _validate(model: type[BaseModel], data: dict[str, Any], path: Path | None, where: str | None = None):
    try:
        obj = model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_errors(err, where or str(path))) from None
    return obj.model_copy(update={"source_file": path}) if path is not None else obj


def read_toml(path: Path, what: str = "configuration file") -> dict[str, Any]:
    """A TOML file as a dict; ConfigError naming the file when it is missing, unreadable or not TOML."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    except UnicodeDecodeError as err:  # TOML is UTF-8; an editor may have saved Latin-1 or UTF-16
        line = err.object[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not valid TOML: line {line} is not UTF-8 text; save the file as UTF-8") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None


def load_camera_config(path: str | Path | None) -> CameraConfig:
    """The validated camera configuration from a TOML file, or the embedded default when `path` is None."""
    if path is None:
        return CameraConfig()
    path = Path(path)
    return _validate(CameraConfig, read_toml(path), path)


def load_site_config(path: str | Path) -> SiteConfig:
    path = Path(path)
    data = read_toml(path)
    if "cameras" not in data and "camera" in data:  # a camera file given where a site file belongs
        raise ConfigError(f"{path}: this is a camera file ([camera]); a site file lists its cameras in "
                          "[[cameras]] (see examples/site.toml), and `edge run --config` runs one camera")
    return _validate(SiteConfig, data, path)


def field_reference(model: type[BaseModel] = CameraConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, description) for every field, for the README and `edge validate-config --explain`."""
    rows: list[tuple[str, str, str]] = []
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        ann = info.annotation
        key = f"{prefix}{name}"
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(field_reference(ann, key + "."))
            continue
        default = info.get_default(call_default_factory=True)
        if isinstance(default, Enum):
            default = default.value
        elif isinstance(default, tuple) and default and isinstance(default[0], BaseModel):
            default = [d.model_dump(mode="json", exclude_defaults=True) for d in default]
        elif isinstance(default, tuple):
            default = list(default)
        elif isinstance(default, Path):
            default = str(default)
        bounds = [f"{m.__class__.__name__.lower()} {getattr(m, m.__class__.__name__.lower(), '')}" for m in info.metadata]
        desc = (info.description or "") + (f" ({', '.join(bounds)})" if bounds else "")
        rows.append((key, repr(default) if default is not None else "none", desc))
    return rows

