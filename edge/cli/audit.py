"""`edge audit verify [FILE] [--config FILE]`: check the camera's hash-chained audit log."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.audit import verify_audit_log
from edge.cli.bench import positive_int
from edge.config import load_camera_config
from edge.errors import ConfigError
from edge.privacy import audit_log_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="check or show the camera's audit log", description="The camera's append-only, hash-chained audit log.")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    v = asub.add_parser("verify", help="detect edited, removed, inserted or reordered entries (exit 1 if any)")
    s = asub.add_parser("show", help="print the log's entries, newest last")
    for q in (v, s):
        q.add_argument("file", nargs="?", metavar="FILE", type=Path, help="audit log (default: from --config)")
        q.add_argument("--config", metavar="FILE", help="camera TOML file naming the log")
    s.add_argument("--last", type=positive_int, metavar="N", help="only the last N entries")
    v.add_argument("--anchor", metavar="HASH", action="append", default=[],
                   help="a head hash recorded off the unit earlier (e.g. from a heartbeat); the log must still hold it. "
                   "Catches a log rewritten from scratch, which the chain alone cannot. Repeatable")
    v.set_defaults(func=run_verify)
    s.set_defaults(func=run_show)


def _path(args: argparse.Namespace) -> Path:
    if args.file:
        path = args.file
    elif args.config:
        path = audit_log_path(load_camera_config(args.config))
    else:
        raise ConfigError("give the audit log FILE or --config FILE")
    if not path.is_file():
        raise ConfigError(f"{path}: audit log not found (or not a file)")
    return path


def run_verify(args: argparse.Namespace) -> int:
    path = _path(args)
    problems = verify_audit_log(path)
    if args.anchor:
        # As copied from a heartbeat or a report: surrounding space or upper-case hex is still the same hash.
        args.anchor = [a.strip().lower() for a in args.anchor]
        hashes = _hashes(path)
        problems += [f"anchored entry {a} is not in the log (the log was rewritten or cut back)" for a in args.anchor if a not in hashes]
    if problems:
        print(f"{path}: TAMPERED or damaged:")
        for p in problems:
            print(f"  - {p}")
        return 1
    lines = sum(1 for line in path.read_bytes().split(b"\n") if line.strip())
    last = json.loads(path.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]) if lines else {}
    print(f"{path}: intact, {lines} entries; head hash {last.get('hash', '-')} (compare with the copy held off the unit)")
    return 0


def _hashes(path: Path) -> set[str]:
    """The `hash` of every readable entry; a tampered line may hold anything there (a list, a number)."""
    found = set()
    for line in path.read_bytes().split(b"\n"):
        if line.strip() and _is_json(line) and isinstance(json.loads(line).get("hash"), str):
            found.add(json.loads(line)["hash"])
    return found


def _is_json(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def run_show(args: argparse.Namespace) -> int:
    path = _path(args)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in lines[-args.last :] if args.last else lines:
        if not _is_json(line.encode()):
            print(f"{'?':>6} (unreadable line: run `edge audit verify`)")
            continue
        e = json.loads(line)
        fields = " ".join(f"{k}={v}" for k, v in e.items() if k not in ("seq", "ts", "event", "prev", "hash"))
        print(f"{e.get('seq')!s:>6} {e.get('ts')} {e.get('event')} {fields}")  # !s: a damaged entry may lack seq
    return 0
