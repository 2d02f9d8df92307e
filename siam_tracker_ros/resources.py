"""Where the package's files are: what it ships (config/, weights/) and the development data beside a checkout.

Shipped files are found, in order, in the source checkout this package is imported from (marked by its package.xml),
then in the installed share folder, share/siam_tracker_ros/ under each prefix of $AMENT_PREFIX_PATH (a colcon
install) and under sys.prefix (`pip install .`). The development data (../shared: sequences, pretrained files, peer
trackers) is never shipped: `shared_root` is the one place that says where it is expected.
"""
from __future__ import annotations

import importlib.resources
import os
import sys
from pathlib import Path

PACKAGE = "siam_tracker_ros"


def package_dir() -> Path:
    """The folder of the imported siam_tracker_ros package."""
    return Path(str(importlib.resources.files(PACKAGE)))


def source_checkout() -> Path | None:
    """The repository holding the imported package when it runs from a source tree, else None (an installed copy)."""
    root = package_dir().resolve().parent
    return root if (root / "package.xml").is_file() and (root / PACKAGE).is_dir() else None


def share_dirs() -> list[Path]:
    """The installed share folders of the package: colcon's (each $AMENT_PREFIX_PATH prefix) and pip's (sys.prefix)."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    return [Path(prefix) / "share" / PACKAGE for prefix in prefixes]


def shipped_file(relative: str | Path) -> Path:
    """A file the package ships, e.g. "config/tracker.yaml" or "weights/siam_small.pt": the first copy that exists,
    else the first place looked at (for the caller's error message)."""
    checkout = source_checkout()
    candidates = ([checkout / relative] if checkout else []) + [share / relative for share in share_dirs()]
    return next((path for path in candidates if path.is_file()), candidates[0])


def _linked_checkout() -> Path | None:
    """The repository a colcon --symlink-install (a development install) links its module files back to."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "package.xml").is_file() and (root / PACKAGE).is_dir() else None


def shared_root() -> Path:
    """The development data folder: ../shared beside the source checkout (also when it runs through a symlink
    install's links), or beside the working directory when the package is installed. $SIAM_DATA_DIR and
    $SIAM_PEERS_DIR point its parts elsewhere (data/frames.py)."""
    return (source_checkout() or _linked_checkout() or Path.cwd()).resolve().parent / "shared"
