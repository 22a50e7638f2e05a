"""Grammar-aware decoding (edge.plates.decode): look-alike corrections only where a template demands
them, and no crash or stray character on odd lattices and country lists."""

from __future__ import annotations

import numpy as np
import pytest

from edge.plates.decode import ALPHABET, Lattice, decode


def lattice(text: str, conf: float = 0.9) -> Lattice:
    return Lattice.from_text(text, [conf] * len(text))


def random_lattice(n: int, seed: int) -> Lattice:
    p = np.random.default_rng(seed).random((n, len(ALPHABET))).astype(np.float32)
    return Lattice(p / p.sum(axis=1, keepdims=True) if n else p)


@pytest.mark.parametrize(
    "text, country",
    [
        ("BB58BBB", "GB"),  # 8 in the age identifier, B in the letters: each allowed where it stands
        ("SG56SSS", "GB"),  # S and G letters, 5 and 6 digits
        ("OX10OOO", "GB"),  # O is a legal memory tag and random letter; 0 a legal digit
        ("AZ1", "GB"),  # Northern Ireland: Z in the code, 1 the number
        ("1234BCD", "ES"),
        ("GB12KL", "NL"),
    ],
)
def test_a_legal_reading_is_never_changed(text, country):
    d = decode(lattice(text, 0.95), (country,))[0]
    assert (d.text, d.swaps) == (text, 0)


@pytest.mark.parametrize(
    "read, expected",
    [
        ("AB1OCDE", "AB10CDE"),  # O where the age identifier needs a digit
        ("8A12CDE", "BA12CDE"),  # 8 where the memory tag needs a letter
        ("0X10ABC", "OX10ABC"),  # 0 where the memory tag needs a letter
        ("5V60HJK", "SV60HJK"),
    ],
)
def test_lookalike_swapped_only_at_the_position_the_grammar_forbids(read, expected):
    d = decode(lattice(read, 0.9), ("GB",))[0]
    assert (d.text, d.country, d.swaps) == (expected, "GB", 1)


def test_uk_plate_with_a_letter_for_a_digit_is_not_taken_for_polish():
    # 'AB1GCDE' is no Polish plate (at most two letters follow the district), so the UK reading
    # with the demanded G->6 swap wins even though the model was sure of the G.
    d = decode(lattice("AB1GCDE", 0.9), ("GB",))[0]
    assert (d.text, d.country, d.swaps) == ("AB16CDE", "GB", 1)


def test_no_swap_outside_the_lookalike_pairs():
    # 'AB1XCDE': X in the age identifier has no look-alike digit; it is kept, fitting no format.
    d = decode(lattice("AB1XCDE", 0.95), ("GB",))[0]
    assert d.text == "AB1XCDE" and d.country is None


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 20, 24, 40])
@pytest.mark.parametrize("countries", [("GB",), ("gb",), ("nl", "GB"), ("XX",), ()])
def test_any_lattice_decodes_to_plate_characters(n, countries):
    ranked = decode(random_lattice(n, seed=n), countries)
    assert ranked, "at least one reading"
    for d in ranked:
        assert set(d.text) <= set(ALPHABET)
        assert len(d.char_confidences) == len(d.text)
        assert 0.0 <= d.confidence <= 1.0


def test_empty_lattice_gives_an_empty_reading():
    d = decode(Lattice(np.zeros((0, len(ALPHABET)), np.float32)), ("GB",))[0]
    assert (d.text, d.country, d.confidence) == ("", None, 0.0)


def test_lower_case_country_is_the_same_country():
    lat = lattice("AB12C0E", 0.95)
    upper, lower = decode(lat, ("GB",))[0], decode(lat, ("gb",))[0]
    assert (lower.text, lower.country, lower.score) == (upper.text, upper.country, upper.score) == (
        "AB12COE", "GB", upper.score)


def test_unknown_country_still_reads_known_formats():
    d = decode(lattice("AB12CDE", 0.95), ("XX",))[0]
    assert (d.text, d.country) == ("AB12CDE", "GB")


def test_long_lattice_keeps_its_characters():
    text = "AB12CDE" * 3
    d = decode(lattice(text), ("GB",))[0]
    assert d.text == text and d.country is None


@pytest.mark.parametrize("conf", [0.0, 1e-9, 0.01, 0.5, 1.0])
def test_lattice_from_text_keeps_its_characters_at_any_confidence(conf):
    # A backend's zero confidence must not turn every character into '0' (an all-zero row).
    assert Lattice.from_text("AB12CDE", [conf] * 7).text == "AB12CDE"


def test_lattice_from_text_refuses_a_confidence_count_that_does_not_match():
    with pytest.raises(ValueError, match="7 characters"):
        Lattice.from_text("AB12CDE", [0.9])


def test_belfast_plate_on_a_uk_camera_is_a_uk_plate():
    # 'AXI 1234': serial A, Belfast code XI. Not a Czechoslovak-era 'AXI 1234' from abroad.
    d = decode(lattice("AXI1234", 0.95), ("GB",))[0]
    assert (d.text, d.country, d.format_name) == ("AXI1234", "GB", "gb_ni")
