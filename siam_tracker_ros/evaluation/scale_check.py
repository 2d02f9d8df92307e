"""Does a network tell scales apart? `python -m siam_tracker_ros.evaluation.scale_check WEIGHTS [WEIGHTS...]`

For template/search pairs from the held-out sequences (search frame at most 5 frames from the template frame), the
search crop is taken at the true scale and rescaled by scale_step^k, k = -4..4 (k < 0: a smaller region, the target
looks larger). A network fit for SiamFC's scale search scores its highest peak at k = 0; one trained with a scale
bias peaks at one end. Prints, per weights file, the histogram of the best k, the fraction within one step of the
truth, the mean best k (the bias) and the mean peak logit per k. About a minute on one CPU core for 100 pairs.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from ..data import data_root, load_many, read_frame, split_sequences
from ..model import load_weights
from ..resources import shipped_file
from ..tracking.crops import channel_mean, crop_square, exemplar_region


def make_pairs(data: str, held_out: list[str], n: int, ks: np.ndarray, step: float, seed: int = 0):
    _, seqs = split_sequences(load_many([data]), held_out)
    if not seqs:
        raise SystemExit(f"none of the held-out sequences is in {data}")
    rng = np.random.default_rng(seed)
    zs, xs = [], []
    for _ in range(n):
        s = seqs[rng.integers(len(seqs))]
        v = s.valid_indices
        i = v[rng.integers(len(v))]
        near = v[np.abs(v - i) <= 5]
        j = near[rng.integers(len(near))]
        fi, fj = read_frame(s.frame_paths[i]), read_frame(s.frame_paths[j])
        bz, bx = s.boxes[i], s.boxes[j]
        sz = exemplar_region(bz[2], bz[3], 0.5)
        zs.append(crop_square(fi, bz[0] + bz[2] / 2, bz[1] + bz[3] / 2, sz, 127, channel_mean(fi)))
        sx = exemplar_region(bx[2], bx[3], 0.5) * 255 / 127
        pad = channel_mean(fj)
        xs.append([crop_square(fj, bx[0] + bx[2] / 2, bx[1] + bx[3] / 2, sx * step ** k, 255, pad)
                   for k in ks])
    z = torch.from_numpy(np.stack(zs).transpose(0, 3, 1, 2).copy()).float()
    x = torch.from_numpy(np.stack(xs).reshape(-1, 255, 255, 3).transpose(0, 3, 1, 2).copy()).float()
    return z, x


def check(weights: str, z: torch.Tensor, x: torch.Tensor, ks: np.ndarray) -> dict:
    model = load_weights(weights).eval()
    with torch.no_grad():
        kernel = model.template(z).repeat_interleave(len(ks), 0)
        peaks = torch.cat([model.search(x[i:i + 36], kernel[i:i + 36]) for i in range(0, len(x), 36)])
    peaks = peaks.reshape(len(z), len(ks), -1).max(-1).values.numpy()
    best = ks[peaks.argmax(1)]
    return {"histogram": np.bincount(best - ks[0], minlength=len(ks)).tolist(),
            "within_one_step": float((np.abs(best) <= 1).mean()), "mean_best_k": float(best.mean()),
            "mean_peak_logit": [round(float(v), 2) for v in peaks.mean(0)]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+")
    ap.add_argument("--data", default=str(data_root() / "train"))
    ap.add_argument("--config", default=str(shipped_file("config/train_default.yaml")),
                    help="YAML whose training.val_sequences are used")
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--step", type=float, default=1.0375, help="scale step (tracking.scale_step)")
    args = ap.parse_args(argv)
    from ..training.trainer import load_train_config

    torch.set_num_threads(1)
    cfg, _ = load_train_config(args.config)
    ks = np.arange(-4, 5)
    z, x = make_pairs(args.data, list(cfg.training.val_sequences), args.pairs, ks, args.step)
    print(f"best k in {ks.tolist()} (k < 0: zoomed in) over {args.pairs} held-out pairs")
    for w in args.weights:
        r = check(w, z, x, ks)
        print(f"{w}: histogram {r['histogram']} within +-1 step {r['within_one_step']:.2f} "
              f"mean best k {r['mean_best_k']:+.2f} mean peak logit {r['mean_peak_logit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
