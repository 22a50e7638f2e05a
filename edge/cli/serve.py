"""`edge serve --config site.toml`: every camera of a site, one process each."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.config import load_site_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run every camera of a site, one process each, restarted when they crash",
        description="Start one `edge run` process per [[cameras]] entry of a site file; restart a crashed camera with "
        "exponential backoff; on SIGTERM/SIGINT stop them all, letting each flush what is pending.",
    )
    p.add_argument("--config", type=Path, required=True, help="site TOML file with [[cameras]] tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.serve import serve

    return serve(load_site_config(args.config))
