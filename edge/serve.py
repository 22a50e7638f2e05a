"""`edge serve`: one OS process per camera, restarted with backoff when it crashes or hangs.

Each camera runs as `python -m edge run --config FILE --camera ID`, so a crash,
a leak or a hung stream in one camera never touches another. Each camera gets a
notify socket of its own (systemd's protocol, `edge.watchdog`): one that sends no
watchdog beat for `camera_watchdog_s` is taken as hung, killed and restarted. On
SIGTERM/SIGINT every camera is asked to stop (it finishes open tracks and flushes
its spool), and is killed only if it outlasts `stop_timeout_s`.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from edge.config import SiteConfig, load_camera_config, repeated
from edge.errors import ConfigError
from edge.cli.run import SOURCE_ENV
from edge.watchdog import Notifier

log = logging.getLogger(__name__)

# A camera that ran this long before exiting had a transient failure: reset its backoff.
_HEALTHY_AFTER_S = 60.0


@dataclass
class _Child:
    camera_id: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to serve's environment
    proc: subprocess.Popen | None = None
    started: float = 0.0
    delay_s: float = 0.0
    restart_at: float = 0.0
    restarts: int = 0
    done: bool = False  # exited 0: its source ended
    notify: socket.socket | None = None  # where its READY and WATCHDOG messages arrive (None: watchdog off)
    last_beat: float = 0.0  # monotonic time of its last message (or of its start)


def camera_commands(site: SiteConfig) -> list[_Child]:
    from edge.privacy import audit_log_path

    children = []
    audit_logs: dict[str, Path] = {}
    base = site.source_file.parent if site.source_file else Path.cwd()
    for i, entry in enumerate(site.cameras):
        path = entry.config if entry.config.is_absolute() else base / entry.config
        try:
            cfg = load_camera_config(path)  # validate every camera before starting any
        except ConfigError as err:  # say which site file and entry named it: a site may list dozens
            raise ConfigError(f"{site.source_file}: cameras[{i}].config = '{entry.config}': {err}") from None
        argv = [sys.executable, "-m", "edge", "run", "--config", str(path), "--camera", cfg.camera.id]
        source = entry.source or cfg.capture.source
        if not source:  # it would only crash-loop, its error naming neither camera nor file
            raise ConfigError(f"{site.source_file}: camera {cfg.camera.id}: no source (set source in its [[cameras]] table or capture.source in {path})")
        # In the environment, not on the command line: stream URLs carry passwords, and every local
        # user can read a process's arguments (ps), while its environment is private to its owner.
        children.append(_Child(cfg.camera.id, argv, {SOURCE_ENV: source}))
        audit_logs.setdefault(cfg.camera.id, audit_log_path(cfg))
    dupes = repeated([c.camera_id for c in children])
    if dupes:
        raise ConfigError(f"{site.source_file}: camera ids must be unique across the site, repeated: {', '.join(dupes)}")
    _check_audit_logs_not_shared(site, audit_logs)
    return children


def _check_audit_logs_not_shared(site: SiteConfig, audit_logs: dict[str, Path]) -> None:
    """Refuse two cameras appending to one audit log: each process chains its entries to its own last
    hash, so their lines interleaved would break the chain at the first entry of the other camera."""
    owners: dict[Path, str] = {}
    for camera_id, path in audit_logs.items():
        where = path.resolve()
        if where in owners:
            raise ConfigError(
                f"{site.source_file}: cameras {owners[where]} and {camera_id} both write the audit log {path}: "
                "give each camera its own privacy.audit_log (or leave it unset: <spool>/<camera>/audit.log)"
            )
        owners[where] = camera_id


def serve(site: SiteConfig, stop: threading.Event | None = None) -> int:
    stop = stop or threading.Event()
    children = camera_commands(site)

    def on_signal(signum, _frame):
        log.info("received %s: stopping %d camera(s)", signal.Signals(signum).name, len(children))
        stop.set()

    if threading.current_thread() is threading.main_thread():
        # SIGHUP too: an engineer's SSH session that drops would otherwise kill serve outright and leave its
        # cameras (in sessions of their own, so deaf to the hang-up) running unsupervised; the next serve
        # would then start a second process on each camera's spool and audit log.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, on_signal)

    supervisor = Notifier()  # serve's own systemd unit, if it runs under one with Type=notify
    sockets = _NotifySockets(site.camera_watchdog_s) if site.camera_watchdog_s > 0 else None
    try:
        for child in children:
            child.delay_s = site.restart_initial_s
            if sockets is not None:
                sockets.open(child)
            _try_start(child, time.monotonic(), site.restart_max_s)
        supervisor.ready()
        while not stop.wait(0.5) and not all(c.done for c in children):
            supervisor.alive()
            now = time.monotonic()
            for child in children:
                if sockets is not None and child.proc is not None:
                    sockets.check(child, now)
                if child.proc is not None and child.proc.poll() is not None:
                    code = child.proc.returncode
                    ran = now - child.started
                    if code == 0:  # its source ended (a file or folder): done, not crashed
                        log.info("camera %s finished its source after %.0f s; not restarted", child.camera_id, ran)
                        child.proc, child.done = None, True
                        continue
                    if ran > _HEALTHY_AFTER_S:
                        child.delay_s = site.restart_initial_s
                    log.warning("camera %s exited with status %s after %.0f s; restarting in %.0f s", child.camera_id, code, ran, child.delay_s)
                    _schedule_restart(child, now, site.restart_max_s)
                elif child.proc is None and not child.done and now >= child.restart_at:
                    child.restarts += 1
                    _try_start(child, now, site.restart_max_s)
    finally:  # whatever ends the loop, no camera is left running unsupervised
        supervisor.stopping()
        _stop_all(children, site.stop_timeout_s)
        if sockets is not None:
            sockets.close()
    return 0


class _NotifySockets:
    """One datagram socket per camera, in a folder only this user can enter, named to the camera
    as NOTIFY_SOCKET with WATCHDOG_USEC: the protocol systemd speaks, so `edge run` needs one way only."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.dir = Path(tempfile.mkdtemp(prefix="edge-serve-"))  # mode 0700: no other user can send a beat
        self._sockets: list[socket.socket] = []

    def open(self, child: _Child) -> None:
        path = self.dir / f"{len(self._sockets)}.sock"  # short: AF_UNIX paths are limited to 107 bytes
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        s.bind(str(path))
        self._sockets.append(s)
        child.notify = s
        child.env = {**child.env, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": str(round(self.timeout_s * 1e6))}

    def check(self, child: _Child, now: float) -> None:
        """Take the camera's messages; kill it when it has been silent for the whole watchdog period."""
        try:
            while child.notify.recv(4096):
                child.last_beat = now
        except BlockingIOError:
            pass
        silent = now - child.last_beat
        if silent > self.timeout_s and child.proc.poll() is None:
            log.error("camera %s: no sign of life for %.0f s (camera_watchdog_s = %g): taken as hung, killing it",
                      child.camera_id, silent, self.timeout_s)
            child.proc.kill()
            child.proc.wait()

    def close(self) -> None:
        for s in self._sockets:
            s.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _schedule_restart(child: _Child, now: float, max_s: float) -> None:
    child.proc = None
    child.restart_at = now + child.delay_s
    child.delay_s = min(child.delay_s * 2, max_s)


def _try_start(child: _Child, now: float, max_s: float) -> None:
    """Start a camera; when that fails, schedule another try (at boot as on a restart)."""
    try:
        _start(child)
    except OSError as err:  # e.g. fork() short of memory: try again later, keep supervising the others
        log.error("camera %s: cannot start %s: %s; retrying in %.0f s", child.camera_id, child.argv[0], err, child.delay_s)
        _schedule_restart(child, now, max_s)


# systemd's notify variables are for serve itself: a camera talks to serve's socket or to no one.
_SUPERVISOR_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _start(child: _Child) -> None:
    env = {k: v for k, v in os.environ.items() if k not in _SUPERVISOR_ENV}
    # Children inherit stderr: their log lines already carry the camera id.
    child.proc = subprocess.Popen(child.argv, stdin=subprocess.DEVNULL, start_new_session=True, env={**env, **child.env})
    child.started = child.last_beat = time.monotonic()
    log.info("camera %s: started (pid %d)", child.camera_id, child.proc.pid)


def _stop_all(children: list[_Child], timeout_s: float) -> None:
    running = [c for c in children if c.proc is not None and c.proc.poll() is None]
    for c in running:
        c.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for c in running:
        try:
            c.proc.wait(max(0.1, deadline - time.monotonic()))
            log.info("camera %s: stopped (status %s)", c.camera_id, c.proc.returncode)
        except subprocess.TimeoutExpired:
            log.error("camera %s: did not stop within %.0f s; killing it (its spool keeps what was read)", c.camera_id, timeout_s)
            c.proc.kill()
            c.proc.wait()
