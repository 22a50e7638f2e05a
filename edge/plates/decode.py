"""From the reader's per-time-step probabilities to a plate reading: CTC decoding plus the country grammars.

Plain numpy, outside the model graph, so a new country needs a grammar here and no retraining.

1. Best-path CTC decoding gives the characters, and for each one the probabilities of every
   character at its frames (a *lattice*). Backends without per-frame output (tesseract) build a
   lattice from their text and confidences.
2. Candidate texts: the best path, the runner-up at each uncertain position, and the best path
   without its first or last character (a plate's band or a screw read as a character).
3. Each candidate is matched against the grammars' templates of its length. Where a position's
   character is not allowed but its look-alike is (0/O, 1/I, 5/S, 8/B, 2/Z, 6/G), the look-alike
   is substituted; that is the only correction made, and only where the grammar demands it.
4. Candidates are ranked by log-probability, with costs for substitutions (the model's own
   odds against the swap, capped lower for 0/O and 1/I, which are nearly one glyph on UK plates),
   for a format of a country the camera does not name, and for fitting no format at all. The best is the reading;
   the next ones are its alternatives. A reading fitting no grammar keeps its characters, with
   country None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from edge.plates.grammars import FORMATS, PlateFormat, formats_for

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}

# Shapes that fonts, dirt and screws make ambiguous; each maps both ways.
LOOKALIKES: dict[str, str] = {}
for _a, _b in (("0", "O"), ("1", "I"), ("5", "S"), ("8", "B"), ("2", "Z"), ("6", "G")):
    LOOKALIKES[_a], LOOKALIKES[_b] = _b, _a

# Ranking costs, in nats (natural-log probability units).
# A look-alike swap costs the log-ratio of the two characters' probabilities, at most:
SWAP_MAX_COST = 2.0  # 5/S, 8/B, 2/Z, 6/G: told apart by most fonts, so the model's certainty counts
NEAR_IDENTICAL_MAX_COST = 1.0  # 0/O and 1/I: nearly the same glyph on UK plates, the grammar decides
NEAR_IDENTICAL = {"0", "O", "1", "I"}
# A format of a country the camera's configuration does not name. Between the two caps: a foreign
# plate read cleanly beats a home reading that needs a swap the model is sure against (a Slovak
# 'RK755AJ' is not forced into the UK 'RK75SAJ'), but not a 0/O or 1/I swap.
FOREIGN_COST = 1.2
NO_FORMAT_COST = 3.5  # fitting no format at all: a demanded swap still beats it
EDGE_DROP_FLOOR = 1e-3
RUNNER_UP_MIN = 0.03  # a position's second choice becomes a candidate above this probability
_P_FLOOR = 1e-6


@dataclass(frozen=True)
class Lattice:
    """Per character of a reading: the probability of each of the 36 characters, shape (n, 36)."""

    probs: np.ndarray

    @property
    def text(self) -> str:
        return "".join(ALPHABET[i] for i in self.probs.argmax(axis=1)) if len(self.probs) else ""

    @classmethod
    def from_text(cls, text: str, confidences: list[float] | tuple[float, ...]) -> Lattice:
        """A lattice from a backend that only gives characters and their confidences."""
        if len(confidences) != len(text):  # zip would leave the last rows empty, read back as '0'
            raise ValueError(f"Lattice.from_text: {len(confidences)} confidences for {len(text)} characters")
        probs = np.zeros((len(text), len(ALPHABET)), np.float32)
        for i, (ch, c) in enumerate(zip(text, confidences)):
            c = max(float(c), _P_FLOOR)  # a zero would leave an all-zero row, whose argmax is '0'
            rest = min((1.0 - c) / (len(ALPHABET) - 1), c / 2)  # the named character stays the most likely
            probs[i, :] = rest
            probs[i, _INDEX[ch]] = c
        return cls(probs)


def best_path(frame_probs: np.ndarray, blank: int = 0) -> Lattice:
    """CTC best-path decoding of (T, 1 + 36) probabilities; each character's row is the
    maximum over the frames it spans (a CTC output peaks on one or two frames)."""
    k = frame_probs.argmax(axis=1)
    chars = np.delete(frame_probs, blank, axis=1)  # the 36 characters' columns, cut once for every frame
    rows: list[np.ndarray] = []
    prev = blank
    for t, cls in enumerate(k):
        if cls != blank:
            if cls != prev:
                rows.append(chars[t].copy())
            else:
                np.maximum(rows[-1], chars[t], out=rows[-1])
        prev = cls
    return Lattice(np.array(rows, np.float32).reshape(-1, len(ALPHABET)))


@dataclass(frozen=True)
class Decoded:
    text: str
    char_confidences: tuple[float, ...]
    score: float  # ranking score (log domain, costs included)
    plate_format: PlateFormat | None
    swaps: int

    @property
    def confidence(self) -> float:
        """Probability-like confidence of the whole text: the product of its characters'."""
        return float(min(1.0, max(0.0, math.prod(self.char_confidences)))) if self.text else 0.0

    @property
    def country(self) -> str | None:
        return self.plate_format.country if self.plate_format else None

    @property
    def format_name(self) -> str | None:
        return self.plate_format.name if self.plate_format else None


@dataclass(frozen=True)
class _Table:
    """The templates of one length as boolean masks, so a text is screened against all at once."""

    entries: list[tuple[PlateFormat, tuple[str, ...], bool]]
    allowed: np.ndarray  # (K, L, 36): template k allows character c at position i


_SWAP_INDEX = np.array([_INDEX[LOOKALIKES.get(c, c)] for c in ALPHABET])


@lru_cache(maxsize=32)
def _templates_by_length(countries: tuple[str, ...]) -> dict[int, _Table]:
    grouped: dict[int, list[tuple[PlateFormat, tuple[str, ...], bool]]] = {}
    for fmt, preferred in formats_for(countries):
        for t in fmt.templates:
            grouped.setdefault(len(t), []).append((fmt, t, preferred))
    table = {}
    for n, entries in grouped.items():
        allowed = np.zeros((len(entries), n, len(ALPHABET)), bool)
        for k, (_, t, _) in enumerate(entries):
            for i, chars in enumerate(t):
                allowed[k, i, [_INDEX[c] for c in chars]] = True
        table[n] = _Table(entries, allowed)
    return table


def _matching(table: _Table, text: str) -> list[int]:
    """Indices of the templates `text` fits as it is or with look-alike swaps, one per distinct fit."""
    idx = np.array([_INDEX[c] for c in text])
    pos = np.arange(len(text))
    as_is = table.allowed[:, pos, idx]
    fits = np.flatnonzero((as_is | table.allowed[:, pos, _SWAP_INDEX[idx]]).all(axis=1))
    # Templates that keep and swap the same positions give the same text and score: the first
    # (preferred countries come first in a table) is the one a full scan would keep.
    first: dict[bytes, int] = {}
    for k in fits.tolist():
        first.setdefault(as_is[k].tobytes(), k)
    return list(first.values())


def _fit(text: str, probs: list[list[float]], template: tuple[str, ...]) -> tuple[str, list[float], float, int] | None:
    """Match one template: the corrected text, character confidences, log score and swap count.

    `probs` is the lattice as nested lists: indexing them is several times faster than numpy
    scalars, and a plate is matched against about ten templates."""
    out, confs, score, swaps = [], [], 0.0, 0
    for i, (ch, allowed) in enumerate(zip(text, template)):
        p = probs[i][_INDEX[ch]]
        if ch in allowed:
            out.append(ch)
            confs.append(p)
            score += math.log(max(p, _P_FLOOR))
            continue
        alt = LOOKALIKES.get(ch)
        if alt is None or alt not in allowed:
            return None
        q = probs[i][_INDEX[alt]]
        out.append(alt)
        confs.append(min(1.0, p + q))  # the model was sure of the shape; the grammar names the character
        cap = NEAR_IDENTICAL_MAX_COST if ch in NEAR_IDENTICAL else SWAP_MAX_COST
        score += max(math.log(max(q, _P_FLOOR)), math.log(max(p, _P_FLOOR)) - cap)
        swaps += 1
    return "".join(out), confs, score, swaps


def _candidates(lattice: Lattice) -> list[tuple[str, np.ndarray, float]]:
    """(text, its rows of the lattice, extra log cost) for the texts worth matching."""
    probs = lattice.probs
    best = lattice.text
    out = [(best, probs, 0.0)]
    if not best:
        return out
    order = np.argsort(-probs, axis=1)
    for i in range(len(best)):
        second = int(order[i, 1])
        if probs[i, second] >= RUNNER_UP_MIN:
            cost = math.log(max(float(probs[i, second]), _P_FLOOR)) - math.log(max(float(probs[i, order[i, 0]]), _P_FLOOR))
            out.append((best[:i] + ALPHABET[second] + best[i + 1 :], probs, cost))
    if len(best) > 3:
        for drop, keep in ((0, slice(1, None)), (len(best) - 1, slice(None, -1))):
            top2 = float(probs[drop, order[drop, 0]] + probs[drop, order[drop, 1]])
            # Without the character: it was spurious, about the mass on neither of its two likeliest
            # readings (a real but uncertain character splits its mass between two); with it, the
            # text already pays for the character it reads.
            out.append((best[keep], probs[keep], math.log(max(1.0 - top2, EDGE_DROP_FLOOR))))
    return out


def decode(lattice: Lattice, countries: tuple[str, ...] = ("GB",), max_alternatives: int = 3) -> list[Decoded]:
    """Readings of a lattice, best first: the reading and up to `max_alternatives` alternatives."""
    table = _templates_by_length(tuple(c.upper() for c in countries))
    # text -> (score, character confidences, format, swaps): only the best way to each text is kept,
    # and only the readings returned are made into Decoded objects.
    results: dict[str, tuple[float, tuple[float, ...], PlateFormat | None, int]] = {}

    def keep(text: str, score: float, confs: tuple[float, ...], fmt: PlateFormat | None, swaps: int) -> None:
        old = results.get(text)
        if old is None or score > old[0]:
            results[text] = (score, confs, fmt, swaps)

    rows: dict[int, list[list[float]]] = {}  # candidates share the lattice or a slice of it: convert each once
    for text, probs, extra in _candidates(lattice):
        key = id(probs)
        if key not in rows:
            rows[key] = probs.tolist()
        plist = rows[key]
        base = [plist[i][_INDEX[c]] for i, c in enumerate(text)]
        raw = sum(math.log(max(p, _P_FLOOR)) for p in base)
        keep(text, raw + extra - NO_FORMAT_COST, tuple(base), None, 0)
        group = table.get(len(text))
        if group is None:
            continue
        for k in _matching(group, text):
            fmt, template, preferred = group.entries[k]
            fitted = _fit(text, plist, template)
            if fitted is None:
                continue
            new_text, confs, score, swaps = fitted
            keep(new_text, score + extra - (0.0 if preferred else FOREIGN_COST), tuple(confs), fmt, swaps)
    ranked = sorted(results.items(), key=lambda kv: kv[1][0], reverse=True)[: 1 + max_alternatives]
    return [Decoded(text, confs, score, fmt, swaps) for text, (score, confs, fmt, swaps) in ranked]


def match_format(text: str, countries: tuple[str, ...] = ()) -> PlateFormat | None:
    """The first format (named countries first) that `text` fits exactly, without corrections."""
    for fmt, _ in formats_for(countries):
        if any(len(t) == len(text) and all(c in s for c, s in zip(text, t)) for t in fmt.templates):
            return fmt
    return None


__all__ = ["ALPHABET", "FORMATS", "LOOKALIKES", "Decoded", "Lattice", "best_path", "decode", "match_format"]
