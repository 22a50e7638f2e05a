"""From the reader's per-time-step probabilities to a plate reading: CTC decoding plus the country grammars.

Plain numpy, outside the model graph, so a new country needs a grammar here and no retraining.
It runs for every crop, so the hot paths work on Python ints, floats and lists, which beat numpy
on arrays of a few characters; the plain algorithms they must equal are in tests/unit/test_decode.py.

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
from typing import NamedTuple

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
        return "".join([ALPHABET[i] for i in self.probs.argmax(axis=1).tolist()]) if len(self.probs) else ""

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
    kept: list[int] = []  # the frames of characters
    starts: list[int] = []  # where each character's frames start among them
    prev = blank
    for t, cls in enumerate(frame_probs.argmax(axis=1).tolist()):  # plain ints: a 32-step loop, not numpy scalars
        if cls != blank:
            if cls != prev:
                starts.append(len(kept))
            kept.append(t)
        prev = cls
    if not kept:
        return Lattice(np.zeros((0, len(ALPHABET)), np.float32))
    # the 36 characters' columns of those frames, in one cut
    rows = frame_probs[kept, 1:] if blank == 0 else np.delete(frame_probs[kept], blank, axis=1)
    if len(starts) < len(kept):  # a character spanning frames: the maximum over them
        rows = np.maximum.reduceat(rows, starts, axis=0)
    return Lattice(rows.astype(np.float32, copy=False).reshape(-1, len(ALPHABET)))


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


# A text's fits depend only on the text and the table, and the same texts recur frame after frame
# while a vehicle passes, so they are kept. Bounded: the whole cache is dropped when full (about 1 MB).
_MATCH_CACHE_SIZE = 4096
_Fits = tuple[tuple[int, tuple[int, ...], str], ...]  # (template index, swapped positions, corrected text)


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, as a key of the fits cache
class _Table:
    """The templates of one length as bitmasks (bit k: template k) per position and character, so a
    text is screened against all of them with one integer AND per character."""

    entries: list[tuple[PlateFormat, tuple[str, ...], bool]]
    allows: tuple[dict[str, int], ...]  # position -> character -> the templates allowing it there
    fits: tuple[dict[str, int], ...]  # the same, allowing the character or its look-alike


_fits_cache: dict[tuple[_Table, str], _Fits] = {}


@lru_cache(maxsize=32)
def _templates_by_length(countries: tuple[str, ...]) -> dict[int, _Table]:
    grouped: dict[int, list[tuple[PlateFormat, tuple[str, ...], bool]]] = {}
    for fmt, preferred in formats_for(countries):
        for t in fmt.templates:
            grouped.setdefault(len(t), []).append((fmt, t, preferred))
    table = {}
    for n, entries in grouped.items():
        allows = tuple({c: sum(1 << k for k, (_, t, _) in enumerate(entries) if c in t[i]) for c in ALPHABET} for i in range(n))
        fits = tuple({c: at[c] | at[LOOKALIKES.get(c, c)] for c in ALPHABET} for at in allows)
        table[n] = _Table(entries, allows, fits)
    return table


def _matching(table: _Table, text: str) -> _Fits:
    """The templates `text` fits as it is or with look-alike swaps, one per distinct fit: each with
    the positions it swaps and the corrected text."""
    key = (table, text)
    found = _fits_cache.get(key)
    if found is None:
        found = _match(table, text)
        if len(_fits_cache) >= _MATCH_CACHE_SIZE:
            _fits_cache.clear()
        _fits_cache[key] = found
    return found


def _match(table: _Table, text: str) -> _Fits:
    fitting = -1  # every template
    for at, ch in zip(table.fits, text):
        fitting &= at[ch]
    if fitting <= 0:
        return ()
    # Per position: the fitting templates that need the look-alike there. Where none needs one
    # (most texts), every fit keeps the text as it is: the first template is the fit.
    needs = [(i, m) for i, ch in enumerate(text) if ch in LOOKALIKES and (m := fitting & ~table.allows[i][ch])]
    if not needs:
        return (((fitting & -fitting).bit_length() - 1, (), text),)
    out: list[tuple[int, tuple[int, ...], str]] = []
    seen: set[tuple[int, ...]] = set()
    while fitting:
        bit = fitting & -fitting  # templates in table order: preferred countries come first
        fitting ^= bit
        swapped = tuple(i for i, m in needs if m & bit)
        # Templates that keep and swap the same positions give the same text and score: the first
        # is the one a full scan would keep.
        if swapped not in seen:
            seen.add(swapped)
            chars = list(text)
            for i in swapped:
                chars[i] = LOOKALIKES[chars[i]]
            out.append((bit.bit_length() - 1, swapped, "".join(chars)))
    return tuple(out)


def _fit(text: str, rows: list[list[float]], probs: list[float], logs: list[float], swapped: tuple[int, ...]) -> tuple[float, tuple[float, ...]]:
    """The log score and character confidences of `text` with the look-alikes at `swapped` put in.

    `probs` and `logs` are the text's own characters' probabilities and their logs. The score is
    summed position by position in order, as it always was, so scores stay the same to the bit."""
    confs, terms = probs, logs
    if swapped:
        confs, terms = list(probs), list(logs)
        for i in swapped:
            ch = text[i]
            p, q = probs[i], rows[i][_INDEX[LOOKALIKES[ch]]]
            confs[i] = min(1.0, p + q)  # the model was sure of the shape; the grammar names the character
            cap = NEAR_IDENTICAL_MAX_COST if ch in NEAR_IDENTICAL else SWAP_MAX_COST
            terms[i] = max(math.log(max(q, _P_FLOOR)), logs[i] - cap)
    score = 0.0
    for t in terms:
        score += t
    return score, tuple(confs)


@lru_cache(maxsize=8)
def _runner_up_min(dtype: np.dtype) -> float:
    """RUNNER_UP_MIN in a lattice's own precision: numpy compared a float32 probability with it as float32."""
    return float(dtype.type(RUNNER_UP_MIN)) if np.issubdtype(dtype, np.floating) else RUNNER_UP_MIN


class _Candidate(NamedTuple):
    """A text worth matching, with what its matches are scored from."""

    text: str
    rows: list[list[float]]  # its rows of the lattice, as nested lists (indexing them beats numpy scalars)
    probs: list[float]  # each character's probability
    logs: list[float]  # and its log, floored
    extra: float  # extra log cost


def _candidates(lattice: Lattice) -> list[_Candidate]:
    """The best path, the runner-up at each uncertain position, and the best path without an edge character."""
    probs = lattice.probs
    rows = probs.tolist()  # converted once
    top = probs.argmax(axis=1).tolist()
    best = "".join([ALPHABET[k] for k in top])  # lattice.text
    base = [row[k] for row, k in zip(rows, top)]
    logs = [math.log(max(p, _P_FLOOR)) for p in base]
    out = [_Candidate(best, rows, base, logs, 0.0)]
    if not best:
        return out
    # The two likeliest characters of each row in numpy's order, ties included.
    order = np.argsort(-probs, axis=1)[:, :2].tolist()
    floor = _runner_up_min(probs.dtype)
    for i, (first, second) in enumerate(order):
        p = rows[i][second]
        if p >= floor:
            # The other characters are the best path's: only position i is looked up again.
            ps, ls = base.copy(), logs.copy()
            ps[i], ls[i] = p, math.log(max(p, _P_FLOOR))
            cost = ls[i] - math.log(max(rows[i][first], _P_FLOOR))
            out.append(_Candidate(best[:i] + ALPHABET[second] + best[i + 1 :], rows, ps, ls, cost))
    if len(best) > 3:
        for drop, kept in ((0, slice(1, None)), (len(best) - 1, slice(None, -1))):
            # the sum in the lattice's precision (float32), as it always was
            top2 = float(probs[drop, order[drop][0]] + probs[drop, order[drop][1]])
            # Without the character: it was spurious, about the mass on neither of its two likeliest
            # readings (a real but uncertain character splits its mass between two); with it, the
            # text already pays for the character it reads.
            cost = math.log(max(1.0 - top2, EDGE_DROP_FLOOR))
            out.append(_Candidate(best[kept], rows[kept], base[kept], logs[kept], cost))
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

    for text, rows, probs, logs, extra in _candidates(lattice):
        keep(text, sum(logs) + extra - NO_FORMAT_COST, tuple(probs), None, 0)
        group = table.get(len(text))
        if group is None:
            continue
        for k, swapped, new_text in _matching(group, text):
            fmt, _, preferred = group.entries[k]
            score, confs = _fit(text, rows, probs, logs, swapped)
            keep(new_text, score + extra - (0.0 if preferred else FOREIGN_COST), confs, fmt, len(swapped))
    ranked = sorted(results.items(), key=lambda kv: kv[1][0], reverse=True)[: 1 + max_alternatives]
    return [Decoded(text, confs, score, fmt, swaps) for text, (score, confs, fmt, swaps) in ranked]


def match_format(text: str, countries: tuple[str, ...] = ()) -> PlateFormat | None:
    """The first format (named countries first) that `text` fits exactly, without corrections."""
    for fmt, _ in formats_for(countries):
        if any(len(t) == len(text) and all(c in s for c, s in zip(text, t)) for t in fmt.templates):
            return fmt
    return None


__all__ = ["ALPHABET", "FORMATS", "LOOKALIKES", "Decoded", "Lattice", "best_path", "decode", "match_format"]
