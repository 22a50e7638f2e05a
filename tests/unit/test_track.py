from datetime import timedelta

import pytest

from edge.config import TrackingSection
from edge.track import Tracker, image_direction, text_similarity, vote
from edge.types import Box, Direction, Observation
from tests.builders import T0, obs, reading


def run(tracker, frames):
    """frames: list of (t_s, [observations]) -> all finished tracks incl. flush."""
    done = []
    for t, observations in frames:
        done += tracker.update(T0 + timedelta(seconds=t), observations)
    return done + tracker.flush()


def test_one_vehicle_over_several_frames_is_one_read_with_voted_text():
    tr = Tracker(TrackingSection())
    frames = []
    texts = ["AB12CDE", "AB12CDE", "A812CDE", "AB12CDE", "AB1ZCDE"]
    for i, text in enumerate(texts):
        frames.append((i * 0.1, [obs(text, (100 + i * 5, 100 + i * 10, 80 + i * 4, 20 + i), i * 0.1, seq=i)]))
    [result] = run(tr, frames)
    assert result.reading.text == "AB12CDE"
    assert result.frames == 5
    assert result.best.reading.text == "AB12CDE"
    assert result.direction is Direction.TOWARDS
    assert {a.text for a in result.reading.alternatives} >= {"A812CDE", "AB1ZCDE"}


def test_two_vehicles_with_similar_plates_stay_two_reads():
    tr = Tracker(TrackingSection())
    frames = []
    for i in range(4):
        t = i * 0.1
        frames.append((t, [obs("AB12CDE", (20 + i * 4, 100, 60, 15), t, seq=i), obs("AB12CDF", (220 + i * 4, 100, 60, 15), t, seq=i)]))
    results = run(tr, frames)
    assert sorted(r.reading.text for r in results) == ["AB12CDE", "AB12CDF"]
    assert all(r.frames == 4 for r in results)


def test_track_ends_after_timeout_and_same_plate_later_is_a_new_pass():
    tr = Tracker(TrackingSection(timeout_s=1.0))
    first = tr.update(T0, [obs("AB12CDE", (100, 100, 60, 15), 0.0)])
    assert first == []
    ended = tr.update(T0 + timedelta(seconds=2.0), [obs("AB12CDE", (100, 100, 60, 15), 2.0)])
    assert [r.reading.text for r in ended] == ["AB12CDE"]
    assert tr.open_tracks == 1
    assert len(tr.flush()) == 1


def test_min_frames_drops_single_frame_noise():
    tr = Tracker(TrackingSection(min_frames=2))
    assert run(tr, [(0.0, [obs("XY99ZZZ", (10, 10, 50, 12), 0.0)])]) == []


def test_leaving_the_frame_ends_the_track_early():
    tr = Tracker(TrackingSection(timeout_s=10))
    tr.update(T0, [obs("AB12CDE", (200, 100, 60, 15), 0.0)], frame_size=(320, 240))
    done = tr.update(T0 + timedelta(seconds=0.1), [obs("AB12CDE", (262, 100, 57, 15), 0.1)], frame_size=(320, 240))
    assert [r.reading.text for r in done] == ["AB12CDE"]


def test_vote_weights_by_character_confidence():
    r = vote([reading("AB12CDE", 0.6, [0.9, 0.2, 0.9, 0.9, 0.9, 0.9, 0.9]), reading("A812CDE", 0.5, [0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])])
    assert r.text == "A812CDE"
    assert r.char_confidences[1] < 0.9


def test_vote_prefers_the_best_supported_length():
    r = vote([reading("AB12CDE", 0.8), reading("AB12CDE", 0.8), reading("AB12CD", 0.9)])
    assert r.text == "AB12CDE"
    assert r.confidence == pytest.approx(0.8)


@pytest.mark.parametrize(
    "a,b,expected",
    [("AB12CDE", "AB12CDE", 1.0), ("AB12CDE", "AB12CDF", 1 - 1 / 7), ("", "", 1.0), ("ABC", "", 0.0)],
)
def test_text_similarity(a, b, expected):
    assert text_similarity(a, b) == pytest.approx(expected)


def test_image_direction():
    assert image_direction(Box(100, 50, 40, 10), Box(100, 150, 80, 20)) is Direction.TOWARDS
    assert image_direction(Box(100, 150, 80, 20), Box(100, 50, 40, 10)) is Direction.AWAY
    assert image_direction(Box(10, 50, 40, 10), Box(200, 50, 40, 10)) is Direction.RIGHT


def test_fast_plate_with_unstable_readings_stays_one_track():
    """Boxes that never overlap frame to frame, readings that disagree: motion alone keeps it one pass."""
    tr = Tracker(TrackingSection())
    texts = ["D51SMR", "DSTSMR", "DOS5M", "D5AMR", "DGTAMA"]
    frames = [(i * 0.1, [obs(t, (300 + 25 * i, 900 - 90 * i, 190 - 8 * i, 47 - 2 * i), i * 0.1, seq=i)]) for i, t in enumerate(texts)]
    [result] = run(tr, frames)
    assert result.frames == 5
    assert result.direction is Direction.AWAY


def test_plate_seen_again_half_out_of_frame_after_its_pass_ended_is_not_a_new_read():
    tr = Tracker(TrackingSection(timeout_s=1.0))
    size = (1280, 720)
    assert tr.update(T0, [obs("LR69XKF", (1084, 379, 155, 38), 0.0)], size) == []
    done = tr.update(T0 + timedelta(seconds=0.1), [obs("LR69XKF", (1104, 447, 159, 37), 0.1)], size)
    assert [r.reading.text for r in done] == ["LR69XKF"]  # touching the right edge, moving right: left the scene
    assert tr.update(T0 + timedelta(seconds=0.2), [obs("LR69XKP", (1120, 518, 155, 35), 0.2)], size) == []
    assert tr.flush() == []
    # Long after, the same place holds a new vehicle.
    later = tr.update(T0 + timedelta(seconds=5), [obs("LR69XKP", (1120, 518, 155, 35), 5.0)], size)
    assert later == [] and len(tr.flush()) == 1


def test_a_settled_track_is_located_not_read_and_still_ends_as_one_read():
    tr = Tracker(TrackingSection())
    boxes = [(100, 100 + 10 * i, 80 + i, 20) for i in range(6)]
    for i in range(3):
        assert not tr.is_settled(Box(*boxes[i]), T0 + timedelta(seconds=i * 0.1))
        tr.update(T0 + timedelta(seconds=i * 0.1), [obs("AB12CDE", boxes[i], i * 0.1, conf=0.95, seq=i)])
    at = T0 + timedelta(seconds=0.3)
    assert tr.is_settled(Box(*boxes[3]), at)
    assert not tr.is_settled(Box(600, 400, 80, 20), at)  # somewhere else: another vehicle
    assert not tr.is_settled(Box(100, 130, 120, 30), at)  # grown well past the kept frame: read again
    located = obs("AB12CDE", boxes[3], 0.3, seq=3)
    located = Observation(located.frame, located.detection, None)
    tr.update(at, [located])
    [result] = tr.flush()
    assert result.frames == 4 and result.reading.text == "AB12CDE"
    assert result.best.reading is not None


def test_located_only_observation_never_starts_a_track():
    tr = Tracker(TrackingSection())
    o = obs("AB12CDE", (10, 10, 50, 12), 0.0)
    tr.update(T0, [Observation(o.frame, o.detection, None)])
    assert tr.open_tracks == 0


def test_a_few_sharp_frames_outvote_many_poor_ones():
    sharp = [reading("BD51SMR", 0.95, [0.99] * 7)] * 2
    poor = [reading("BD61SMR", 0.1, [0.9, 0.9, 0.6, 0.9, 0.5, 1.0, 0.9])] * 6
    assert vote(sharp + poor).text == "BD51SMR"


def test_a_vehicle_parked_in_view_keeps_bounded_state_and_counts_every_frame():
    tr = Tracker(TrackingSection(timeout_s=5))
    for i in range(700):
        tr.update(T0 + timedelta(seconds=i * 0.04), [obs("AB12CDE", (100, 100, 80, 20), i * 0.04, seq=i)])
    [track] = tr._open
    assert len(track.sightings) <= 300
    [result] = tr.flush()
    assert result.frames == 700 and result.reading.text == "AB12CDE"
    assert result.first_seen == T0


def test_a_clock_stepped_back_mid_pass_still_ends_the_pass_as_one_read():
    """An NTP step back while a plate is in view: its read must not be lost to last_seen < first_seen."""
    tr = Tracker(TrackingSection())
    tr.update(T0, [obs("AB12CDE", (100, 100, 80, 20), 0.0)])
    done = tr.update(T0 - timedelta(seconds=0.5), [obs("AB12CDE", (100, 105, 80, 20), -0.5)])
    done += tr.flush()
    assert [r.reading.text for r in done] == ["AB12CDE"]


def test_a_clock_stepped_back_an_hour_does_not_hold_open_passes_for_an_hour():
    tr = Tracker(TrackingSection(timeout_s=1.5))
    tr.update(T0, [obs("AB12CDE", (100, 100, 80, 20), 0.0)])
    stepped = T0 - timedelta(hours=1)
    done = tr.update(stepped, []) + tr.update(stepped + timedelta(seconds=2), [])
    assert [r.reading.text for r in done] == ["AB12CDE"]
    assert tr.open_tracks == 0


def test_a_similar_plate_after_a_clock_step_back_is_a_new_read_not_absorbed_by_an_old_pass():
    tr = Tracker(TrackingSection(timeout_s=1.0))
    assert len(tr.update(T0, [obs("AB12CDE", (100, 100, 80, 20), 0.0)]) + tr.flush()) == 1
    later = T0 - timedelta(hours=1) + timedelta(seconds=30)  # clock stepped back an hour; a new car 30 s later
    tr.update(later, [obs("AB12CDE", (100, 100, 80, 20), 0.0)])
    assert len(tr.flush()) == 1


def test_frames_microseconds_apart_do_not_blow_up_the_motion_prediction():
    """File times of a folder copied in one burst are µs apart: growth per µs must not overflow."""
    tr = Tracker(TrackingSection())
    tr.update(T0, [obs("AB12CDE", (100, 100, 80, 20), 0.0)])
    tr.update(T0 + timedelta(microseconds=10), [obs("AB12CDE", (101, 100, 88, 22), 0.00001)])
    done = tr.update(T0 + timedelta(seconds=0.1), [obs("AB12CDE", (102, 100, 88, 22), 0.1)]) + tr.flush()
    assert done and {r.reading.text for r in done} == {"AB12CDE"}


def test_frames_delivered_in_a_burst_do_not_split_a_pass():
    # A stream hands over two buffered frames a millisecond apart: the plate moved 40 ms worth
    # (8 px) between them. Taken at face value that is 8000 px/s, and the next frame's plate,
    # 40 ms on where it should be, would be far from the prediction: a second read of one car.
    tr = Tracker(TrackingSection())
    frames = [(0.0, [obs("AB12CDE", (100, 300, 80, 20), 0.0, seq=0)]),
              (0.001, [obs("AB12CDE", (108, 300, 80, 20), 0.001, seq=1)])]
    frames += [(0.001 + 0.04 * k, [obs("AB12CDE", (108 + 8 * k, 300, 80, 20), 0.001 + 0.04 * k, seq=1 + k)]) for k in range(1, 4)]
    [result] = run(tr, frames)
    assert result.frames == 5
