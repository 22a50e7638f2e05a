"""Liveness for supervisors: the systemd notify protocol (READY, WATCHDOG, STOPPING), no dependency.

Under systemd (`Type=notify`, `WatchdogSec=`) a process finds NOTIFY_SOCKET and WATCHDOG_USEC in
its environment; `edge serve` sets the same two for each camera it runs. A camera says READY=1
once its models are loaded and its source is open, then WATCHDOG=1 from its frame loop while it
is making progress. A supervisor that hears nothing for WATCHDOG_USEC kills and restarts it: a
hung process (a deadlock, a stuck library call) is restarted instead of sitting silent on a pole.
Without NOTIFY_SOCKET every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Mapping

log = logging.getLogger(__name__)

# WATCHDOG=1 is sent at most this often per watchdog period: often enough that one late frame
# never looks like a hang, rarely enough to cost nothing.
BEATS_PER_PERIOD = 4


class Notifier:
    """Sends notify-protocol messages to the socket the environment names (never raises)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.where = env.get("NOTIFY_SOCKET", "")
        self.address = _address(self.where)
        self.period_s = _watchdog_period_s(env)
        self._last_beat = float("-inf")
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self) -> None:
        self.send("READY=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def alive(self) -> None:
        """WATCHDOG=1, rate-limited: call it as often as the loop turns."""
        if self.period_s is None:
            return
        now = time.monotonic()
        if now - self._last_beat >= self.period_s / BEATS_PER_PERIOD:
            self._last_beat = now
            self.send("WATCHDOG=1")

    def send(self, *states: str) -> None:
        if self.address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto("\n".join(states).encode(), self.address)
        except OSError as err:  # the supervisor went away: its problem, not a reason to stop reading plates
            if not self._failed:
                log.warning("cannot notify the supervisor at %s: %s", self.where, err)
                self._failed = True


def _address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):  # Linux abstract namespace: a leading NUL byte instead of '@'
        return b"\0" + value[1:].encode()
    return value if value.startswith("/") else None


def _watchdog_period_s(env: Mapping[str, str]) -> float | None:
    """WATCHDOG_USEC in seconds, if it is meant for this process (WATCHDOG_PID absent or ours)."""
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None
