"""Per-camera calibration: lens, scene, plate size and confidence.

`file` reads and writes the calibration TOML; `lens`, `scene`, `platesize` and
`confidence` fit each section and hold the runtime helpers that use it
(undistorting plate crops, region of interest, lanes, speed, direction,
calibrated confidence). `edge calibrate ...` (edge/cli/calibrate.py) drives them.
"""

from edge.calibrate.file import Calibration, Lane, load_calibration, save_calibration

__all__ = ["Calibration", "Lane", "load_calibration", "save_calibration"]
