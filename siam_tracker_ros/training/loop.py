"""One training run once it is set up (trainer.py builds the data, model and optimizer, or resumes them): the step loop
over the pair loader, the learning-rate schedule, progress lines and `train_log.csv`, the validation loss at each
epoch's end, `checkpoint.pt` (checkpoint.py) and the weights files."""
from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..model import save_weights
from ..model.pretrained import freeze_batchnorm
from .checkpoint import CHECKPOINT, Progress, save_checkpoint
from .loss import training_loss
from .pairs import PairDataset, collate_to

CSV_FIELDS = ["step", "epoch", "loss", "lr", "val_loss", "pairs_per_s", "elapsed_s"]


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


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def evaluate_loss(model, loader, device, radius: float, stride: int = 8, box_weight: float = 1.0) -> float:
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            z, x, target, pos = collate_to(batch, device)
            total += float(training_loss(model(z, x), target, pos, radius, box_weight=box_weight,
                                         stride=stride)) * len(z)
            n += len(z)
    model.train(was_training)
    return total / max(n, 1)


@dataclasses.dataclass
class TrainData:
    """The pairs of a run and its length."""

    sources: list[str]
    train_seqs: list
    val_seqs: list
    train_set: PairDataset
    val_loader: Any  # DataLoader of held-out pairs, or None
    steps_per_epoch: int
    total_steps: int


@dataclasses.dataclass
class _Window:
    """Losses and pairs since the last progress line."""

    t: float
    loss: float = 0.0
    n: int = 0  # pairs with a finite loss
    pairs: int = 0

    def reset(self, now: float) -> None:
        self.t, self.loss, self.n, self.pairs = now, 0.0, 0, 0

    def rate(self, now: float) -> float:
        return self.pairs / max(now - self.t, 1e-9)


class Run:
    """One invocation of train() once it is set up: the step loop, progress lines and the CSV log, validation,
    checkpoints (checkpoint.py) and weights files."""

    def __init__(self, cfg: Config, augment, opts, data: TrainData, model, teacher, optimizer, scaler, use_amp: bool,
                 device: torch.device, workers: int, progress: Progress, say):
        self.cfg, self.augment, self.opts, self.tc, self.data, self.say = cfg, augment, opts, cfg.training, data, say
        self.model, self.teacher, self.optimizer, self.scaler, self.use_amp = model, teacher, optimizer, scaler, use_amp
        self.device, self.workers, self.p = device, workers, progress
        self.out = Path(opts.out)
        self.ckpt_path = self.out / CHECKPOINT
        self._open_log()

    def _open_log(self) -> None:
        csv_path = self.out / "train_log.csv"
        new_csv = not csv_path.is_file() or not self.opts.resume
        self.csv_file = open(csv_path, "a" if not new_csv else "w", newline="")
        self.writer = csv.DictWriter(self.csv_file, fieldnames=CSV_FIELDS)
        if new_csv:
            self.writer.writeheader()
        self.cfg.save(self.out / "config.yaml")
        (self.out / "augment.yaml").write_text("".join(f"{k}: {v}\n" for k, v in self.augment.to_dict().items()))
        d, opts = self.data, self.opts
        self.meta_base = {
            "config": self.cfg.to_dict(),
            "augment": self.augment.to_dict(),
            "data": d.sources,
            "train_sequences": [s.name for s in d.train_seqs],
            "held_out_sequences": [s.name for s in d.val_seqs],
            "planned_steps": d.total_steps,
            "batch_size": self.tc.batch_size,
            **({"teacher": opts.teacher, "distill_weight": opts.distill_weight} if opts.teacher else {}),
        }

    def elapsed(self) -> float:
        return self.p.elapsed_before + (time.time() - self.t_start)

    def checkpoint(self, reason: str) -> None:
        save_checkpoint(self.ckpt_path, self.model, self.optimizer, self.scaler if self.use_amp else None, self.p,
                        self.elapsed(), self.cfg, self.augment, reason)

    def write_weights(self, path: Path, complete: bool) -> None:
        p = self.p
        meta = dict(self.meta_base)
        meta.update({"steps": p.step, "pairs": p.pairs_seen, "complete": complete,
                     "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                     "training_seconds": round(self.elapsed(), 1),
                     "val_loss_history": p.val_history,
                     "val_loss": p.val_history[-1]["val_loss"] if p.val_history else None,
                     "best_val_loss": p.best_val if math.isfinite(p.best_val) else None,
                     "device": str(self.device)})
        save_weights(self.model, path, metadata=meta)

    def _lr(self, budget: float | None) -> float:
        tc, step, total = self.tc, self.p.step, self.data.total_steps
        if self.opts.lr_by_time and budget:
            # A time-budgeted run (a GPU lease) may not reach the planned steps: let the schedule follow the
            # clock too, so the run still ends at lr_end.
            progress = max(step / max(total - 1, 1), (time.time() - self.t_start) / budget)
            return tc.lr_start * (tc.lr_end / tc.lr_start) ** min(progress, 1.0)
        return lr_at(step, total, tc.lr_start, tc.lr_end)

    def _step(self, batch, lr: float) -> tuple[torch.Tensor, int]:
        """One SGD step on a batch (skipped when its loss is not finite); the loss and the batch's pair count."""
        tc, model, device, amp = self.tc, self.model, self.device, self.use_amp
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        if tc.freeze_bn:
            freeze_batchnorm(model)  # after every evaluate_loss, which puts the model back in train mode
        z, x, target, pos = collate_to(batch, device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            output = model(z, x)
        teacher_logits = None
        if self.teacher is not None:
            with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
                teacher_logits = self.teacher(z, x)
        loss = training_loss(output.float(), target, pos, tc.radius, teacher_logits, self.opts.distill_weight,
                             tc.box_loss_weight)
        self.optimizer.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.skipped += 1
            self.say(f"warning: non-finite loss at step {self.p.step}: batch skipped ({self.skipped} so far)")
        return loss, len(z)

    def loop(self) -> str:
        """Train up to the step limit or the time budget; the stop reason ("done" or "budget")."""
        opts, tc, d, p = self.opts, self.tc, self.data, self.p
        loader = torch.utils.data.DataLoader(
            d.train_set, batch_sampler=_BatchIndices(p.step, d.total_steps, tc.batch_size),
            num_workers=self.workers, pin_memory=self.device.type == "cuda", persistent_workers=False,
            prefetch_factor=4 if self.workers > 0 else None)
        self.t_start = time.time()  # this invocation's training time counts from here (elapsed_before: earlier ones)
        last_ckpt = self.last_log = self.t_start
        self.interactive = sys.stdout.isatty()
        self.window = _Window(self.t_start)
        budget = opts.minutes * 60.0 if opts.minutes else None
        self.skipped = 0
        self.step_limit = min(d.total_steps, opts.max_steps) if opts.max_steps else d.total_steps
        for batch in (loader if p.step < self.step_limit else []):
            lr = self._lr(budget)
            loss, n = self._step(batch, lr)
            p.step += 1
            p.pairs_seen += n
            finite = bool(torch.isfinite(loss))
            self.window.loss += float(loss.detach()) * n if finite else 0.0
            self.window.n += n if finite else 0
            self.window.pairs += n
            now = time.time()
            epoch_end = p.step % d.steps_per_epoch == 0
            if now - self.last_log >= opts.log_seconds or epoch_end or p.step == self.step_limit:
                self._log(lr, now, epoch_end)
            if epoch_end or now - last_ckpt >= opts.checkpoint_minutes * 60 or (
                    opts.checkpoint_steps and p.step % opts.checkpoint_steps == 0):
                self.checkpoint("periodic")
                last_ckpt = now
            if p.step >= self.step_limit:
                break
            if budget is not None and now - self.t_start >= budget:
                return "budget"
        return "done"

    def _log(self, lr: float, now: float, epoch_end: bool) -> None:
        """A progress line and CSV row; at an epoch's end also the validation loss and the weights it asks for."""
        p, spe = self.p, self.data.steps_per_epoch
        rate = self.window.rate(now)
        eta = (self.step_limit - p.step) * self.tc.batch_size / max(rate, 1e-9)
        row = {"step": p.step, "epoch": round(p.step / spe, 3),
               "loss": round(self.window.loss / max(self.window.n, 1), 5), "lr": f"{lr:.3e}", "val_loss": "",
               "pairs_per_s": round(rate, 2), "elapsed_s": round(p.elapsed_before + now - self.t_start, 1)}
        if epoch_end and self.data.val_loader is not None:
            val = evaluate_loss(self.model, self.data.val_loader, self.device, self.tc.radius,
                                box_weight=self.tc.box_loss_weight)
            row["val_loss"] = round(val, 5)
            p.val_history.append({"step": p.step, "epoch": p.step // spe, "val_loss": val})
            if val < p.best_val:
                p.best_val = val
                self.write_weights(self.out / "weights_best.pt", complete=False)
        if epoch_end and self.opts.keep_epoch_weights:
            self.write_weights(self.out / f"weights_epoch{p.step // spe:03d}.pt", complete=False)
        self.writer.writerow(row)
        self.csv_file.flush()
        line = (f"step {p.step}/{self.data.total_steps} epoch {p.step / spe:.2f}/{self.tc.epochs} "
                f"loss {row['loss']:.4f} lr {lr:.2e} {rate:.1f} pairs/s ETA {_fmt_time(eta)}"
                + (f" val_loss {row['val_loss']:.4f}" if row["val_loss"] != "" else ""))
        self.say(("\r" + line + "   ") if self.interactive and row["val_loss"] == "" else line)
        self.window.reset(now)
        self.last_log = now

    def _final_validation(self, complete: bool) -> None:
        """A stop mid-epoch (budget, max_steps): the final weights still get a validation figure (and the last
        window's loss)."""
        p, d, w = self.p, self.data, self.window
        if d.val_loader is None or p.step == 0 or (p.val_history and p.val_history[-1]["step"] == p.step):
            return
        now = time.time()
        val = evaluate_loss(self.model, d.val_loader, self.device, self.tc.radius, box_weight=self.tc.box_loss_weight)
        p.val_history.append({"step": p.step, "epoch": round(p.step / d.steps_per_epoch, 3), "val_loss": val})
        self.writer.writerow({"step": p.step, "epoch": round(p.step / d.steps_per_epoch, 3),
                              "loss": round(w.loss / w.n, 5) if w.n else "",
                              "lr": f"{self.optimizer.param_groups[0]['lr']:.3e}", "val_loss": round(val, 5),
                              "pairs_per_s": round(w.rate(now), 2) if w.pairs else "",
                              "elapsed_s": round(p.elapsed_before + now - self.t_start, 1)})
        self.say(f"val_loss {val:.4f} at step {p.step}")
        if val < p.best_val:
            p.best_val = val
            self.write_weights(self.out / "weights_best.pt", complete=complete)

    def finish(self, stop_reason: str) -> dict:
        p, out = self.p, self.out
        complete = p.step >= self.data.total_steps
        self._final_validation(complete)
        self.csv_file.close()
        self.checkpoint(stop_reason)
        self.write_weights(out / "weights.pt", complete=complete)
        best = p.best_val if math.isfinite(p.best_val) else None
        summary = {"step": p.step, "total_steps": self.data.total_steps, "pairs": p.pairs_seen, "stop": stop_reason,
                   "complete": complete, "best_val_loss": best, "weights": str(out / "weights.pt"),
                   "checkpoint": str(self.ckpt_path)}
        self.say(f"stopped ({stop_reason}) at step {p.step}/{self.data.total_steps}, {p.pairs_seen} pairs; "
                 f"checkpoint {self.ckpt_path}")
        self.say(f"final weights: {(out / 'weights.pt').resolve()}"
                 + (f" (best validation loss {p.best_val:.4f}: {(out / 'weights_best.pt').resolve()})"
                    if best is not None else ""))
        return summary
