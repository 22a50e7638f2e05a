"""`edge verify FILE|- [--keys DIR] [--images DIR]`: check the signatures and image hashes of published reads.

Input is JSON lines, one published read per line (what `edge run` prints, or what a
receiver stored). Images are checked when they are at hand: inline in the read
(`image_data`, base64) or as files in `--images DIR`: `<read_id>/<kind>.jpg` (the
layout `edge receive` writes under its images/ folder) or `<read_id>.<kind>.jpg`.
Exit 0 only when every read verifies.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator, TextIO

from edge.errors import ConfigError
from edge.record import INLINE_IMAGES_FIELD, parse_record
from edge.signing import load_trusted_keys, verify_record


# A read id or image kind that becomes a file name under --images: one plain name, no dot-dot
# (the rule `edge receive` applies to the names it writes).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="check the signatures and image hashes of published reads",
        description="Check published reads (JSON lines) and their images. Without --keys the key each read names is "
        "used: that proves a read is intact, not which camera made it. With --keys only the trusted public keys "
        "(*.pub files, as written by `edge keygen` or on a camera's first start) are accepted. "
        "Exit 0 only if every read verifies.",
    )
    p.add_argument("file", metavar="FILE", help="JSON-lines file of reads, or - for standard input")
    p.add_argument("--keys", metavar="DIR", type=Path, help="folder of trusted public keys (*.pub)")
    p.add_argument("--images", metavar="DIR", type=Path, help="folder of images: <read_id>/<kind>.jpg (as edge receive stores them) or <read_id>.<kind>.jpg")
    p.add_argument("--require-images", action="store_true", help="fail a read whose listed images are not all at hand")
    p.add_argument("--failures-only", action="store_true", help="print only failures and the summary")
    p.set_defaults(func=run)


def _lines(path: str) -> Iterator[tuple[int, str]]:
    try:
        stream: TextIO = sys.stdin if path == "-" else open(path, encoding="utf-8", errors="replace")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read reads file: {err.strerror}") from None
    try:
        for n, line in enumerate(stream, start=1):
            if line.strip():
                yield n, line
    finally:
        if stream is not sys.stdin:
            stream.close()


def _images_for(record: dict[str, Any], folder: Path | None, problems: list[str]) -> dict[str, bytes]:
    images: dict[str, bytes] = {}
    inline = record.get(INLINE_IMAGES_FIELD) or {}
    for kind, data in inline.items() if isinstance(inline, dict) else ():
        try:
            images[kind] = base64.b64decode(str(data), validate=True)
        except (binascii.Error, ValueError):
            problems.append(f"{INLINE_IMAGES_FIELD}.{kind} is not valid base64")
    if folder is not None:
        rid = str(record.get("read_id"))
        if not _PLAIN_NAME.fullmatch(rid):
            # The read comes from outside: "../x" would have us read (and print the hash of) any file.
            problems.append(f"read_id {rid[:60]!r} is not a plain name; no image file looked up for it")
            return images
        for kind in record.get("images") or {}:
            if not _PLAIN_NAME.fullmatch(str(kind)):
                problems.append(f"image kind {str(kind)[:60]!r} is not a plain name; no file looked up for it")
                continue
            # `edge receive` stores DIR/<read_id>/<kind>.jpg; a flat folder of <read_id>.<kind>.jpg works too.
            for path in (folder / rid / f"{kind}.jpg", folder / f"{rid}.{kind}.jpg"):
                if kind not in images and path.is_file():
                    images[kind] = path.read_bytes()
    return images


def check_line(line: str, trusted: dict[str, bytes] | None, folder: Path | None, require_images: bool) -> tuple[dict | None, list[str], list[str]]:
    """(record, problems, image kinds not checked) for one input line."""
    try:
        record = parse_record(line)
    except ValueError as err:
        return None, [f"not valid JSON: {err}"], []
    except RecursionError:  # a hostile line of nested brackets must not end the check of the others
        return None, ["not valid JSON: nested too deeply"], []
    if not isinstance(record, dict):
        return None, ["not a JSON object"], []
    # `edge receive` prints each read with its receipt added (when and how it arrived): not part of
    # what the camera signed, so it is set aside and the record is checked as the camera sent it.
    record.pop("received", None)
    if not isinstance(record.get("images") or {}, dict):  # the checks below take it for {kind: entry}
        return record, [f"'images' is {json.dumps(record['images'])[:60]}, expected an object of image kinds"], []
    problems: list[str] = []
    images = _images_for(record, folder, problems)
    problems += verify_record(record, images, trusted)
    missing = sorted(set(record.get("images") or {}) - set(images))
    if missing and require_images:
        problems.append(f"images listed but not supplied: {', '.join(missing)}")
    return record, problems, missing


def run(args: argparse.Namespace) -> int:
    if args.images is not None and not args.images.is_dir():  # a typo would pass every read as "images not at hand"
        raise ConfigError(f"--images {args.images}: no such folder")
    trusted = load_trusted_keys(args.keys) if args.keys else None
    if trusted is None:
        print("note: no --keys given: each read was checked with the public key it names. This shows the reads "
              "are intact, not which camera made them.", file=sys.stderr)
    total = failed = 0
    unchecked = 0
    for n, line in _lines(args.file):
        total += 1
        record, problems, missing = check_line(line, trusted, args.images, args.require_images)
        rid = record.get("read_id", "?") if record else "?"
        where = f"line {n} read {rid}"
        if record:
            where += f" (camera {record.get('camera_id', '?')}, feed {record.get('feed', '?')})"
        if problems:
            failed += 1
            print(f"{where}: FAILED")
            for p in problems:
                print(f"  - {p}")
            continue
        unchecked += bool(missing)
        if not args.failures_only:
            checked = sorted(set(record.get("images") or {}) - set(missing))
            extra = f"; images match: {', '.join(checked)}" if checked else ""
            extra += f"; images not at hand, not checked: {', '.join(missing)}" if missing else ""
            key = record.get("signature", {}).get("key_id", "?")
            if trusted is None:
                trust = ""
            elif key in trusted.cameras:
                trust = f", trusted for camera {trusted.cameras[key]}"
            else:  # an older .pub without its camera line: the key may sign for any camera id
                trust = ", trusted (key not bound to a camera)"
            print(f"{where}: ok (signed by {key}{trust}{extra})")
    if total == 0:
        print("no reads found in the input", file=sys.stderr)
        return 1
    summary = f"{total - failed} of {total} reads verify"
    if unchecked:
        summary += f"; {unchecked} with images not checked (not supplied)"
    print(summary + ("" if trusted is not None else " (integrity only: keys not checked against trusted keys)"))
    return 1 if failed else 0
