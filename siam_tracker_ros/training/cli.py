"""`siam-tracker train`: registered by siam_tracker_ros/cli.py."""
from __future__ import annotations

import argparse


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    from .trainer import add_arguments

    p = subparsers.add_parser(
        "train", help="train the network on tracking sequences",
        description="Train the Siamese tracker (SGD, balanced logistic loss) with checkpoints, --resume and a "
                    "CSV log; see docs/training.md.")
    add_arguments(p)
    p.set_defaults(func=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    from .trainer import run_from_args

    return run_from_args(args)
