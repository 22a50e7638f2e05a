"""Model files and their sidecars: what does not fit is a ModelError naming the file, not a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
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
    side["input"].update(height=390, width=640)  # the model takes any size, but in multiples of 32
    return side


@needs_models
def test_a_detector_sidecar_naming_an_input_size_the_model_cannot_take_is_a_model_error(tmp_path):
    path = _copy("detector", tmp_path, _resized)
    with pytest.raises(ModelError, match=r"detector\.json.*390x640"):
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


@needs_models
@pytest.mark.parametrize("name", ["detector", "detector_int8"])
def test_the_detector_takes_any_input_size_fixed_per_session(name):
    model = load_model(MODELS_DIR / f"{name}.onnx")
    assert model.free_hw == ("height", "width")
    sized = model.sized(height=224, width=416)
    assert sized is model.sized(height=224, width=416)  # one session per size, kept
    assert sized.session.get_inputs()[0].shape == [1, 3, 224, 416]
    image = np.full((1, 3, 448, 800), 114, np.float32)
    image[:, :, 100:140, 200:380] = 255
    heat, reg = sized.run(np.ascontiguousarray(image[:, :, :224, :416]))
    assert heat.shape == (1, 1, 56, 104) and reg.shape == (1, 12, 56, 104)
    # The same graph at the sidecar's full size gives what the file's free-size session gives.
    full = model.sized(height=448, width=800).run(image)
    assert np.allclose(full[0], model.run(image)[0], atol=1e-5)


def _detector_with_input_dims(tmp_path: Path, height: int | str, width: int | str) -> Path:
    """models/detector.onnx copied with its input height and width declared as given: an int fixes one, a name leaves it free."""
    import onnx

    model = onnx.load(str(MODELS_DIR / "detector.onnx"))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in ((dims[2], height), (dims[3], width)):
        dim.Clear()
        if isinstance(value, int):
            dim.dim_value = value
        else:
            dim.dim_param = value
    onnx.save(model, str(tmp_path / "detector.onnx"))
    shutil.copy(MODELS_DIR / "detector.json", tmp_path / "detector.json")
    return tmp_path / "detector.onnx"


@needs_models
@pytest.mark.parametrize("height, width", [(448, 800), ("size", "size")], ids=["static (an older export)", "one name for both"])
def test_a_detector_whose_height_and_width_are_not_free_apart_runs_at_the_sidecar_size(tmp_path, height, width):
    # One name for both says height == width: a session with it fixed to a canvas's width refuses a
    # canvas of another height, so such a file gets the sidecar's full canvas, as a static one does.
    path = _detector_with_input_dims(tmp_path, height, width)
    detector = load_detector(CameraConfig().with_overrides(detector={"model": str(path)}))
    assert detector.model.free_hw is None
    assert detector.network(448, 640) is detector.model
    detector.detect(np.full((480, 640, 3), 90, np.uint8))  # 4:3: a 448x640 canvas, were it trimmed


def test_the_session_dropped_beyond_the_limit_is_the_least_recently_used(monkeypatch):
    # Over photos of many sizes the common size must stay open: each reopening costs ~11 ms.
    import edge.onnx

    monkeypatch.setattr(edge.onnx, "_session", lambda path, threads, dims=None: object())
    model = edge.onnx.OnnxModel(Path("stub.onnx"), {}, "0" * 64, session=None)
    common = model.sized(height=448, width=640)
    for width in range(64, 64 * (edge.onnx.MAX_SIZED_SESSIONS + 2), 64):  # more other sizes than are kept
        model.sized(height=256, width=width)
        assert model.sized(height=448, width=640) is common
    assert len(model._sized) == edge.onnx.MAX_SIZED_SESSIONS


@needs_models
def test_a_fixed_size_detector_whose_sidecar_names_another_size_is_a_model_error(tmp_path):
    path = _detector_with_input_dims(tmp_path, 384, 640)  # an export at 384x640, its sidecar saying 448x800
    with pytest.raises(ModelError, match=r"detector\.json.*448x800.*takes 384x640"):
        load_detector(CameraConfig().with_overrides(detector={"model": str(path)}))


@needs_models
def test_the_warm_up_opens_the_sessions_a_calibrated_camera_uses(tmp_path):
    from types import SimpleNamespace

    cal = SimpleNamespace(image_size=(1920, 1080), roi=[(0, 540), (1919, 540), (1919, 1079), (0, 1079)], plate_width_px=(150.0, 300.0))
    detector = load_detector(CameraConfig(), cal)
    # The 1919x539 ROI strip drawn 800 px wide is 225 px high: a 256x800 canvas, and no session for
    # the sidecar's full 448x800 one, which its frames never use (nor a close-up retry: it is calibrated).
    assert set(detector.model._sized) == {(("height", 256), ("width", 800))}


@needs_models
def test_a_fixed_size_detector_without_a_sidecar_is_named_as_such(tmp_path):
    """The error blamed detector.json, a file that did not exist: the size was the default."""
    path = _detector_with_input_dims(tmp_path, 384, 640)
    (tmp_path / "detector.json").unlink()
    with pytest.raises(ModelError, match=r"detector\.onnx: no sidecar detector\.json, so the default: input 448x800.*takes 384x640"):
        load_detector(CameraConfig().with_overrides(detector={"model": str(path)}))
