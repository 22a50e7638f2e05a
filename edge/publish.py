"""MQTT publisher: drains the spool to the broker, deletes a read only when the broker has it.

One thread owns the paho client: it connects (TLS, credentials), runs paho's network loop,
publishes spooled reads oldest first and deletes each one when every message of it is
acknowledged (PUBACK at QoS 1, PUBCOMP at QoS 2). The camera loop never waits on the
network: it writes to the spool and calls `notify()`.

Delivery rules (why no read is lost or sent twice without need):
- A read leaves the spool only after the broker acknowledged all its messages with a
  success reason code. An MQTT 5 refusal (e.g. 135 "Not authorized" from the broker's ACL)
  keeps the read and retries it later; the reason code is logged by name.
- With MQTT 5, a record acknowledged with 16 "No matching subscribers" reached nobody (no
  back office subscribed, and no persistent session to queue it): it is kept and retried
  too (`hold_unrouted`). Image messages nobody subscribed to do not hold their read.
- After a reconnect paho re-sends what was in flight (same packet ids), so the publisher
  does not re-send those from the spool; after a restart (kill -9) nothing is in flight and
  everything in the spool is sent again. The back office drops the rare duplicate by
  `read_id`.
- The first connection of a process starts a clean session (MQTT 5 clean start; with 3.1.1
  a short clean connection first), later reconnects resume it: a stale session from a
  killed process could otherwise hold QoS 2 packet ids that a new process reuses, and the
  broker would drop those messages as duplicates.

Backlog and live reads: at each (re)connection the reads already in the spool are the
backlog and drain oldest first at `drain_rate_per_s`; reads spooled after that are live
and go at once, so a long outage does not delay today's reads behind yesterday's.

Imagery (`imagery_mode`): "separate" (default) sends each image as a binary message on
`<prefix>/<camera>/<feed>/images/<read_id>/<kind>` before the record, so a back office can
take records without images and no image is inflated by base64 (+33%) and JSON escaping;
"inline" adds the base64 images to the record JSON under `image_data` (outside the
signature, whose image hashes still cover them), one message per read.

Paths in the `MqttSection` (password, CA, certificate, key files) must already be resolved
by the caller (the camera resolves them against its config file).
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import ssl
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.config import MqttSection
from edge.errors import ConfigError
from edge.record import to_json_line, with_inline_images
from edge.spool import Spool

log = logging.getLogger(__name__)

NO_MATCHING_SUBSCRIBERS = 16
SESSION_EXPIRY_S = 24 * 3600  # the broker keeps a dropped publisher's session (QoS 2 state) this long
CONNACK_TIMEOUT_S = 15.0
ERROR_REPEAT_S = 60.0  # the same error is logged again at most this often


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(f"broker {url!r}: expected mqtt://host:port or mqtts://host:port")
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, parts.port or (8883 if tls else 1883), tls)

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


_warned_password_files: set[Path] = set()


def read_password(path: Path | None) -> str | None:
    """The broker password: the file's first line (read at each connection, so it can be rotated).

    A file others may read is used (its folder may still shut them out) but logged once: with
    it, any local account can log in to the broker as this camera or back office.
    """
    if path is None:
        return None
    try:
        st = Path(path).stat()
        text = Path(path).read_text(encoding="utf-8").splitlines()[0] if st.st_size else ""
    except OSError as err:
        raise ConfigError(f"mqtt.password_file {path}: cannot read: {err.strerror}") from None
    if os.name == "posix" and st.st_mode & stat.S_IRWXO and Path(path) not in _warned_password_files:
        _warned_password_files.add(Path(path))
        log.warning("mqtt.password_file %s is readable by other users (mode %04o): anyone on this machine can log in "
                    "to the broker with it. Run: chmod 600 %s", path, stat.S_IMODE(st.st_mode), path)
    return text


def tls_context(ca_file: Path | None, cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext:
    """TLS 1.2 or later, the broker's certificate checked against `ca_file` (or the system CAs) and its host name."""
    try:
        ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"mqtt.ca_file {ca_file}: cannot load CA certificate: {getattr(err, 'strerror', None) or err}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        try:
            ctx.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(
                f"mqtt.cert_file {cert_file} / key_file {key_file}: cannot load client certificate: {getattr(err, 'strerror', None) or err}"
            ) from None
    return ctx


def describe_connect_error(err: BaseException, broker: BrokerAddress, ca_file: Path | None) -> str:
    """A sentence a person can act on for a failed TCP/TLS connection."""
    if isinstance(err, ssl.SSLCertVerificationError):
        return (
            f"broker {broker}: its TLS certificate does not verify ({err.verify_message}) "
            f"against {'CA file ' + str(ca_file) if ca_file else 'the system CAs'}"
        )
    if isinstance(err, ssl.SSLError):
        return f"broker {broker}: TLS handshake failed ({err.reason or err}); check mqtt.ca_file, cert_file and key_file"
    if isinstance(err, ConnectionRefusedError):
        return f"broker {broker} is not there: connection refused (is the broker running and listening on that port?)"
    if isinstance(err, socket.gaierror):
        return f"broker {broker}: host name {broker.host!r} not found ({err.strerror})"
    if isinstance(err, (TimeoutError, socket.timeout)):
        return f"broker {broker}: no answer (timed out); check the address, firewall and link"
    if isinstance(err, ConfigError):
        return str(err)
    return f"broker {broker}: cannot connect: {err}"


def describe_reason(rc: ReasonCode | int) -> str:
    if isinstance(rc, ReasonCode):
        return f"{rc.getName()} (reason code {rc.value})"
    return f"reason code {rc}"


class _Client(mqtt.Client):
    """paho's client, except that an MQTT 5 PUBREC refusing a QoS 2 message ends it as refused.

    paho 2.x ignores the PUBREC reason code and goes on with PUBREL; the broker then answers
    PUBCOMP "success", so a message it refused (e.g. 135 Not authorized by its ACL) counted
    as delivered and its read was deleted from the spool. Here such a PUBREC goes to
    on_publish with its reason code, which ends the message's flow as the standard says.
    """

    def _handle_pubrec(self) -> mqtt.MQTTErrorCode:
        packet = self._in_packet["packet"]
        if self._protocol == mqtt.MQTTv5 and len(packet) > 2 and packet[2] >= 0x80:
            mid = int.from_bytes(packet[:2], "big")
            with self._out_message_mutex:
                if mid in self._out_messages:
                    return self._do_on_publish(mid, ReasonCode(PacketTypes.PUBREC, identifier=packet[2]), Properties(PacketTypes.PUBREC))
        return super()._handle_pubrec()


@dataclass
class _Inflight:
    read_id: str
    feed: str
    topic: str
    mids: set[int]
    record_mid: int
    failure: str | None = None


@dataclass
class _Stats:
    published: int = 0  # reads acknowledged and deleted from the spool
    retried: int = 0  # reads sent again after a refusal
    connects: int = 0
    last_error: str | None = None
    connected_since: float | None = None
    started: float = field(default_factory=time.monotonic)


class Publisher:
    """Publishes a camera's spooled reads to an MQTT broker; see the module docstring for the rules."""

    def __init__(
        self,
        cfg: MqttSection,
        camera_id: str,
        spool: Spool,
        status: Callable[[], dict] | None = None,
        on_published: Callable[[str, str], None] | None = None,
        *,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 30.0,
        retry_refused_s: float = 30.0,
        hold_unrouted: bool = True,
    ) -> None:
        if not cfg.broker:
            raise ConfigError("mqtt.broker: no broker URL given (mqtt://host:port or mqtts://host:port)")
        self.cfg = cfg
        self.camera_id = camera_id
        self.spool = spool
        self.broker = BrokerAddress.parse(cfg.broker)
        self._status_fn = status
        self._on_published = on_published
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._retry_refused_s = retry_refused_s
        self._hold_unrouted = hold_unrouted

        self.client_id = cfg.client_id or f"edge-{camera_id}"
        self.status_topic = f"{cfg.topic_prefix}/{camera_id}/status"
        self.v5 = cfg.protocol == "5"

        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._drained = threading.Condition()
        self._stats = _Stats()

        # Owned by the publisher thread only.
        self._connected = False
        self._connack_deadline: float | None = None
        self._next_attempt = 0.0
        self._backoff_s = reconnect_min_s
        self._window_max = cfg.max_inflight
        self._max_packet: int | None = None  # the broker's Maximum Packet Size (MQTT 5 CONNACK), if it gave one
        self._status_mid: int | None = None  # the status message in flight, if any
        self._inflight: dict[int, _Inflight] = {}  # spool seq -> messages awaiting acknowledgement
        self._mid_seq: dict[int, int] = {}  # paho message id -> spool seq
        self._refused: dict[int, float] = {}  # spool seq -> when to try again
        self._acked: list[tuple[str, str]] = []
        self._boundary = 0  # reads with seq <= boundary are backlog
        self._backlog_cursor = 0
        self._live_cursor = 0
        self._tokens = 0.0
        self._last_refill = time.monotonic()
        self._next_heartbeat = 0.0
        self._last_logged: dict[str, float] = {}

    # ---- public API -------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"edge.publish:{self.camera_id}", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """A new read is in the spool."""
        self._wake.set()

    def flush(self, timeout_s: float, stop: threading.Event | None = None) -> bool:
        """Wait until every spooled read is acknowledged; True when the spool is empty.

        `stop` set (a signal while an offline source's last reads wait for a broker that is down)
        ends the wait at once: what is not acknowledged stays spooled for the next start."""
        deadline = time.monotonic() + timeout_s
        self._wake.set()
        with self._drained:
            while self.spool.depth() > 0:
                left = deadline - time.monotonic()
                stopped = stop is not None and stop.is_set()
                if left <= 0 or stopped or self._thread is None or not self._thread.is_alive():
                    return self.spool.depth() == 0
                self._drained.wait(min(left, 0.2))
        return True

    def stop(self, timeout_s: float = 5.0) -> None:
        """Say "offline" on the status topic, disconnect cleanly and end the thread. Unacknowledged reads stay spooled."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def connected(self) -> bool:
        return self._connected

    def status(self) -> dict[str, Any]:
        """What the heartbeat carries (the camera's own status is added to it)."""
        now = time.monotonic()
        age = self.spool.oldest_age_s()
        return {
            "state": "online",
            "camera_id": self.camera_id,
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "uptime_s": round(now - self._stats.started, 1),
            "spool": {
                "depth": self.spool.depth(),
                "oldest_age_s": None if age is None else round(age, 1),
                "bytes": self.spool.size_bytes(),
                "max_bytes": self.spool.max_bytes,
                **self.spool.alarm.as_dict(),
            },
            "mqtt": {
                "published": self._stats.published,
                "in_flight": len(self._inflight),
                "held": len(self._refused),
                "connects": self._stats.connects,
                "connected_s": None if self._stats.connected_since is None else round(now - self._stats.connected_since, 1),
                "last_error": self._stats.last_error,
            },
        }

    # ---- the publisher thread -------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._client is None or (not self._connected and self._connack_deadline is None):
                    self._try_connect()
                    continue
                self._loop_once()
            except Exception:  # a bug or a spool error: say so loudly, keep the reads, start over
                log.exception("publisher error; reads stay in the spool %s; reconnecting", self.spool.path)
                if self._client is not None:
                    self._client.disconnect()
                self._lost("publisher error")
                self._stop.wait(self._reconnect_min_s)
        self._shutdown()

    def _try_connect(self) -> None:
        wait = self._next_attempt - time.monotonic()
        if wait > 0:
            self._wake.wait(min(wait, 1.0))
            self._wake.clear()
            return
        try:
            if not self.v5 and self._stats.connects == 0:
                self._purge_stale_session()
            client = self._ensure_client()
            if self.cfg.username:
                client.username_pw_set(self.cfg.username, read_password(self.cfg.password_file))
            props = None
            if self.v5:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = SESSION_EXPIRY_S
                client.connect(self.broker.host, self.broker.port, self.cfg.keepalive_s,
                               clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY, properties=props)
            else:
                client.connect(self.broker.host, self.broker.port, self.cfg.keepalive_s)
        except (OSError, ConfigError, ssl.SSLError, ValueError) as err:
            self._failed_attempt(describe_connect_error(err, self.broker, self.cfg.ca_file))
            return
        self._connack_deadline = time.monotonic() + CONNACK_TIMEOUT_S

    def _purge_stale_session(self) -> None:
        """MQTT 3.1.1 has no "clean start on the first connection only": end any old session with a clean connect.

        A session left by a killed process may hold QoS 2 packet ids awaiting PUBREL; this
        process numbers its messages from 1 again and the broker would drop those as duplicates.
        """
        done = threading.Event()
        purge = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311, clean_session=True)
        if self.broker.tls:
            purge.tls_set_context(tls_context(self.cfg.ca_file, self.cfg.cert_file, self.cfg.key_file))
        if self.cfg.username:
            purge.username_pw_set(self.cfg.username, read_password(self.cfg.password_file))
        purge.on_connect = lambda *args: done.set()
        purge.connect(self.broker.host, self.broker.port, self.cfg.keepalive_s)
        deadline = time.monotonic() + CONNACK_TIMEOUT_S
        while not done.is_set() and time.monotonic() < deadline:
            if purge.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                break
        purge.disconnect()

    def _ensure_client(self) -> mqtt.Client:
        if self._client is not None:
            return self._client
        protocol = mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311
        kwargs: dict[str, Any] = {} if self.v5 else {"clean_session": False}
        client = _Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=protocol, **kwargs)
        if self.broker.tls:
            client.tls_set_context(tls_context(self.cfg.ca_file, self.cfg.cert_file, self.cfg.key_file))
        client.max_inflight_messages_set(self.cfg.max_inflight + 8)  # our own window is the limit; 8 for status
        client.max_queued_messages_set(0)
        will = json.dumps({"state": "offline", "camera_id": self.camera_id, "reason": "connection lost"})
        client.will_set(self.status_topic, will, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        return client

    def _failed_attempt(self, message: str) -> None:
        self._next_attempt = time.monotonic() + self._backoff_s
        self._report(
            message + f"; retrying in {_secs(self._backoff_s)}; reads are kept in the spool ({self.spool.depth()} waiting)"
        )
        self._backoff_s = min(self._reconnect_max_s, self._backoff_s * 2) * random.uniform(0.8, 1.0)
        self._backoff_s = max(self._backoff_s, self._reconnect_min_s)

    def _loop_once(self) -> None:
        assert self._client is not None
        busy = bool(self._inflight) or self._has_work()
        rc = self._client.loop(timeout=0.005 if busy else 0.05)
        if rc != mqtt.MQTT_ERR_SUCCESS and (self._connected or self._connack_deadline is not None):
            message = f"broker {self.broker}: connection lost ({mqtt.error_string(rc)})"
            if not self._connected and self.broker.tls and self.cfg.cert_file is None:
                # Under TLS 1.3 a broker that requires a client certificate refuses it only after the
                # handshake, so all the client sees is a connection closed before the CONNACK.
                message += " before the broker answered the connect; if it requires client certificates, set mqtt.cert_file and key_file"
            self._lost(message)
            return
        if self._connack_deadline is not None and time.monotonic() > self._connack_deadline:
            self._client.disconnect()
            self._lost(f"broker {self.broker}: no CONNACK within {CONNACK_TIMEOUT_S:.0f} s")
            return
        self._settle_acks()
        if self._connected:
            self._pump()
            self._heartbeat()

    def _lost(self, message: str) -> None:
        was_connected = self._connected
        self._connected = False
        self._connack_deadline = None
        self._stats.connected_since = None
        if was_connected:
            self._report(message + f"; reconnecting; reads are kept in the spool ({self.spool.depth()} waiting)")
            self._next_attempt = time.monotonic() + self._reconnect_min_s * random.uniform(0.5, 1.0)
        else:
            self._failed_attempt(message)

    # paho callbacks: called from self._client.loop(), so on this thread.

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any) -> None:
        self._connack_deadline = None
        if reason.is_failure:
            who = f"user {self.cfg.username!r}" if self.cfg.username else "no user name"
            hint = ""
            if reason.value in (134, 135, 4, 5):
                hint = f"; check mqtt.username ({who}) and mqtt.password_file ({self.cfg.password_file})"
            client.disconnect()
            self._failed_attempt(f"broker {self.broker} refused the connection: {describe_reason(reason)}{hint}")
            return
        # The broker's Receive Maximum (MQTT 5) bounds our window: paho does not enforce it, and
        # mosquitto drops QoS 2 messages beyond it without a word.
        receive_max = getattr(properties, "ReceiveMaximum", None) if properties is not None else None
        self._window_max = min(self.cfg.max_inflight, receive_max or self.cfg.max_inflight)
        # A message over it makes the broker drop the connection, and paho sends it again on each reconnection.
        self._max_packet = getattr(properties, "MaximumPacketSize", None) if properties is not None else None
        self._connected = True
        self._stats.connects += 1
        self._stats.connected_since = time.monotonic()
        self._backoff_s = self._reconnect_min_s
        self._stats.last_error = None
        # Everything spooled now is backlog: paced, oldest first. Later reads are live.
        self._boundary = self.spool.last_seq()
        self._backlog_cursor = 0
        self._live_cursor = max(self._live_cursor, self._boundary)
        self._status_mid = None
        self._tokens = min(self._tokens, 1.0)
        self._last_refill = time.monotonic()
        self._next_heartbeat = 0.0
        depth = self.spool.depth()
        log.info("connected to %s as %s (session %s); %d read(s) waiting in the spool",
                 self.broker, self.client_id, "resumed" if getattr(flags, "session_present", False) else "new", depth)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any) -> None:
        if self._stop.is_set() or not self._connected:
            return
        if getattr(flags, "is_disconnect_packet_from_server", False):
            self._lost(f"broker {self.broker} closed the connection: {describe_reason(reason)}")
        else:
            self._lost(f"broker {self.broker}: connection lost")

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Any) -> None:
        if mid == self._status_mid:
            self._status_mid = None
        seq = self._mid_seq.pop(mid, None)
        if seq is None:
            return  # a status message
        entry = self._inflight.get(seq)
        if entry is None:
            return
        entry.mids.discard(mid)
        value = reason.value if isinstance(reason, ReasonCode) else int(reason)
        if value >= 0x80:
            entry.failure = f"broker refused to take feed {entry.feed!r} on {entry.topic}: {describe_reason(reason)}"
            if value == 135:
                entry.failure += " (the broker's ACL does not let this user publish on that topic)"
        elif value == NO_MATCHING_SUBSCRIBERS and mid == entry.record_mid and self._hold_unrouted:
            entry.failure = (
                f"no subscriber for feed {entry.feed!r} on {entry.topic} (No matching subscribers, reason code 16): "
                "is the back office subscribed?"
            )
        if entry.mids:
            return
        del self._inflight[seq]
        if entry.failure:
            self._refused[seq] = time.monotonic() + self._retry_refused_s
            self._report(entry.failure + f"; {len(self._refused)} read(s) held in the spool, each retried every {_secs(self._retry_refused_s)}")
        else:
            self._acked.append((entry.read_id, entry.feed))

    # ---- sending ----------------------------------------------------------------------

    def _has_work(self) -> bool:
        return self._wake.is_set() or bool(self._acked) or self._backlog_cursor < self._boundary

    def _settle_acks(self) -> None:
        if not self._acked:
            return
        acked, self._acked = self._acked, []
        self.spool.ack_many(acked)
        self._stats.published += len(acked)
        if self._on_published is not None:
            for read_id, feed in acked:
                try:
                    self._on_published(read_id, feed)
                except Exception:  # a failing observer must not stop delivery
                    log.exception("on_published callback failed for read %s", read_id)
        with self._drained:
            self._drained.notify_all()

    def _window(self) -> int:
        # Less 1: room for a status message inside the broker's limit.
        return max(1, self._window_max - 1) - len(self._mid_seq)

    def _pump(self) -> None:
        self._wake.clear()
        now = time.monotonic()
        # Refused reads whose wait is over go first (they are the oldest).
        for seq in sorted(s for s, due in self._refused.items() if due <= now):
            read = self.spool.get(seq)
            if read is None:
                del self._refused[seq]
                continue
            if not self._fits(read):
                return
            del self._refused[seq]
            self._stats.retried += 1
            self._send(seq, read)
        # Live reads: not paced, only bounded by the in-flight window.
        while self._window() > 0:
            batch = self.spool.entries(self._window(), after_seq=self._live_cursor)
            if not batch or not self._send_batch(batch, "_live_cursor"):
                break
        # Backlog: oldest first at drain_rate_per_s.
        rate = self.cfg.drain_rate_per_s
        self._tokens = min(max(1.0, rate * 0.2), self._tokens + (now - self._last_refill) * rate)
        self._last_refill = now
        while self._backlog_cursor < self._boundary and self._tokens >= 1.0 and self._window() > 0:
            batch = self.spool.entries(min(self._window(), int(self._tokens)), after_seq=self._backlog_cursor, upto_seq=self._boundary)
            if not batch:
                self._backlog_cursor = self._boundary
                break
            if not self._send_batch(batch, "_backlog_cursor", paced=True):
                break

    def _send_batch(self, batch: list[tuple[int, Any]], cursor: str, paced: bool = False) -> bool:
        """Send reads in order while they fit the window; False when one did not (the cursor stays before it)."""
        for seq, read in batch:
            if self._sendable(seq):
                if not self._fits(read) or (paced and self._tokens < 1.0):
                    return False
                self._send(seq, read)
                if paced:
                    self._tokens -= 1.0
            setattr(self, cursor, seq)
        return True

    def _fits(self, read: Any) -> bool:
        """Every message of the read fits the in-flight window (a read is sent whole or not at all).

        A read with more messages than the whole window (a record and two images with
        max_inflight 1 or 2, or a broker's small Receive Maximum) goes alone when nothing
        else is in flight; otherwise it would wait for ever and every later read behind it.
        """
        messages = 1 + (len(read.images) if self.cfg.imagery_mode == "separate" else 0)
        return messages <= self._window() or not self._mid_seq

    def _sendable(self, seq: int) -> bool:
        return seq not in self._inflight and seq not in self._refused

    def _send(self, seq: int, read: Any) -> None:
        assert self._client is not None
        base = f"{self.cfg.topic_prefix}/{self.camera_id}/{read.feed}"
        messages: list[tuple[str, bytes, Properties | None]] = []
        if self.cfg.imagery_mode == "separate":
            for kind, data in read.images.items():
                messages.append((f"{base}/images/{read.read_id}/{kind}", data, self._props("application/octet-stream", read.read_id, kind)))
            record = read.record
        else:
            record = inline_images(read.record, read.images)
        messages.append((base, record, self._props("application/json", read.read_id)))
        entry = _Inflight(read.read_id, read.feed, base, set(), record_mid=-1)
        too_big = self._over_packet_limit(messages)
        if too_big:  # held whole, nothing of it sent: retried (and reported) until the limit is raised
            self._refused[seq] = time.monotonic() + self._retry_refused_s
            self._report(f"cannot publish read {read.read_id}: {too_big}; the read is kept in the spool")
            return
        for topic, payload, props in messages:
            info = self._client.publish(topic, payload, qos=self.cfg.qos, retain=False, properties=props)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                # Not queued by paho (too big?): try the whole read again later.
                entry.failure = f"cannot publish read {read.read_id} on {topic}: {mqtt.error_string(info.rc)}"
                continue
            entry.mids.add(info.mid)
            self._mid_seq[info.mid] = seq
            entry.record_mid = info.mid
        if entry.mids:
            self._inflight[seq] = entry
        else:
            self._refused[seq] = time.monotonic() + self._retry_refused_s
            self._report(entry.failure or f"cannot publish read {read.read_id}")

    def _over_packet_limit(self, messages: list[tuple[str, bytes, Properties | None]]) -> str | None:
        """Why a message of the read exceeds the broker's Maximum Packet Size; None when all fit."""
        if self._max_packet is None:
            return None
        for topic, payload, props in messages:
            # Fixed header (at most 5 bytes), topic (2 + length), packet id (2), properties, payload.
            size = 5 + 2 + len(topic.encode("utf-8")) + 2 + len(props.pack() if props is not None else b"\0") + len(payload)
            if size > self._max_packet:
                return f"a {size}-byte message on {topic} exceeds the broker's Maximum Packet Size of {self._max_packet} bytes"
        return None

    def _props(self, content_type: str, read_id: str, kind: str | None = None) -> Properties | None:
        if not self.v5:
            return None
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = content_type
        props.UserProperty = [("read_id", read_id)] + ([("kind", kind)] if kind else [])
        return props

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now < self._next_heartbeat or self._status_mid is not None:
            return  # one status message in flight at most: it has one slot of the window
        self._next_heartbeat = now + self.cfg.heartbeat_s
        payload = self.status()
        if self._status_fn is not None:
            try:
                payload.update(self._status_fn())
            except Exception:  # the heartbeat must go out even if the camera's status fails
                log.exception("camera status callback failed")
        self._publish_status(payload)

    def _publish_status(self, payload: dict[str, Any]) -> None:
        assert self._client is not None
        info = self._client.publish(self.status_topic, json.dumps(payload, default=str), qos=1, retain=True)
        self._status_mid = info.mid

    def _shutdown(self) -> None:
        client = self._client
        if client is None:
            return
        if self._connected:
            self._publish_status({"state": "offline", "camera_id": self.camera_id, "reason": "stopped"})
            deadline = time.monotonic() + 1.0
            # Give the offline status and any last acknowledgements a moment to pass.
            while time.monotonic() < deadline and (client.want_write() or self._inflight):
                if client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                    break
                self._settle_acks()
            self._settle_acks()
            client.disconnect()
            client.loop(timeout=0.1)
        else:
            try:
                client.disconnect()
            except Exception:  # pragma: no cover - nothing to disconnect
                pass
        self._connected = False
        with self._drained:
            self._drained.notify_all()

    def _report(self, message: str) -> None:
        """Log an error clearly, but the same one at most once a minute (a dead link retries often)."""
        self._stats.last_error = message
        now = time.monotonic()
        key = message.split(";")[0]
        if now - self._last_logged.get(key, -1e9) >= ERROR_REPEAT_S:
            self._last_logged[key] = now
            log.error("%s", message)
        else:
            log.debug("%s", message)


def _secs(s: float) -> str:
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"


def inline_images(record: bytes, images: dict[str, bytes]) -> bytes:
    """The record JSON with its images as base64 under `image_data` (not covered by the signature)."""
    if not images:
        return record
    return to_json_line(with_inline_images(json.loads(record), images)).encode("utf-8")
