"""Credentials never reach the log."""

import pytest

from edge.logs import redact


@pytest.mark.parametrize(
    "url,expected",
    [
        ("rtsp://admin:secret@10.0.0.5:554/stream1", "rtsp://***@10.0.0.5:554/stream1"),
        ("rtsp://admin:p@ss@10.0.0.5/stream1", "rtsp://***@10.0.0.5/stream1"),  # '@' left unencoded in a password
        ("http://cam/video.mjpg?user=a&password=s3cret", "http://cam/video.mjpg?user=a&password=***"),
        ("rtsp://10.0.0.5/live@main", "rtsp://10.0.0.5/live@main"),  # an '@' in the path is not a credential
    ],
)
def test_stream_credentials_are_masked(url, expected):
    assert redact(url) == expected
    assert redact(f"{url} dropped; reconnecting") == f"{expected} dropped; reconnecting"


@pytest.fixture
def root_logging():
    import logging

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def test_a_logged_traceback_is_masked_too(root_logging, capsys):
    # log.exception(...) in the capture loop: the exception's text (an HTTP error, a SourceError) may hold the URL.
    import logging

    from edge.logs import setup_logging

    setup_logging(camera="c1")
    try:
        raise OSError("cannot open rtsp://admin:hunter2@10.0.0.5/stream1")
    except OSError:
        logging.getLogger("edge.capture").exception("capture failed; reconnecting")
    err = capsys.readouterr().err
    assert "capture failed" in err and "rtsp://***@10.0.0.5/stream1" in err and "hunter2" not in err


def test_camera_query_string_passwords_are_masked():
    assert redact("http://cam/videostream.cgi?user=admin&pass=hunter2") == "http://cam/videostream.cgi?user=admin&pass=***"


def test_credentials_in_a_url_with_a_mistyped_scheme_are_masked():
    from edge.logs import redact

    assert redact("no such folder: rtsp:/admin:hunter2@10.0.0.5/stream") == "no such folder: rtsp:/***@10.0.0.5/stream"
