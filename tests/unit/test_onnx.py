"""Model files and their sidecars: what does not fit is a ModelError naming the file, not a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edge.config import MODELS_DIR, CameraConfig
from edge.detect import load_detector
from edge.errors import ModelError
from edge.onnx import load_model
from edge.read import load_reader

needs_models = pytest.mark.skipif(
    not (MODELS_DIR / "detector.onnx").is_file() or not (MODELS_DIR / "reader.onnx").is_file(), reason="models not built"
)


def _copy(name: str, tmp_path: Path, edit=None) -> Path:
    """models/NAME.onnx and its sidecar copied to tmp_path, the sidecar passed through `edit`."""
    shutil.copy(MODELS_DIR / f"{name}.onnx", tmp_path / f"{name}.onnx")
    side = json.loads((MODELS_DIR / f"{name}.json").read_text())
    (tmp_path / f"{name}.json").write_text(json.dumps(edit(side) if edit else side))
    return tmp_path / f"{name}.onnx"


def _resized(side: dict) -> dict:
    side["input"].update(height=384, width=640)
    return side


@needs_models
def test_a_detector_sidecar_naming_another_input_size_is_a_model_error(tmp_path):
    path = _copy("detector", tmp_path, _resized)
    with pytest.raises(ModelError, match=r"detector\.json.*384x640"):
        load_detector(CameraConfig().with_overrides(detector={"model": str(path)}))


@needs_models
def test_a_reader_sidecar_naming_another_input_size_is_a_model_error(tmp_path):
    def narrower(side: dict) -> dict:
        side["input"]["shape"] = [1, 32, 100]
        return side

    path = _copy("reader", tmp_path, narrower)
    with pytest.raises(ModelError, match=r"reader\.json.*32x100"):
        load_reader(CameraConfig().with_overrides(reader={"model": str(path)}))


@needs_models
@pytest.mark.parametrize("sidecar", [b"[1, 2]", b'{"input": null}', b"\xff\xfe{}"], ids=["a list", "input null", "not utf-8"])
def test_a_sidecar_that_is_not_a_json_object_is_a_model_error(tmp_path, sidecar):
    path = _copy("detector", tmp_path)
    path.with_suffix(".json").write_bytes(sidecar)
    with pytest.raises(ModelError, match=r"detector\.json"):
        load_model(path)


def _set(path: list[str], value):
    def edit(side: dict) -> dict:
        node = side
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return side

    return edit


@needs_models
@pytest.mark.parametrize("field, value", [(["input", "height"], "big"), (["stride"], None), (["input", "pad_value"], [1])])
def test_a_detector_sidecar_field_of_the_wrong_type_is_a_model_error_naming_it(tmp_path, field, value):
    path = _copy("detector", tmp_path, _set(field, value))
    with pytest.raises(ModelError, match=rf"detector\.json.*{field[-1]}"):
        load_detector(CameraConfig().with_overrides(detector={"model": str(path)}))


@needs_models
@pytest.mark.parametrize("value", [[128], "32x128", None])
def test_a_reader_sidecar_input_shape_of_the_wrong_form_is_a_model_error_naming_it(tmp_path, value):
    path = _copy("reader", tmp_path, _set(["input", "shape"], value))
    with pytest.raises(ModelError, match=r"reader\.json.*shape"):
        load_reader(CameraConfig().with_overrides(reader={"model": str(path)}))
