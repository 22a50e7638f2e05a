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


@pytest.mark.parametrize(
    "read, expected",
    [
        ("AB1ZCDE", "AB12CDE"),  # Z where the age identifier needs a digit
        ("AB12C0E", "AB12COE"),  # 0 where the random letters need a letter
        ("A812CDE", "A812CDE"),  # a legal prefix plate: nothing to correct
        ("AB6ZCDE", "AB62CDE"),  # only the position that demands it changes; 6 stays a digit
        ("5B12CDE", "SB12CDE"),
    ],
)
def test_lookalikes_fixed_only_where_grammar_demands(read, expected):
    d = best(read)
    assert d.text == expected
    assert d.country == "GB"


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
