"""ROS 2's flake8 lint (ament_flake8) over the package's Python, configured by setup.cfg's [flake8] section."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PATHS = ["siam_tracker_ros", "test", "launch", "tools"]

ament_flake8 = pytest.importorskip("ament_flake8.main", reason="ament_flake8 is not installed (ros-ament-flake8)")


def test_flake8(monkeypatch):
    monkeypatch.chdir(REPO)
    rc, errors = ament_flake8.main_with_errors(argv=["--config", str(REPO / "setup.cfg"), *PATHS])
    assert rc == 0, f"Found {len(errors)} code style errors / warnings:\n" + "\n".join(errors)
