"""`edge schema`: print the JSON Schema of a published read."""

from __future__ import annotations

import argparse
import sys

from edge.record import load_schema_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of a read record",
        description="Print the JSON Schema (draft 2020-12) that every published read record follows.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(load_schema_text())
    return 0
