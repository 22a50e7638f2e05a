"""Expected plate widths at one camera, in pixels: fitted from sample detections, used to reject odd boxes.

A fixed camera sees plates over a narrow band of sizes (the road is where it is), so
a box far smaller or larger than any plate seen at calibration is almost surely not a
plate. The range is robust quantiles of the observed widths widened by a margin, so a
few outliers in the sample neither narrow nor stretch it much.
"""

from __future__ import annotations

import numpy as np

from edge.calibrate.file import Calibration
from edge.errors import ConfigError

LOW_Q, HIGH_Q = 0.02, 0.98
MARGIN = 1.35  # plates nearer or farther than any in the sample, and two-line plates, still pass
MIN_SAMPLES = 5


def fit_plate_width(widths, low_q: float = LOW_Q, high_q: float = HIGH_Q, margin: float = MARGIN) -> tuple[float, float]:
    """(min, max) plausible plate width in pixels from observed widths."""
    w = np.asarray([v for v in widths if v > 0], dtype=np.float64)
    if len(w) < MIN_SAMPLES:
        raise ConfigError(f"plate size: {len(w)} plates found in the sample frames; need at least {MIN_SAMPLES}")
    lo, hi = np.quantile(w, [low_q, high_q])
    return round(float(lo / margin), 1), round(float(hi * margin), 1)
