"""Dutch plate grammar against the RDW's sidecodes (edge.plates.grammars)."""

from __future__ import annotations

import pytest

from edge.plates.decode import Lattice, decode, match_format


def country_of(text: str, country: str) -> str | None:
    f = match_format(text, (country,))
    return f.country if f else None


# Netherlands: the sidecodes issued so far (RDW; "Regeling kentekens en kentekenplaten", art. 1:
# every kenteken is three groups: 2+2+2, or 2 digits-3 letters-1 digit, 2 letters-3 digits-1 letter,
# 3 letters-2 digits-1 letter, 3 digits-2 letters-1 digit, in some order).
@pytest.mark.parametrize(
    "text, sidecode",
    [
        ("GB1234", 1), ("1234GB", 2), ("12GB34", 3), ("GB12KL", 4), ("GBKL12", 5), ("12GBKL", 6),
        ("12GBK3", 7), ("1GBK23", 8), ("GB123K", 9), ("G123KL", 10), ("GBK12L", 11), ("1GB234", 13),
    ],
)
def test_nl_every_issued_sidecode_accepted(text, sidecode):
    assert country_of(text, "NL") == "NL", f"sidecode {sidecode}"


@pytest.mark.parametrize("text", ["GB12KL3", "12345K", "G1K2L3"])
def test_nl_refuses_groupings_no_sidecode_has(text):
    assert country_of(text, "NL") != "NL"


def test_nl_refuses_the_four_group_shape_no_sidecode_has():
    assert country_of("GB12K3", "NL") != "NL"


def test_nl_plate_on_a_dutch_camera_is_not_bent_into_another_country():
    # A sidecode 6 plate (1999-2008) read cleanly: not changed to a UK '126BKL' with a 6 for a G.
    d = decode(Lattice.from_text("12GBKL", [0.9] * 6), ("NL",))[0]
    assert (d.text, d.country) == ("12GBKL", "NL")
