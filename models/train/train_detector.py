"""Train the plate detector from scratch, export it to ONNX and quantise it to INT8.

Model: a CenterNet-style single-stage, anchor-free detector. A depthwise-separable
backbone (strides 2..32, ReLU, about 0.1 M parameters) feeds a small top-down
feature pyramid that ends at stride 4; one 1x1 head predicts per cell a plate-centre
heat map and 12 regressions (centre offset, log width and height, and the four plate
corners relative to the box). Decoding (peak picking, box and corner maths, NMS) is
numpy in edge/detect.py. Why this design: plates are small, rigid, rarely overlap
and have a clear centre, so one heat-map peak per plate needs no anchors to tune,
and the stride-4 output keeps a 20 px wide plate at 5 cells. The corners give the
reader a rectified crop.

    python -m models.train.detector_data prepare --datasets ../shared/datasets --out .data/detector
    python -m models.train.train_detector --data .data/detector --out runs/detector --minutes 7 --device cuda
    python -m models.train.train_detector --export-from runs/detector/detector.pt --data .data/detector

Runs on CPU too (slowly): `--device cpu --steps 50 --batch 8 --workers 2` is a smoke test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
try:
    import torch
except ImportError:  # training is an optional extra: say how to get it instead of a traceback
    raise SystemExit("training needs torch: scripts/setup.sh --train (installs the CPU build)") from None
import torch.nn as nn
import torch.nn.functional as F

from models.train.detector_data import INPUT_HW, REG_CHANNELS, STRIDE, DetectorDataset, real_sample, load_prepared

VERSION = "1.0"
CHANNELS = (16, 24, 48, 96, 128)
NECK = 32
# Trained on 384x640 samples, deployed at 448x800: the network is fully convolutional, and the
# larger input keeps plates 25 % wider (recall and FP per size: models/detector.md) for ~1.3x the time.
EXPORT_HW = (448, 800)
HEAT_PRIOR_BIAS = -2.19  # sigmoid(-2.19) = 0.1: starts the heat map near "no plate" (CenterNet)


# --------------------------------------------------------------------------- model


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SepBlock(nn.Module):
    """Depthwise 3x3 then pointwise 1x1 (MobileNet), residual when the shape allows."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.dw = nn.Sequential(
            nn.Conv2d(cin, cin, 3, stride, dilation, dilation=dilation, groups=cin, bias=False),
            nn.BatchNorm2d(cin),
            nn.ReLU(inplace=True),
        )
        self.pw = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return F.relu(y + x if self.residual else y)


class PlateNet(nn.Module):
    """Input: BGR float 0..255, N x 3 x H x W (H, W multiples of 32; trained at 384 x 640). Output: heat logits (N,1,H/4,W/4), reg (N,12,H/4,W/4)."""

    def __init__(self, c: tuple[int, ...] = CHANNELS, neck: int = NECK, neck4: int | None = None):
        """`c[0]` is the stem's width; `neck4` (default `neck`) the width of the stride-4 level, where
        the cells are many: a slimmer one there costs least accuracy per millisecond saved."""
        super().__init__()
        neck4 = neck4 or neck
        self.arch = {"c": list(c), "neck": neck, "neck4": neck4}  # saved with checkpoints (from_arch)
        self.stem = conv_bn_relu(3, c[0], 3, 2)
        self.s4 = nn.Sequential(SepBlock(c[0], c[1], 2), SepBlock(c[1], c[1]))
        self.s8 = nn.Sequential(SepBlock(c[1], c[2], 2), SepBlock(c[2], c[2]), SepBlock(c[2], c[2]))
        self.s16 = nn.Sequential(SepBlock(c[2], c[3], 2), SepBlock(c[3], c[3]), SepBlock(c[3], c[3], dilation=2))
        self.s32 = nn.Sequential(SepBlock(c[3], c[4], 2), SepBlock(c[4], c[4]), SepBlock(c[4], c[4], dilation=2))
        self.lat32, self.lat16 = conv_bn_relu(c[4], neck, 1), conv_bn_relu(c[3], neck, 1)
        self.lat8, self.lat4 = conv_bn_relu(c[2], neck, 1), conv_bn_relu(c[1], neck4, 1)
        self.proj8 = conv_bn_relu(neck, neck4, 1) if neck4 != neck else nn.Identity()
        self.mix16, self.mix8, self.mix4 = SepBlock(neck, neck), SepBlock(neck, neck), SepBlock(neck4, neck4)
        self.head = nn.Conv2d(neck4, 1 + REG_CHANNELS, 1)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)
        nn.init.constant_(self.head.bias[:1], HEAT_PRIOR_BIAS)
        # Input scaling lives here so export can fold it into the first convolution.
        self.input_scale = 1.0 / 255.0

    @classmethod
    def from_arch(cls, arch: dict | None) -> PlateNet:
        """The network a checkpoint's "arch" describes (checkpoints from before it have the defaults)."""
        arch = arch or {}
        return cls(tuple(arch.get("c", CHANNELS)), arch.get("neck", NECK), arch.get("neck4"))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.input_scale != 1.0:
            x = x * self.input_scale
        f4 = self.s4(self.stem(x))
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        f32 = self.s32(f16)
        p = self.lat32(f32)
        p = self.mix16(self.lat16(f16) + F.interpolate(p, scale_factor=2.0, mode="nearest"))
        p = self.mix8(self.lat8(f8) + F.interpolate(p, scale_factor=2.0, mode="nearest"))
        p = self.mix4(self.lat4(f4) + F.interpolate(self.proj8(p), scale_factor=2.0, mode="nearest"))
        out = self.head(p)
        return out[:, :1], out[:, 1:]


class ExportWrapper(nn.Module):
    """What goes into the ONNX file: sigmoid on the heat map, 1/255 folded into the stem."""

    def __init__(self, net: PlateNet):
        super().__init__()
        self.net = net
        conv = net.stem[0]
        with torch.no_grad():
            conv.weight.mul_(net.input_scale)
        net.input_scale = 1.0

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heat, reg = self.net(image)
        return torch.sigmoid(heat), reg


# --------------------------------------------------------------------------- loss


def focal_loss(logits: torch.Tensor, target: torch.Tensor, background: torch.Tensor | None = None) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of plates. `background` (N,1,H,W)
    weighs the loss of not-a-plate cells: 0 over unlabelled real plates, which must not be taught as background."""
    p = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = torch.log(1 - p) * p**2 * (1 - target) ** 4 * (1 - pos)
    if background is not None:
        neg_loss = neg_loss * background
    return -(pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


def reg_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pred = pred.float()
    box_w, corner_w = mask[:, :1], mask[:, 1:2]
    box = (F.l1_loss(pred[:, :4], target[:, :4], reduction="none") * box_w).sum() / box_w.sum().clamp(min=1)
    corners = (F.l1_loss(pred[:, 4:], target[:, 4:], reduction="none") * corner_w).sum() / corner_w.sum().clamp(min=1)
    return box, corners


# --------------------------------------------------------------------------- training


def _collate(batch):
    imgs, heat, reg, mask = zip(*batch)
    return (torch.from_numpy(np.stack(imgs)), torch.from_numpy(np.stack(heat)), torch.from_numpy(np.stack(reg)), torch.from_numpy(np.stack(mask)))


def train(args: argparse.Namespace) -> Path:
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    data_dir = args.data if args.data and args.data.is_dir() else None
    if data_dir is None:
        print(f"warning: no prepared data at {args.data}: synthetic scenes only", file=sys.stderr)
    total = args.steps * args.batch
    dataset = DetectorDataset(data_dir, total, seed=args.seed, real_fraction=args.real_fraction)
    print(f"data: {len(dataset.reals)} real train images, {len(dataset.crops)} real plate crops", flush=True)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch,
        shuffle=False,  # indices are the seeds: order does not matter, determinism does
        num_workers=args.workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=False,
        prefetch_factor=4 if args.workers else None,
    )
    init_meta = None
    if args.init:  # fine-tune from an earlier run (the schedule restarts), in that run's architecture
        init = torch.load(args.init, map_location="cpu", weights_only=False)
        net = PlateNet.from_arch(init.get("arch"))
        net.load_state_dict(init["model"])
        init_meta = init.get("meta")
    else:  # models/detector.md lists what slimmer stems and stride-4 levels cost at 448x800
        net = PlateNet((args.stem, *CHANNELS[1:]), NECK, args.neck4)
    net = net.to(device).to(memory_format=torch.channels_last)
    decay = [p for n, p in net.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in net.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0}], lr=args.lr)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    deadline = t0 + args.minutes * 60 if args.minutes else None
    log = []
    step = 0
    amp = device.type == "cuda"
    for imgs, heat, reg, mask in loader:
        # Schedule on whichever budget ends first (steps, or wall time on a lent GPU).
        progress = step / args.steps
        if deadline:
            progress = max(progress, (time.time() - t0) / (deadline - t0))
        if progress >= 1.0:
            break
        warm = min(1.0, (step + 1) / args.warmup)
        lr = args.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        imgs = imgs.to(device, non_blocking=True).float().contiguous(memory_format=torch.channels_last)
        heat, reg, mask = (t.to(device, non_blocking=True) for t in (heat, reg, mask))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            heat_logits, reg_pred = net(imgs)
        l_heat = focal_loss(heat_logits, heat, mask[:, 2:3])
        l_box, l_corner = reg_loss(reg_pred, reg, mask)
        loss = l_heat + l_box + 2.0 * l_corner
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()
        step += 1
        if step % 200 == 0:  # a CPU run lasts hours: keep what it has learnt should it stop
            torch.save({"model": net.state_dict(), "arch": net.arch, "meta": {"init": init_meta, "steps": step, "partial": True}}, out / "detector_partial.pt")
        if step % args.log_every == 0 or step == 1:
            rate = step * args.batch / (time.time() - t0)
            row = {"step": step, "loss": loss.item(), "heat": l_heat.item(), "box": l_box.item(), "corner": l_corner.item(), "lr": lr, "samples_per_s": rate}
            log.append(row)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    ckpt = out / "detector.pt"
    meta = {"init": init_meta, "steps": step, "lr": args.lr, "real_fraction": args.real_fraction, "batch": args.batch, "seed": args.seed, "minutes": round((time.time() - t0) / 60, 2), "version": VERSION}
    torch.save({"model": net.state_dict(), "arch": net.arch, "meta": meta}, ckpt)
    (out / "train_log.json").write_text(json.dumps({"meta": meta, "log": log}, indent=1))
    print(f"saved {ckpt} after {step} steps ({meta['minutes']} min)", flush=True)
    return ckpt


# --------------------------------------------------------------------------- export


def sidecar(meta: dict, input_hw: tuple[int, int]) -> dict:
    return {
        "name": "detector",
        "version": VERSION,
        "kind": "centernet-plate",
        "input": {"name": "image", "height": input_hw[0], "width": input_hw[1], "layout": "NCHW", "channels": "BGR", "range": [0, 255], "pad_value": 114, "placement": "top-left"},
        "outputs": {"heat": "sigmoid plate-centre score per cell", "reg": "dx, dy (cells), log(w/stride), log(h/stride), corners TL,TR,BR,BL as (x-cx)/w, (y-cy)/h"},
        "stride": STRIDE,
        "training": meta,
    }


def export(ckpt: Path, onnx_path: Path, int8_path: Path | None, data_dir: Path | None, seed: int = 0, input_hw: tuple[int, int] = EXPORT_HW) -> None:
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    net = PlateNet.from_arch(state.get("arch"))
    net.load_state_dict(state["model"])
    net.eval()
    wrapper = ExportWrapper(net).eval()
    dummy = torch.zeros(1, 3, *input_hw)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(wrapper, dummy, str(onnx_path), input_names=["image"], output_names=["heat", "reg"], opset_version=17, dynamo=False)
    dynamic_hw(onnx_path)
    onnx_path.with_suffix(".json").write_text(json.dumps(sidecar(state.get("meta", {}), input_hw), indent=2) + "\n")
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.2f} MB)")
    if int8_path is not None:
        quantise(onnx_path, int8_path, data_dir, seed, input_hw=input_hw)
        dynamic_hw(int8_path)
        side = sidecar(state.get("meta", {}), input_hw)
        side["quantisation"] = "onnxruntime static QDQ, int8 per-channel weights, uint8 activations; heat/reg head kept fp32"
        int8_path.with_suffix(".json").write_text(json.dumps(side, indent=2) + "\n")


def dynamic_hw(path: Path) -> None:
    """Let an exported model take any input height and width (multiples of 32), weights untouched.

    The network is fully convolutional and its upsampling is by scale, so only the declared shapes
    pin it to the export size. The runtime (edge/detect.py) then draws a picture no larger than it
    needs: a canvas trimmed to the picture's aspect, or to the calibrated ROI and plate size, costs
    time in proportion to its area. The sidecar's height and width stay the largest canvas used.
    """
    import onnx

    model = onnx.load(str(path))
    for value, (h, w) in [(model.graph.input[0], ("height", "width"))] + [(o, ("height/4", "width/4")) for o in model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        dims[2].Clear()
        dims[2].dim_param = h
        dims[3].Clear()
        dims[3].dim_param = w
    del model.graph.value_info[:]  # intermediate shapes inferred at the export size would contradict other sizes
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def calibration_images(data_dir: Path | None, count: int, seed: int, input_hw: tuple[int, int] = INPUT_HW) -> list[np.ndarray]:
    """Detector inputs for INT8 calibration: letterboxed real TRAIN photos and synthetic scenes."""
    from edge.detect import letterbox
    rng = np.random.default_rng(seed)
    reals, _ = load_prepared(data_dir) if data_dir is not None else ([], [])
    ds = DetectorDataset(data_dir, count, seed=seed + 1)
    images = []
    for i in range(count):
        if reals and i % 2 == 0:
            img, _ = real_sample(rng, reals[int(rng.integers(len(reals)))])
        else:
            img, _ = ds.sample(i)
        if img.shape[:2] != input_hw:  # deployed at another size than trained: feed it as the runtime would
            img, _ = letterbox(img, input_hw)
        images.append(img.transpose(2, 0, 1)[None].astype(np.float32))
    return images


def quantise(fp32: Path, int8: Path, data_dir: Path | None, seed: int = 0, count: int = 96, input_hw: tuple[int, int] = INPUT_HW) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, images: list[np.ndarray]):
            self.it = iter(images)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"image": x}

    import onnx

    pre = int8.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    model = onnx.load(str(pre))
    # The last 1x1 conv regresses sizes and corners: int8 there costs accuracy for almost no time.
    head = [n.name for n in model.graph.node if n.op_type == "Conv"][-1:]
    quantize_static(
        str(pre),
        str(int8),
        Reader(calibration_images(data_dir, count, seed, input_hw)),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=head,
    )
    pre.unlink(missing_ok=True)
    print(f"wrote {int8} ({int8.stat().st_size / 1e6:.2f} MB), excluded {head}")


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--export-size {text!r}: expected HxW, e.g. 448x800") from None
    if h % 32 or w % 32:
        raise SystemExit(f"--export-size {text!r}: height and width must be multiples of 32 (the network's stride)")
    return h, w


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.train.train_detector", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--data", type=Path, default=Path(".data/detector"), help="folder written by `detector_data prepare` (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("runs/detector"), help="checkpoint and log folder (default: %(default)s)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=6000, help="optimiser steps (the cosine schedule spans them)")
    parser.add_argument("--minutes", type=float, default=0.0, help="also stop after this many minutes; the schedule then follows wall time")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    parser.add_argument("--real-fraction", type=float, default=0.35, help="share of samples drawn from real train photos")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stem", type=int, default=CHANNELS[0], help=f"stem width, training from scratch (default {CHANNELS[0]}; 8 saves about 0.5 ms at 448x800)")
    parser.add_argument("--neck4", type=int, default=NECK, help=f"stride-4 level width, training from scratch (default {NECK}; 16 saves about 1 ms)")
    parser.add_argument("--init", type=Path, help="start from this checkpoint instead of random weights (fine-tuning)")
    parser.add_argument("--warmup", type=int, default=300, help="linear learning-rate warm-up steps")
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--onnx", type=Path, default=Path("models/detector.onnx"), help="exported fp32 model (default: %(default)s)")
    parser.add_argument("--int8", type=Path, default=Path("models/detector_int8.onnx"), help="quantised model (default: %(default)s)")
    parser.add_argument("--export-size", default=f"{EXPORT_HW[0]}x{EXPORT_HW[1]}", help="HxW of the exported model's input (default: %(default)s; the network is fully convolutional)")
    parser.add_argument("--no-export", action="store_true", help="train only")
    parser.add_argument("--export-from", type=Path, help="skip training: export and quantise this checkpoint")
    args = parser.parse_args(argv)
    ckpt = args.export_from or train(args)
    if not args.no_export:
        data_dir = args.data if args.data and args.data.is_dir() else None
        export(ckpt, args.onnx, args.int8, data_dir, args.seed, _size(args.export_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
