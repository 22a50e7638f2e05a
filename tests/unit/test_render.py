"""The plate renderer: legal texts per format, images of the promised shape, seeded."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edge.plates.grammars import FORMATS as GRAMMARS
from edge.plates.grammars import fits
from edge.plates.image import TWO_LINE_ASPECT
from models.train import render

GRAMMAR_BY_NAME = {g.name: g for g in GRAMMARS}
RENDER_FORMATS = [(country, name) for country, table in render.FORMATS.items() for name, _, _ in table]


@pytest.mark.parametrize("country, fmt", RENDER_FORMATS, ids=[f for _, f in RENDER_FORMATS])
def test_rendered_texts_are_legal_for_their_format(country, fmt):
    rng = np.random.default_rng(1)
    seen = 0
    for _ in range(400):
        text, name = render.random_plate_text(rng, country)
        assert text.isalnum() and text == text.upper() and " " not in text
        if name != fmt:
            continue
        seen += 1
        if fmt in GRAMMAR_BY_NAME:
            assert fits(text, GRAMMAR_BY_NAME[fmt]), f"{text!r} is not a legal {fmt} plate"
        else:  # generic plates have no grammar: only the alphabet and a plausible length
            assert 4 <= len(text) <= 8
    assert seen > 0, f"format {fmt} never drawn for {country}"


def test_every_gb_format_is_rendered():
    rng = np.random.default_rng(2)
    names = {render.random_plate_text(rng, "GB")[1] for _ in range(500)}
    assert names == {"gb_current", "gb_prefix", "gb_suffix", "gb_dateless", "gb_ni"}


@pytest.mark.parametrize("lines", [1, 2])
@pytest.mark.parametrize("colour", ["yellow", "white"])
def test_plate_image_shape_colour_and_layout(lines, colour):
    p = render.random_plate(np.random.default_rng(3), "GB", colour=colour, lines=lines, height_px=90)
    assert p.image.dtype == np.uint8 and p.image.ndim == 3 and p.image.shape[2] == 3
    h, w = p.image.shape[:2]
    assert h == 90
    assert (w / h < TWO_LINE_ASPECT) == (lines == 2)  # the reader tells the layouts apart by shape
    assert (p.colour, p.lines, p.country) == (colour, lines, "GB")
    b, g, r = np.median(p.image.reshape(-1, 3).astype(int), axis=0)  # the background dominates
    if colour == "yellow":
        assert r > 150 and g > 120 and b < 100, "yellow plates are yellow"
    else:
        assert min(b, g, r) > 150, "white plates are white"
    assert (p.image.max(axis=2) < 90).mean() > 0.08  # dark characters are drawn


def test_given_text_is_drawn_and_validated():
    p = render.random_plate(np.random.default_rng(4), "GB", text="ab12 cde")
    assert p.text == "AB12CDE" and p.plate_format == "custom"
    with pytest.raises(ValueError, match="letters A-Z"):
        render.random_plate(np.random.default_rng(4), "GB", text="AB-12")
    with pytest.raises(ValueError, match="unknown country"):
        render.random_plate(np.random.default_rng(4), "ZZ")


def test_same_seed_same_plate():
    a = render.random_plate(np.random.default_rng(5))
    b = render.random_plate(np.random.default_rng(5))
    assert a.text == b.text and np.array_equal(a.image, b.image)


def test_font_dir_from_environment(tmp_path, monkeypatch):
    src = render.font_paths()[0]
    shutil.copy(src, tmp_path / "MyPlateFont.ttf")
    monkeypatch.setenv(render.FONT_DIR_ENV, str(tmp_path))
    assert render.font_paths()[0] == tmp_path / "MyPlateFont.ttf"
