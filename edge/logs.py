"""Logging set-up: the camera in every line, credentials never."""

from __future__ import annotations

import logging
import re
import sys

# scheme://user:password@host -> scheme://***@host ; also ?password=... in query strings.
# The user info runs to the LAST '@' before the path: cameras accept an unencoded '@' in a password.
# A mistyped scheme ("rtsp:/user:pw@host") is masked too: it reaches error messages as typed.
_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*:/+)[^/\s]+@")
_QUERY_SECRET = re.compile(r"(?i)((?:password|passwd|pass|pwd|token|key)=)[^&\s]+")


def redact(text: str) -> str:
    """Text with URL credentials and secret query parameters masked."""
    return _QUERY_SECRET.sub(r"\1***", _CREDENTIALS.sub(r"\g<scheme>***@", text))


class _Redacting(logging.Filter):
    def __init__(self, camera: str | None) -> None:
        super().__init__()
        self.camera = camera or "-"

    def filter(self, record: logging.LogRecord) -> bool:
        record.camera = getattr(record, "camera", self.camera)
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, ()
        # log.exception(): the formatter prints exc_text when set, so the traceback is masked too.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def setup_logging(level: int = logging.INFO, camera: str | None = None) -> None:
    """Log to stderr (stdout is for JSON output) with time, level, camera and logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Redacting(camera))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(camera)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
