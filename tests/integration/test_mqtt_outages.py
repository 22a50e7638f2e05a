"""Links drop, brokers restart, units lose power: the back office still ends with every read exactly once."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from edge.signing import Signer
from edge.spool import Spool
from tests.integration.conftest import BACKOFFICE, free_port
from tests.integration.helpers import REPO, PublisherProcess, make_read, wait_for
from tests.integration.mqtt_fixtures import make_publisher, mqtt_cfg, retained_status, start_receiver, stored_ids


def proc_args(broker, pki, spool: Path, camera: str, prefix: str, count: int, *extra: str) -> list[str]:
    return [
        "--spool", str(spool), "--broker", broker.url, "--camera", camera, "--username", camera,
        "--password-file", str(pki.password_file(camera)), "--ca-file", str(pki.ca_file),
        "--prefix", prefix, "--count", str(count), *extra,
    ]


def test_broker_absent_at_start_then_everything_spooled_is_delivered(broker_factory, pki, tmp_path: Path, caplog) -> None:
    port = free_port()
    broker = broker_factory(port=port, start=False)
    signer = Signer.generate("cam1")
    spool = Spool(tmp_path / "spool", 10**8)
    pub = make_publisher(mqtt_cfg(broker, pki, "cam1", "absent"), "cam1", spool)
    caplog.set_level(logging.ERROR, logger="edge.publish")
    pub.start()
    try:
        for i in range(20):  # the camera keeps reading and spooling meanwhile
            spool.put(make_read(signer, "cam1", i, image_bytes=1000))
            pub.notify()
        wait_for(lambda: "is not there" in caplog.text, 10, "the broker-absent error")
        assert f"localhost:{port}" in caplog.text and "connection refused" in caplog.text
        assert spool.depth() == 20
        broker.start()
        rec = start_receiver(broker, pki, tmp_path / "bo", "absent")
        assert pub.flush(30)
        wait_for(lambda: len(stored_ids(rec)) == 20, 10, "all reads at the receiver")
        rec.stop()
    finally:
        pub.stop()
    assert stored_ids(rec) == [f"cam1-{i:06d}" for i in range(20)]


def test_broker_restarted_mid_run(broker, pki, tmp_path: Path) -> None:
    rec = start_receiver(broker, pki, tmp_path / "bo", "restart")
    proc = PublisherProcess(proc_args(broker, pki, tmp_path / "spool", "cam2", "restart", 300, "--rate", "150", "--image-bytes", "2000"),
                            tmp_path / "pub.log").start()
    try:
        wait_for(lambda: len(stored_ids(rec)) >= 60, 20, "the first reads")
        broker.restart()  # SIGTERM: mosquitto saves the receiver's persistent session, then starts again
        assert proc.wait(60) == 0, proc.log()
        wait_for(lambda: len(stored_ids(rec)) == 300, 20, "every read after the restart")
    finally:
        proc.stop()
        rec.stop()
    assert stored_ids(rec) == [f"cam2-{i:06d}" for i in range(300)], proc.log()
    assert "connection lost" in proc.log() or "not there" in proc.log()
    assert rec.store.db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 600


def test_edge_process_killed_with_sigkill_and_restarted(broker, pki, tmp_path: Path) -> None:
    """The publishing unit dies at an arbitrary instant (kill -9), twice; the CLI receiver prints each read once."""
    out = tmp_path / "bo"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # Files, not pipes: a full pipe would stall the receiver mid-run.
    stdout_f, stderr_f = open(tmp_path / "receive.out", "w"), open(tmp_path / "receive.err", "w")
    receiver = subprocess.Popen(
        [sys.executable, "-m", "edge", "receive", "--broker", broker.url, "--out", str(out), "--topic", "kill/+/reads/#",
         "--client-id", "bo-kill", "--username", BACKOFFICE, "--password-file", str(pki.password_file(BACKOFFICE)),
         "--ca-file", str(pki.ca_file), "--trust-named-keys"],  # a test rig: counts reads, not who signed them
        stdout=stdout_f, stderr=stderr_f, env=env, cwd=REPO,
    )
    args = proc_args(broker, pki, tmp_path / "spool", "cam3", "kill", 400, "--rate", "200", "--image-bytes", "2000")
    proc = PublisherProcess(args, tmp_path / "pub.log")
    try:
        wait_for(lambda: (out / "reads.sqlite").exists(), 10, "the receiver's database")
        count = lambda: _count_reads(out)  # noqa: E731
        proc.start()
        wait_for(lambda: count() >= 80, 30, "the first reads")
        proc.kill9()
        will = retained_status(broker, pki, "kill/cam3/status", lambda s: s.get("state") == "offline")
        assert will["reason"] == "connection lost"  # the last will, not a clean stop
        proc.start()
        wait_for(lambda: count() >= 200, 30, "reads after the first restart")
        proc.kill9()
        proc.start()
        assert proc.wait(60) == 0, proc.log()
        wait_for(lambda: count() == 400, 20, "every read at the back office")
    finally:
        proc.stop()
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(20)
        stdout_f.close()
        stderr_f.close()
    stdout, stderr = (tmp_path / "receive.out").read_text(), (tmp_path / "receive.err").read_text()
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    ids = [row["read_id"] for row in lines]
    assert sorted(ids) == [f"cam3-{i:06d}" for i in range(400)], stderr[-2000:]  # one line per read: none twice
    assert all(row["received"]["verified"] == 1 for row in lines)
    assert "400 read(s) stored" in stderr


def _count_reads(out: Path) -> int:
    import sqlite3

    db = sqlite3.connect(out / "reads.sqlite", timeout=10)
    try:
        return db.execute("SELECT COUNT(*) FROM reads").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()
