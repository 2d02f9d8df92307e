"""`siam-tracker` command: train, eval, export, ensemble, track, convert-nanotrack, bench, play, demo, latency, load,
ui.

Each sub-command lives next to the code it drives and registers itself through an `add_parser(subparsers)` function;
this file only lists them. The parser's `func` gets the parsed arguments and returns an exit code.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# (module, function that adds the sub-command): imported lazily so `siam-tracker bench` never imports rclpy, and
# `siam-tracker play` works without training extras.
SUBCOMMANDS = [
    ("siam_tracker_ros.training.cli", "add_train_parser"),
    ("siam_tracker_ros.evaluation.cli", "add_eval_parser"),
    ("siam_tracker_ros.tools_cli", "add_export_parser"),
    ("siam_tracker_ros.tools_cli", "add_ensemble_parser"),
    ("siam_tracker_ros.tools_cli", "add_track_parser"),
    ("siam_tracker_ros.backends.nanotrack_convert", "add_convert_parser"),
    ("siam_tracker_ros.bench", "add_bench_parser"),
    ("siam_tracker_ros.runs.player", "add_play_parser"),
    ("siam_tracker_ros.runs.demo", "add_demo_parser"),
    ("siam_tracker_ros.runs.latency", "add_latency_parser"),
    ("siam_tracker_ros.runs.latency", "add_load_parser"),
    ("siam_tracker_ros.operator_ui.main", "add_ui_parser"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siam-tracker", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module_name, function in SUBCOMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            # A sub-command whose dependencies are missing (rclpy for play/demo) still shows up, with the reason.
            name = function.removeprefix("add_").removesuffix("_parser")
            p = sub.add_parser(name, help=f"(unavailable: {err})")
            p.set_defaults(func=lambda args, err=err, name=name: _unavailable(name, err))
            continue
        getattr(module, function)(sub)
    return parser


def _unavailable(name: str, err: Exception) -> int:
    print(f"siam-tracker {name}: unavailable here: {err}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
