"""One wrapper for onnxruntime sessions: threads, providers, the sidecar, a content hash.

Each model `models/NAME.onnx` has a sidecar `models/NAME.json` that says how to feed
it (input size, alphabet, normalisation) so a model can be retrained or swapped alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ModelError

log = logging.getLogger(__name__)


MAX_SIZED_SESSIONS = 4  # sessions kept per model for fixed sizes of its free dimensions: each holds ~12 MB of buffers


@dataclass
class OnnxModel:
    path: Path
    sidecar: dict[str, Any]
    sha256: str
    session: Any = field(repr=False)
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    threads: int = 1
    _sized: dict[tuple[tuple[str, int], ...], OnnxModel] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return str(self.sidecar.get("name", self.path.stem))

    @property
    def version(self) -> str:
        return str(self.sidecar.get("version", "unknown"))

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.output_names, dict(zip(self.input_names, inputs)))

    @property
    def free_hw(self) -> tuple[str, str] | None:
        """Names of the first (N, C, H, W) input's height and width when the file leaves each free on its own, else None.

        One name for both says height == width: fixed to one canvas's width, it would refuse that canvas's height."""
        shape = self.session.get_inputs()[0].shape
        free = len(shape) == 4 and isinstance(shape[2], str) and isinstance(shape[3], str) and shape[2] != shape[3]
        return (shape[2], shape[3]) if free else None

    def sized(self, **dims: int) -> OnnxModel:
        """This model with named free dimensions fixed, e.g. `sized(height=448, width=608)`.

        onnxruntime fuses and lays out a graph fully only when every shape is known: run with free
        dimensions, the detector is about 10 % slower than the same graph at a fixed size. One
        session per size is kept (a camera uses one or two), the least recently used dropped beyond
        MAX_SIZED_SESSIONS (the dict is kept in order of use).
        """
        key = tuple(sorted(dims.items()))
        model = self._sized.pop(key, None)
        if model is None:
            session = _session(self.path, self.threads, dims)
            model = OnnxModel(self.path, self.sidecar, self.sha256, session, self.input_names, self.output_names, self.threads)
            if len(self._sized) >= MAX_SIZED_SESSIONS:
                del self._sized[next(iter(self._sized))]
        self._sized[key] = model
        return model


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _session(path: Path, threads: int, dims: dict[str, int] | None = None) -> Any:
    """An onnxruntime CPU session: `threads` intra-op threads, all graph optimisations, `dims` fixing free dimensions."""
    try:
        import onnxruntime as ort
    except ImportError as err:  # pragma: no cover - a core dependency
        raise ModelError(f"onnxruntime is not installed ({err}); install the package with pip") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    for name, value in (dims or {}).items():
        opts.add_free_dimension_override_by_name(name, value)
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own untyped errors for corrupt files
        raise ModelError(f"{path}: cannot load ONNX model: {err}") from None


def load_model(path: str | Path, threads: int = 1) -> OnnxModel:
    """Open an ONNX model and its sidecar; errors name the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found (train it with the code in models/train, or set the model path in the config)")
    sidecar_path = path.with_suffix(".json")
    try:
        sidecar = json.loads(sidecar_path.read_text()) if sidecar_path.is_file() else {}
    except ValueError as err:  # JSONDecodeError, or UnicodeDecodeError for bytes that are not UTF-8
        raise ModelError(f"{sidecar_path}: sidecar is not valid JSON: {err}") from None
    # The runtimes read sidecar["input"] as an object: anything else would fail later as an AttributeError.
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("input", {}), dict):
        raise ModelError(f"{sidecar_path}: sidecar must be a JSON object whose 'input' is an object")
    session = _session(path, threads)
    model = OnnxModel(
        path=path,
        sidecar=sidecar,
        sha256=file_sha256(path),
        session=session,
        input_names=[i.name for i in session.get_inputs()],
        output_names=[o.name for o in session.get_outputs()],
        threads=threads,
    )
    log.debug("loaded %s (%s, sha256 %s…)", path, model.version, model.sha256[:12])
    return model
