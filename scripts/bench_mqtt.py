#!/usr/bin/env python3
"""Benchmark the MQTT link end to end over loopback: spool -> publisher -> mosquitto (TLS) -> `edge receive`.

Starts Debian's mosquitto with the test suite's configuration (test CA, TLS 1.2+, password
file, per-camera ACL), runs `edge receive` as a separate process (so its CPU is counted
apart), and measures in this process the camera side: Spool + Publisher.

    sustained   reads put one by one (each durable, as a camera does) while the publisher
                sends them: reads/s from the first put to the last read stored at the back office
    drain       a backlog spooled during an "outage", then the link comes back with
                drain_rate_per_s at its maximum: seconds until the back office has them all
    CPU         camera-side CPU (this process: spool, paho, TLS) per read; broker and
                receiver CPU per read from /proc

    python3 scripts/bench_mqtt.py                      # default sizes (about a minute on 2 cores)
    python3 scripts/bench_mqtt.py --sustained 500 --backlog 2000 --json

Imagery: an overview of 25 kB and a plate patch of about 3 kB per read (the Met DPIA's sizes),
as separate binary messages (default) or inline base64 (--modes separate,inline).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402

from edge.config import MqttSection  # noqa: E402
from edge.publish import Publisher, inline_images  # noqa: E402
from edge.signing import Signer, write_public_key  # noqa: E402
from edge.spool import Spool  # noqa: E402
from tests.integration.conftest import BACKOFFICE, Broker, make_pki  # noqa: E402
from tests.integration.helpers import make_read  # noqa: E402

OVERVIEW_BYTES = 25_000
CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def count_reads(db: Path) -> int:
    try:
        con = sqlite3.connect(db, timeout=10)
        try:
            return con.execute("SELECT COUNT(*) FROM reads").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def reads_for(signer: Signer, camera: str, n: int, imagery: bool) -> list:
    """Signed reads; with imagery, an overview of 25,000 bytes and a patch of 3,125 (make_read's 1/8)."""
    return [make_read(signer, camera, i, image_bytes=OVERVIEW_BYTES if imagery else 0) for i in range(n)]


class Receiver:
    """`edge receive` in its own process."""

    def __init__(self, broker: Broker, pki, out: Path, prefix: str, keys: Path) -> None:
        self.db = out / "reads.sqlite"
        self.log = open(out.parent / f"{out.name}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge", "-q", "receive", "--broker", broker.url, "--out", str(out),
             "--topic", f"{prefix}/+/reads/#", "--client-id", f"bench-{prefix}", "--username", BACKOFFICE,
             "--password-file", str(pki.password_file(BACKOFFICE)), "--ca-file", str(pki.ca_file), "--keys", str(keys)],
            stdout=subprocess.DEVNULL, stderr=self.log, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        deadline = time.monotonic() + 20
        while not self.db.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # subscribed

    def wait_for(self, n: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if count_reads(self.db) >= n:
                return True
            time.sleep(0.02)
        return False

    def cpu_s(self) -> float:
        return proc_cpu_s(self.proc.pid)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(20)
        self.log.close()


def run_case(name: str, broker: Broker, pki, work: Path, reads: list, mode: str, backlog: bool, camera: str) -> dict:
    prefix = f"b{abs(hash(name)) % 10**6}"
    out = work / f"bo-{prefix}"
    rec = Receiver(broker, pki, out, prefix, work / "keys")
    spool = Spool(work / f"spool-{prefix}", 10**10)
    cfg = MqttSection(
        broker=broker.url, topic_prefix=prefix, username=camera, password_file=pki.password_file(camera),
        ca_file=pki.ca_file, imagery_mode=mode, drain_rate_per_s=10_000, max_inflight=100, heartbeat_s=30,
    )
    pub = Publisher(cfg, camera, spool)
    n = len(reads)
    if backlog:
        for i in range(0, n, 500):  # spooled during the outage
            spool.put_many(reads[i : i + 500])
    broker_cpu0, rec_cpu0, cpu0, t0 = proc_cpu_s(broker.proc.pid), rec.cpu_s(), time.process_time(), time.perf_counter()
    pub.start()
    if not backlog:
        for r in reads:  # a camera: one durable put per read, then notify
            spool.put(r)
            pub.notify()
    ok = pub.flush(600) and rec.wait_for(n, 120)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    broker_cpu, rec_cpu = proc_cpu_s(broker.proc.pid) - broker_cpu0, rec.cpu_s() - rec_cpu0
    pub.stop()
    spool.close()
    rec.stop()
    stored = count_reads(out / "reads.sqlite")
    payload = sum(len(r.record) + sum(map(len, r.images.values())) for r in reads)
    # What goes over the link: inline imagery is base64 (+33%) inside the JSON.
    wire = payload if mode == "separate" else sum(len(inline_images(r.record, r.images)) for r in reads)
    messages = sum(1 + len(r.images) for r in reads) if mode == "separate" else n
    return {
        "case": name, "reads": n, "ok": ok and stored == n, "stored": stored, "seconds": round(elapsed, 2),
        "reads_per_s": round(n / elapsed, 1), "MB_per_s": round(payload / elapsed / 1e6, 2),
        "wire_kB_per_read": round(wire / n / 1e3, 2), "messages_per_read": round(messages / n, 2),
        "camera_cpu_ms_per_read": round(cpu * 1e3 / n, 3), "broker_cpu_ms_per_read": round(broker_cpu * 1e3 / n, 3),
        "receiver_cpu_ms_per_read": round(rec_cpu * 1e3 / n, 3),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sustained", type=int, default=1000, help="reads in each sustained run")
    p.add_argument("--backlog", type=int, default=10_000, help="reads in the drain run")
    p.add_argument("--modes", default="separate", help="imagery modes to compare: separate,inline")
    p.add_argument("--json", action="store_true", help="print one JSON object per case")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        work = Path(tmp)
        (work / "pki").mkdir()
        pki = make_pki(work / "pki")
        (work / "broker").mkdir()
        broker = Broker(work / "broker", pki).start()
        signer = Signer.generate("cam1")
        # The receiver checks against trusted keys, as deployed. Not bound to a camera: the bench's
        # one signer makes reads for each of its camera ids.
        (work / "keys").mkdir()
        write_public_key(work / "keys" / "bench.pub", Ed25519PublicKey.from_public_bytes(signer.public_raw))
        results = []
        try:
            plain = reads_for(signer, "cam1", max(args.sustained, args.backlog), imagery=False)
            results.append(run_case("sustained, no imagery", broker, pki, work, plain[: args.sustained], "separate", False, "cam1"))
            for mode in args.modes.split(","):
                imaged = reads_for(signer, "cam2", args.sustained, imagery=True)
                results.append(run_case(f"sustained, imagery 25+3 kB {mode}", broker, pki, work, imaged, mode, False, "cam2"))
            results.append(run_case(f"drain {args.backlog} backlog, no imagery", broker, pki, work, plain[: args.backlog], "separate", True, "cam3"))
        finally:
            broker.stop()
    for r in results:
        if args.json:
            print(json.dumps(r))
        else:
            print(f"{r['case']:<40} {r['reads']:>6} reads {r['seconds']:>7.2f} s {r['reads_per_s']:>8.1f} reads/s "
                  f"{r['wire_kB_per_read']:>6.2f} kB/read  CPU ms/read: camera {r['camera_cpu_ms_per_read']:.2f} "
                  f"broker {r['broker_cpu_ms_per_read']:.2f} receiver {r['receiver_cpu_ms_per_read']:.2f}"
                  + ("" if r["ok"] else f"  INCOMPLETE: {r['stored']} stored"))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
