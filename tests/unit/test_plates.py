"""Plate grammars and grammar-constrained decoding (edge.plates)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.plates.decode import ALPHABET, LOOKALIKES, Lattice, best_path, decode, match_format
from edge.plates.grammars import FORMATS, fits


def lattice(text: str, conf: float = 0.9) -> Lattice:
    return Lattice.from_text(text, [conf] * len(text))


def best(text: str, countries=("GB",), conf: float = 0.9):
    return decode(lattice(text, conf), countries)[0]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_every_format_accepts_its_example(fmt):
    assert fits(fmt.example, fmt)


@pytest.mark.parametrize(
    "text, fmt",
    [("AB12CDE", "gb_current"), ("A123BCD", "gb_prefix"), ("ABC123D", "gb_suffix"), ("ABZ1234", "gb_ni"),
     ("IBZ1234", "gb_ni"), ("1234AB", "gb_dateless"), ("AB1234", "gb_dateless")],
)
def test_gb_formats_recognised(text, fmt):
    assert match_format(text, ("GB",)).name == fmt


@pytest.mark.parametrize("text", ["AI12CDE", "QB12CDE", "AB12CDI", "AB12QDE", "AB1CDE"])
def test_gb_current_refuses_letters_never_issued(text):
    gb_current = next(f for f in FORMATS if f.name == "gb_current")
    assert not fits(text, gb_current)


def test_clean_gb_reading_is_kept_with_its_format():
    d = best("AB12CDE")
    assert (d.text, d.country, d.format_name, d.swaps) == ("AB12CDE", "GB", "gb_current", 0)


def ambiguous(text: str, at: int, runner_up: str) -> Lattice:
    """A reading whose character at `at` is 0.6 likely, with `runner_up` at 0.3: a real confusion."""
    lat = lattice(text)
    lat.probs[at, :] = 0.1 / 34
    lat.probs[at, ALPHABET.index(text[at])] = 0.6
    lat.probs[at, ALPHABET.index(runner_up)] = 0.3
    return lat


@pytest.mark.parametrize(
    "read, at, runner_up, expected",
    [
        ("AB1ZCDE", 3, "2", "AB12CDE"),  # Z where the age identifier needs a digit
        ("AB6ZCDE", 3, "2", "AB62CDE"),  # only the position that demands it changes; 6 stays a digit
        ("5B12CDE", 0, "S", "SB12CDE"),  # 5 where the memory tag needs a letter
        ("A8I2CDE", 2, "1", "A812CDE"),  # a legal prefix plate once I is 1; the 8 is left alone
    ],
)
def test_lookalikes_fixed_only_where_grammar_demands(read, at, runner_up, expected):
    d = decode(ambiguous(read, at, runner_up), ("GB",))[0]
    assert (d.text, d.country) == (expected, "GB")


def test_zero_for_o_fixed_on_uk_plates_even_when_the_model_is_sure():
    # 0 and O are nearly one glyph in the UK typeface: the grammar decides.
    d = best("AB12C0E", conf=0.95)
    assert (d.text, d.country, d.swaps) == ("AB12COE", "GB", 1)


def test_clean_foreign_reading_beats_a_swap_the_model_is_sure_against():
    # A Slovak plate on a UK camera is not forced into 'RK75SAJ' when the model clearly saw a 5.
    d = best("RK755AJ", countries=("GB",), conf=0.95)
    assert (d.text, d.country) == ("RK755AJ", "SK")


def test_lookalike_table_is_symmetric_and_limited():
    assert set(LOOKALIKES) == set("0O1I5S8B2Z6G")
    for a, b in LOOKALIKES.items():
        assert LOOKALIKES[b] == a


def test_reading_fitting_no_grammar_keeps_its_characters():
    d = best("7777777777", countries=("GB",))
    assert d.text == "7777777777"
    assert d.country is None and d.format_name is None


def test_foreign_plate_reported_with_its_country():
    d = best("RK755AJ", countries=("SK", "CZ"))
    assert (d.text, d.country) == ("RK755AJ", "SK")
    d = best("1B80338", countries=("SK", "CZ"))
    assert (d.text, d.country) == ("1B80338", "CZ")


def test_loose_us_format_only_when_configured():
    assert best("CCLVN3", countries=("US",)).country == "US"
    assert best("CCLVN3", countries=("GB",)).country != "US"


def test_alternatives_are_ranked_and_distinct():
    ranked = decode(lattice("AB1ZCDE"), ("GB",), max_alternatives=3)
    assert 1 < len(ranked) <= 4
    assert len({d.text for d in ranked}) == len(ranked)
    assert [d.score for d in ranked] == sorted((d.score for d in ranked), reverse=True)


def test_uncertain_extra_leading_character_is_dropped():
    # A band or screw read as a weak first character: the plate without it fits the grammar.
    lat = Lattice.from_text("XAB12CDE", [0.3] + [0.95] * 7)
    assert decode(lat, ("GB",))[0].text == "AB12CDE"


def _frames(text: str) -> np.ndarray:
    """CTC-like output: each character peaks on one frame, blanks between."""
    t = 2 * len(text) + 1
    p = np.full((t, 1 + len(ALPHABET)), 0.001, np.float32)
    p[:, 0] = 0.96
    for i, ch in enumerate(text):
        row = 2 * i + 1
        p[row, :] = 0.001
        p[row, 1 + ALPHABET.index(ch)] = 0.95
    return p


def test_best_path_collapses_repeats_and_blanks():
    probs = _frames("AA1")
    assert best_path(probs).text == "AA1"  # the blank between the two As keeps both
    doubled = np.repeat(_frames("B7"), 2, axis=0)  # each peak held for two frames
    assert best_path(doubled).text == "B7"
    assert best_path(np.tile(np.eye(1, 37, 0, dtype=np.float32), (8, 1))).text == ""


def test_decode_on_model_like_output():
    d = decode(best_path(_frames("AB12CDE")), ("GB",))[0]
    assert d.text == "AB12CDE" and 0.4 < d.confidence <= 1.0
    assert len(d.char_confidences) == 7
