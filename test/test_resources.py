"""Shipped files (config/, weights/) are found as package data: in the source checkout, and from an installed copy
in its share folder, without the repository's layout."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "siam_tracker_ros"
WHERE = ("import json, siam_tracker_ros\n"
         "from siam_tracker_ros.resources import shipped_file, source_checkout\n"
         "from siam_tracker_ros.backends import default_weights_path\n"
         "print(json.dumps({'package': siam_tracker_ros.__file__, 'checkout': str(source_checkout()),"
         " 'params': str(shipped_file('config/tracker.yaml')), 'finetune': str(shipped_file('config/finetune.yaml')),"
         " 'weights': str(default_weights_path('small'))}))")


def _where(python_path: Path, ament_prefix: Path) -> dict:
    """Where a copy of the package imported from `python_path`, away from the source tree, finds its files."""
    env = {k: v for k, v in os.environ.items() if k not in ("SIAM_TRACKER_WEIGHTS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(python_path)
    env["AMENT_PREFIX_PATH"] = str(ament_prefix)
    proc = subprocess.run([sys.executable, "-c", WHERE], env=env, cwd=tempfile.mkdtemp(prefix="siam_resources_"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _install_site_packages() -> Path:
    prefix = Path(os.environ.get("SIAM_TRACKER_ROS_INSTALL", REPO / ".ros" / "install"))
    found = sorted(prefix.glob(f"lib/python3*/site-packages/{PACKAGE}/resources.py"))
    if not found:
        pytest.skip(f"no colcon install of this package under {prefix} (tools/ros_env/bootstrap.sh builds it)")
    return found[0].parents[1]


def test_a_source_checkout_reads_its_own_files():
    where = _where(REPO, REPO / "no-such-prefix")
    assert Path(where["package"]).parent == REPO / PACKAGE and Path(where["checkout"]) == REPO
    assert Path(where["params"]) == REPO / "config" / "tracker.yaml"
    assert Path(where["weights"]) == REPO / "weights" / "siam_small.pt"


def test_an_installed_copy_finds_its_files_in_the_share_folder():
    """The colcon install's package, imported away from the source tree, takes config and weights from
    <prefix>/share/siam_tracker_ros/ (AMENT_PREFIX_PATH), as a non-editable install on a robot does."""
    site = _install_site_packages()
    prefix = site.parents[2]
    where = _where(site, prefix)
    share = prefix / "share" / PACKAGE
    assert Path(where["package"]).is_relative_to(site) and where["checkout"] == "None"
    assert Path(where["params"]) == share / "config" / "tracker.yaml" and Path(where["params"]).is_file()
    assert Path(where["finetune"]) == share / "config" / "finetune.yaml" and Path(where["finetune"]).is_file()
    if (REPO / "weights" / "siam_small.pt").is_file():  # installed when the checkout has weights
        assert Path(where["weights"]) == share / "weights" / "siam_small.pt" and Path(where["weights"]).is_file()
