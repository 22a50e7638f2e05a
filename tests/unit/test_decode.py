"""Grammar-aware decoding (edge.plates.decode): look-alike corrections only where a template demands
them, and no crash or stray character on odd lattices and country lists."""

from __future__ import annotations

import numpy as np
import pytest

from edge.plates.decode import (ALPHABET, FORMATS, LOOKALIKES, RUNNER_UP_MIN, Lattice, _fits_cache, _matching,
                                _templates_by_length, best_path, decode)
from edge.plates.grammars import formats_for

_INDEX_OF = {c: i for i, c in enumerate(ALPHABET)}


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


# The decoder's fast paths (template bitmasks, the per-text cache of fits, best path on plain ints)
# must give what the plain algorithms give: these compare them on many texts and lattices.

def _scanned_fits(countries: tuple[str, ...], text: str) -> list[tuple[str, str, bool]]:
    """Every template of the text's length in table order (named countries first), fitted as it is or
    with look-alikes: (corrected text, format, preferred), the first template per corrected text."""
    first: dict[str, tuple[str, bool]] = {}
    for fmt, preferred in formats_for(countries):
        for template in fmt.templates:
            if len(template) != len(text):
                continue
            chars = [ch if ch in allowed else LOOKALIKES.get(ch, "?") for ch, allowed in zip(text, template)]
            if all(c in allowed for c, allowed in zip(chars, template)):
                first.setdefault("".join(chars), (fmt.name, preferred))
    return [(t, name, preferred) for t, (name, preferred) in first.items()]


def _plate_like_texts(n: int, seed: int) -> list[str]:
    """Format examples with look-alikes swapped in, and random texts rich in look-alikes."""
    rng = np.random.default_rng(seed)
    texts = [f.example for f in FORMATS]
    for example in list(texts):
        texts.append("".join(LOOKALIKES.get(c, c) if rng.random() < 0.4 else c for c in example))
    pool = list(ALPHABET) + list("0O1I5S8B2Z6G") * 2
    texts += ["".join(rng.choice(pool, int(rng.integers(2, 11)))) for _ in range(n)]
    return texts


@pytest.mark.parametrize("countries", [("GB",), ("SK", "CZ"), ("US",), ("DE", "FR", "NL"), ()])
def test_template_bitmasks_fit_what_a_scan_of_the_templates_fits(countries):
    tables = _templates_by_length(countries)
    for text in _plate_like_texts(300, seed=len(countries)):
        table = tables.get(len(text))
        got = [] if table is None else [
            (new_text, table.entries[k][0].name, table.entries[k][2]) for k, _, new_text in _matching(table, text)]
        assert got == _scanned_fits(countries, text), text


def test_decoding_from_cached_fits_is_decoding_afresh():
    # Fresh: the cache emptied before each decoding. Then all again, the countries interleaved, so a
    # cache that mixed up countries or lengths, or a fit that changed what it was handed, would show.
    rng = np.random.default_rng(7)
    lattices = [random_lattice(int(n), seed=int(n) * 31 + s) for s, n in enumerate(rng.integers(0, 11, 60))]
    for text in _plate_like_texts(60, seed=9):
        conf = rng.choice([0.3, 0.6, 0.97], len(text)).tolist()
        lat = Lattice.from_text(text, conf).probs
        lat[:, _INDEX_OF[LOOKALIKES.get(text[0], "Q")]] += 0.2  # a runner-up that is a look-alike
        lattices.append(Lattice(lat))
    country_sets = [("GB",), ("US",), ("SK", "CZ")]
    fresh = {}
    for countries in country_sets:
        for i, lat in enumerate(lattices):
            _fits_cache.clear()
            fresh[countries, i] = decode(lat, countries)
    for i, lat in enumerate(lattices):
        for countries in country_sets:
            assert decode(lat, countries) == fresh[countries, i]


def _best_path_loop(frame_probs: np.ndarray) -> np.ndarray:
    """CTC best path frame by frame: a new character where the class changes, else the row's maximum."""
    rows: list[np.ndarray] = []
    prev = 0
    for t, cls in enumerate(frame_probs.argmax(axis=1)):
        if cls != 0:
            if cls != prev:
                rows.append(frame_probs[t, 1:].astype(np.float32))
            else:
                rows[-1] = np.maximum(rows[-1], frame_probs[t, 1:])
        prev = cls
    return np.array(rows, np.float32).reshape(-1, len(ALPHABET))


@pytest.mark.parametrize("frames", [0, 1, 2, 32, 64])
def test_best_path_is_the_frame_by_frame_collapse(frames):
    rng = np.random.default_rng(frames)
    for concentration in (0.05, 0.3, 3.0):  # peaked (long runs, repeats) to flat
        probs = rng.dirichlet(np.full(1 + len(ALPHABET), concentration), size=frames).astype(np.float32)
        probs = probs.reshape(frames, 1 + len(ALPHABET))
        got = best_path(probs).probs
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, _best_path_loop(probs))


def test_runner_up_threshold_is_compared_in_the_lattices_precision():
    # The decoder always compared a float32 probability with RUNNER_UP_MIN as float32: a runner-up
    # at exactly float32(RUNNER_UP_MIN), a hair below the float64 value, is still a candidate.
    lat = Lattice.from_text("AB12CDE", [0.95] * 7).probs
    at = np.float32(RUNNER_UP_MIN)
    assert float(at) < RUNNER_UP_MIN
    texts = {}
    for name, p in (("at", at), ("below", np.nextafter(at, np.float32(0)))):
        lat[6, ALPHABET.index("F")] = p
        texts[name] = [d.text for d in decode(Lattice(lat), ("GB",), max_alternatives=10)]
    assert "AB12CDF" in texts["at"] and "AB12CDF" not in texts["below"]
