"""The trainer's `checkpoint.pt`: model, optimizer, AMP scaler, progress counters, RNG states and configuration, written
atomically, and read back for an exact `--resume` (same pairs, learning rate and optimizer state)."""
from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT = "checkpoint.pt"


@dataclasses.dataclass
class Progress:
    """How far a run is: what a checkpoint carries besides the model and optimizer states."""

    step: int = 0
    pairs_seen: int = 0
    elapsed_before: float = 0.0  # training seconds of the earlier invocations (resumed runs)
    best_val: float = float("inf")
    val_history: list = dataclasses.field(default_factory=list)


def atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, model, optimizer, scaler, progress: Progress, elapsed_s: float, cfg, augment,
                    reason: str) -> None:
    """`scaler`: the AMP GradScaler when mixed precision is on, else None."""
    atomic_save({
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None, "step": progress.step,
        "pairs_seen": progress.pairs_seen, "elapsed_s": elapsed_s, "best_val": progress.best_val,
        "val_history": progress.val_history, "rng": rng_state(), "config": cfg.to_dict(),
        "augment": augment.to_dict(), "reason": reason,
    }, path)


def start_or_resume(path: Path, resume: bool, cfg, model, optimizer, scaler, say) -> Progress:
    """A fresh Progress (refusing to overwrite an existing checkpoint), or, with `resume`, the checkpoint's: model,
    optimizer, scaler (None without AMP) and RNG states restored in place."""
    if not resume:
        if path.is_file():
            raise FileExistsError(f"{path} exists: pass --resume to continue it, or choose another --out")
        return Progress()
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt["config"]["model"] != cfg.to_dict()["model"]:
        raise RuntimeError(f"--resume: {path} is for model {ckpt['config']['model']}, "
                           f"the config asks for {cfg.to_dict()['model']}")
    if ckpt["config"]["training"] != cfg.to_dict()["training"]:
        say("warning: the training config differs from the checkpoint's; continuing with the new one")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    progress = Progress(step=int(ckpt["step"]), pairs_seen=int(ckpt["pairs_seen"]),
                        elapsed_before=float(ckpt["elapsed_s"]), best_val=float(ckpt["best_val"]),
                        val_history=list(ckpt.get("val_history", [])))
    set_rng_state(ckpt["rng"])
    return progress
