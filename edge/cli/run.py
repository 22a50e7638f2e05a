"""`edge run`: the per-camera process (see ../shared/INTERFACES.md)."""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import threading
from pathlib import Path

from edge.config import load_camera_config
from edge.errors import ConfigError, SourceError

log = logging.getLogger("edge.run")
SOURCE_ENV = "EDGE_SOURCE"  # `edge serve` hands each camera its source here


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run one camera: capture, detect, read, track, publish",
        description="Run one camera's pipeline. Without --broker, reads are printed as JSON lines on stdout "
        "and kept in the spool; a later run with --broker and the same spool sends them.",
    )
    p.add_argument("--source", default=os.environ.get(SOURCE_ENV) or None,
                   help=f"folder of frames, video file, rtsp:// or http(s):// URL, /dev/videoN or device index (default: ${SOURCE_ENV}, "
                   "then the config's capture.source; the variable keeps a stream password out of the process list)")
    p.add_argument("--camera", required=True, help="camera id (names topics, spool and key files)")
    p.add_argument("--config", type=Path, help="camera TOML file (default: the embedded default)")
    p.add_argument("--broker", help="mqtt://host:port or mqtts://host:port (default: the config's mqtt.broker)")
    p.add_argument("--spool", type=Path, help="spool folder (default: the config's spool.dir)")
    p.add_argument("--once", action="store_true", help="process the source to its end, wait until every read is acknowledged or safely spooled, exit 0")
    p.add_argument("--flush-timeout", type=seconds, default=60.0, metavar="S", help="with --once: seconds to wait for the broker's acknowledgements (default 60)")
    p.set_defaults(func=run)


def seconds(text: str) -> float:
    """argparse type: a finite number of seconds, 0 or more (NaN made the flush wait spin a core for ever)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds, 0 or more")
    return value


def run(args: argparse.Namespace) -> int:
    import cv2

    from edge.camera import Camera
    from edge.capture import open_source

    stop = threading.Event()

    def on_signal(signum, _frame):
        # Only the flag: the frame loop sees it within 0.5 s even while a live stream is silent (the
        # source then yields the time), and closing the source here could block the handler for
        # the stream's open timeout before open passes are flushed.
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    # Before the source opens and the models load (seconds): a stop meanwhile must still end in a clean exit.
    # SIGHUP (the SSH session that started this camera dropped) too: by default it kills the process,
    # losing the open passes and the reads not yet spooled.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    cfg = load_camera_config(args.config)
    cfg = cfg.with_overrides(camera={"id": args.camera}, mqtt={"broker": args.broker}, capture={"source": args.source})
    if not cfg.capture.source:
        where = cfg.source_file or "the embedded default configuration"
        raise ConfigError(f"{where}: camera {cfg.camera.id}: no source: give --source or set capture.source")
    cfg.require_files()  # all of them at once, by key, before anything opens
    try:
        source = open_source(cfg.capture.source, cfg.capture)
    except SourceError as err:
        if args.source is not None or cfg.source_file is None:
            raise
        # From the config file: name it and the key, and where a relative path was looked for (not beside the file).
        spec = cfg.capture.source
        relative = "://" not in spec and not spec.isdigit() and not Path(spec).is_absolute()
        hint = f" (a relative path is taken from the working directory, {Path.cwd()})" if relative else ""
        raise SourceError(f"{cfg.source_file}: capture.source: {err}{hint}") from None
    # OpenCV's own pool would take every core for each resize and colour conversion: one camera per
    # core on a roadside unit would then contend for all of them. It gets the detector's threads.
    cv2.setNumThreads(cfg.detector.threads)
    camera = Camera(cfg, source, spool_dir=args.spool)
    progress = sys.stderr if sys.stderr.isatty() and not source.live else None
    return camera.run(stop, once=args.once, flush_timeout_s=args.flush_timeout, progress=progress)
