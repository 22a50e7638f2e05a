"""Synthetic number plates: legal texts per country and format, drawn front-on like the real thing.

Used for reader training data, detector training scenes and the sample frames. Only numpy,
OpenCV, Pillow and TrueType fonts are needed. Fonts are looked up by path (Debian packages
fonts-opendin, fonts-dejavu(-extra), fonts-roboto-unhinted, fonts-liberation), plus every
*.ttf/*.otf in the folder named by $EDGE_FONT_DIR (e.g. a copy of those files on a machine
without them, or the user's own plate-like fonts).

The UK plate typeface (Charles Wright 2001) has no free licence, so plates are drawn with
several condensed bold sans faces; each glyph is rendered alone, cropped to its ink and
scaled to the plate's character box, with per-plate stroke weight and per-character
squeeze, so that the reader sees many glyph styles instead of one font's metrics.

    rng = np.random.default_rng(0)
    plate = random_plate(rng, "GB")          # RenderedPlate(image, text, country, plate_format, colour, lines, band)
    cv2.imwrite("plate.png", plate.image)
"""

from __future__ import annotations

import functools
import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

LETTERS = string.ascii_uppercase
DIGITS = string.digits
ALPHABET = DIGITS + LETTERS

# Debian font files tried in order; missing ones are skipped.
_SYSTEM_FONTS = (
    "/usr/share/fonts/truetype/opendin/OSP-DIN.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Bold.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Medium.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Regular.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoTTF/Roboto-Bold.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoTTF/Roboto-Black.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoTTF/Roboto-Medium.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Bold.ttf",
)
FONT_DIR_ENV = "EDGE_FONT_DIR"


@dataclass
class RenderedPlate:
    image: np.ndarray  # BGR uint8, whole plate incl. border, front-on, un-augmented
    text: str  # A-Z0-9, no spaces
    country: str  # "GB", "SK", "DE", ...
    plate_format: str  # e.g. "gb_current", "gb_prefix", "sk", "us_generic"
    colour: str  # "yellow" | "white" | "grey" | "blue" ...: the plate background
    lines: int  # 1 or 2
    band: str = "none"  # the left band drawn: "green" (UK zero-emission flash), "blue" (UK/GB or EU identifier), "none"


# ---------------------------------------------------------------------------
# Fonts


def font_paths() -> list[Path]:
    """Every usable font file: $EDGE_FONT_DIR first, then the Debian ones present on this machine."""
    found: list[Path] = []
    extra = os.environ.get(FONT_DIR_ENV)
    if extra:
        d = Path(extra)
        if d.is_dir():
            found += sorted(p for p in d.rglob("*") if p.suffix.lower() in (".ttf", ".otf"))
    seen = {p.name for p in found}
    for raw in _SYSTEM_FONTS:
        p = Path(raw)
        if p.is_file() and p.name not in seen:
            found.append(p)
            seen.add(p.name)
    if not found:
        raise FileNotFoundError(
            "no plate fonts found: install Debian's fonts-opendin, fonts-dejavu, fonts-roboto-unhinted or "
            f"fonts-liberation, or point ${FONT_DIR_ENV} at a folder of .ttf files"
        )
    return found


@functools.lru_cache(maxsize=4096)
def _glyph_mask(font_path: str, ch: str, weight: int) -> np.ndarray:
    """The ink of one character at a large size, cropped tight, float32 in [0, 1].

    `weight` thickens (>0) or thins (<0) the stroke by that many pixels at this size.
    """
    size = 120
    font = ImageFont.truetype(font_path, size)
    canvas = Image.new("L", (size * 2, size * 2), 0)
    ImageDraw.Draw(canvas).text((size // 2, size // 4), ch, font=font, fill=255)
    mask = np.asarray(canvas)
    if weight:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(weight) + 1, 2 * abs(weight) + 1))
        mask = cv2.dilate(mask, k) if weight > 0 else cv2.erode(mask, k)
    ys, xs = np.nonzero(mask > 40)
    if len(xs) == 0:
        return np.ones((size, size // 2), np.float32)
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return crop.astype(np.float32) / 255.0


# ---------------------------------------------------------------------------
# Plate texts: each format returns its groups (drawn with a wider gap between them)


def _pick(rng: np.random.Generator, chars: str, n: int) -> str:
    return "".join(chars[i] for i in rng.integers(0, len(chars), n))


def _digits(rng: np.random.Generator, lo: int, hi: int, no_leading_zero: bool = True) -> str:
    n = int(rng.integers(lo, hi + 1))
    s = _pick(rng, DIGITS, n)
    if no_leading_zero and s[0] == "0":
        s = _pick(rng, "123456789", 1) + s[1:]
    return s


def _minus(chars: str, banned: str) -> str:
    return "".join(c for c in chars if c not in banned)


GB_MEMORY_TAG = _minus(LETTERS, "IQZ")  # DVLA memory tags never use I, Q or Z
GB_RANDOM = _minus(LETTERS, "IQ")  # the three random letters never use I or Q
GB_YEAR = _minus(LETTERS, "IOQUZ")  # prefix/suffix year letters
NI_CODES = ("IA", "IB", "IG", "IJ", "IL", "IW", "AZ", "BZ", "CZ", "DZ", "EZ", "FZ", "GZ", "HZ", "JZ", "KZ",
            "LZ", "MZ", "NZ", "OZ", "PZ", "RZ", "SZ", "TZ", "UZ", "WZ", "XZ", "YZ")


def _gb_current(rng):
    age = int(rng.integers(2, 27)) + (50 if rng.random() < 0.5 else 0)
    if age == 2 and rng.random() < 0.5:
        age = 51  # September 2001 was the first issue
    return [_pick(rng, GB_MEMORY_TAG, 2) + f"{age:02d}", _pick(rng, GB_RANDOM, 3)]


def _gb_prefix(rng):
    return [_pick(rng, GB_YEAR, 1) + _digits(rng, 1, 3), _pick(rng, GB_RANDOM, 3)]


def _gb_suffix(rng):
    return [_pick(rng, GB_RANDOM, 3), _digits(rng, 1, 3) + _pick(rng, GB_YEAR, 1)]


def _gb_dateless(rng):
    letters = _pick(rng, _minus(LETTERS, "IQZ"), int(rng.integers(1, 4)))
    digits = _digits(rng, 1, 4)
    return [letters, digits] if rng.random() < 0.5 else [digits, letters]


def _gb_ni(rng):
    code = NI_CODES[int(rng.integers(len(NI_CODES)))]
    return [_pick(rng, _minus(LETTERS, "IQZ"), 1) + code, _digits(rng, 1, 4)]


SK_DISTRICTS = ("BA", "BB", "BL", "BT", "KE", "KS", "NR", "PO", "PP", "TT", "TN", "ZA", "LM", "RK", "PD", "DK",
                "BY", "SI", "MT", "NM", "LV", "KN", "SC", "TO")
CZ_REGIONS = "ABCEHJKLMPSTUZ"
DE_CITIES = ("B", "M", "K", "F", "S", "HH", "HB", "DO", "DU", "KA", "MA", "WOB", "BS", "GÖ", "RE", "NE", "LB",
             "ROW", "OHZ", "LDS", "MZG", "HD", "HN", "BN", "GE")
PL_DISTRICTS = ("WA", "WI", "KR", "PO", "GD", "WR", "LU", "SK", "DW", "EL", "KRA", "WND", "PZ", "ZS", "BI")
ES_LETTERS = _minus(LETTERS, "AEIOUQ")
IE_COUNTIES = ("D", "C", "G", "L", "LK", "W", "WX", "KE", "KK", "MH", "MO", "DL", "CE", "T", "TS", "WH", "LH")
FR_LETTERS = _minus(LETTERS, "IOU")
NL_LETTERS = _minus(LETTERS, "AEIOUCQ")
US_LETTERS = _minus(LETTERS, "O")  # most US issuers avoid O next to 0 (the labels write it as 0)


def _sk(rng):
    return [SK_DISTRICTS[int(rng.integers(len(SK_DISTRICTS)))], _pick(rng, DIGITS, 3) + _pick(rng, LETTERS, 2)]


def _cz(rng):
    return [_pick(rng, "123456789", 1) + _pick(rng, CZ_REGIONS, 1) + _pick(rng, DIGITS + CZ_REGIONS, 1),
            _pick(rng, DIGITS, 4)]


def _de(rng):
    city = DE_CITIES[int(rng.integers(len(DE_CITIES)))].replace("Ö", "O")
    letters = _pick(rng, LETTERS, int(rng.integers(1, 3)))
    room = 8 - len(city) - len(letters)
    digits = _digits(rng, 1, min(4, room))
    return [city, letters + digits]


def _fr(rng):
    return [_pick(rng, FR_LETTERS, 2), _pick(rng, DIGITS, 3), _pick(rng, FR_LETTERS, 2)]


def _nl(rng):
    shapes = ("LL99LL", "99LLL9", "9LLL99", "LL999L", "L999LL", "LLL99L", "99LL99", "9LL999")  # RDW sidecodes 4, 7-11, 3, 13
    shape = shapes[int(rng.integers(len(shapes)))]
    text = "".join(_pick(rng, NL_LETTERS if s == "L" else DIGITS, 1) for s in shape)
    return _split_runs(text)


def _es(rng):
    return [_pick(rng, DIGITS, 4), _pick(rng, ES_LETTERS, 3)]


def _it(rng):
    it = _minus(LETTERS, "IOQU")
    return [_pick(rng, it, 2), _pick(rng, DIGITS, 3), _pick(rng, it, 2)]


def _pl(rng):
    d = PL_DISTRICTS[int(rng.integers(len(PL_DISTRICTS)))]
    if len(d) == 2:
        return [d, _digits(rng, 5, 5, no_leading_zero=False) if rng.random() < 0.5 else _pick(rng, DIGITS, 4) + _pick(rng, LETTERS, 1)]
    return [d, _pick(rng, DIGITS, 2) + _pick(rng, _minus(LETTERS, "BDIOZ"), 2) if rng.random() < 0.5 else _pick(rng, DIGITS, 4)]


def _ie(rng):
    year = int(rng.integers(13, 26))
    return [f"{year:02d}" + ("1" if rng.random() < 0.5 else "2"), IE_COUNTIES[int(rng.integers(len(IE_COUNTIES)))],
            _digits(rng, 1, 5)]


def _be(rng):
    return [_pick(rng, "12", 1), _pick(rng, _minus(LETTERS, "QV"), 3), _pick(rng, DIGITS, 3)]


def _no(rng):
    return [_pick(rng, _minus(LETTERS, "GIMOQW"), 2), _digits(rng, 5, 5)]


def _us(rng):
    shapes = ("LLL9999", "9LLL999", "LLL999", "999LLL", "LL99999", "9LL9999", "LLLL99", "99LL9L9", "LL9L9L")
    shape = shapes[int(rng.integers(len(shapes)))]
    text = "".join(_pick(rng, US_LETTERS if s == "L" else DIGITS, 1) for s in shape)
    return [text[:3], text[3:]] if rng.random() < 0.6 else [text]


def _br_old(rng):  # grey plates until 2018
    return [_pick(rng, LETTERS, 3), _pick(rng, DIGITS, 4)]


def _br_mercosur(rng):
    return [_pick(rng, LETTERS, 3) + _pick(rng, DIGITS, 1) + _pick(rng, LETTERS, 1) + _pick(rng, DIGITS, 2)]


def _generic(rng):
    n = int(rng.integers(4, 9))
    return _split_runs(_pick(rng, ALPHABET, n))


def _split_runs(text: str) -> list[str]:
    """Groups at letter/digit changes: 'AB12CDE' -> ['AB', '12', 'CDE']."""
    groups: list[str] = []
    for ch in text:
        if groups and groups[-1][-1].isdigit() == ch.isdigit():
            groups[-1] += ch
        else:
            groups.append(ch)
    return groups or [""]


# country -> [(format, weight, generator)]
FORMATS: dict[str, list[tuple[str, float, Callable[[np.random.Generator], list[str]]]]] = {
    "GB": [("gb_current", 0.6, _gb_current), ("gb_prefix", 0.12, _gb_prefix), ("gb_suffix", 0.08, _gb_suffix),
           ("gb_dateless", 0.1, _gb_dateless), ("gb_ni", 0.1, _gb_ni)],
    "SK": [("sk", 1.0, _sk)],
    "CZ": [("cz", 1.0, _cz)],
    "DE": [("de", 1.0, _de)],
    "FR": [("fr", 1.0, _fr)],
    "NL": [("nl", 1.0, _nl)],
    "ES": [("es", 1.0, _es)],
    "IT": [("it", 1.0, _it)],
    "PL": [("pl", 1.0, _pl)],
    "IE": [("ie", 1.0, _ie)],
    "BE": [("be", 1.0, _be)],
    "NO": [("no", 1.0, _no)],
    "US": [("us_generic", 1.0, _us)],
    "BR": [("br_old", 0.5, _br_old), ("br_mercosur", 0.5, _br_mercosur)],
    "XX": [("generic", 1.0, _generic)],
}
# How often each country is drawn when none is asked for: the UK first, Europe next, then the rest.
COUNTRY_WEIGHTS = {"GB": 0.40, "SK": 0.06, "CZ": 0.05, "DE": 0.06, "FR": 0.04, "NL": 0.04, "ES": 0.04, "IT": 0.04,
                   "PL": 0.04, "IE": 0.04, "BE": 0.03, "NO": 0.03, "US": 0.06, "BR": 0.04, "XX": 0.03}
EU_BAND_CODES = {"SK": "SK", "CZ": "CZ", "DE": "D", "FR": "F", "NL": "NL", "ES": "E", "IT": "I", "PL": "PL",
                 "IE": "IRL", "BE": "B", "NO": "N"}


def _groups_for(rng: np.random.Generator, country: str) -> tuple[list[str], str]:
    if country not in FORMATS:
        raise ValueError(f"unknown country {country!r}; known: {', '.join(sorted(FORMATS))}")
    table = FORMATS[country]
    w = np.array([t[1] for t in table])
    name, _, gen = table[int(rng.choice(len(table), p=w / w.sum()))]
    return gen(rng), name


def random_plate_text(rng: np.random.Generator, country: str) -> tuple[str, str]:
    """A legal plate text (A-Z0-9, no spaces) for `country` and the name of its format."""
    groups, fmt = _groups_for(rng, country)
    return "".join(groups), fmt


def random_country(rng: np.random.Generator) -> str:
    names = list(COUNTRY_WEIGHTS)
    p = np.array([COUNTRY_WEIGHTS[n] for n in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


# ---------------------------------------------------------------------------
# Drawing

_BG = {  # BGR
    "yellow": (20, 200, 250),
    "white": (240, 240, 240),
    "grey": (175, 178, 180),
    "blue": (140, 60, 20),
    "green": (60, 140, 40),
    "black": (25, 25, 25),
}
_EU_BLUE = (153, 51, 0)


def _default_colour(rng: np.random.Generator, country: str) -> str:
    if country == "GB":  # a few historic black-and-silver plates
        return "black" if rng.random() < 0.02 else ("yellow" if rng.random() < 0.55 else "white")
    if country == "NL":
        return "yellow" if rng.random() < 0.8 else "white"
    if country == "BR":
        return "grey" if rng.random() < 0.4 else "white"
    return "white" if rng.random() < 0.95 else "yellow"


def _ink_colour(rng: np.random.Generator, country: str, colour: str) -> tuple[int, int, int]:
    if colour in ("blue", "green", "black"):
        return (235, 235, 235)
    if country == "US" and rng.random() < 0.5:
        choices = [(110, 40, 10), (30, 30, 140), (40, 90, 20), (60, 40, 40)]
        return choices[int(rng.integers(len(choices)))]
    g = int(rng.integers(5, 45))
    return (g, g, g)


def _draw_text_small(img: np.ndarray, text: str, x: int, y: int, h: int, colour, font: Path) -> None:
    """Small secondary text (dealer name, state name, band code) with PIL, in place."""
    if h < 4 or not text:
        return
    pil = Image.fromarray(img[..., ::-1])
    f = ImageFont.truetype(str(font), max(4, int(h * 1.25)))
    ImageDraw.Draw(pil).text((x, y), text, font=f, fill=tuple(int(c) for c in colour[::-1]))
    img[:] = np.asarray(pil)[..., ::-1]


def _paste_glyph(img: np.ndarray, mask: np.ndarray, x: int, y: int, w: int, h: int, ink) -> None:
    w, h = max(1, w), max(1, h)
    m = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA)
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(img.shape[1], x + w), min(img.shape[0], y + h)
    if x1 <= x0 or y1 <= y0:
        return
    m = m[y0 - y : y1 - y, x0 - x : x1 - x, None]
    region = img[y0:y1, x0:x1].astype(np.float32)
    img[y0:y1, x0:x1] = (region * (1 - m) + np.array(ink, np.float32) * m).astype(np.uint8)


def _draw_eu_band(img: np.ndarray, bw: int, code: str, font: Path) -> None:
    h = img.shape[0]
    img[:, :bw] = _EU_BLUE
    cx, cy, r = bw // 2, int(h * 0.3), max(2, int(bw * 0.3))
    for k in range(12):  # the circle of twelve yellow stars, as dots
        a = 2 * np.pi * k / 12
        cv2.circle(img, (int(cx + r * np.cos(a)), int(cy + r * np.sin(a))), max(1, bw // 14), (0, 204, 255), -1)
    th = int(h * 0.28)
    _draw_text_small(img, code, max(1, cx - int(th * 0.35 * len(code))), int(h * 0.58), th, (240, 240, 240), font)


def _draw_union_flag(img: np.ndarray, x: int, y: int, w: int, h: int) -> None:
    flag = np.zeros((h, w, 3), np.uint8)
    flag[:] = (125, 36, 1)
    t = max(1, h // 6)
    cv2.line(flag, (0, 0), (w, h), (255, 255, 255), t)
    cv2.line(flag, (0, h), (w, 0), (255, 255, 255), t)
    cv2.line(flag, (0, 0), (w, h), (46, 16, 200), max(1, t // 2))
    cv2.line(flag, (0, h), (w, 0), (46, 16, 200), max(1, t // 2))
    cv2.rectangle(flag, (w // 2 - t, 0), (w // 2 + t, h), (255, 255, 255), -1)
    cv2.rectangle(flag, (0, h // 2 - t), (w, h // 2 + t), (255, 255, 255), -1)
    cv2.rectangle(flag, (w // 2 - t // 2, 0), (w // 2 + t // 2, h), (46, 16, 200), -1)
    cv2.rectangle(flag, (0, h // 2 - t // 2), (w, h // 2 + t // 2), (46, 16, 200), -1)
    img[y : y + h, x : x + w] = flag


def _draw_gb_band(rng: np.random.Generator, img: np.ndarray, bw: int, font: Path) -> str:
    """A UK band, blue with the identifier or (one in five) the green zero-emission flash; returns which."""
    h = img.shape[0]
    green = rng.random() < 0.2  # zero-emission "green flash"
    img[:, :bw] = (80, 160, 0) if green else (153, 51, 0)
    if not green or rng.random() < 0.5:
        fw = int(bw * 0.7)
        fh = max(2, int(fw * 0.6))
        if rng.random() < 0.6 and fh < h // 2:
            _draw_union_flag(img, (bw - fw) // 2, int(h * 0.12), fw, fh)
        else:
            cx, cy, r = bw // 2, int(h * 0.3), max(2, int(bw * 0.3))
            for k in range(12):
                a = 2 * np.pi * k / 12
                cv2.circle(img, (int(cx + r * np.cos(a)), int(cy + r * np.sin(a))), max(1, bw // 14), (0, 204, 255), -1)
    code = "UK" if rng.random() < 0.6 else "GB"
    th = int(h * 0.26)
    _draw_text_small(img, code, max(1, bw // 2 - int(th * 0.65)), int(h * 0.6), th, (240, 240, 240), font)
    return "green" if green else "blue"


def _layout_rows(groups: list[str], lines: int) -> list[list[str]]:
    if lines == 1:
        return [groups]
    if len(groups) >= 2:
        # Two-line plates put the first group on top (GB: 'AB12' over 'CDE').
        k = max(1, len(groups) // 2) if len(groups) > 2 else 1
        return [groups[:k], groups[k:]]
    text = groups[0]
    half = (len(text) + 1) // 2
    return [[text[:half]], [text[half:]]]


def random_plate(
    rng: np.random.Generator,
    country: str | None = None,
    *,
    text: str | None = None,
    colour: str | None = None,
    lines: int | None = None,
    height_px: int = 110,
) -> RenderedPlate:
    """One plate, front-on and clean: background, optional band, characters, border and fixings.

    `text` (A-Z0-9) replaces the random text; its groups are then split at letter/digit changes.
    `height_px` is the plate's height (one- or two-line); the width follows the plate's shape.
    """
    country = country or random_country(rng)
    if text is not None:
        text = text.upper().replace(" ", "")
        if not text or any(c not in ALPHABET for c in text):
            raise ValueError(f"plate text must be letters A-Z and digits, got {text!r}")
        groups, fmt = _split_runs(text), "custom"
        if country == "GB" and len(groups) == 3 and len(text) == 7:
            groups = [groups[0] + groups[1], groups[2]]
        if country not in FORMATS:
            raise ValueError(f"unknown country {country!r}; known: {', '.join(sorted(FORMATS))}")
    else:
        groups, fmt = _groups_for(rng, country)
    text = "".join(groups)
    colour = colour or _default_colour(rng, country)
    if colour not in _BG:
        raise ValueError(f"unknown plate colour {colour!r}; known: {', '.join(_BG)}")
    if lines is None:
        lines = 2 if rng.random() < (0.15 if country in ("GB", "DE", "IT", "FR", "PL", "XX") else 0.05) else 1
    if lines not in (1, 2):
        raise ValueError(f"lines must be 1 or 2, got {lines}")
    fonts = font_paths()
    font = fonts[int(rng.integers(len(fonts)))]
    image, band = _draw_plate(rng, country, groups, colour, lines, height_px, font, fonts[0])
    return RenderedPlate(image=image, text=text, country=country, plate_format=fmt, colour=colour, lines=lines, band=band)


def _draw_plate(rng, country, groups, colour, lines, H, font, small_font) -> tuple[np.ndarray, str]:
    """The plate image and the left band drawn on it ("green", "blue" or "none").

    The band is reported, never drawn differently: the random numbers drawn and their order are
    those of every earlier version, so seeds reproduce the same plates (sample frames, test fixtures)."""
    us_like = country in ("US",) or (country == "BR" and rng.random() < 0.3)
    if lines == 2:
        aspect = rng.uniform(1.25, 1.45)
    elif us_like:
        aspect = rng.uniform(1.9, 2.1)
    else:
        aspect = rng.uniform(4.2, 4.8)
    W = int(round(H * aspect))
    bg = np.array(_BG[colour], np.float32)
    img = np.empty((H, W, 3), np.uint8)
    # Retroreflective sheeting is never perfectly flat: a faint gradient.
    grad = np.linspace(rng.uniform(-12, 6), rng.uniform(-6, 12), W, dtype=np.float32)[None, :, None]
    img[:] = np.clip(bg + grad + rng.normal(0, 2.5, (H, W, 1)), 0, 255).astype(np.uint8)
    ink = _ink_colour(rng, country, colour)

    # Left band: EU countries mostly, GB sometimes, never US/BR-old.
    band_w, band = 0, "none"
    if lines == 1 and not us_like:
        if country in EU_BAND_CODES and rng.random() < 0.85:
            band_w = int(H * rng.uniform(0.33, 0.42))
            _draw_eu_band(img, band_w, EU_BAND_CODES[country], small_font)
            band = "blue"
        elif country == "GB" and rng.random() < 0.45:
            band_w = int(H * rng.uniform(0.33, 0.42))
            band = _draw_gb_band(rng, img, band_w, small_font)
        elif country == "BR" and rng.random() < 0.5:  # Mercosur top band
            img[: int(H * 0.18)] = (150, 60, 0)

    top, bottom = int(H * 0.12), int(H * 0.12)
    if us_like:  # state name above, slogan below
        top, bottom = int(H * 0.24), int(H * 0.18)
        state = ["CALIFORNIA", "TEXAS", "NEW YORK", "FLORIDA", "OHIO", "ILLINOIS", "ARIZONA", "BRASIL"][int(rng.integers(8))]
        _draw_text_small(img, state, int(W * rng.uniform(0.2, 0.35)), int(H * 0.03), int(H * 0.14),
                         [(40, 40, 160), (120, 50, 10), ink][int(rng.integers(3))], small_font)
        if rng.random() < 0.6:
            _draw_text_small(img, "dmv.gov", int(W * 0.35), int(H * 0.85), int(H * 0.09), ink, small_font)
    elif lines == 1 and rng.random() < 0.35:  # dealer's name under the characters
        _draw_text_small(img, "SUPPLIER MOTORS LTD"[: int(rng.integers(6, 19))], int(W * 0.35), int(H * 0.89),
                         int(H * 0.07), ink, small_font)

    rows = _layout_rows(groups, lines)
    area_x0 = band_w + int(H * rng.uniform(0.08, 0.18))
    area_x1 = W - int(H * rng.uniform(0.08, 0.18))
    area_h = H - top - bottom
    row_gap = int(area_h * 0.08) if lines == 2 else 0
    char_h = int((area_h - row_gap) / lines * rng.uniform(0.86, 1.0))
    weight = int(rng.integers(-3, 4))
    squeeze = rng.uniform(0.75, 1.2)
    spacing = char_h * rng.uniform(0.07, 0.18)
    gap = char_h * rng.uniform(0.25, 0.55)
    for r, row in enumerate(rows):
        masks = [[_glyph_mask(str(font), ch, weight) for ch in g] for g in row]
        widths = [[char_h * m.shape[1] / m.shape[0] * squeeze * rng.uniform(0.93, 1.07) for m in g] for g in masks]
        total = sum(sum(w) for w in widths) + spacing * sum(len(g) - 1 for g in row) + gap * (len(row) - 1)
        scale = min(1.0, (area_x1 - area_x0) / max(total, 1))
        x = area_x0 + ((area_x1 - area_x0) - total * scale) / 2
        y = top + r * (char_h + row_gap) + (area_h - lines * char_h - row_gap * (lines - 1)) // 2
        for gi, g in enumerate(masks):
            for ci, m in enumerate(g):
                w = widths[gi][ci] * scale
                dy = int(rng.normal(0, char_h * 0.01))
                _paste_glyph(img, m, int(round(x)), int(y + dy), int(round(w)), char_h, ink)
                x += w + spacing * scale
            x += (gap - spacing) * scale

    # Border and fixings.
    if rng.random() < 0.5:
        t = max(1, int(H * rng.uniform(0.015, 0.04)))
        inset = int(H * rng.uniform(0.02, 0.06))
        cv2.rectangle(img, (inset + band_w, inset), (W - 1 - inset, H - 1 - inset), ink, t)
    if rng.random() < 0.5:
        r = max(1, int(H * rng.uniform(0.03, 0.06)))
        ys = [H // 2] if rng.random() < 0.5 else [int(H * 0.15)]
        xs = [int(W * rng.uniform(0.2, 0.3)), int(W * rng.uniform(0.7, 0.8))]
        cap = tuple(int(c) for c in (bg * rng.uniform(0.6, 1.1)).clip(0, 255))
        for sx in xs:
            for sy in ys:
                cv2.circle(img, (sx, sy), r, cap, -1)
                cv2.circle(img, (sx, sy), r, (90, 90, 90), 1)
    # Rounded dark outline of the plate edge (the holder shows around it in the scene).
    cv2.rectangle(img, (0, 0), (W - 1, H - 1), (60, 60, 60), 1)
    return img, band


if __name__ == "__main__":  # a contact sheet for eyeballing: python -m models.train.render out.png
    import sys

    rng = np.random.default_rng(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    tiles = []
    for c in list(FORMATS) + ["GB"] * 9:
        p = random_plate(rng, c, height_px=60)
        tile = np.full((80, 320, 3), 128, np.uint8)
        im = p.image if p.image.shape[1] <= 300 else cv2.resize(p.image, (300, int(p.image.shape[0] * 300 / p.image.shape[1])))
        im = im[:62]
        tile[: im.shape[0], : im.shape[1]] = im
        cv2.putText(tile, f"{p.text} {p.plate_format}", (2, 77), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        tiles.append(tile)
    rows = [np.hstack(tiles[i : i + 4]) for i in range(0, len(tiles) - len(tiles) % 4, 4)]
    cv2.imwrite(sys.argv[1] if len(sys.argv) > 1 else "plates.png", np.vstack(rows))
