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
