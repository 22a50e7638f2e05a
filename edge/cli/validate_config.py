"""`edge validate-config FILE...`: check camera (or site) files and their calibration files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.config import field_reference, load_camera_config, load_site_config, read_toml
from edge.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate-config",
        help="check configuration files and say exactly what is wrong",
        description="Validate camera files (and the calibration files they name), calibration files, or a site file. "
        "Exit 0 when all are valid, 1 otherwise; each error names the file, key, value and what is allowed.",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="camera, calibration or site TOML files")
    p.add_argument("--site", action="store_true", help="the files are site files (edge serve); a file with [[cameras]] is taken as one anyway")
    p.add_argument("--explain", action="store_true", help="print every camera key with its default and meaning")
    p.add_argument("--markdown", action="store_true", help="with --explain: as a Markdown table (the README's reference)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.explain:
        if args.markdown:
            print("| key | default | meaning |\n|---|---|---|")
        for key, default, desc in field_reference():
            if args.markdown:
                print(f"| `{key}` | `{default}` | {desc.replace('|', '/')} |")
            else:
                print(f"{key} = {default}\n    {desc}")
        return 0
    if not args.files:
        print("edge validate-config: error: give at least one FILE (or --explain)", file=sys.stderr)
        return 2
    failed = 0
    for path in args.files:
        try:
            if args.site or _is_site_file(path):
                _check_site(load_site_config(path))
            elif _is_calibration_file(path):
                from edge.calibrate.file import load_calibration

                load_calibration(path)
            else:
                _check_camera(load_camera_config(path))
        except ConfigError as err:
            failed += 1
            print(err, file=sys.stderr)
        else:
            print(f"{path}: ok")
    return 1 if failed else 0


def _is_site_file(path: str) -> bool:
    """A site file (edge serve) lists its cameras in [[cameras]]; a camera file never has that key."""
    try:
        return "cameras" in read_toml(Path(path))
    except ConfigError:
        return False  # the camera loader says what is wrong with the file


def _is_calibration_file(path: str) -> bool:
    from edge.calibrate.file import is_calibration_file

    return is_calibration_file(path)


def _check_camera(cfg) -> None:
    """What `edge run` would refuse at start beyond the file itself: files it names that are missing,
    and a calibration file that is not valid."""
    cfg.require_files()
    calib = cfg.resolve(cfg.camera.calibration)
    if calib is not None:
        from edge.calibrate.file import load_calibration

        load_calibration(calib)


def _check_site(site) -> None:
    """What `edge serve` refuses (camera files, sources, repeated ids), and each camera's calibration file."""
    from edge.serve import camera_commands

    camera_commands(site)
    for entry in site.cameras:
        _check_camera(load_camera_config(entry.config if entry.config.is_absolute() else site.source_file.parent / entry.config))
