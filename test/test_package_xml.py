"""package.xml against the code: every ROS package the Python sources and the launch file import is declared, no
run-time dependency is declared that nothing uses, every third-party Python module the package and its tests import
is declared by its rosdep key (so `rosdep install` gives a robot everything the node runs with), and the maintainer has
a real address."""
from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Declared for the generated interfaces (msg/, srv/) or the build, not imported by name from Python.
INTERFACE_OR_BUILD = {"std_msgs", "builtin_interfaces", "vision_msgs", "geometry_msgs", "rosidl_default_runtime",
                      "ament_index_python",
                      "lifecycle_msgs"}  # the services of rclpy.lifecycle, which the node is built on


# Third-party (non-ROS) modules -> their rosdep keys, as named in rosdistro's rosdep/python.yaml (python3-pytorch-pip
# resolves to pip's torch and torchvision, python3-onnxruntime-pip to pip's onnxruntime).
ROSDEP_KEYS = {
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "yaml": "python3-yaml",
    "torch": "python3-pytorch-pip",
    "onnxruntime": "python3-onnxruntime-pip",
    "aiohttp": "python3-aiohttp",
    "skimage": "python3-skimage",
    "matplotlib": "python3-matplotlib",
}
# Imported only by the tests.
TEST_ROSDEP_KEYS = {
    "pytest": "python3-pytest",
    "selenium": "python3-selenium",
}
# Modules rosdistro has no key for: the README's "Robot workflow" says how a robot gets each.
NO_ROSDEP_KEY = {
    "onnx": "the ONNX export of the ONNX Runtime and TensorRT backends (python.yaml has onnxruntime only)",
    "tensorrt": "the optional TensorRT backend, from NVIDIA's TensorRT (JetPack) install",
}


def ros_package_names() -> set[str]:
    """Top-level modules that are ROS packages: message packages and the ROS Python libraries."""
    return {"rclpy", "launch", "launch_ros", "cv_bridge", "ament_index_python"}


def is_ros_module(name: str) -> bool:
    return name in ros_package_names() or bool(re.fullmatch(r"[a-z0-9_]+_(msgs|srvs|interfaces)", name))


def top_level_imports(files) -> set[str]:
    """The top-level module names the files import (absolute imports, at any depth of the code)."""
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def package_files() -> list[Path]:
    return list((REPO / "siam_tracker_ros").rglob("*.py")) + list((REPO / "launch").glob("*.py")) + \
        [p for p in (REPO / "scripts").iterdir() if p.is_file()]


def imported_ros_packages() -> set[str]:
    return {name for name in top_level_imports(package_files()) if is_ros_module(name)}


def third_party(names: set[str], local: set[str]) -> set[str]:
    """Neither the standard library, nor ROS, nor this package, nor a module of `local`."""
    return {n for n in names if n not in sys.stdlib_module_names and not is_ros_module(n)
            and n != "siam_tracker_ros" and n not in local}


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


def test_every_third_party_module_has_its_rosdep_key_declared():
    """`rosdep install --from-paths src` installs what package.xml declares: each module the package imports must be
    covered by a declared exec key (or be one rosdistro has no key for, with the README saying how to get it)."""
    imported = third_party(top_level_imports(package_files()), local=set())
    unknown = imported - set(ROSDEP_KEYS) - set(NO_ROSDEP_KEY)
    assert not unknown, f"imported, but not in the table import name -> rosdep key above: {sorted(unknown)}"
    exec_keys = declared("depend", "exec_depend")
    missing = {name: ROSDEP_KEYS[name] for name in sorted(imported) if name in ROSDEP_KEYS
               and ROSDEP_KEYS[name] not in exec_keys}
    assert not missing, f"imported but its rosdep key is not an exec_depend of package.xml: {missing}"
    unused = {key for name, key in ROSDEP_KEYS.items() if name not in imported} & exec_keys
    assert not unused, f"declared for a module nothing imports: {sorted(unused)}"


def test_every_third_party_module_the_tests_import_is_a_declared_dependency():
    tests = list((REPO / "test").glob("*.py"))
    imported = third_party(top_level_imports(tests), local={p.stem for p in tests})
    unknown = imported - set(ROSDEP_KEYS) - set(TEST_ROSDEP_KEYS) - set(NO_ROSDEP_KEY)
    assert not unknown, f"imported by the tests, but not in the tables above: {sorted(unknown)}"
    keys = declared("depend", "exec_depend", "test_depend")
    missing = {name: {**ROSDEP_KEYS, **TEST_ROSDEP_KEYS}[name] for name in sorted(imported)
               if name not in NO_ROSDEP_KEY and {**ROSDEP_KEYS, **TEST_ROSDEP_KEYS}[name] not in keys}
    assert not missing, f"imported by the tests but not declared in package.xml: {missing}"


def test_modules_without_a_rosdep_key_are_explained_in_the_robot_workflow():
    readme = (REPO / "README.md").read_text()
    workflow = readme.split("## Robot workflow", 1)[1].split("\n## ", 1)[0]
    for name in NO_ROSDEP_KEY:
        assert f"`{name}`" in workflow, f"README 'Robot workflow' does not say how a robot gets `{name}`"
