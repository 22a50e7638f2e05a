import threading
import time

import pytest

from edge.config import load_site_config
from edge.errors import ConfigError
from edge.serve import camera_commands, serve


def site(tmp_path, cameras: list[tuple[str, str]]):
    text = "restart_initial_s = 0.2\nrestart_max_s = 0.4\nstop_timeout_s = 5\n"
    for cam_id, source in cameras:
        (tmp_path / f"{cam_id}.toml").write_text(f'[camera]\nid = "{cam_id}"\n[spool]\ndir = "{tmp_path / "spool"}"\n')
        text += f'[[cameras]]\nconfig = "{cam_id}.toml"\nsource = "{source}"\n'
    path = tmp_path / "site.toml"
    path.write_text(text)
    return load_site_config(path)


def test_each_camera_gets_its_own_run_command(tmp_path):
    children = camera_commands(site(tmp_path, [("north", "/dev/null-a"), ("south", "rtsp://u:p@cam/2")]))
    assert [c.camera_id for c in children] == ["north", "south"]
    # The stream password stays out of the command line, which every local user can see (ps).
    assert children[1].env == {"EDGE_SOURCE": "rtsp://u:p@cam/2"} and not any("u:p@" in a for a in children[1].argv)
    assert children[0].argv[children[0].argv.index("--camera") + 1] == "north"


def test_duplicate_camera_ids_are_refused(tmp_path):
    s = site(tmp_path, [("north", "a")])
    s = s.model_copy(update={"cameras": s.cameras * 2})
    with pytest.raises(ConfigError, match="unique"):
        camera_commands(s)


def test_crashing_camera_is_restarted_with_backoff_and_stop_is_clean(tmp_path, caplog):
    caplog.set_level("INFO")
    stop = threading.Event()
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("code", serve(site(tmp_path, [("north", str(tmp_path / "missing"))]), stop)))
    t.start()
    deadline = time.monotonic() + 30
    while caplog.text.count("exited with status 2") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    t.join(15)
    assert not t.is_alive()
    assert result["code"] == 0
    assert caplog.text.count("exited with status 2") >= 2
    assert "restarting in" in caplog.text


def test_a_camera_whose_source_ends_is_not_restarted_and_serve_returns(tmp_path, caplog):
    caplog.set_level("INFO")
    frames = tmp_path / "frames"
    frames.mkdir()
    import cv2
    import numpy as np

    cv2.imwrite(str(frames / "f0.jpg"), np.zeros((48, 64, 3), np.uint8))
    s = site(tmp_path, [("north", str(frames))])
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("code", serve(s, threading.Event())))
    t.start()
    t.join(120)
    assert not t.is_alive() and result["code"] == 0
    assert "finished its source" in caplog.text and "restarting" not in caplog.text


def _popen_out_of_memory_at(monkeypatch, n: int) -> list:
    """Make serve's n-th process start fail as fork() does without memory; returns the list of starts."""
    import subprocess

    from edge import serve as serve_mod

    real_popen, calls = subprocess.Popen, []

    def popen(*args, **kw):
        calls.append(args)
        if len(calls) == n:
            raise OSError(12, "Cannot allocate memory")
        return real_popen(*args, **kw)

    monkeypatch.setattr(serve_mod.subprocess, "Popen", popen)
    return calls


def test_a_failed_restart_is_retried_and_never_orphans_the_other_cameras(tmp_path, monkeypatch, caplog):
    """fork() failing for lack of memory on one restart must not end the supervisor and leave cameras unsupervised."""
    import sys

    from edge import serve as serve_mod

    s = site(tmp_path, [("north", "a"), ("south", "b")]).model_copy(update={"restart_initial_s": 0.01, "restart_max_s": 0.02})
    crash = serve_mod._Child("north", [sys.executable, "-c", "raise SystemExit(3)"])
    steady = serve_mod._Child("south", [sys.executable, "-c", "import time; time.sleep(60)"])
    monkeypatch.setattr(serve_mod, "camera_commands", lambda site: [crash, steady])
    calls = _popen_out_of_memory_at(monkeypatch, 3)  # the first restart of the crashing camera

    class Stop(threading.Event):
        def wait(self, timeout=None):  # poll quickly; stop once the crashing camera was restarted after the failure
            if len(calls) >= 4:
                self.set()
            return super().wait(0.02)

    try:
        serve(s, Stop())
    finally:
        if steady.proc is not None and steady.proc.poll() is None:
            steady.proc.kill()
            steady.proc.wait()
            pytest.fail("serve returned and left a camera running")
    assert len(calls) >= 4
    assert "Cannot allocate memory" in caplog.text


def test_a_camera_with_no_source_is_refused_before_any_camera_starts(tmp_path):
    """Otherwise it crash-loops for ever with an error that names neither the camera nor its file."""
    (tmp_path / "north.toml").write_text('[camera]\nid = "north"\n')
    (tmp_path / "site.toml").write_text('[[cameras]]\nconfig = "north.toml"\n')
    with pytest.raises(ConfigError) as err:
        camera_commands(load_site_config(tmp_path / "site.toml"))
    assert "north" in str(err.value) and "site.toml" in str(err.value) and "source" in str(err.value)


def test_a_camera_that_cannot_be_started_at_boot_is_retried_and_serve_keeps_running(tmp_path, monkeypatch, caplog):
    """fork() failing for the first camera at boot raised out of serve: the cameras already started went unsupervised."""
    import sys

    from edge import serve as serve_mod

    s = site(tmp_path, [("north", "a"), ("south", "b")]).model_copy(update={"restart_initial_s": 0.01, "restart_max_s": 0.02})
    north = serve_mod._Child("north", [sys.executable, "-c", "import time; time.sleep(60)"])
    south = serve_mod._Child("south", [sys.executable, "-c", "import time; time.sleep(60)"])
    monkeypatch.setattr(serve_mod, "camera_commands", lambda site: [north, south])
    calls = _popen_out_of_memory_at(monkeypatch, 1)  # the very first start, at boot

    class Stop(threading.Event):
        def wait(self, timeout=None):  # poll quickly; stop once the camera that failed to start has been started
            if north.proc is not None:
                self.set()
            return super().wait(0.02)

    try:
        assert serve(s, Stop()) == 0
    finally:
        for child in (north, south):
            if child.proc is not None and child.proc.poll() is None:
                child.proc.kill()
                child.proc.wait()
                pytest.fail(f"camera {child.camera_id} left running")
    assert len(calls) == 3 and "Cannot allocate memory" in caplog.text


def test_two_cameras_sharing_one_audit_log_are_refused(tmp_path):
    """Each camera chains audit entries to its own last hash: two writers interleaved break the chain for good."""
    for cam in ("north", "south"):
        (tmp_path / f"{cam}.toml").write_text(f'[camera]\nid = "{cam}"\n[privacy]\naudit_log = "site-audit.log"\n')
    (tmp_path / "site.toml").write_text(
        '[[cameras]]\nconfig = "north.toml"\nsource = "a"\n[[cameras]]\nconfig = "south.toml"\nsource = "b"\n'
    )
    with pytest.raises(ConfigError) as err:
        camera_commands(load_site_config(tmp_path / "site.toml"))
    assert "north" in str(err.value) and "south" in str(err.value) and "site-audit.log" in str(err.value)


def test_cameras_sharing_a_spool_folder_keep_their_own_audit_logs(tmp_path):
    """The default audit log lives in the camera's own folder under the spool: a shared spool.dir is fine."""
    children = camera_commands(site(tmp_path, [("north", "a"), ("south", "b")]))
    assert [c.camera_id for c in children] == ["north", "south"]


def test_a_hang_up_stops_the_cameras_instead_of_orphaning_them(tmp_path):
    """SIGHUP (the engineer's SSH session dropped) killed serve outright; its cameras, in sessions of their own,
    kept running unsupervised, and the next serve started a second process on each camera's spool."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "serve_sleepers.py"
    script.write_text(
        "import sys, threading\n"
        "from edge import serve as m\n"
        "from edge.config import SiteConfig, SiteCamera\n"
        "kids = [m._Child(c, [sys.executable, '-c', 'import time; time.sleep(60)']) for c in ('north', 'south')]\n"
        "m.camera_commands = lambda site: kids\n"
        "class Ready(threading.Event):\n"
        "    told = False\n"
        "    def wait(self, timeout=None):\n"
        "        if not Ready.told:\n"
        "            Ready.told = True\n"
        "            print(*(k.proc.pid for k in kids), flush=True)\n"
        "        return super().wait(0.05)\n"
        "site = SiteConfig(cameras=(SiteCamera(config='x.toml'),), stop_timeout_s=5)\n"
        "sys.exit(m.serve(site, Ready()))\n"
    )
    serve_proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    pids = []
    try:
        pids = [int(p) for p in serve_proc.stdout.readline().split()]
        assert len(pids) == 2, "serve did not start its cameras"
        serve_proc.send_signal(signal.SIGHUP)
        assert serve_proc.wait(30) == 0
    finally:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)  # reaped by init once serve is gone; still ours to clean up
                alive.append(pid)
            except ProcessLookupError:
                pass
        if serve_proc.poll() is None:
            serve_proc.kill()
            serve_proc.wait()
    assert not alive, f"camera process(es) {alive} outlived serve"


_NOTIFY = (
    "import os, socket, sys, time\n"
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
    "send = lambda m: s.sendto(m.encode(), os.environ['NOTIFY_SOCKET'])\n"
    "send('READY=1')\n"
)


def test_a_camera_that_stops_beating_is_killed_and_restarted_and_a_beating_one_is_left_alone(tmp_path, monkeypatch, caplog):
    """A hung camera process (alive, silent) was never restarted: serve only noticed exits."""
    import sys

    from edge import serve as serve_mod

    s = site(tmp_path, [("north", "a"), ("south", "b")]).model_copy(
        update={"restart_initial_s": 0.01, "restart_max_s": 0.02, "camera_watchdog_s": 0.8})
    hung = serve_mod._Child("north", [sys.executable, "-c", _NOTIFY + "time.sleep(60)"])
    beating = serve_mod._Child("south", [sys.executable, "-c", _NOTIFY + "for _ in range(600):\n    send('WATCHDOG=1'); time.sleep(0.1)"])
    starts: dict[str, list[int]] = {"north": [], "south": []}
    real_start = serve_mod._start

    def start(child):
        real_start(child)
        starts[child.camera_id].append(child.proc.pid)

    give_up = time.monotonic() + 20  # a broken watchdog fails the test instead of hanging it

    class Stop(threading.Event):
        def wait(self, timeout=None):  # poll quickly; stop once the hung camera was restarted
            if len(starts["north"]) >= 2 or time.monotonic() > give_up:
                self.set()
            return super().wait(0.05)

    monkeypatch.setattr(serve_mod, "camera_commands", lambda site: [hung, beating])
    monkeypatch.setattr(serve_mod, "_start", start)
    assert serve(s, Stop()) == 0
    assert len(starts["north"]) >= 2 and len(starts["south"]) == 1  # the beating camera was never touched
    assert "camera north: no sign of life" in caplog.text and "taken as hung" in caplog.text
    assert "camera south: no sign of life" not in caplog.text
    assert hung.env["NOTIFY_SOCKET"] != beating.env["NOTIFY_SOCKET"]


def test_serve_speaks_to_its_own_supervisor_and_hides_it_from_the_cameras(tmp_path, monkeypatch):
    """Under systemd (Type=notify) serve says READY and beats; its cameras must not inherit systemd's socket."""
    import socket
    import sys

    from edge import serve as serve_mod

    path = tmp_path / "systemd.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.3)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    out = tmp_path / "camera_env.txt"
    child = serve_mod._Child("north", [sys.executable, "-c", f"import os; open({str(out)!r}, 'w').write(os.environ.get('NOTIFY_SOCKET', '-'))"])
    monkeypatch.setattr(serve_mod, "camera_commands", lambda site: [child])
    s = site(tmp_path, [("north", "a")]).model_copy(update={"camera_watchdog_s": 0})
    assert serve(s, threading.Event()) == 0  # the camera's source "ended" (exit 0): serve returns
    got = []
    try:
        while True:
            got.append(sock.recv(100).decode())
    except socket.timeout:
        pass
    finally:
        sock.close()
    assert got[0] == "READY=1" and got[-1] == "STOPPING=1"
    assert out.read_text() == "-"  # watchdog off: the camera talks to no one, not to systemd's socket


def test_a_watchdog_shorter_than_a_full_disk_retry_is_refused(tmp_path):
    (tmp_path / "north.toml").write_text('[camera]\nid = "north"\n')
    (tmp_path / "site.toml").write_text('camera_watchdog_s = 10\n[[cameras]]\nconfig = "north.toml"\nsource = "a"\n')
    with pytest.raises(ConfigError, match=r"(?s)site.toml.*camera_watchdog_s = 10.0 must be 0 \(off\) or at least 35"):
        load_site_config(tmp_path / "site.toml")
    (tmp_path / "site.toml").write_text('camera_watchdog_s = 0\n[[cameras]]\nconfig = "north.toml"\nsource = "a"\n')
    assert load_site_config(tmp_path / "site.toml").camera_watchdog_s == 0
