"""INT8 post-training quantisation of ONNX models (onnxruntime.quantization, static, QDQ, per channel).

`quantize_model` is generic (the detector's export can call it with its own calibration
batches); `main` quantises the plate reader with calibration crops from the TRAIN split and
synthetic plates, never the test split.

    python -m models.train.quantize --model models/reader.onnx --data .data/reader --out models/reader_int8.onnx
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


def quantize_model(fp32: Path, out: Path, batches: Iterable[np.ndarray], input_name: str | None = None,
                   exclude_nodes: Sequence[str] = (), op_types: Sequence[str] = ("Conv", "MatMul", "Gemm")) -> None:
    """Write an INT8 (QDQ: int8 weights per channel, uint8 activations) copy of `fp32` to `out`.

    `batches` are calibration inputs as the model takes them; `exclude_nodes` stay in float
    (e.g. a classifier head whose probabilities must stay fine-grained).
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = input_name or onnx.load(str(fp32)).graph.input[0].name
    data = [{name: b.astype(np.float32)} for b in batches]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(data)

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Percentile, op_types_to_quantize=list(op_types),
            nodes_to_exclude=list(exclude_nodes), extra_options={"CalibPercentile": 99.99},
        )


def _reader_calibration(data: Path, height: int, width: int, n: int, seed: int) -> list[np.ndarray]:
    """Calibration batches for the reader: half real train crops, half synthetic plates."""
    import os

    if (data / "fonts").is_dir():
        os.environ.setdefault("EDGE_FONT_DIR", str((data / "fonts").resolve()))
    from models.train.reader_data import SampleMaker, load_prepared

    maker = SampleMaker(load_prepared(data) if (data / "crops.csv").is_file() else [], height, width, real_fraction=0.5)
    xs = np.stack([maker(seed + i)[0] for i in range(n)])[:, None]
    return [xs[i : i + 16] for i in range(0, n, 16)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/reader.onnx"))
    ap.add_argument("--data", type=Path, default=Path(".data/reader"), help="reader_data folder (train crops, fonts)")
    ap.add_argument("--out", type=Path, default=Path("models/reader_int8.onnx"))
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--seed", type=int, default=777)
    args = ap.parse_args()
    import onnx

    sidecar = json.loads(args.model.with_suffix(".json").read_text())
    h, w = sidecar["input"]["shape"][-2:]
    graph = onnx.load(str(args.model)).graph
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    # The last convolution is the classifier: kept in float so the probabilities stay smooth.
    quantize_model(args.model, args.out, _reader_calibration(args.data, h, w, args.samples, args.seed),
                   exclude_nodes=convs[-1:])
    sidecar["name"] = args.out.stem
    sidecar["quantisation"] = {"method": "onnxruntime static QDQ, int8 weights per channel, uint8 activations, "
                               "percentile 99.99 calibration", "calibration_samples": args.samples,
                               "float_nodes": convs[-1:], "from": args.model.name}
    args.out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
