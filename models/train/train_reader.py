"""Train the plate reader (a small convolutional CTC recogniser) from scratch and export it to ONNX.

Data: synthetic plates from `render.py` + `augment.py`, mixed in every batch with real TRAIN-split
crops prepared by `reader_data.py` (fine-tuning phase: more real crops, lower learning rate).

    python -m models.train.reader_data --out .data/reader          # once: real crops + fonts
    python -m models.train.train_reader --data .data/reader --out runs/reader --minutes 8 --workers 15

Runs on a GPU when there is one, else on the CPU (slowly). Everything random is seeded by --seed
(the sample stream is a pure function of the seed; GPU kernels add tiny non-determinism).
Writes runs/.../reader.pt, reader.onnx and reader.json (the sidecar the runtime reads).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
try:
    import torch
except ImportError:  # training is an optional extra: say how to get it instead of a traceback
    raise SystemExit("training needs torch: scripts/setup.sh --train (installs the CPU build)") from None
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # class 0 is the CTC blank, class i+1 is ALPHABET[i]
HEIGHT, WIDTH = 32, 128
VERSION = "1.0"


def conv_bn(cin: int, cout: int, kernel=3, padding=1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class PlateCTC(nn.Module):
    """32x128 grey -> 32 time steps x 37 classes. All convolutions: quantises well, no recurrent layers.

    Height is pooled away in the backbone; a few 1-D convolutions along the width give each
    time step the context of its neighbours (about 7 characters' worth of receptive field).
    """

    def __init__(self, width: int = 1):
        super().__init__()
        c = [int(v * width) for v in (32, 64, 96, 128, 160)]
        self.backbone = nn.Sequential(
            *conv_bn(1, c[0]), nn.MaxPool2d(2),  # 16x64
            *conv_bn(c[0], c[1]), nn.MaxPool2d(2),  # 8x32
            *conv_bn(c[1], c[2]), *conv_bn(c[2], c[2]), nn.MaxPool2d((2, 1)),  # 4x32
            *conv_bn(c[2], c[3]), nn.MaxPool2d((2, 1)),  # 2x32
            *conv_bn(c[3], c[4], kernel=(2, 1), padding=0),  # 1x32
        )
        self.context = nn.ModuleList(
            [nn.Sequential(nn.Conv1d(c[4], c[4], 3, padding=1, bias=False), nn.BatchNorm1d(c[4]), nn.ReLU(inplace=True))
             for _ in range(2)]
        )
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Conv1d(c[4], len(ALPHABET) + 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, T, C)."""
        f = self.backbone(x).squeeze(2)  # N, C, T
        for layer in self.context:
            f = f + layer(f)
        return self.head(self.dropout(f)).transpose(1, 2)


class Probabilities(nn.Module):
    """The exported graph: per-time-step class probabilities (N, T, 37), softmax included."""

    def __init__(self, model: PlateCTC):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=-1)


class Samples(Dataset):
    """Sample i is made from seed (seed, phase, start + i): a fixed, reproducible stream; `start` lets a
    resumed run go on where the stream stopped."""

    def __init__(self, maker, seed: int, phase: int, length: int, start: int = 0):
        self.maker, self.seed, self.phase, self.length, self.start = maker, seed, phase, length, start

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        x, text = self.maker(self.seed * 1_000_003 + self.phase * 100_000_007 + self.start + i)
        return torch.from_numpy(x[None]), text


def _worker_init(_: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # one data worker per core: OpenCV's own threads would oversubscribe


def collate(batch):
    xs = torch.stack([b[0] for b in batch])
    texts = [b[1] for b in batch]
    targets = torch.tensor([ALPHABET.index(ch) + 1 for t in texts for ch in t], dtype=torch.long)
    lengths = torch.tensor([len(t) for t in texts], dtype=torch.long)
    return xs, targets, lengths, texts


def greedy(logits: torch.Tensor) -> list[str]:
    best = logits.argmax(-1).cpu().numpy()
    out = []
    for row in best:
        s, prev = [], 0
        for k in row:
            if k != prev and k != 0:
                s.append(ALPHABET[k - 1])
            prev = k
        out.append("".join(s))
    return out


def export(model: PlateCTC, out: Path, meta: dict) -> None:
    model = model.eval().cpu()
    dummy = torch.zeros(1, 1, HEIGHT, WIDTH)
    onnx_path = out / "reader.onnx"
    torch.onnx.export(
        Probabilities(model), dummy, str(onnx_path), input_names=["image"], output_names=["probs"],
        dynamic_axes={"image": {0: "batch"}, "probs": {0: "batch"}}, opset_version=17, dynamo=False,
    )
    sidecar = {
        "name": "reader",
        "version": VERSION,
        "task": "plate text recognition, CTC",
        "input": {"name": "image", "shape": [1, HEIGHT, WIDTH], "colour": "grey",
                  "normalisation": "percentile stretch: 2nd..98th percentile to [-1, 1] (edge.plates.image.plate_input)",
                  "two_line": "width/height < 1.65: rows split at the brightest middle band and placed side by side"},
        "output": {"name": "probs", "shape": ["T", len(ALPHABET) + 1], "blank": 0, "softmax": True},
        "alphabet": ALPHABET,
        **meta,
    }
    (out / "reader.json").write_text(json.dumps(sidecar, indent=2) + "\n")


def lr_at(progress: float, peak: float, warmup: float = 0.03) -> float:
    if progress < warmup:
        return peak * progress / warmup
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - warmup) / (1 - warmup)))))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(".data/reader"), help="folder made by reader_data (crops, fonts)")
    ap.add_argument("--out", type=Path, default=Path("runs/reader"))
    ap.add_argument("--minutes", type=float, default=8.0, help="training time budget (the schedule follows it); 0: none, --max-steps sets the schedule")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: time budget only)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--real-fraction", type=float, default=0.35, help="share of real crops per batch before fine-tuning")
    ap.add_argument("--finetune-real-fraction", type=float, default=0.6)
    ap.add_argument("--finetune-at", type=float, default=0.7, help="progress (0..1) at which fine-tuning starts")
    ap.add_argument("--width", type=float, default=1.0, help="channel multiplier")
    ap.add_argument("--init", type=Path, help="start from this checkpoint (reader.pt) instead of from scratch: fine-tuning")
    ap.add_argument("--gb-share", type=float, help="share of rendered plates that are UK (default: render.COUNTRY_WEIGHTS, 0.40)")
    ap.add_argument("--resume", action="store_true", help="go on from OUT/train_state.pt, written every --save-every steps: "
                    "a CPU run of many hours can span several sessions (use --minutes 0 --max-steps N)")
    ap.add_argument("--save-every", type=int, default=100, help="steps between saves of OUT/train_state.pt")
    ap.add_argument("--stop-after-steps", type=int, default=0, help="end this run after so many steps, its state saved, "
                    "to be resumed (0: run to the end of the schedule)")
    args = ap.parse_args(argv)
    plain_args = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}  # as saved with the weights
    if args.minutes <= 0 and args.max_steps <= 0:
        ap.error("--minutes 0 needs --max-steps: something must say when training ends")
    if args.gb_share is not None:
        # Set before the data workers fork, so they inherit it.
        from models.train import render

        rest = sum(v for k, v in render.COUNTRY_WEIGHTS.items() if k != "GB")
        for k in render.COUNTRY_WEIGHTS:
            render.COUNTRY_WEIGHTS[k] = args.gb_share if k == "GB" else render.COUNTRY_WEIGHTS[k] / rest * (1 - args.gb_share)

    if (args.data / "fonts").is_dir() and not os.environ.get("EDGE_FONT_DIR"):
        os.environ["EDGE_FONT_DIR"] = str((args.data / "fonts").resolve())  # inherited by the data workers
    from models.train.reader_data import SampleMaker, load_prepared

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True
    real = load_prepared(args.data) if (args.data / "crops.csv").is_file() else []
    print(f"device {device}, {len(real)} real train crops, workers {args.workers}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)

    model = PlateCTC(args.width)
    if args.init:
        # Checkpoints written before the arguments were saved as plain strings hold a PosixPath (--init):
        # allowed by name, so the safe weights-only loader still refuses anything else.
        with torch.serialization.safe_globals([type(Path())]):
            ckpt = torch.load(args.init, map_location="cpu", weights_only=True)
        if float(ckpt.get("width", 1.0)) != args.width:
            raise SystemExit(f"--init {args.init}: checkpoint width {ckpt.get('width')} differs from --width {args.width}")
        model.load_state_dict(ckpt["model"])
        print(f"fine-tuning from {args.init}", flush=True)
    model = model.to(device)
    print(f"parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)

    def loader(phase: int, fraction: float, start: int = 0):
        maker = SampleMaker(real, HEIGHT, WIDTH, real_fraction=fraction)
        ds = Samples(maker, args.seed, phase, length=50_000_000, start=start)
        return iter(DataLoader(ds, batch_size=args.batch, num_workers=args.workers, collate_fn=collate,
                               persistent_workers=False, worker_init_fn=_worker_init, prefetch_factor=4 if args.workers else None,
                               pin_memory=device == "cuda"))

    # A fixed view of the real train crops (as labelled, no augmentation) to watch fitting; figures
    # that count come from eval_reader.py on the TEST split.
    from models.train.reader_data import exact_crop
    from edge.plates.image import plate_input

    watch_x = torch.from_numpy(np.stack([plate_input(exact_crop(c), HEIGHT, WIDTH) for c in real])[:, None]) if real else None
    watch_t = [c.text for c in real]

    def watch() -> str:
        if watch_x is None:
            return "-"
        model.eval()
        with torch.no_grad():
            preds = [p for i in range(0, len(watch_t), 512) for p in greedy(model(watch_x[i : i + 512].to(device)))]
        return f"{sum(p == t for p, t in zip(preds, watch_t)) / len(watch_t):.3f}"

    start = time.monotonic()
    budget = args.minutes * 60 if args.minutes > 0 else math.inf
    step, phase, phase_start = 0, 0, 0  # phase_start: the step at which the current phase's stream began
    ema, seen, correct = None, 0, 0
    earlier_s = 0.0  # seconds trained by the runs this one resumes
    rng_state = None  # torch's random state where the resumed run stopped
    state_path = args.out / "train_state.pt"
    if args.resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state["args"]["seed"] != args.seed or state["args"]["max_steps"] != args.max_steps:
            raise SystemExit(f"--resume: {state_path} was written with --seed {state['args']['seed']} --max-steps "
                             f"{state['args']['max_steps']}; resume with the same values")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, phase, phase_start, ema, earlier_s = state["step"], state["phase"], state["phase_start"], state["ema"], state["seconds"]
        rng_state = state["torch_rng"]
        print(f"resuming {state_path} at step {step} (phase {phase})", flush=True)
    fractions = (args.real_fraction, args.finetune_real_fraction)
    batches = loader(phase, fractions[phase], (step - phase_start) * args.batch)
    if rng_state is not None:  # after the loader, which draws its own seed: dropout's draws go on as if never stopped
        torch.set_rng_state(rng_state)

    def save_state() -> None:
        tmp = state_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "phase": phase,
                    "phase_start": phase_start, "ema": ema, "seconds": earlier_s + time.monotonic() - start,
                    "torch_rng": torch.get_rng_state(), "args": plain_args}, tmp)
        tmp.replace(state_path)  # a run killed mid-save keeps the previous state

    resumed_at = step
    while True:
        progress = (time.monotonic() - start) / budget
        if args.max_steps:
            progress = max(progress, step / args.max_steps)
        if progress >= 1.0:
            break
        if phase == 0 and progress >= args.finetune_at:
            phase, phase_start = 1, step
            batches = loader(1, args.finetune_real_fraction)
            print(f"step {step}: fine-tuning with {args.finetune_real_fraction:.0%} real crops", flush=True)
        xs, targets, lengths, texts = next(batches)
        xs = xs.to(device, non_blocking=True)
        for g in opt.param_groups:
            g["lr"] = lr_at(progress, args.lr)
        model.train()
        logits = model(xs)
        logp = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # T, N, C
        input_lengths = torch.full((xs.shape[0],), logp.shape[0], dtype=torch.long)
        loss = ctc(logp, targets, input_lengths, lengths)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 50 == 0:
            preds = greedy(logits.detach())
            correct += sum(p == t for p, t in zip(preds, texts))
            seen += len(texts)
        if step % 200 == 0:
            el = time.monotonic() - start
            print(f"step {step} {el:.0f}s loss {ema:.3f} lr {lr_at(progress, args.lr):.2e} "
                  f"train-exact {correct / max(seen, 1):.3f} ({(step - resumed_at) * args.batch / el:.0f} samples/s)", flush=True)
            seen = correct = 0
        if step % 1000 == 0:
            print(f"step {step}: real train crops exact (greedy) {watch()}", flush=True)
        stopping = bool(args.stop_after_steps) and step - resumed_at >= args.stop_after_steps
        if stopping or (args.save_every and step % args.save_every == 0):
            save_state()
        if stopping:
            print(f"stopped at step {step} of {args.max_steps or '?'}: go on with --resume", flush=True)
            return
    elapsed = time.monotonic() - start
    print(f"trained {step} steps, {step * args.batch} samples ({step - resumed_at} steps in {elapsed:.0f}s this run); "
          f"real train crops exact {watch()}", flush=True)
    torch.save({"model": model.state_dict(), "width": args.width, "args": plain_args},
               args.out / "reader.pt")
    meta = {"training": {"steps": step, "samples": step * args.batch, "seconds": round(earlier_s + elapsed), "seed": args.seed,
                         "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                         "real_train_crops": len(real), "real_fraction": args.real_fraction,
                         "finetune_real_fraction": args.finetune_real_fraction, "finetune_at": args.finetune_at,
                         **({"init": str(args.init), "lr": args.lr} if args.init else {}),
                         **({"gb_share": args.gb_share} if args.gb_share is not None else {})}}
    export(model, args.out, meta)
    print(f"wrote {args.out / 'reader.onnx'}", flush=True)


if __name__ == "__main__":
    main()
