"""Training: `siam-tracker train --config cfg.yaml --out runs/NAME [--resume] [--device cpu|cuda]
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

This module reads the configuration and options and sets a run up (data, model, optimizer, or a resumed checkpoint:
checkpoint.py); loop.py runs it.

Runs with only torch, numpy, opencv and pyyaml installed.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import torch

from ..config import Config
from ..model import build_model
from ..resources import shipped_file, source_checkout
from .checkpoint import CHECKPOINT, start_or_resume
from .datasets import load_many, split_sequences
from .loop import Run, TrainData
from .pairs import AugmentConfig, PairDataset


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


def resolve_data_dirs(dirs: list[str], base: Path | None = None) -> list[str]:
    """Data folders of a training config: a relative one that is not found from the working directory is read
    against `base` (default: the source checkout, where the shipped configs' "../shared/data/train" points), then
    $SIAM_DATA_DIR for ../shared/data/train."""
    from .datasets import parse_source

    base = base or source_checkout() or Path.cwd()
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


NANOTRACK_TEACHER = "nanotrack"  # --teacher value: NanoTrack v2 from ../shared/peers (training/nanotrack_teacher.py)


def _load_teacher(path: str, device: torch.device):
    """A frozen teacher network on `device`: a weights file, a public SiamFC .npz as it is (the untouched
    pretrained network), or "nanotrack" (NanoTrack v2's foreground map; it runs on the CPU whatever `device`)."""
    if str(path) == NANOTRACK_TEACHER:
        from .nanotrack_teacher import NanoTrackTeacher
        return NanoTrackTeacher().eval()
    if str(path).endswith(".npz"):
        from ..model.pretrained import build_from_pretrained
        teacher = build_from_pretrained(path)
    else:
        from ..model import load_weights
        teacher = load_weights(path)
    teacher = teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but torch sees no CUDA device")
    return torch.device(name)


def _load_data(tc, augment: AugmentConfig, opts: TrainOptions, workers: int, say) -> TrainData:
    sources = resolve_data_dirs(list(tc.data_dirs))
    sequences = load_many(sources)
    train_seqs, val_seqs = split_sequences(sequences, tc.val_sequences)
    # Test tracks are neither trained on nor validated on: nothing of them may steer a run.
    test_names = set(tc.test_sequences)
    train_seqs = [s for s in train_seqs if s.name not in test_names]
    val_seqs = [s for s in val_seqs if s.name not in test_names]
    missing = sorted(set(tc.val_sequences) - {s.name for s in val_seqs})
    assert not ({s.name for s in train_seqs} & (set(tc.val_sequences) | test_names)), \
        "a held-out sequence is in the training set"
    if not train_seqs:
        raise RuntimeError(f"no training sequences in {sources}")
    steps_per_epoch = max(1, tc.pairs_per_epoch // tc.batch_size)
    total_steps = steps_per_epoch * tc.epochs
    say(f"data: {len(train_seqs)} training sequences ({sum(int(s.valid.sum()) for s in train_seqs)} frames) "
        f"from {', '.join(sources)}; {len(val_seqs)} held out" + (f" ({len(missing)} not found: "
                                                                   f"{', '.join(missing)})" if missing else ""))
    train_set = PairDataset(train_seqs, total_steps * tc.batch_size, tc.seed, tc, augment, train=True)
    val_loader = None
    if val_seqs and opts.val_pairs > 0:
        val_set = PairDataset(val_seqs, opts.val_pairs, tc.seed + 7919, tc, augment, train=False)
        val_loader = torch.utils.data.DataLoader(val_set, batch_size=max(tc.batch_size, 16), shuffle=False,
                                                 num_workers=min(workers, 4))
    return TrainData(sources, train_seqs, val_seqs, train_set, val_loader, steps_per_epoch, total_steps)


def _build_model(cfg: Config, opts: TrainOptions, train_set: PairDataset, say):
    """The network to train (random, fine-tuned from weights, or from a public SiamFC .npz) and the config it was
    built with (an .npz sets the model's channels)."""
    if opts.init_weights and str(opts.init_weights).endswith(".npz"):
        # A public SiamFC backbone (model/pretrained.py): the model config takes the file's channels, and the
        # fusion's BatchNorm statistics are measured on training search crops. Also when resuming, so that the
        # checkpoint's model config matches.
        from ..model.pretrained import build_from_pretrained

        calibration = torch.stack([torch.as_tensor(train_set[i][1]) for i in range(64)]).float()
        model = build_from_pretrained(opts.init_weights, cfg.model, calibration)
        cfg = dataclasses.replace(cfg, model=model.config)
        say(f"initialised from the pretrained backbone {opts.init_weights} (channels {model.config.channels})")
        return model, cfg
    model = build_model(cfg.model)
    if opts.init_weights and not opts.resume:
        # Fine-tune: start from existing weights of the same architecture, with a fresh schedule.
        from ..model import load_weights
        model.load_state_dict(load_weights(opts.init_weights, expected=cfg.model).state_dict())
        say(f"initialised from {opts.init_weights}")
    return model, cfg


def _optimizer(model, tc) -> torch.optim.Optimizer:
    """SGD over two parameter groups: the backbone at backbone_lr_scale x the learning rate, the rest at 1x. At
    backbone_lr_scale 0 the backbone is frozen: no gradient is computed for it (the box head's recipe)."""
    if tc.backbone_lr_scale == 0:
        for n, p in model.named_parameters():
            if n.startswith("backbone."):
                p.requires_grad_(False)
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.") and p.requires_grad]
    rest = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    groups = [{"params": backbone, "lr_scale": tc.backbone_lr_scale}, {"params": rest, "lr_scale": 1.0}]
    if tc.optimizer == "adam":
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=tc.lr_start, weight_decay=tc.weight_decay)
    return torch.optim.SGD([g for g in groups if g["params"]], lr=tc.lr_start, momentum=tc.momentum,
                           weight_decay=tc.weight_decay)


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
    workers = tc.num_workers if opts.workers is None else opts.workers
    data = _load_data(tc, augment, opts, workers, say)
    torch.manual_seed(tc.seed)  # before the model is built: its random initial weights follow the seed
    model, cfg = _build_model(cfg, opts, data.train_set, say)
    model = model.to(device)
    model.train()
    teacher = None
    if opts.teacher:
        teacher = _load_teacher(opts.teacher, device)
        say(f"distilling from {opts.teacher} (weight {opts.distill_weight})")
    optimizer = _optimizer(model, tc)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    ckpt_path = out / CHECKPOINT
    progress = start_or_resume(ckpt_path, opts.resume, cfg, model, optimizer, scaler if use_amp else None, say)
    if opts.resume:
        say(f"resumed from {ckpt_path} at step {progress.step}/{data.total_steps}")
    run = Run(cfg, augment, opts, data, model, teacher, optimizer, scaler, use_amp, device, workers, progress, say)
    return run.finish(run.loop())


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
    p.add_argument("--teacher", help="weights (e.g. an ensemble from `siam-tracker ensemble`), a pretrained .npz, "
                                     "or 'nanotrack' (NanoTrack v2 from ../shared/peers) to distil from: the loss "
                                     "mixes the labels' with one against the teacher's probabilities")
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
        default = shipped_file("config/train_default.yaml")
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
