"""edge.labels on labels.csv files as integrators' tools write them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import ConfigError
from edge.labels import load_labelled_folder
from edge.types import Box


def _folder(tmp_path: Path, csv_bytes: bytes, images: tuple[str, ...] = ("a.jpg",)) -> Path:
    for name in images:
        cv2.imwrite(str(tmp_path / name), np.zeros((20, 40, 3), np.uint8))
    (tmp_path / "labels.csv").write_bytes(csv_bytes)
    return tmp_path


def test_a_byte_order_mark_and_crlf_line_ends_are_read(tmp_path: Path) -> None:
    # Excel's "CSV UTF-8" and Windows tools write both.
    folder = _folder(tmp_path, b"\xef\xbb\xbfimage,plate,x,y,w,h\r\na.jpg,ab12 cde,1,2,30,8\r\n")
    (im,) = load_labelled_folder(folder)
    assert im.plates[0].plate == "AB12CDE" and im.plates[0].box == Box(1, 2, 30, 8)


def test_a_file_that_is_not_utf8_is_a_config_error_naming_it(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "image,plate,x,y,w,h\ncafé.jpg,AB12CDE,,,,\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="labels.csv"):
        load_labelled_folder(folder)


def test_extra_columns_spaces_lower_case_empty_boxes_sub_folders_and_two_plates_per_image(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    folder = _folder(tmp_path, b"image,plate,x,y,w,h,notes\n"
                               b"a.jpg, ab12 cde ,1,2,30,8,front\n"
                               b"a.jpg,XY34ZZZ,,,,,rear: box unknown\n"
                               b"sub/b.JPG,FUW999,1,2,0,8,zero width: unknown\n",
                     images=("a.jpg", "sub/b.JPG"))
    a, b = load_labelled_folder(folder)
    assert [(p.plate, p.box) for p in a.plates] == [("AB12CDE", Box(1, 2, 30, 8)), ("XY34ZZZ", None)]
    assert b.path == folder / "sub" / "b.JPG" and b.plates[0].box is None


def test_a_listed_image_that_is_missing_is_named(tmp_path: Path) -> None:
    folder = _folder(tmp_path, b"image,plate,x,y,w,h\na.jpg,AB12CDE,,,,\ngone.jpg,AB12CDE,,,,\n")
    with pytest.raises(ConfigError, match="gone.jpg"):
        load_labelled_folder(folder)
