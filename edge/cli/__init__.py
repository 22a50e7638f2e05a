"""The `edge` command. Each subcommand lives in its own module in this package.

A subcommand module defines `register(subparsers)`, which adds its parser and sets
`func` to a function taking the parsed arguments and returning the exit status.
Modules are discovered, so adding a command touches no other file.

Exit statuses: 0 success; 1 the work ran but something failed (an unreadable image,
a read that does not verify); 2 bad usage, configuration or input that stops the run.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from edge import __version__
from edge.errors import EdgeError
from edge.logs import setup_logging

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge",
        description="Number plate recognition for roadside cameras.",
        epilog="Run 'edge COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"edge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug detail in the log")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose else logging.INFO)
    setup_logging(level, camera=getattr(args, "camera", None))
    try:
        return int(args.func(args) or 0)
    except EdgeError as err:
        print(f"edge {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. `| head`): not an error of ours.
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
