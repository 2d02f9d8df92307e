"""package.xml against the code: every ROS package the Python sources and the launch file import is declared, no
run-time dependency is declared that nothing uses, and the maintainer has a real address."""
from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Declared for the generated interfaces (msg/, srv/) or the build, not imported by name from Python.
INTERFACE_OR_BUILD = {"std_msgs", "builtin_interfaces", "vision_msgs", "geometry_msgs", "rosidl_default_runtime",
                      "ament_index_python",
                      "lifecycle_msgs"}  # the services of rclpy.lifecycle, which the node is built on


def ros_package_names() -> set[str]:
    """Top-level modules that are ROS packages: message packages and the ROS Python libraries."""
    return {"rclpy", "launch", "launch_ros", "cv_bridge", "ament_index_python"}


def is_ros_module(name: str) -> bool:
    return name in ros_package_names() or bool(re.fullmatch(r"[a-z0-9_]+_(msgs|srvs|interfaces)", name))


def imported_ros_packages() -> set[str]:
    found = set()
    files = list((REPO / "siam_tracker_ros").rglob("*.py")) + list((REPO / "launch").glob("*.py")) + \
        [p for p in (REPO / "scripts").iterdir() if p.is_file()]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found.update(n.split(".")[0] for n in names if is_ros_module(n.split(".")[0]))
    return found


def declared(*tags: str) -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text.strip() for tag in tags for e in root.findall(tag)}


def test_every_imported_ros_package_is_declared():
    missing = imported_ros_packages() - declared("depend", "exec_depend")
    assert not missing, f"imported but not in package.xml: {sorted(missing)}"


def test_no_unused_run_dependency_is_declared():
    ros_deps = {d for d in declared("depend", "exec_depend") if not d.startswith("python3-")}
    unused = ros_deps - imported_ros_packages() - INTERFACE_OR_BUILD
    assert not unused, f"declared in package.xml but never imported: {sorted(unused)}"


def test_maintainer_address_is_not_a_placeholder():
    root = ET.parse(REPO / "package.xml").getroot()
    emails = [m.get("email", "") for m in root.findall("maintainer")]
    assert emails and all(re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", e) for e in emails), emails
    assert not any(e.endswith(("example.com", "example.org", ".local")) for e in emails), emails
