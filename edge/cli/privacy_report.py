"""`edge privacy-report --config FILE`: what leaves this camera (or each camera of a site), in plain English, for a DPIA."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.config import load_camera_config, load_site_config, read_toml
from edge.privacy import privacy_report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "privacy-report",
        help="summarise what this camera sends, to whom, with which images, kept how long",
        description="Print a plain-language summary of a camera's privacy policy (feeds, fields, imagery, "
        "redaction, retention, audit, signing) for a data protection impact assessment. Given a site file "
        "(edge serve), one summary per camera.",
    )
    p.add_argument("--config", metavar="FILE", help="camera or site TOML file (default: the built-in defaults)")
    p.set_defaults(func=run)


def _camera_files(path: Path) -> list[Path]:
    """The camera files a --config names: itself, or each camera of a site file."""
    if "cameras" not in read_toml(path):  # a camera file has no top-level 'cameras'; a site file must
        return [path]
    site = load_site_config(path)
    return [c.config if c.config.is_absolute() else path.parent / c.config for c in site.cameras]


def run(args: argparse.Namespace) -> int:
    if args.config is None:
        sys.stdout.write(privacy_report(load_camera_config(None)))
        return 0
    files = _camera_files(Path(args.config))
    reports = [privacy_report(load_camera_config(f)) for f in files]  # all files valid before any is printed
    sys.stdout.write(("\n" + "=" * 79 + "\n\n").join(reports))
    return 0
