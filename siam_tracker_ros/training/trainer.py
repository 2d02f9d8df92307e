"""The training loop: `siam-tracker train --config cfg.yaml --out runs/NAME [--resume] [--device cpu|cuda]
[--minutes M]`, or `python -m siam_tracker_ros.training.trainer` with the same arguments.

* data: every source of `training.data_dirs` (a path or LAYOUT:PATH, see datasets.py; relative paths are tried
  against the working directory, then the repository root), minus the held-out `training.val_sequences`, which are
  used only for the validation loss (and are never trained on: the split is checked);
* SGD, momentum 0.9, weight decay 5e-4, learning rate decaying exponentially from lr_start to lr_end over the planned
  steps (epochs * pairs_per_epoch / batch_size);
* pairs from PairDataset, a pure function of (seed, index): a DataLoader with `--workers` processes feeds the loop,
  and `--resume` continues with exactly the pairs, learning rate and optimizer state where it stopped;
* progress line (loss, pairs/s, ETA) and a CSV log `train_log.csv` (step, epoch, loss, lr, val_loss, pairs_per_s,
  elapsed_s); validation loss on held-out pairs at each epoch's end;
* `checkpoint.pt` (atomic) every `--checkpoint-minutes`, at each epoch end, at the end and when the `--minutes`
  budget runs out; `weights.pt` (save_weights, with metadata) at the end or budget stop, and `weights_best.pt` at
  the best validation loss so far.

Runs with only torch, numpy, opencv and pyyaml installed.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as _dt
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config
from ..model import build_model, save_weights
from ..model.pretrained import freeze_batchnorm
from .datasets import load_many, split_sequences
from .loss import distillation_loss, pair_loss
from .pairs import AugmentConfig, PairDataset, collate_to

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = "checkpoint.pt"
CSV_FIELDS = ["step", "epoch", "loss", "lr", "val_loss", "pairs_per_s", "elapsed_s"]


# ------------------------------------------------------------------------------------------------------ config I/O
def load_train_config(path: str | Path | None) -> tuple[Config, AugmentConfig]:
    """A training YAML: the Config tree plus an optional `augment:` section (AugmentConfig)."""
    if path is None:
        return Config().validate(), AugmentConfig()
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    augment = AugmentConfig.from_dict(data.pop("augment", None))
    return Config.from_dict(data), augment


def resolve_data_dirs(dirs: list[str], base: Path = REPO_ROOT) -> list[str]:
    from .datasets import parse_source

    out = []
    for spec in dirs:
        layout, path = parse_source(str(spec))
        env = os.environ.get("SIAM_DATA_DIR")
        p = Path(path).expanduser()
        if not p.is_absolute() and not p.exists():
            if (base / p).exists():
                p = base / p
            elif env and path.rstrip("/").endswith("shared/data/train"):
                p = Path(env) / "train"
        out.append(f"{layout}:{p}" if layout != "auto" else str(p))
    return out


def lr_at(step: int, total: int, start: float, end: float) -> float:
    if total <= 1:
        return start
    return start * (end / start) ** (min(step, total - 1) / (total - 1))


class _BatchIndices(torch.utils.data.Sampler):
    """Batches of pair indices [step * bs, ...) up to the planned total: the order resumes exactly."""

    def __init__(self, start_step: int, total_steps: int, batch_size: int):
        self.start, self.total, self.bs = start_step, total_steps, batch_size

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def __iter__(self):
        for s in range(self.start, self.total):
            yield list(range(s * self.bs, (s + 1) * self.bs))


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclasses.dataclass
class TrainOptions:
    out: str
    resume: bool = False
    device: str = "auto"
    minutes: float | None = None  # wall-clock budget of this invocation
    workers: int | None = None  # None: training.num_workers
    threads: int | None = None  # torch intra-op threads (CPU)
    checkpoint_minutes: float = 5.0
    checkpoint_steps: int | None = None
    val_pairs: int = 192
    amp: bool | None = None  # None: on for CUDA
    log_seconds: float = 20.0
    max_steps: int | None = None  # stop after this many steps in total (tests, smoke runs)
    init_weights: str | None = None  # start from these weights (same model config) instead of random
    lr_by_time: bool = False  # with `minutes`: the LR schedule also advances with elapsed time / budget
    keep_epoch_weights: bool = False  # weights_epochNNN.pt at every epoch end (early stopping on tracking figures)
    teacher: str | None = None  # weights (e.g. an ensemble) whose probabilities the student also learns
    distill_weight: float = 0.5  # share of the teacher's loss in the total, with a teacher


def _load_teacher(path: str):
    """A teacher network: a weights file, or a public SiamFC .npz as it is (the untouched pretrained network)."""
    if str(path).endswith(".npz"):
        from ..model.pretrained import build_from_pretrained
        return build_from_pretrained(path)
    from ..model import load_weights
    return load_weights(path)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but torch sees no CUDA device")
    return torch.device(name)


def evaluate_loss(model, loader, device, radius: float, stride: int = 8) -> float:
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            z, x, off, pos = collate_to(batch, device)
            logits = model(z, x)
            total += float(pair_loss(logits, off, pos, stride, radius)) * len(z)
            n += len(z)
    model.train(was_training)
    return total / max(n, 1)


def train(cfg: Config, augment: AugmentConfig, opts: TrainOptions, say=print) -> dict:
    """Run (or resume) training into `opts.out`; returns a summary dict."""
    if cfg.model.members != 1:
        # Measured: members trained side by side on one pair stream track worse than separately seeded runs
        # (docs/training.md), so ensembles are built from finished runs.
        raise ValueError(f"model.members = {cfg.model.members}: train single networks (model.members = 1) with "
                         "different training.seed values and combine them with `siam-tracker ensemble`")
    if not 0.0 <= opts.distill_weight <= 1.0:
        raise ValueError(f"--distill-weight {opts.distill_weight}: expected a share in [0, 1]")
    tc = cfg.training
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = _device(opts.device)
    use_amp = (device.type == "cuda") if opts.amp is None else (opts.amp and device.type == "cuda")

    # ---- data
    sources = resolve_data_dirs(list(tc.data_dirs))
    sequences = load_many(sources)
    train_seqs, val_seqs = split_sequences(sequences, tc.val_sequences)
    missing = sorted(set(tc.val_sequences) - {s.name for s in val_seqs})
    assert not ({s.name for s in train_seqs} & set(tc.val_sequences)), "a held-out sequence is in the training set"
    if not train_seqs:
        raise RuntimeError(f"no training sequences in {sources}")
    steps_per_epoch = max(1, tc.pairs_per_epoch // tc.batch_size)
    total_steps = steps_per_epoch * tc.epochs
    say(f"data: {len(train_seqs)} training sequences ({sum(int(s.valid.sum()) for s in train_seqs)} frames) "
        f"from {', '.join(sources)}; {len(val_seqs)} held out" + (f" ({len(missing)} not found: "
                                                                   f"{', '.join(missing)})" if missing else ""))
    workers = tc.num_workers if opts.workers is None else opts.workers
    train_set = PairDataset(train_seqs, total_steps * tc.batch_size, tc.seed, tc, augment, train=True)
    val_loader = None
    if val_seqs and opts.val_pairs > 0:
        val_set = PairDataset(val_seqs, opts.val_pairs, tc.seed + 7919, tc, augment, train=False)
        val_loader = torch.utils.data.DataLoader(val_set, batch_size=max(tc.batch_size, 16), shuffle=False,
                                                 num_workers=min(workers, 4))

    # ---- model, optimizer, state
    torch.manual_seed(tc.seed)
    if opts.init_weights and str(opts.init_weights).endswith(".npz"):
        # A public SiamFC backbone (model/pretrained.py): the model config takes the file's channels, and the
        # fusion's BatchNorm statistics are measured on training search crops. Also when resuming, so that the
        # checkpoint's model config matches.
        from ..model.pretrained import build_from_pretrained

        calibration = torch.stack([torch.as_tensor(train_set[i][1]) for i in range(64)]).float()
        model = build_from_pretrained(opts.init_weights, cfg.model, calibration)
        cfg = dataclasses.replace(cfg, model=model.config)
        say(f"initialised from the pretrained backbone {opts.init_weights} (channels {model.config.channels})")
    else:
        model = build_model(cfg.model)
        if opts.init_weights and not opts.resume:
            # Fine-tune: start from existing weights of the same architecture, with a fresh schedule.
            from ..model import load_weights
            model.load_state_dict(load_weights(opts.init_weights, expected=cfg.model).state_dict())
            say(f"initialised from {opts.init_weights}")
    model = model.to(device)
    model.train()
    teacher = None
    if opts.teacher:
        teacher = _load_teacher(opts.teacher).to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        say(f"distilling from {opts.teacher} (weight {opts.distill_weight})")
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    groups = [{"params": backbone, "lr_scale": tc.backbone_lr_scale}, {"params": rest, "lr_scale": 1.0}]
    optimizer = torch.optim.SGD([g for g in groups if g["params"]], lr=tc.lr_start, momentum=tc.momentum,
                                weight_decay=tc.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step, pairs_seen, elapsed_before, best_val, val_history = 0, 0, 0.0, float("inf"), []
    ckpt_path = out / CHECKPOINT
    if opts.resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"--resume: no {ckpt_path}")
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ckpt["config"]["model"] != cfg.to_dict()["model"]:
            raise RuntimeError(f"--resume: {ckpt_path} is for model {ckpt['config']['model']}, "
                               f"the config asks for {cfg.to_dict()['model']}")
        if ckpt["config"]["training"] != cfg.to_dict()["training"]:
            say("warning: the training config differs from the checkpoint's; continuing with the new one")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if use_amp and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        step, pairs_seen = int(ckpt["step"]), int(ckpt["pairs_seen"])
        elapsed_before, best_val = float(ckpt["elapsed_s"]), float(ckpt["best_val"])
        val_history = list(ckpt.get("val_history", []))
        _set_rng_state(ckpt["rng"])
        say(f"resumed from {ckpt_path} at step {step}/{total_steps}")
    elif ckpt_path.is_file():
        raise FileExistsError(f"{ckpt_path} exists: pass --resume to continue it, or choose another --out")

    # ---- logging
    csv_path = out / "train_log.csv"
    new_csv = not csv_path.is_file() or not opts.resume
    csv_file = open(csv_path, "a" if not new_csv else "w", newline="")
    writer = csv.DictWriter(csv_file, fieldnames=CSV_FIELDS)
    if new_csv:
        writer.writeheader()
    cfg.save(out / "config.yaml")
    (out / "augment.yaml").write_text("".join(f"{k}: {v}\n" for k, v in augment.to_dict().items()))

    meta_base = {
        "config": cfg.to_dict(),
        "augment": augment.to_dict(),
        "data": sources,
        "train_sequences": [s.name for s in train_seqs],
        "held_out_sequences": [s.name for s in val_seqs],
        "planned_steps": total_steps,
        "batch_size": tc.batch_size,
        **({"teacher": opts.teacher, "distill_weight": opts.distill_weight} if opts.teacher else {}),
    }

    def checkpoint(reason: str) -> None:
        _atomic_save({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if use_amp else None, "step": step, "pairs_seen": pairs_seen,
            "elapsed_s": elapsed_before + (time.time() - t_start), "best_val": best_val,
            "val_history": val_history, "rng": _rng_state(), "config": cfg.to_dict(),
            "augment": augment.to_dict(), "reason": reason,
        }, ckpt_path)

    def write_weights(path: Path, complete: bool) -> None:
        meta = dict(meta_base)
        meta.update({"steps": step, "pairs": pairs_seen, "complete": complete,
                     "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                     "training_seconds": round(elapsed_before + (time.time() - t_start), 1),
                     "val_loss_history": val_history,
                     "val_loss": val_history[-1]["val_loss"] if val_history else None,
                     "best_val_loss": best_val if math.isfinite(best_val) else None,
                     "device": str(device)})
        save_weights(model, path, metadata=meta)

    # ---- loop
    loader = torch.utils.data.DataLoader(
        train_set, batch_sampler=_BatchIndices(step, total_steps, tc.batch_size), num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None)
    t_start = time.time()
    last_ckpt = last_log = t_start
    window_loss, window_n, window_pairs, window_t = 0.0, 0, 0, t_start
    stop_reason = "done"
    budget = opts.minutes * 60.0 if opts.minutes else None
    interactive = sys.stdout.isatty()
    skipped = 0
    step_limit = min(total_steps, opts.max_steps) if opts.max_steps else total_steps
    if step >= step_limit:
        stop_reason = "done"
    for batch in (loader if step < step_limit else []):
        if opts.lr_by_time and budget:
            # A time-budgeted run (a GPU lease) may not reach the planned steps: let the schedule follow the
            # clock too, so the run still ends at lr_end.
            progress = max(step / max(total_steps - 1, 1), (time.time() - t_start) / budget)
            lr = tc.lr_start * (tc.lr_end / tc.lr_start) ** min(progress, 1.0)
        else:
            lr = lr_at(step, total_steps, tc.lr_start, tc.lr_end)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        if tc.freeze_bn:
            freeze_batchnorm(model)  # after every evaluate_loss, which puts the model back in train mode
        z, x, off, pos = collate_to(batch, device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            logits = model(z, x)
        loss = pair_loss(logits.float(), off, pos, 8, tc.radius)
        if teacher is not None:
            with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                teacher_logits = teacher(z, x)
            a = opts.distill_weight
            loss = (1.0 - a) * loss + a * distillation_loss(logits, teacher_logits, off, pos, 8, tc.radius)
        optimizer.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            skipped += 1
            say(f"warning: non-finite loss at step {step}: batch skipped ({skipped} so far)")
        step += 1
        pairs_seen += len(z)
        window_loss += float(loss.detach()) * len(z) if torch.isfinite(loss) else 0.0
        window_n += len(z) if torch.isfinite(loss) else 0
        window_pairs += len(z)
        now = time.time()
        epoch_end = step % steps_per_epoch == 0
        if now - last_log >= opts.log_seconds or epoch_end or step == step_limit:
            rate = window_pairs / max(now - window_t, 1e-9)
            eta = (step_limit - step) * tc.batch_size / max(rate, 1e-9)
            row = {"step": step, "epoch": round(step / steps_per_epoch, 3),
                   "loss": round(window_loss / max(window_n, 1), 5), "lr": f"{lr:.3e}", "val_loss": "",
                   "pairs_per_s": round(rate, 2), "elapsed_s": round(elapsed_before + now - t_start, 1)}
            if epoch_end and val_loader is not None:
                val = evaluate_loss(model, val_loader, device, tc.radius)
                row["val_loss"] = round(val, 5)
                val_history.append({"step": step, "epoch": step // steps_per_epoch, "val_loss": val})
                if val < best_val:
                    best_val = val
                    write_weights(out / "weights_best.pt", complete=False)
            if epoch_end and opts.keep_epoch_weights:
                write_weights(out / f"weights_epoch{step // steps_per_epoch:03d}.pt", complete=False)
            writer.writerow(row)
            csv_file.flush()
            line = (f"step {step}/{total_steps} epoch {step / steps_per_epoch:.2f}/{tc.epochs} "
                    f"loss {row['loss']:.4f} lr {lr:.2e} {rate:.1f} pairs/s ETA {_fmt_time(eta)}"
                    + (f" val_loss {row['val_loss']:.4f}" if row["val_loss"] != "" else ""))
            say(("\r" + line + "   ") if interactive and row["val_loss"] == "" else line)
            window_loss, window_n, window_pairs, window_t, last_log = 0.0, 0, 0, now, now
        if epoch_end or now - last_ckpt >= opts.checkpoint_minutes * 60 or (
                opts.checkpoint_steps and step % opts.checkpoint_steps == 0):
            checkpoint("periodic")
            last_ckpt = now
        if step >= step_limit:
            break
        if budget is not None and now - t_start >= budget:
            stop_reason = "budget"
            break
    complete = step >= total_steps
    if val_loader is not None and step > 0 and (not val_history or val_history[-1]["step"] != step):
        # a budget stop mid-epoch: the final weights still get a validation figure (and the last window's loss)
        now = time.time()
        val = evaluate_loss(model, val_loader, device, tc.radius)
        val_history.append({"step": step, "epoch": round(step / steps_per_epoch, 3), "val_loss": val})
        writer.writerow({"step": step, "epoch": round(step / steps_per_epoch, 3),
                         "loss": round(window_loss / window_n, 5) if window_n else "",
                         "lr": f"{optimizer.param_groups[0]['lr']:.3e}", "val_loss": round(val, 5),
                         "pairs_per_s": round(window_pairs / max(now - window_t, 1e-9), 2) if window_pairs else "",
                         "elapsed_s": round(elapsed_before + now - t_start, 1)})
        say(f"val_loss {val:.4f} at step {step}")
        if val < best_val:
            best_val = val
            write_weights(out / "weights_best.pt", complete=complete)
    csv_file.close()
    checkpoint(stop_reason)
    write_weights(out / "weights.pt", complete=complete)
    summary = {"step": step, "total_steps": total_steps, "pairs": pairs_seen, "stop": stop_reason,
               "complete": complete, "best_val_loss": best_val if math.isfinite(best_val) else None,
               "weights": str(out / "weights.pt"), "checkpoint": str(ckpt_path)}
    say(f"stopped ({stop_reason}) at step {step}/{total_steps}, {pairs_seen} pairs; checkpoint {ckpt_path}")
    say(f"final weights: {(out / 'weights.pt').resolve()}"
        + (f" (best validation loss {best_val:.4f}: {(out / 'weights_best.pt').resolve()})"
           if math.isfinite(best_val) else ""))
    return summary


# ------------------------------------------------------------------------------------------------------------ CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="training YAML (Config tree + optional augment: section); "
                                    "default: config/train_default.yaml")
    p.add_argument("--out", required=True, help="run folder (checkpoint, CSV log, weights)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out exactly")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--minutes", type=float, help="wall-clock budget; stops cleanly with a checkpoint")
    p.add_argument("--workers", type=int, help="DataLoader worker processes (default: training.num_workers)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--val-pairs", type=int, default=192, help="held-out pairs scored at each epoch end")
    p.add_argument("--amp", dest="amp", action="store_true", default=None, help="mixed precision (CUDA; default)")
    p.add_argument("--no-amp", dest="amp", action="store_false")
    p.add_argument("--max-steps", type=int, help="stop after this many steps in total (smoke runs)")
    p.add_argument("--init-weights", help="start from these weights (same model config), fresh schedule; or a "
                                          "public SiamFC AlexNet .npz (../shared/pretrained): its backbone, with "
                                          "the configured paper modules added as the identity")
    p.add_argument("--lr-by-time", action="store_true",
                   help="with --minutes: decay the learning rate over the time budget as well as the planned steps")
    p.add_argument("--keep-epoch-weights", action="store_true",
                   help="also write weights_epochNNN.pt at every epoch end (to pick one by tracking figures)")
    p.add_argument("--teacher", help="weights (e.g. an ensemble from `siam-tracker ensemble`) to distil from: "
                                     "the loss mixes the labels' with one against the teacher's probabilities")
    p.add_argument("--distill-weight", type=float, default=0.5, help="share of the teacher's loss (default 0.5)")
    p.add_argument("--log-seconds", type=float, default=20.0, help="seconds between progress lines / CSV rows")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set training.epochs=30 --set model.width=0.5")


def apply_overrides(cfg: Config, augment: AugmentConfig, items: list[str]) -> tuple[Config, AugmentConfig]:
    import yaml

    data = cfg.to_dict()
    aug = augment.to_dict()
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        parts = key.split(".")
        target = aug if parts[0] == "augment" else data
        parts = parts[1:] if parts[0] == "augment" else parts
        for part in parts[:-1]:
            target = target[part]
        target[parts[-1]] = yaml.safe_load(value)
    return Config.from_dict(data), AugmentConfig.from_dict(aug)


def run_from_args(args: argparse.Namespace) -> int:
    config_path = args.config
    if config_path is None:
        default = REPO_ROOT / "config" / "train_default.yaml"
        config_path = default if default.is_file() else None
    cfg, augment = load_train_config(config_path)
    cfg, augment = apply_overrides(cfg, augment, args.set)
    opts = TrainOptions(out=args.out, resume=args.resume, device=args.device, minutes=args.minutes,
                        workers=args.workers, threads=args.threads, checkpoint_minutes=args.checkpoint_minutes,
                        val_pairs=args.val_pairs, amp=args.amp, max_steps=args.max_steps,
                        log_seconds=args.log_seconds, lr_by_time=args.lr_by_time,
                        init_weights=args.init_weights, keep_epoch_weights=args.keep_epoch_weights,
                        teacher=args.teacher, distill_weight=args.distill_weight)
    train(cfg, augment, opts, say=lambda s: print(s, flush=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siam_tracker_ros.training.trainer",
                                     description="Train the Siamese tracker.")
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
