"""`edge receive --broker URL --out DIR`: the reference back-office receiver (see edge/receive.py)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from edge.config import MqttSection
from edge.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "receive",
        help="subscribe to reads, verify, de-duplicate and store them (reference back office)",
        description="Subscribe to published reads, check their signatures, store each read once "
        "(DIR/reads.sqlite, read_id unique) with its images (DIR/images/), and print one JSON line "
        "per new read. Runs until interrupted; the broker keeps reads for it while it is away. Needs --keys DIR "
        "(the cameras' public keys), or --trust-named-keys on a test rig.",
    )
    p.add_argument("--broker", required=True, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for reads.sqlite and images/")
    p.add_argument("--topic", action="append", metavar="PATTERN",
                   help="topic filter, repeatable (default: anpr/+/reads/#, the full feed of every camera with its images); "
                   "add anpr/+/status to keep each camera's audit log head (table audit_heads) as an anchor")
    p.add_argument("--share", metavar="GROUP", help="join the MQTT 5 shared subscription $share/GROUP/... (several receivers)")
    p.add_argument("--client-id", help="MQTT client id (default: edge-receive-<host>-<hash of DIR>); unique per receiver")
    trust = p.add_mutually_exclusive_group()
    trust.add_argument("--keys", type=Path, metavar="DIR",
                       help="trusted camera public keys (the cameras' *.pub files): a read verifies only if one of "
                       "them signed it (and, for a .pub naming its camera, only for that camera). One of --keys or "
                       "--trust-named-keys is required")
    trust.add_argument("--trust-named-keys", action="store_true",
                       help="test rigs only: check each read with the public key it names itself, so verified = 1 "
                       "means intact, not signed by one of your cameras (anyone who can publish can sign with a key "
                       "of their own); such reads are stored with key_trust = 'named'")
    p.add_argument("--retention-hours", type=_hours, metavar="H",
                   help="delete reads, their images and conflicting copies received or taken more than H hours ago "
                   "(checked every 5 minutes; default: keep everything)")
    p.add_argument("--username", help="broker user name")
    p.add_argument("--password-file", type=Path, metavar="FILE", help="file holding the broker password")
    p.add_argument("--ca-file", type=Path, metavar="FILE", help="CA certificate of the broker (mqtts://)")
    p.add_argument("--cert-file", type=Path, metavar="FILE", help="client certificate (TLS client authentication)")
    p.add_argument("--key-file", type=Path, metavar="FILE", help="client certificate's private key")
    p.set_defaults(func=run)


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 24 * 366 * 10:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours above 0 (at most ten years)")
    return value


def _trusted_keys(args: argparse.Namespace) -> dict[str, bytes] | None:
    """The cameras' keys from --keys; None (each read's own key) only when --trust-named-keys asks for it.

    A back office is safe by default: without trusted keys, verified = 1 means only that a read
    is intact, since anyone who can publish can sign with a key of their own, so the receiver
    does not start unless that is asked for by name.
    """
    if args.trust_named_keys:
        print("warning: --trust-named-keys: each read is checked with the public key it names, so verified = 1 shows "
              "a read is intact, not which camera made it (reads are stored with key_trust = 'named'). Give --keys DIR "
              "(the cameras' .pub files) outside a test rig.", file=sys.stderr)
        return None
    if args.keys is None:
        raise ConfigError(
            "no trusted keys: give --keys DIR, a folder holding each camera's public key (the .pub file "
            "next to its signing key, or made by `edge keygen`), so that only reads your cameras signed verify; "
            "on a test rig, pass --trust-named-keys to accept the key each read names (an integrity check only)"
        )
    from edge.signing import load_trusted_keys

    return load_trusted_keys(args.keys)  # refuses a folder without a .pub: every read would then fail to verify


def run(args: argparse.Namespace) -> int:
    from edge.receive import Receiver

    # The same URL rule as a camera's mqtt.broker, with the same message when it is wrong.
    try:
        MqttSection(broker=args.broker)
    except ValueError as err:
        raise ConfigError(f"--broker {args.broker!r}: expected mqtt://host:port or mqtts://host:port") from err
    for name in ("password_file", "ca_file", "cert_file", "key_file"):
        path = getattr(args, name)
        if path is not None and not path.is_file():
            raise ConfigError(f"--{name.replace('_', '-')} {path}: file not found")
    trusted = _trusted_keys(args)

    def emit(row: dict[str, Any]) -> None:
        print(json.dumps(row, separators=(",", ":"), ensure_ascii=False), flush=True)

    receiver = Receiver(
        args.broker, args.out, topics=tuple(args.topic or ()) or ("anpr/+/reads/#",), share=args.share,
        client_id=args.client_id, username=args.username, password_file=args.password_file,
        ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file, trusted_keys=trusted, on_read=emit,
        retention_hours=args.retention_hours,
    )
    # SIGTERM ends the loop like Ctrl-C: the open batch is not acknowledged, so the broker sends it again.
    signal.signal(signal.SIGTERM, lambda *_: receiver.stop())
    try:
        receiver.run()
    except KeyboardInterrupt:
        pass
    counts = receiver.store.counters()
    print(f"edge receive: {counts.get('reads', 0)} read(s) stored, {counts.get('duplicates', 0)} duplicate(s) dropped, "
          f"{counts.get('unverified', 0)} not verifying, {counts.get('conflicts', 0)} conflicting copies kept, "
          f"{counts.get('images', 0)} image(s)", file=sys.stderr)
    receiver.store.close()
    return 0
