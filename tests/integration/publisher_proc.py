"""A stand-in camera for the integration tests: spools N signed reads and publishes them with edge.publish.

Run as a child process so a test can SIGKILL it at any instant and start it again on
the same spool. Progress (the next read to produce) is kept in <spool>/next.txt, written
after the read is durably spooled, so a restart never produces a read twice (a kill
between the two leaves a read that the spool already holds: put() ignores it).

Exits 0 once every read is produced and acknowledged by the broker.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from edge.config import MqttSection
from edge.logs import setup_logging
from edge.publish import Publisher
from edge.signing import Signer
from edge.spool import Spool
from tests.integration.helpers import make_read


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--spool", type=Path, required=True)
    p.add_argument("--broker", required=True)
    p.add_argument("--camera", required=True)
    p.add_argument("--username")
    p.add_argument("--password-file", type=Path)
    p.add_argument("--ca-file", type=Path)
    p.add_argument("--prefix", default="anpr")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--rate", type=float, default=0.0, help="reads produced per second; 0: all at once")
    p.add_argument("--image-bytes", type=int, default=0)
    p.add_argument("--max-bytes", type=int, default=10**9)
    p.add_argument("--qos", type=int, default=1)
    p.add_argument("--protocol", default="5")
    p.add_argument("--imagery-mode", default="separate")
    p.add_argument("--drain-rate", type=float, default=2000.0)
    p.add_argument("--heartbeat-s", type=float, default=1.0)
    p.add_argument("--hold", action="store_true", help="produce everything before starting the publisher")
    args = p.parse_args()

    setup_logging(logging.INFO, camera=args.camera)
    args.spool.mkdir(parents=True, exist_ok=True)
    signer = Signer.load_or_create(args.spool / "signing.key", args.camera)
    spool = Spool(args.spool, args.max_bytes)
    cfg = MqttSection(
        broker=args.broker, protocol=args.protocol, qos=args.qos, topic_prefix=args.prefix, username=args.username,
        password_file=args.password_file, ca_file=args.ca_file, heartbeat_s=args.heartbeat_s,
        imagery_mode=args.imagery_mode, drain_rate_per_s=args.drain_rate, max_inflight=50,
    )
    publisher = Publisher(
        cfg, args.camera, spool, status=lambda: {"fps": 10.0, "dropped_frames": 0},
        reconnect_min_s=0.2, reconnect_max_s=1.0, retry_refused_s=0.5,
    )
    progress = args.spool / "next.txt"
    start = int(progress.read_text()) if progress.exists() else 0
    print(f"publisher_proc: starting at read {start} of {args.count}; spool holds {spool.depth()}", file=sys.stderr, flush=True)
    if not args.hold:
        publisher.start()
    for i in range(start, args.count):
        spool.put(make_read(signer, args.camera, i, args.image_bytes))
        tmp = progress.with_suffix(".tmp")
        tmp.write_text(str(i + 1))
        os.replace(tmp, progress)
        publisher.notify()
        if args.rate > 0:
            time.sleep(1.0 / args.rate)
    publisher.start()
    while not publisher.flush(1.0):
        pass
    print("publisher_proc: all reads acknowledged", file=sys.stderr, flush=True)
    publisher.stop()
    spool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
