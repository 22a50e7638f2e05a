"""`edge privacy-report --config FILE`: what leaves this camera, in plain English, for a DPIA."""

from __future__ import annotations

import argparse
import sys

from edge.config import load_camera_config
from edge.privacy import privacy_report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "privacy-report",
        help="summarise what this camera sends, to whom, with which images, kept how long",
        description="Print a plain-language summary of a camera's privacy policy (feeds, fields, imagery, "
        "redaction, retention, audit, signing) for a data protection impact assessment.",
    )
    p.add_argument("--config", metavar="FILE", help="camera TOML file (default: the built-in defaults)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(privacy_report(load_camera_config(args.config)))
    return 0
