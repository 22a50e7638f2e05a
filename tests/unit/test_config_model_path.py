"""Where `[detector] model` and `[reader] model` are looked for, as their descriptions (and so the
README's configuration table) say: a bare name in models/, a path with a folder relative to the
camera file, an absolute path as it is."""

from __future__ import annotations

from pathlib import Path

from edge.config import MODELS_DIR, load_camera_config


def camera_file(tmp_path: Path, detector: str, reader: str) -> Path:
    cam = tmp_path / "etc" / "north.toml"
    cam.parent.mkdir()
    cam.write_text(f'[detector]\nmodel = "{detector}"\n[reader]\nmodel = "{reader}"\n')
    return cam


def test_a_bare_name_is_looked_up_in_models(tmp_path):
    cfg = load_camera_config(camera_file(tmp_path, "detector_int8.onnx", "reader_int8.onnx"))
    assert cfg.model_path(cfg.detector.model) == MODELS_DIR / "detector_int8.onnx"
    assert cfg.model_path(cfg.reader.model) == MODELS_DIR / "reader_int8.onnx"


def test_a_path_with_a_folder_is_relative_to_the_camera_file(tmp_path):
    cfg = load_camera_config(camera_file(tmp_path, "models/det.onnx", "../shared/reader.onnx"))
    assert cfg.model_path(cfg.detector.model) == tmp_path / "etc" / "models" / "det.onnx"
    assert cfg.model_path(cfg.reader.model) == tmp_path / "etc" / ".." / "shared" / "reader.onnx"


def test_an_absolute_path_is_kept(tmp_path):
    cfg = load_camera_config(camera_file(tmp_path, str(tmp_path / "d.onnx"), str(tmp_path / "r.onnx")))
    assert cfg.model_path(cfg.detector.model) == tmp_path / "d.onnx"
    assert cfg.model_path(cfg.reader.model) == tmp_path / "r.onnx"


def test_the_descriptions_say_so():
    from edge.config import DetectorSection, ReaderSection

    for section in (DetectorSection, ReaderSection):
        text = section.model_fields["model"].description
        assert "bare name is looked up in models/" in text and "relative to this file" in text
