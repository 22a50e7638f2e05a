"""edge: number plate recognition for roadside cameras.

The pipeline, one module per stage: capture -> detect -> read -> track -> context -> spool -> publish.
"""

import os

__version__ = "0.1.0"

# OpenCV and its FFmpeg print their own warnings straight to stderr, without the camera id our log lines
# carry (a dropped RTSP connection, a header quirk). The capture layer reports what matters itself;
# set these variables to see the native detail when debugging a stream.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
