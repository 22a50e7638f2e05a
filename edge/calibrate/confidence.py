"""Calibrated confidence: map the reader's raw score to P(the read is exactly right).

A raw score of 0.9 from a CTC reader does not mean nine reads in ten are right.
Isotonic regression (pool-adjacent-violators) fits the best non-decreasing map from
raw score to observed exactness on labelled reads; it keeps the reader's ranking and
assumes nothing about the shape. The map is stored as knots and applied by linear
interpolation, flat beyond the end knots.

Expected calibration error (ECE, 10 equal-width bins) measures how far stated
confidence is from observed accuracy: sum over bins of |accuracy - mean confidence|
weighted by the bin's share of reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.calibrate.file import Calibration

ECE_BINS = 10
MAX_KNOTS = 64  # enough for a smooth map; keeps the calibration file readable


def isotonic_fit(scores, correct, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: the non-decreasing step fit of `correct` (0/1) on `scores`.

    Returns (x, y) knots: x the distinct scores (block means), y the fitted probability.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    c = np.asarray(correct, dtype=np.float64).ravel()
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if len(s) == 0 or len(s) != len(c) or len(s) != len(w):
        raise ValueError(f"need equal, non-zero numbers of scores and outcomes, got {len(s)} and {len(c)}")
    order = np.argsort(s, kind="stable")
    s, c, w = s[order], c[order], w[order]
    # Tie scores first: equal raw scores must map to one value.
    uniq, start = np.unique(s, return_index=True)
    wsum = np.add.reduceat(w, start)
    ysum = np.add.reduceat(c * w, start)
    # Blocks: [weight, weighted y sum, weighted x sum]; merge while the last two are out of order.
    blocks: list[list[float]] = []
    for x, wt, yt in zip(uniq, wsum, ysum):
        blocks.append([wt, yt, x * wt])
        # Pool on ties too (>=): equal neighbouring levels carry no information, only knots.
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][0] >= blocks[-1][1] / blocks[-1][0]:
            w2, y2, x2 = blocks.pop()
            blocks[-1][0] += w2
            blocks[-1][1] += y2
            blocks[-1][2] += x2
    xs = np.array([b[2] / b[0] for b in blocks])
    ys = np.array([b[1] / b[0] for b in blocks])
    return xs, ys


def thin_knots(xs: np.ndarray, ys: np.ndarray, max_knots: int = MAX_KNOTS) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_knots` knots, keeping the ends; stays monotone because it only drops knots."""
    if len(xs) <= max_knots:
        return xs, ys
    keep = np.unique(np.round(np.linspace(0, len(xs) - 1, max_knots)).astype(int))
    return xs[keep], ys[keep]


def apply_knots(knots: tuple[tuple[float, ...], tuple[float, ...]] | None, raw) -> np.ndarray:
    raw = np.asarray(raw, dtype=np.float64)
    if knots is None:
        return raw.copy()
    xs, ys = (np.asarray(k, dtype=np.float64) for k in knots)
    return np.clip(np.interp(raw, xs, ys), 0.0, 1.0)


def calibrate_confidence(cal: Calibration | None, raw: float) -> float:
    """The calibrated confidence of one raw reader score (the raw score when no map is stored)."""
    if cal is None or cal.confidence_knots is None:
        return float(raw)
    return float(apply_knots(cal.confidence_knots, raw))


def expected_calibration_error(confidence, correct, bins: int = ECE_BINS) -> float:
    """ECE with `bins` equal-width bins over [0, 1]."""
    p = np.asarray(confidence, dtype=np.float64).ravel()
    c = np.asarray(correct, dtype=np.float64).ravel()
    if len(p) == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(c[m].mean() - p[m].mean())
    return float(ece)


@dataclass(frozen=True)
class ConfidenceFit:
    knots: tuple[tuple[float, ...], tuple[float, ...]]
    fitted_on: int  # reads used to fit (train split)
    held_back: int  # reads used to measure (test split)
    ece_raw: float  # on the held-back reads
    ece_calibrated: float
    accuracy_held_back: float

    def summary(self) -> dict[str, object]:
        return {
            "fitted_on": self.fitted_on,
            "held_back": self.held_back,
            "ece_raw": round(self.ece_raw, 4),
            "ece_calibrated": round(self.ece_calibrated, 4),
            "exact_held_back": round(self.accuracy_held_back, 4),
            "knots": len(self.knots[0]),
        }


def fit_confidence(
    train_scores, train_correct, test_scores, test_correct, max_knots: int = MAX_KNOTS
) -> ConfidenceFit:
    """Fit the map on one part, and measure ECE before and after on the held-back part."""
    xs, ys = thin_knots(*isotonic_fit(train_scores, train_correct), max_knots=max_knots)
    if len(xs) == 1:  # every score equal, or one pooled block: a flat map still needs two knots
        xs, ys = np.array([0.0, 1.0]), np.array([ys[0], ys[0]])
    knots = (tuple(round(float(v), 6) for v in xs), tuple(round(float(v), 6) for v in ys))
    # Rounding can tie adjacent x knots; drop the later of a tie so x stays strictly increasing.
    keep = [0] + [i for i in range(1, len(knots[0])) if knots[0][i] > knots[0][i - 1]]
    knots = (tuple(knots[0][i] for i in keep), tuple(knots[1][i] for i in keep))
    test_scores = np.asarray(test_scores, dtype=np.float64)
    test_correct = np.asarray(test_correct, dtype=np.float64)
    return ConfidenceFit(
        knots=knots,
        fitted_on=len(np.asarray(train_scores).ravel()),
        held_back=len(test_scores),
        ece_raw=expected_calibration_error(test_scores, test_correct),
        ece_calibrated=expected_calibration_error(apply_knots(knots, test_scores), test_correct),
        accuracy_held_back=float(test_correct.mean()) if len(test_correct) else float("nan"),
    )
