"""ROS 2's docstring lint (ament_pep257) over the package's Python: its "ament" convention plus the codes of
setup.cfg's [pep257] add-ignore."""
import configparser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PATHS = ["siam_tracker_ros", "test", "launch", "tools"]

ament_pep257 = pytest.importorskip("ament_pep257.main", reason="ament_pep257 is not installed (ros-ament-pep257)")


def _add_ignore() -> list[str]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    return [code.strip() for code in config["pep257"]["add-ignore"].split(",") if code.strip()]


def test_pep257(monkeypatch):
    monkeypatch.chdir(REPO)
    rc = ament_pep257.main(argv=["--add-ignore", *_add_ignore(), *PATHS])
    assert rc == 0, "Found code style errors / warnings (ament_pep257's output above)"
