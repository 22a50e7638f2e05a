"""edge.watchdog: the systemd notify protocol, spoken to a real datagram socket."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from edge.watchdog import Notifier


@pytest.fixture
def supervisor(tmp_path: Path):
    path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(0.2)
    yield path, s
    s.close()


def received(s: socket.socket) -> list[str]:
    out = []
    try:
        while True:
            out.append(s.recv(4096).decode())
    except socket.timeout:
        return out


def test_ready_beats_and_stopping_reach_the_supervisor(supervisor, monkeypatch) -> None:
    path, s = supervisor
    n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"})
    assert n.enabled and n.period_s == 2.0
    clock = iter([100.0, 100.1, 100.6, 100.7])
    monkeypatch.setattr("edge.watchdog.time.monotonic", lambda: next(clock))
    n.ready()
    n.alive()  # 100.0: first beat
    n.alive()  # 100.1: within a quarter period, not sent again
    n.alive()  # 100.6: a quarter period (0.5 s) later
    n.stopping()
    assert received(s) == ["READY=1", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]


def test_without_a_watchdog_period_no_beats_are_sent(supervisor) -> None:
    path, s = supervisor
    n = Notifier({"NOTIFY_SOCKET": str(path)})
    n.ready()
    n.alive()
    assert received(s) == ["READY=1"]


def test_a_watchdog_meant_for_another_process_is_ignored(supervisor) -> None:
    path, _ = supervisor
    assert Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000", "WATCHDOG_PID": str(os.getpid() + 1)}).period_s is None
    assert Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000", "WATCHDOG_PID": str(os.getpid())}).period_s == 0.001
    assert Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "soon"}).period_s is None


def test_no_socket_means_no_op_and_a_vanished_supervisor_is_not_an_error(tmp_path: Path, caplog) -> None:
    quiet = Notifier({})
    assert not quiet.enabled
    quiet.ready()  # nothing to send to, nothing raised
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock"), "WATCHDOG_USEC": "1000000"})
    gone.ready()
    gone.alive()
    assert sum("cannot notify the supervisor" in r.message for r in caplog.records) == 1  # said once, not per frame


def test_abstract_socket_names_are_understood(monkeypatch) -> None:
    name = f"edge-test-{os.getpid()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(b"\0" + name.encode())
    s.settimeout(0.2)
    try:
        Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert received(s) == ["READY=1"]
    finally:
        s.close()
