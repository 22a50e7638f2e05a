"""Group the observations of one vehicle pass into a track and vote its reading.

Association: an observation joins the open track whose motion-predicted box it
overlaps most, or, when boxes overlap weakly (a missed frame, a fast vehicle), the
track whose text it resembles and which is near enough to have moved there. Two
vehicles with similar plates are kept apart by that distance gate: text alone
never joins observations across the scene.

Voting: readings of the most supported length are voted position by position,
each vote weighted by the reader's confidence in that character and in the whole reading. The frame whose
reading agrees best with the vote is kept for imagery; only that frame's image is
held in memory, whatever the track's length.

Time is the frames' own timestamps, so offline runs are deterministic.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from edge.config import TrackingSection
from edge.types import Alternative, Box, Direction, Observation, PlateReading, TrackResult

# An observation this far from a track's predicted position (in plate widths) never joins it on text alone.
_MAX_TEXT_JUMP_WIDTHS = 3.0
# Overlap with, or distance (in plate widths) from, the predicted box within which an observation joins whatever it reads.
_SURE_IOU = 0.3
_SURE_JUMP_WIDTHS = 0.75
# A track with this many confident readings agreeing with its vote is settled: its plate is located, not read.
_SETTLED_READS = 3
_SETTLED_CONFIDENCE = 0.9
_REREAD_GROWTH = 1.25
_MAX_SIGHTINGS = 300
# A box this close to the frame edge, moving outwards, has left the scene.
_EDGE_MARGIN = 0.02
# Predicted growth is held within 4x either way: frames microseconds apart would otherwise overflow it.
_MAX_LOG_GROWTH = math.log(4.0)
# Frames a stream delivers in a burst carry stamps a millisecond apart for motion that took a frame
# interval: velocities are measured over at least this long (one frame at 50 fps).
_MIN_VELOCITY_DT_S = 0.02


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def text_similarity(a: str, b: str) -> float:
    """1 - normalised Levenshtein distance."""
    if not a and not b:
        return 1.0
    return 1.0 - edit_distance(a, b) / max(len(a), len(b))


@dataclass
class _Sighting:
    """What a track remembers of each observation: no image."""

    time: datetime
    box: Box
    reading: PlateReading | None  # None: located only (the track had settled)


@dataclass
class _Track:
    track_id: int
    sightings: list[_Sighting] = field(default_factory=list)
    best: Observation | None = None
    voted: PlateReading | None = None
    ended: bool = False  # emitted; kept a while only to absorb late sightings
    frames: int = 0  # sightings ever added (the list itself is bounded)

    @property
    def last(self) -> _Sighting:
        return self.sightings[-1]

    def predicted_box(self, at: datetime) -> Box:
        """The last box moved on by the track's recent velocity."""
        last = self.last
        if len(self.sightings) < 2:
            return last.box
        prev = self.sightings[-2]
        dt = (last.time - prev.time).total_seconds()
        if dt <= 0:
            return last.box
        dt = max(dt, _MIN_VELOCITY_DT_S)
        ahead = (at - last.time).total_seconds()
        (cx0, cy0), (cx1, cy1) = prev.box.center, last.box.center
        vx, vy = (cx1 - cx0) / dt, (cy1 - cy0) / dt
        log_grow = math.log(last.box.w / prev.box.w) * ahead / dt
        grow = math.exp(min(max(log_grow, -_MAX_LOG_GROWTH), _MAX_LOG_GROWTH))
        w, h = last.box.w * grow, last.box.h * grow
        cx, cy = cx1 + vx * ahead, cy1 + vy * ahead
        return Box(cx - w / 2, cy - h / 2, w, h)


class Tracker:
    """Feed it each frame's observations with `update`; it returns the tracks that finished."""

    def __init__(self, cfg: TrackingSection) -> None:
        self.cfg = cfg
        self._open: list[_Track] = []
        self._ended: list[_Track] = []  # emitted within the last timeout_s: late sightings of them are absorbed
        self._next_id = 1
        self._latest: datetime | None = None  # the last frame's time

    @property
    def open_tracks(self) -> int:
        return len(self._open)

    def update(self, at: datetime, observations: list[Observation], frame_size: tuple[int, int] | None = None) -> list[TrackResult]:
        """Add one frame's observations (all from the frame at time `at`); return finished tracks."""
        finished = []
        if self._latest is not None and at < self._latest:
            # The clock stepped back (an NTP step on a live source): times before and after the step do not
            # compare (a pass would end before it began, or stay open until the clock caught up). End the open passes.
            finished += self._finish(list(self._open))
        self._latest = at
        finished += self._expire(at)
        # Located-only observations extend tracks; a reading of nothing legible is no evidence at all.
        unmatched = self._associate(self._open, at, [o for o in observations if o.reading is None or o.reading.text])
        # A plate of a pass already emitted (e.g. half out of the frame as it leaves) is not a new vehicle.
        # abs(): after a clock step back, a pass just ended still absorbs its own plate, but not for the hour the clock went back.
        self._ended = [t for t in self._ended if abs((at - t.last.time).total_seconds()) <= self.cfg.timeout_s]
        unmatched = self._associate(self._ended, at, unmatched)
        for obs in unmatched:
            if obs.reading is None:
                continue  # its track ended meanwhile; nothing to start a new one with
            track = _Track(self._next_id)
            self._next_id += 1
            self._add(track, obs)
            self._open.append(track)
        if frame_size is not None:
            finished += self._finish_leaving(frame_size)
        while len(self._open) > self.cfg.max_tracks:
            finished += self._finish([min(self._open, key=lambda t: t.last.time)])
        return finished

    def is_settled(self, box: Box, at: datetime) -> bool:
        """Whether `box` is where an open track that has settled on its reading is heading: no need to read it again."""
        for t in self._open:
            if t.voted is None or len(t.sightings) < _SETTLED_READS:
                continue
            agreeing = [s for s in t.sightings if s.reading is not None and s.reading.text == t.voted.text and s.reading.confidence >= _SETTLED_CONFIDENCE]
            # A plate that has grown well past the kept frame's is read again, so imagery stays near the closest view.
            grown = t.best is not None and box.w > _REREAD_GROWTH * t.best.detection.box.w
            if len(agreeing) >= _SETTLED_READS and not grown and self._near(t.predicted_box(at), box):
                return True
        return False

    def flush(self) -> list[TrackResult]:
        """Finish every open track (end of source, shutdown)."""
        return self._finish(list(self._open))

    # -- association ---------------------------------------------------------

    def _associate(self, tracks: list[_Track], at: datetime, observations: list[Observation]) -> list[Observation]:
        """Give each track at most one observation, best matches first; return the observations left over."""
        candidates: list[tuple[float, int, int]] = []
        for ti, track in enumerate(tracks):
            pred = track.predicted_box(at)
            for oi, obs in enumerate(observations):
                score = self._match_score(track, pred, obs)
                if score is not None:
                    candidates.append((score, ti, oi))
        used_tracks: set[int] = set()
        used_obs: set[int] = set()
        for _score, ti, oi in sorted(candidates, reverse=True):
            if ti in used_tracks or oi in used_obs:
                continue
            used_tracks.add(ti)
            used_obs.add(oi)
            self._add(tracks[ti], observations[oi])
        return [o for i, o in enumerate(observations) if i not in used_obs]

    def _match_score(self, track: _Track, pred: Box, obs: Observation) -> float | None:
        box = obs.detection.box
        iou = pred.iou(box)
        sim = text_similarity(track.voted.text, obs.reading.text) if obs.reading and track.voted else 0.0
        jump = _jump(pred, box)
        # Where the track was heading, at its size: the same plate, however badly this frame read.
        if self._near(pred, box):
            return 2.0 + iou + sim - jump / 10
        if iou >= self.cfg.min_iou and sim >= self.cfg.min_text_similarity * 0.5:
            return 1.0 + iou + sim
        if jump <= _MAX_TEXT_JUMP_WIDTHS and sim >= max(self.cfg.min_text_similarity, 0.6):
            return sim - jump / (10 * _MAX_TEXT_JUMP_WIDTHS)
        return None

    @staticmethod
    def _near(pred: Box, box: Box) -> bool:
        return pred.iou(box) >= _SURE_IOU or (_jump(pred, box) <= _SURE_JUMP_WIDTHS and 0.7 <= box.w / pred.w <= 1.4)

    def _add(self, track: _Track, obs: Observation) -> None:
        track.sightings.append(_Sighting(obs.frame.timestamp, obs.detection.box, obs.reading))
        track.frames += 1
        if len(track.sightings) > _MAX_SIGHTINGS:  # a vehicle parked in view: bound memory and voting work
            del track.sightings[1]  # the first stays: where and when the pass began
        if track.ended or obs.reading is None:
            return
        track.voted = vote([s.reading for s in track.sightings if s.reading is not None])
        # Keep the frame whose reading best matches the vote; ties go to the larger (closer) plate.
        def merit(o: Observation) -> tuple[float, float, float]:
            return (float(o.reading.text == track.voted.text), o.reading.confidence, o.detection.box.w)

        if track.best is None or merit(obs) >= merit(track.best):
            track.best = obs

    # -- ending ----------------------------------------------------------------

    def _expire(self, at: datetime) -> list[TrackResult]:
        stale = [t for t in self._open if (at - t.last.time).total_seconds() > self.cfg.timeout_s]
        return self._finish(stale)

    def _finish_leaving(self, frame_size: tuple[int, int]) -> list[TrackResult]:
        width, height = frame_size
        leaving = []
        for t in self._open:
            if len(t.sightings) < 2:
                continue
            b, prev = t.last.box, t.sightings[-2].box
            dx, dy = b.center[0] - prev.center[0], b.center[1] - prev.center[1]
            mx, my = _EDGE_MARGIN * width, _EDGE_MARGIN * height
            if (b.x < mx and dx < 0) or (b.x + b.w > width - mx and dx > 0) or (b.y < my and dy < 0) or (b.y + b.h > height - my and dy > 0):
                leaving.append(t)
        return self._finish(leaving)

    def _finish(self, tracks: list[_Track]) -> list[TrackResult]:
        results = []
        for t in tracks:
            self._open.remove(t)
            if t.frames >= self.cfg.min_frames and t.best is not None and t.voted is not None:
                results.append(self._result(t))
                t.best, t.ended = None, True  # the frame goes with the result; the ended track keeps only its path
                self._ended.append(t)
        return results

    def _result(self, t: _Track) -> TrackResult:
        first, last = t.sightings[0], t.sightings[-1]
        return TrackResult(
            track_id=t.track_id,
            reading=t.voted,
            best=t.best,
            first_seen=first.time,
            last_seen=last.time,
            frames=t.frames,
            direction=image_direction(first.box, last.box),
            observations=(t.best,),
            path=tuple((s.time, s.box) for s in t.sightings),
        )


def _jump(pred: Box, box: Box) -> float:
    """Distance between box centres, in plate widths."""
    (px, py), (ox, oy) = pred.center, box.center
    return ((px - ox) ** 2 + (py - oy) ** 2) ** 0.5 / max(pred.w, box.w)


def image_direction(first: Box, last: Box) -> Direction:
    """Direction from image motion when no road calibration says better: growth means approaching."""
    dx = last.center[0] - first.center[0]
    dy = last.center[1] - first.center[1]
    growth = last.w / first.w if first.w > 0 else 1.0
    if growth > 1.15 or (abs(dy) > abs(dx) and dy > first.h):
        return Direction.TOWARDS
    if growth < 1 / 1.15 or (abs(dy) > abs(dx) and dy < -first.h):
        return Direction.AWAY
    if abs(dx) > first.w:
        return Direction.RIGHT if dx > 0 else Direction.LEFT
    return Direction.UNKNOWN


def vote(readings: list[PlateReading]) -> PlateReading:
    """One reading from many: the most supported length, then each position by confidence-weighted vote."""
    if len(readings) == 1:
        return readings[0]
    by_len: dict[int, list[PlateReading]] = defaultdict(list)
    for r in readings:
        by_len[len(r.text)].append(r)
    length = max(by_len, key=lambda n: (sum(r.confidence for r in by_len[n]), n))
    group = by_len[length]
    chars, confs = [], []
    for pos in range(length):
        weight: dict[str, float] = defaultdict(float)
        for r in group:
            # A frame's vote counts by its whole reading's confidence too: many poor frames of a distant
            # plate must not outvote a few sharp ones, however sure each is of single characters.
            weight[r.text[pos]] += r.char_confidences[pos] * r.confidence
        total = sum(weight.values())
        winner = max(weight, key=lambda c: (weight[c], c))
        votes = [r.char_confidences[pos] for r in group if r.text[pos] == winner]
        chars.append(winner)
        # Share of the vote times the winners' own mean confidence: unanimous and sure -> high.
        confs.append(min(1.0, (weight[winner] / total) * (sum(votes) / len(votes)) if total > 0 else 0.0))
    text = "".join(chars)
    exact = [r for r in group if r.text == text]
    template = max(exact or group, key=lambda r: r.confidence)
    confidence = max(r.confidence for r in exact) if exact else float(min(1.0, _product(confs)))
    return PlateReading(
        text=text,
        confidence=confidence,
        char_confidences=tuple(confs),
        alternatives=_alternatives(readings, text),
        country=template.country if exact else None,
        plate_format=template.plate_format if exact else None,
        colour=template.colour,
        backend=template.backend,
        band=template.band,  # from the same observation as the colour
    )


def _product(values: list[float]) -> float:
    out = 1.0
    for v in values:
        out *= v
    return out


def _alternatives(readings: list[PlateReading], chosen: str, keep: int = 5) -> tuple[Alternative, ...]:
    """Other texts seen in the track (and the readers' own alternatives), ranked by summed confidence."""
    support: dict[str, float] = defaultdict(float)
    for r in readings:
        support[r.text] += r.confidence
        for a in r.alternatives:
            support[a.text] += a.confidence
    support.pop(chosen, None)
    total = sum(r.confidence for r in readings) or 1.0
    ranked = sorted(support.items(), key=lambda kv: kv[1], reverse=True)[:keep]
    return tuple(Alternative(t, min(1.0, s / total)) for t, s in ranked if t)
