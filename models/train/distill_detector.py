"""Distil a slimmer plate detector from a trained one, on whatever CPU or GPU there is.

The student is PlateNet with a narrower stem and stride-4 level (where the cells are many and most
of the time goes); every other layer starts as the teacher's. It learns three things at once:

- the teacher's features after the first block (`s4[0]`), so the new stem feeds the copied layers
  what they expect (a local target: it converges in minutes, not hours);
- the teacher's heat map and regressions (soft targets everywhere, not only at labelled plates,
  so unlabelled real plates are not taught as background);
- a little of the ground truth (the training loss of train_detector.py), so it does not copy the
  teacher's mistakes on the labelled plates.

    python -m models.train.distill_detector --teacher runs/detector_ft2/detector.pt --data .data/detector \\
        --out runs/detector_slim --minutes 75 --batch 16 --seed 5 --threads 1
    python -m models.train.train_detector --export-from runs/detector_slim/detector.pt --data .data/detector \\
        --onnx runs/detector_slim/detector.onnx --int8 runs/detector_slim/detector_int8.onnx --seed 1

Copied layers learn at a tenth of the rate and keep their batch-norm statistics (batches of 16 on a
CPU are too small to re-estimate them). Samples are a function of (seed, index), cropped at random
to --crop (multiples of 32) to halve the cost per sample on a CPU; the network is fully convolutional.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from models.train.train_detector import PlateNet, focal_loss, reg_loss

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - train_detector has already said how to install it
    raise SystemExit("distillation needs torch: scripts/setup.sh --train") from None

from models.train.detector_data import STRIDE, DetectorDataset


def _crop(batch: tuple[np.ndarray, ...], hw: tuple[int, int], rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """The same random window (a multiple of 32, aligned to the heat map's cells) of every sample."""
    imgs, heat, reg, mask = (np.stack(x) for x in zip(*batch))
    h, w = imgs.shape[2:]
    ch, cw = min(hw[0], h), min(hw[1], w)
    y = int(rng.integers(0, (h - ch) // 32 + 1)) * 32
    x = int(rng.integers(0, (w - cw) // 32 + 1)) * 32
    ys, xs = slice(y // STRIDE, (y + ch) // STRIDE), slice(x // STRIDE, (x + cw) // STRIDE)
    return (
        torch.from_numpy(np.ascontiguousarray(imgs[:, :, y : y + ch, x : x + cw])).float(),
        torch.from_numpy(np.ascontiguousarray(heat[:, :, ys, xs])),
        torch.from_numpy(np.ascontiguousarray(reg[:, :, ys, xs])),
        torch.from_numpy(np.ascontiguousarray(mask[:, :, ys, xs])),
    )


def student_from(teacher: PlateNet, stem: int, neck4: int) -> tuple[PlateNet, set[str]]:
    """A student with the teacher's weights wherever the shapes agree; returns it and the copied names."""
    c = (stem, *teacher.arch["c"][1:])
    student = PlateNet(tuple(c), teacher.arch["neck"], neck4)
    own = student.state_dict()
    copied = {k for k, v in teacher.state_dict().items() if k in own and own[k].shape == v.shape}
    student.load_state_dict({**own, **{k: teacher.state_dict()[k] for k in copied}})
    return student, copied


def distill(args: argparse.Namespace) -> Path:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    state = torch.load(args.teacher, map_location="cpu", weights_only=False)
    teacher = PlateNet.from_arch(state.get("arch"))
    teacher.load_state_dict(state["model"])
    teacher.eval().requires_grad_(False)
    student, copied = student_from(teacher, args.stem, args.neck4)
    modules = dict(student.named_modules())
    # Batch norms whose weights were copied keep the teacher's statistics.
    frozen_bn = [m for n, m in modules.items() if isinstance(m, nn.BatchNorm2d) and f"{n}.running_mean" in copied]
    new_params = [p for n, p in student.named_parameters() if n not in copied]
    old_params = [p for n, p in student.named_parameters() if n in copied]
    opt = torch.optim.AdamW([{"params": new_params, "lr_scale": 1.0}, {"params": old_params, "lr_scale": 0.1}], lr=args.lr, weight_decay=1e-4)
    print(f"student: stem {args.stem}, stride-4 neck {args.neck4}; {sum(p.numel() for p in new_params)} new and "
          f"{sum(p.numel() for p in old_params)} copied parameters", flush=True)

    grab: dict[str, torch.Tensor] = {}
    teacher.s4[0].register_forward_hook(lambda m, i, o: grab.__setitem__("teacher", o))
    student.s4[0].register_forward_hook(lambda m, i, o: grab.__setitem__("student", o))

    data = DetectorDataset(args.data if args.data and args.data.is_dir() else None, 1 << 30, seed=args.seed, real_fraction=args.real_fraction)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    deadline = t0 + args.minutes * 60
    step, index, log = 0, 0, []
    while True:
        progress = max(step / args.steps, (time.time() - t0) / (deadline - t0))
        if progress >= 1.0:
            break
        lr = args.lr * min(1.0, (step + 1) / 50) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_scale"]
        batch = [data[index + i] for i in range(args.batch)]
        index += args.batch
        imgs, heat, reg, mask = _crop(batch, args.crop, rng)
        student.train()
        for m in frozen_bn:
            m.eval()
        with torch.no_grad():
            t_heat, t_reg = teacher(imgs)
        s_heat, s_reg = student(imgs)
        target = grab["teacher"]
        l_feat = F.mse_loss(grab["student"], target) / target.pow(2).mean().clamp(min=1e-6)
        soft = torch.sigmoid(t_heat)
        l_heat = (F.binary_cross_entropy_with_logits(s_heat, soft, reduction="none") * (1 + 20 * soft)).mean()
        near = (soft > 0.05).float()
        l_reg = ((s_reg - t_reg).abs() * near).sum() / (near.sum() * s_reg.shape[1]).clamp(min=1)
        l_gt = focal_loss(s_heat, heat, mask[:, 2:3])
        l_box, l_corner = reg_loss(s_reg, reg, mask)
        loss = l_feat + 5.0 * l_heat + l_reg + 0.2 * (l_gt + l_box + 2.0 * l_corner)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 10.0)
        opt.step()
        step += 1
        if step % 100 == 0:  # a CPU run can be stopped at any time: keep what it has learnt
            torch.save({"model": student.state_dict(), "arch": student.arch, "meta": {"steps": step, "partial": True}}, out / "detector_partial.pt")
        if step % args.log_every == 0 or step == 1:
            row = {"step": step, "loss": loss.item(), "feat": l_feat.item(), "heat": l_heat.item(), "reg": l_reg.item(),
                   "gt": l_gt.item(), "lr": lr, "samples_per_s": step * args.batch / (time.time() - t0)}
            log.append(row)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    meta = {"init": state.get("meta"), "distilled_from": str(args.teacher), "steps": step, "batch": args.batch, "crop": list(args.crop),
            "lr": args.lr, "seed": args.seed, "real_fraction": args.real_fraction, "minutes": round((time.time() - t0) / 60, 2)}
    ckpt = out / "detector.pt"
    torch.save({"model": student.state_dict(), "arch": student.arch, "meta": meta}, ckpt)
    (out / "train_log.json").write_text(json.dumps({"meta": meta, "log": log}, indent=1))
    print(f"saved {ckpt} after {step} steps ({meta['minutes']} min)", flush=True)
    return ckpt


def _hw(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    if h % 32 or w % 32:
        raise SystemExit(f"--crop {text!r}: height and width must be multiples of 32")
    return h, w


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.train.distill_detector", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--teacher", type=Path, required=True, help="checkpoint of the trained detector (train_detector.py)")
    p.add_argument("--data", type=Path, default=Path(".data/detector"), help="prepared training data (detector_data prepare)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--stem", type=int, default=8, help="the student's stem width (teacher: 16)")
    p.add_argument("--neck4", type=int, default=16, help="the student's stride-4 neck width (teacher: 32)")
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--steps", type=int, default=1 << 30, help="stop after this many steps (or --minutes)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=_hw, default=(256, 448), help="HxW window of each 384x640 sample trained on")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--real-fraction", type=float, default=0.45)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--log-every", type=int, default=50)
    distill(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
