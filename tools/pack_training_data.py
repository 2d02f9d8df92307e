#!/usr/bin/env python3
"""Pack the tracking sequences into a compact copy for a machine that cannot read ../shared/data (a GPU box with a
64 MiB upload limit): `python tools/pack_training_data.py [--src ../shared/data/train] [--out .traindata]`.

For each usable frame, the part of the frame inside a square of side `--context` * s_z around the target (s_z the
SiamFC exemplar side sqrt((w+p)(h+p)), p = (w+h)/2) is cut out, scaled down so that the whole square would be at
most `--max-side` pixels (never up), and written as a JPEG; its groundtruth.txt holds the box in the crop's
coordinates. With the default context 3.4 the square covers the largest multi-scale search crop (S2 = 383 canonical
pixels, i.e. 3.02 s_z) with room for most of the stretch and shift; pixels outside the square, like pixels outside
a real frame, are mean-padded by the pair sampler. Where the square leaves the frame only the frame part is kept, so
frame borders stay borders. The result is the ../shared/data layout again (one folder per sequence, 00001.jpg ...,
groundtruth.txt) and trains with `--set 'training.data_dirs=[".traindata"]'`.

Held-out sequences (training.val_sequences of --config) are packed too, every `--val-step`-th frame, so the
validation loss can be computed there; the trainer never trains on them (it splits by name). Frames whose target is
absent are dropped (they carry nothing for training), their sequence structure otherwise kept in order.

The total size (all files) is checked against `--limit-mib` (default 42 MiB, so that even a tar of it, with its
per-file headers, stays under the 48 MiB the device upload leaves for data): the tool lowers the JPEG quality, then
the max side, until it fits. `.traindata/` is kept out of git through .git/info/exclude.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from siam_tracker_ros.data import data_root, load_sequences, read_frame  # noqa: E402


def crop_frame(img: np.ndarray, box: np.ndarray, context: float, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    x, y, w, h = box
    p = 0.5 * (w + h)
    side = context * math.sqrt((w + p) * (h + p))
    cx, cy = x + w / 2, y + h / 2
    H, W = img.shape[:2]
    x0, y0 = max(0, int(math.floor(cx - side / 2))), max(0, int(math.floor(cy - side / 2)))
    x1, y1 = min(W, int(math.ceil(cx + side / 2))), min(H, int(math.ceil(cy + side / 2)))
    part = img[y0:y1, x0:x1]
    f = min(1.0, max_side / side)
    if f < 1.0:
        size = (max(1, int(round((x1 - x0) * f))), max(1, int(round((y1 - y0) * f))))
        fx, fy = size[0] / (x1 - x0), size[1] / (y1 - y0)
        part = cv2.resize(part, size, interpolation=cv2.INTER_AREA)
    else:
        fx = fy = 1.0
    new_box = np.array([(x - x0) * fx, (y - y0) * fy, w * fx, h * fy])
    return part, new_box


def pack(src: Path, out: Path, held_out: set[str], context: float, max_side: int, quality: int,
         val_step: int, train_step: int) -> dict:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    stats = {"sequences": 0, "frames": 0, "bytes": 0, "held_out": []}
    for seq in load_sequences(src):
        held = seq.name in held_out
        step = val_step if held else train_step
        idx = seq.valid_indices[::step]
        if len(idx) < 2:
            continue
        d = out / seq.name
        d.mkdir()
        lines = []
        for k, i in enumerate(idx):
            try:
                img = read_frame(seq.frame_paths[i])
            except OSError:
                continue
            part, box = crop_frame(img, seq.boxes[i], context, max_side)
            ok, buf = cv2.imencode(".jpg", part, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                continue
            (d / f"{k + 1:05d}.jpg").write_bytes(buf.tobytes())
            stats["bytes"] += len(buf)
            lines.append(",".join(f"{v:.2f}" for v in box))
        (d / "groundtruth.txt").write_text("\n".join(lines) + "\n")
        stats["sequences"] += 1
        stats["frames"] += len(lines)
        if held:
            stats["held_out"].append(seq.name)
    return stats


def ensure_excluded(repo: Path, entry: str = "/.traindata/") -> None:
    exclude = repo / ".git" / "info" / "exclude"
    if not (repo / ".git").is_dir():
        return
    exclude.parent.mkdir(parents=True, exist_ok=True)
    text = exclude.read_text() if exclude.is_file() else ""
    if entry not in text.split():
        exclude.write_text(text + ("" if text.endswith("\n") or not text else "\n") + entry + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default=str(data_root() / "train"))
    ap.add_argument("--out", default=str(REPO / ".traindata"))
    ap.add_argument("--config", default=str(REPO / "config" / "train_default.yaml"),
                    help="training YAML whose training.val_sequences are the held-out sequences")
    ap.add_argument("--context", type=float, default=3.4, help="square side in units of s_z")
    ap.add_argument("--max-side", type=int, default=360, help="largest stored square side (pixels)")
    ap.add_argument("--quality", type=int, default=85)
    ap.add_argument("--val-step", type=int, default=2, help="keep every N-th frame of held-out sequences")
    ap.add_argument("--train-step", type=int, default=1, help="keep every N-th frame of training sequences")
    ap.add_argument("--limit-mib", type=float, default=42.0,
                    help="size limit of the whole folder (all files, MiB); the device upload limit is 64 MiB "
                         "including the repository")
    args = ap.parse_args(argv)

    import yaml

    cfg = yaml.safe_load(Path(args.config).read_text()) or {}
    held_out = set((cfg.get("training") or {}).get("val_sequences") or [])
    out = Path(args.out)
    quality, max_side = args.quality, args.max_side
    while True:
        stats = pack(Path(args.src), out, held_out, args.context, max_side, quality, args.val_step,
                     args.train_step)
        total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        mib = total / 2**20
        print(f"packed {stats['sequences']} sequences, {stats['frames']} frames, {mib:.1f} MiB "
              f"(quality {quality}, max side {max_side})", flush=True)
        if mib <= args.limit_mib:
            break
        if quality > 70:
            quality -= 5
        else:
            max_side = int(max_side * 0.9)
    info = {"source": str(Path(args.src).resolve()), "context": args.context, "max_side": max_side,
            "quality": quality, "val_step": args.val_step, "train_step": args.train_step, **stats,
            "held_out_packed": sorted(stats.pop("held_out"))}
    info.pop("held_out", None)
    (out / "pack.json").write_text(json.dumps(info, indent=1))
    if out.resolve().parent == REPO.resolve():
        ensure_excluded(REPO, "/" + out.name + "/")
    print(f"written to {out} ({info['bytes'] / 2**20:.1f} MiB); train with --set "
          f"'training.data_dirs=[\"{out.name if out.resolve().parent == REPO.resolve() else out}\"]'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
