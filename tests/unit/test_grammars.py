"""Plate grammars against each country's rules, with concrete plate strings (edge.plates.grammars).

`match_format(text, (country,))` tries the named country's formats first, so a string legal there
is classified there even where another country's format also fits it."""

from __future__ import annotations

import pytest

from edge.plates.decode import match_format
from edge.plates.grammars import FORMATS, formats_for


def fmt_name(text: str, country: str = "GB") -> str | None:
    f = match_format(text, (country,))
    return f.name if f else None


def country_of(text: str, country: str = "GB") -> str | None:
    f = match_format(text, (country,))
    return f.country if f else None


# --- Great Britain -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text",
    ["AB51CDE",  # September 2001, the first issue
     "AB02CDE", "AB25CDE", "AB26CDE",  # March 2002, 2025, 2026
     "AB52CDE", "AB75CDE", "AB76CDE",  # September 2002, 2025, 2026
     "YX12ABZ",  # Z is a legal random letter
     "LA10XYZ", "SV60HJK", "MW19WWW"],
)
def test_gb_current_accepts_issued_age_identifiers(text):
    assert fmt_name(text) == "gb_current"


@pytest.mark.parametrize("text", ["AB00CDE", "AB01CDE", "AB50CDE"])
def test_gb_current_refuses_age_identifiers_never_issued(text):
    # March 2002 was '02' and September 2001 '51': '00', '01' and '50' were never issued.
    assert fmt_name(text) != "gb_current"


@pytest.mark.parametrize(
    "text",
    ["IB12CDE", "QB12CDE", "ZB12CDE", "AI12CDE", "AQ12CDE", "AZ12CDE",  # memory tag: no I, Q, Z
     "AB12IDE", "AB12CQE", "AB12CDI",  # random letters: no I, Q
     "AB80CDE", "AB92CDE",  # first digit 8-9 not issued yet (September 2030 onwards)
     "AB1CDE", "AB123CDE", "A12CDE", "AB12CD"],
)
def test_gb_current_refuses_illegal_strings(text):
    assert fmt_name(text) != "gb_current"


@pytest.mark.parametrize("text", ["A1BCD", "A12BCD", "A123BCD", "Y999XYZ", "P7ABC"])
def test_gb_prefix_accepted(text):
    assert fmt_name(text) == "gb_prefix"


@pytest.mark.parametrize("letter", list("IOQUZ"))
def test_gb_prefix_and_suffix_refuse_year_letters_never_used(letter):
    assert fmt_name(f"{letter}123BCD") != "gb_prefix"
    assert fmt_name(f"ABC123{letter}") != "gb_suffix"


@pytest.mark.parametrize("text", ["A0BCD", "A012BCD", "A1234BCD"])
def test_gb_prefix_refuses_bad_numbers(text):
    assert fmt_name(text) != "gb_prefix"


@pytest.mark.parametrize("text", ["ABC1D", "ABC12D", "ABC123D", "XYZ999Y"])
def test_gb_suffix_accepted(text):
    assert fmt_name(text) == "gb_suffix"


@pytest.mark.parametrize("text", ["ABZ1234", "IBZ1234", "AIB1234", "ABZ1", "CIA12", "IA1", "BZ1234", "DZ99"])
def test_gb_northern_ireland_accepted(text):
    assert fmt_name(text) == "gb_ni"


# Codes with I second: JI (Tyrone), OI and XI (Belfast), UI (Londonderry city). From 1958 the codes
# also ran reversed, number first ('1 IA' ... '9999 SZ'), before the 'AXX 1234' series of 1966.
@pytest.mark.parametrize("text", ["XI1234", "OI1", "JI99", "UI123", "AXI1234", "BOI12", "CJI1", "DUI9999",
                                  "1IA", "1234IA", "99BZ", "9999SZ", "123XI"])
def test_gb_northern_ireland_codes_with_i_second_and_reversed_marks(text):
    assert fmt_name(text) == "gb_ni"


@pytest.mark.parametrize("text", ["IA1", "IB12", "IG123", "IJ1234", "IL1", "IW1", "AZ1", "VZ1", "YZ1", "AIG1", "BVZ12"])
def test_gb_northern_ireland_accepts_each_kind_of_code(text):
    assert fmt_name(text) == "gb_ni"


# Codes never Northern Ireland's: IK (Dublin), IN, IT (Republic of Ireland), ZA-ZZ (Irish Free State).
@pytest.mark.parametrize("text", ["IK1234", "IN12", "AIT1", "ZZ1", "IZ12", "AZZ1234", "1234IK"])
def test_gb_northern_ireland_refuses_codes_of_the_republic(text):
    assert fmt_name(text) != "gb_ni"


@pytest.mark.parametrize("text", ["ABZ0123", "ABZ12345", "QBZ1234", "AQZ1234"])
def test_gb_northern_ireland_refuses_bad_marks(text):
    assert fmt_name(text) != "gb_ni"


@pytest.mark.parametrize("text", ["1A", "A1", "1234AB", "AB1234", "123ABC", "ABC123", "9999YY"])
def test_gb_dateless_accepted_either_order(text):
    assert fmt_name(text) == "gb_dateless"


@pytest.mark.parametrize("text", ["0123AB", "AB0123", "12345AB", "ABCD123", "1234"])
def test_gb_dateless_refuses_bad_marks(text):
    assert fmt_name(text) != "gb_dateless"


@pytest.mark.parametrize("text", ["", "A", "1", "12345", "ABCDE", "AB12CDEF", "12AB34CD", "AAAAAAAAAAAA"])
def test_obviously_illegal_strings_are_not_gb(text):
    assert country_of(text) != "GB"


# --- Europe and beyond ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, country, name",
    [
        ("BA123XY", "SK", "sk"), ("BZM2227", "SK", "sk_old"),
        ("1A23456", "CZ", "cz"), ("2SA1234", "CZ", "cz"), ("9Z91234", "CZ", "cz"),
        ("BAB1234", "DE", "de"), ("MX1", "DE", "de"), ("WOBAB123", "DE", "de"),
        ("AB123CD", "FR", "fr"),
        ("1234BCD", "ES", "es"),
        ("AB123CD", "IT", "it"),
        ("WA12345", "PL", "pl"), ("KRA12AB", "PL", "pl"),
        ("131D12345", "IE", "ie"), ("98D1", "IE", "ie"), ("12KK123456", "IE", "ie"),
        ("1ABC123", "BE", "be"), ("2XYZ999", "BE", "be"),
        ("AB12345", "NO", "no"), ("EL12345", "NO", "no"),
        ("ABC1234", "BR", "br_old"), ("ABC1D23", "BR", "br_mercosur"),
    ],
)
def test_european_and_other_formats_accepted(text, country, name):
    assert fmt_name(text, country) == name


@pytest.mark.parametrize(
    "text, country",
    [
        ("0A23456", "CZ"), ("1D23456", "CZ"),  # no leading 0; D is no Czech region
        ("BAB0123", "DE"), ("BABC12345", "DE"),  # number never starts with 0; at most 8 characters
        ("AI123CD", "FR"), ("AO123CD", "FR"), ("AB123CU", "FR"),  # no I, O, U in the SIV scheme
        ("1234ACD", "ES"), ("1234BCQ", "ES"),  # no vowels, no Q
        ("AI123CD", "IT"), ("AB123CQ", "IT"), ("AU123CD", "IT"),  # no I, O, Q, U
        ("0ABC123", "BE"),
        ("GA12345", "NO"), ("IA12345", "NO"), ("OA12345", "NO"), ("AB01234", "NO"),
    ],
)
def test_european_formats_refuse_illegal_strings(text, country):
    f = match_format(text, (country,))
    assert f is None or f.country != country


@pytest.mark.parametrize("text", ["WA12345", "WA1234A", "WA123AB", "WA1AB23", "KRA12AB", "KRA1A23", "KRA12345"])
def test_pl_accepts_at_most_two_letters_after_the_district(text):
    assert fmt_name(text, "PL") == "pl"


@pytest.mark.parametrize("text", ["WA1ABCD", "WA12ABC", "KRA1ABC", "AB1XCDE"])
def test_pl_refuses_three_or_more_letters_after_the_district(text):
    assert country_of(text, "PL") != "PL"


@pytest.mark.parametrize("text", ["131D1", "132D12345", "251KK123", "87D1", "12MH12345"])
def test_ie_accepts_two_digit_years_and_three_digit_half_years(text):
    assert fmt_name(text, "IE") == "ie"


@pytest.mark.parametrize("text", ["133D1", "130D1", "139KK123", "123GB1"])
def test_ie_refuses_a_third_year_digit_other_than_the_half_year(text):
    # Since 2013 the year is followed by 1 (January-June) or 2 (July-December), nothing else.
    assert country_of(text, "IE") != "IE"


def test_countries_named_in_lower_case_are_preferred():
    assert formats_for(["gb"])[0] == (FORMATS[0], True)
    assert match_format("AB12CDE", ("gb",)).name == "gb_current"


def test_unknown_country_still_tries_every_strict_format():
    order = formats_for(["XX"])
    assert all(not preferred for _, preferred in order)
    assert {f.name for f, _ in order} == {f.name for f in FORMATS if not f.loose}
