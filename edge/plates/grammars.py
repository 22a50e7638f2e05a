"""Plate formats per country: which positions hold letters, which digits, and which letters are never issued.

A format is written as groups of (allowed characters, fewest, most); it expands into fixed-length
templates, one allowed-character set per position, which the decoder matches readings against.
GB comes first and is the most detailed (DVLA rules); the European formats follow the national
schemes closely enough to tell letters from digits per position. Loose formats (US, where every
state has its own) only say "5 to 8 letters and digits": they are used only where a camera's
configuration names the country, never to claim a reading for it otherwise.

Sources: DVLA "INF104 vehicle registration numbers and number plates"; DOMAIN.md; the national
schemes as published on the registration authorities' pages (SK, CZ, DE, FR, NL, ES, IT, PL, IE, BE, NO).
"""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass
from functools import lru_cache

L = string.ascii_uppercase
D = string.digits
A = D + L


def minus(chars: str, banned: str) -> str:
    return "".join(c for c in chars if c not in banned)


Group = tuple[str, int, int]  # allowed characters, fewest, most


@dataclass(frozen=True)
class PlateFormat:
    name: str  # e.g. "gb_current"
    country: str  # ISO 3166 alpha-2 ("GB"), or "US"/"BR"
    variants: tuple[tuple[Group, ...], ...]  # alternatives, each a sequence of groups
    example: str
    loose: bool = False  # says little: only used when the camera's countries name it
    max_len: int = 10

    @property
    def templates(self) -> tuple[tuple[str, ...], ...]:
        return _expand(self)


@lru_cache(maxsize=None)
def _expand(fmt: PlateFormat) -> tuple[tuple[str, ...], ...]:
    out: list[tuple[str, ...]] = []
    for groups in fmt.variants:
        ranges = [range(lo, hi + 1) for _, lo, hi in groups]
        for counts in itertools.product(*ranges):
            if sum(counts) > fmt.max_len:
                continue
            t: list[str] = []
            for (chars, _, _), n in zip(groups, counts):
                t.extend([chars] * n)
            if tuple(t) not in out:
                out.append(tuple(t))
    return tuple(out)


def fits(text: str, fmt: PlateFormat) -> bool:
    return any(len(t) == len(text) and all(c in s for c, s in zip(text, t)) for t in fmt.templates)


NZ = "123456789"  # a number never starts with 0 on a UK plate
GB_TAG = minus(L, "IQZ")  # memory tags never use I, Q or Z
GB_LETTERS = minus(L, "IQ")  # the random letters never use I or Q
GB_YEAR = minus(L, "IOQUZ")  # prefix and suffix year letters
# Northern Ireland's codes: IA, IB, IG, IJ, IL, IW; JI, OI, UI, XI; AZ-YZ. The other I and Z codes
# (IK Dublin, ZA-ZZ, ...) were the Republic of Ireland's.
NI_CODE_FIRST = "I"
NI_AFTER_I = "ABGJLW"
NI_I_SECOND = "JOUX"  # JI (Tyrone), OI and XI (Belfast), UI (Londonderry)
_NI_CODES: tuple[tuple[Group, Group], ...] = (
    ((NI_CODE_FIRST, 1, 1), (NI_AFTER_I, 1, 1)),
    ((NI_I_SECOND, 1, 1), ("I", 1, 1)),
    ((minus(L, "IQZ"), 1, 1), ("Z", 1, 1)),
)
FR_L = minus(L, "IOU")
NL_L = minus(L, "AEIOUCQ")
ES_L = minus(L, "AEIOUQ")
IT_L = minus(L, "IOQU")
CZ_REGION = "ABCEHJKLMPSTUZ"

# Poland: after the district, at most two of the 4-5 characters are letters ('WA 1ABCD' is no plate).
_PL_VARIANTS: tuple[tuple[Group, ...], ...] = tuple(
    ((L, 2, 3), (D, 1, 1), *((kind, 1, 1) for kind in rest))
    for n in (3, 4)
    for rest in itertools.product((D, L), repeat=n)
    if rest.count(L) <= 2
)

FORMATS: tuple[PlateFormat, ...] = (
    # --- Great Britain (GB first: the engine's home market) ---
    # Age identifier: March 02, 03, ...; September 51, 52, ... ('00', '01' and '50' were never issued).
    # A first digit of 8 or 9 (September 2030 onwards) is not issued yet.
    PlateFormat("gb_current", "GB", (
        ((GB_TAG, 2, 2), ("0", 1, 1), ("23456789", 1, 1), (GB_LETTERS, 3, 3)),
        ((GB_TAG, 2, 2), ("123467", 1, 1), (D, 1, 1), (GB_LETTERS, 3, 3)),
        ((GB_TAG, 2, 2), ("5", 1, 1), (NZ, 1, 1), (GB_LETTERS, 3, 3)),
    ), "AB12CDE"),
    PlateFormat("gb_prefix", "GB", (((GB_YEAR, 1, 1), (NZ, 1, 1), (D, 0, 2), (GB_LETTERS, 3, 3)),), "A123BCD"),
    PlateFormat("gb_suffix", "GB", (((GB_LETTERS, 3, 3), (NZ, 1, 1), (D, 0, 2), (GB_YEAR, 1, 1)),), "ABC123D"),
    # An optional serial letter, the code, the number ('ABZ 1234', 'IA 1'); or, as issued 1958-1966,
    # the number first ('1234 IA').
    PlateFormat("gb_ni", "GB", tuple(
        ((minus(L, "Q"), 0, 1), *code, (NZ, 1, 1), (D, 0, 3)) for code in _NI_CODES
    ) + tuple(((NZ, 1, 1), (D, 0, 3), *code) for code in _NI_CODES), "ABZ1234"),
    # Dateless marks of Great Britain: I and Z were Ireland's (they are Northern Ireland's above).
    PlateFormat("gb_dateless", "GB", (
        ((NZ, 1, 1), (D, 0, 3), (minus(L, "IQZ"), 1, 3)),
        ((minus(L, "IQZ"), 1, 3), (NZ, 1, 1), (D, 0, 3)),
    ), "1234AB"),
    # --- Europe ---
    PlateFormat("sk", "SK", (((L, 2, 2), (D, 3, 3), (L, 2, 2)),), "BA123XY"),
    PlateFormat("cz", "CZ", (((NZ, 1, 1), (CZ_REGION, 1, 1), (A, 1, 1), (D, 4, 4)),), "1A23456"),
    # Czechoslovak plates (1960-2001), still on the road: district letters and 'NN-NN'.
    PlateFormat("sk_old", "SK", (((L, 3, 3), (D, 4, 4)),), "BZM2227"),
    PlateFormat("cz_old", "CZ", (((L, 3, 3), (D, 4, 4)),), "ABC1234"),
    PlateFormat("de", "DE", (((L, 1, 3), (L, 1, 2), (NZ, 1, 1), (D, 0, 3)),), "BAB1234", max_len=8),
    PlateFormat("fr", "FR", (((FR_L, 2, 2), (D, 3, 3), (FR_L, 2, 2)),), "AB123CD"),
    # The RDW's sidecodes issued so far (12, X-99-XXX, and 14, 999-XX-9, are not issued yet).
    PlateFormat("nl", "NL", (
        ((NL_L, 2, 2), (D, 4, 4)),  # 1: XX-99-99
        ((D, 4, 4), (NL_L, 2, 2)),  # 2: 99-99-XX
        ((D, 2, 2), (NL_L, 2, 2), (D, 2, 2)),  # 3: 99-XX-99
        ((NL_L, 2, 2), (D, 2, 2), (NL_L, 2, 2)),  # 4: XX-99-XX
        ((NL_L, 4, 4), (D, 2, 2)),  # 5: XX-XX-99
        ((D, 2, 2), (NL_L, 4, 4)),  # 6: 99-XX-XX
        ((D, 2, 2), (NL_L, 3, 3), (D, 1, 1)),  # 7: 99-XXX-9
        ((D, 1, 1), (NL_L, 3, 3), (D, 2, 2)),  # 8: 9-XXX-99
        ((NL_L, 2, 2), (D, 3, 3), (NL_L, 1, 1)),  # 9: XX-999-X
        ((NL_L, 1, 1), (D, 3, 3), (NL_L, 2, 2)),  # 10: X-999-XX
        ((NL_L, 3, 3), (D, 2, 2), (NL_L, 1, 1)),  # 11: XXX-99-X
        ((D, 1, 1), (NL_L, 2, 2), (D, 3, 3)),  # 13: 9-XX-999
    ), "GB12KL"),
    PlateFormat("es", "ES", (((D, 4, 4), (ES_L, 3, 3)),), "1234BCD"),
    PlateFormat("it", "IT", (((IT_L, 2, 2), (D, 3, 3), (IT_L, 2, 2)),), "AB123CD"),
    # District (2-3 letters), then a digit and 3-4 letters or digits (e.g. WA 12345, KR 1234A, KRA 12AB).
    PlateFormat("pl", "PL", _PL_VARIANTS, "WA12345", max_len=8),
    # Year (2 digits; since 2013 followed by 1 or 2 for the half-year), county (1-2 letters), number.
    PlateFormat("ie", "IE", (((D, 2, 2), ("12", 0, 1), (L, 1, 2), (NZ, 1, 1), (D, 0, 5)),), "191D12345"),
    PlateFormat("be", "BE", (((NZ, 1, 1), (L, 3, 3), (D, 3, 3)),), "1ABC123"),
    PlateFormat("no", "NO", (((minus(L, "GIMOQW"), 2, 2), (NZ, 1, 1), (D, 3, 4)),), "AB12345"),
    # --- Beyond Europe (the reader is trained on them so that it generalises) ---
    PlateFormat("br_old", "BR", (((L, 3, 3), (D, 4, 4)),), "ABC1234"),
    PlateFormat("br_mercosur", "BR", (((L, 3, 3), (D, 1, 1), (L, 1, 1), (D, 2, 2)),), "ABC1D23"),
    PlateFormat("us_generic", "US", (((A, 2, 8),),), "7ABC123", loose=True),
)

COUNTRIES: tuple[str, ...] = tuple(dict.fromkeys(f.country for f in FORMATS))


def formats_for(countries: tuple[str, ...] | list[str] | None) -> list[tuple[PlateFormat, bool]]:
    """Formats to try, each with whether it is preferred: the named countries first (in order),
    then every other strict format. Loose formats come only when their country is named."""
    named = [c.upper() for c in (countries or ())]
    order: list[tuple[PlateFormat, bool]] = []
    for c in named:
        order += [(f, True) for f in FORMATS if f.country == c]
    order += [(f, False) for f in FORMATS if f.country not in named and not f.loose]
    return order
