"""The ROS 2 package itself: colcon install tree, the launch file started by the launch API, the service types.
(The services themselves are exercised on the real node over DDS in test_node.py.)"""
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ros_helpers import REPO_ROOT, install_prefix, neutral_cwd, require_rclpy, run_python, start_python, stop
from ros_helpers import ros_domain_env  # noqa: F401  (pytest fixture)

PKG = "siam_tracker_ros"
LAUNCH_FILE = REPO_ROOT / "launch" / "tracker.launch.py"


# --------------------------------------------------------------------------------------------- install tree
def _install() -> Path:
    prefix = install_prefix()
    if not (prefix / "share" / PKG / "package.xml").is_file():
        pytest.skip("no colcon install at %s: run tools/ros_env/bootstrap.sh (make test does)" % prefix)
    return prefix


@pytest.mark.parametrize("rel", [
    "lib/siam_tracker_ros/tracker_node",
    "lib/siam_tracker_ros/frame_player",
    "bin/siam-tracker",
    "share/siam_tracker_ros/launch/tracker.launch.py",
    "share/siam_tracker_ros/config/tracker.yaml",
    "share/siam_tracker_ros/package.xml",
    "share/siam_tracker_ros/srv/InitTarget.srv",
    "share/siam_tracker_ros/srv/StopTarget.srv",
    "share/ament_index/resource_index/packages/siam_tracker_ros",
])
def test_install_tree_holds(rel):
    path = _install() / rel
    assert path.is_file(), path
    if rel.startswith("lib/"):
        assert os.access(path, os.X_OK), "%s is not executable" % path
        assert path.read_text().startswith("#!"), "%s has no shebang" % path


def test_installed_python_package_merges_sources_and_generated_srv():
    """The hand-written package is installed over the generated one: both halves must be there."""
    prefix = _install()
    pkgs = list(prefix.glob("lib/python3*/site-packages/" + PKG)) + list(
        prefix.glob("local/lib/python3*/dist-packages/" + PKG))
    assert pkgs, "no installed Python package under %s" % prefix
    pkg = pkgs[0]
    assert (pkg / "srv" / "_init_target.py").is_file()
    assert (pkg / "srv" / "_stop_target.py").is_file()
    for src in (REPO_ROOT / PKG).rglob("*.py"):
        if "__pycache__" not in src.parts:
            assert (pkg / src.relative_to(REPO_ROOT / PKG)).is_file(), "not installed: %s" % src
    assert (pkg / "__init__.py").read_text() == (REPO_ROOT / PKG / "__init__.py").read_text()


def test_siam_tracker_command_is_on_the_path_of_the_sourced_install():
    """The README's `siam-tracker`: after sourcing the install (make test has sourced .ros/env.sh), a bare command."""
    prefix = _install()
    found = shutil.which("siam-tracker", path=os.environ.get("PATH", ""))
    assert found is not None and Path(found).resolve() == (prefix / "bin" / "siam-tracker").resolve(), found
    res = subprocess.run(["siam-tracker", "--help"], capture_output=True, text=True, timeout=120,
                         cwd=neutral_cwd())
    assert res.returncode == 0 and "track" in res.stdout and "demo" in res.stdout, res.stdout + res.stderr


def test_installed_files_are_the_sources():
    prefix = _install()
    share = prefix / "share" / PKG
    for rel in ("package.xml", "launch/tracker.launch.py", "config/tracker.yaml"):
        assert (share / rel).read_text() == (REPO_ROOT / rel).read_text(), rel


# ------------------------------------------------------------------------------------------------- launch
LAUNCH_CODE = r"""
import sys
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

ls = LaunchService(argv=[])
ls.include_launch_description(LaunchDescription([IncludeLaunchDescription(
    PythonLaunchDescriptionSource(sys.argv[1]),
    launch_arguments={"image": "/launch_test/camera", "namespace": "lt", "backend": "onnxruntime",
                      "weights": sys.argv[2]}.items())]))
sys.exit(ls.run())
"""

PROBE_CODE = r"""
import json, time, rclpy
from siam_tracker_ros.srv import StopTarget

rclpy.init()
node = rclpy.create_node("launch_probe")
stop = node.create_client(StopTarget, "/lt/stop_target")
assert stop.wait_for_service(timeout_sec=90), "the launched node's /lt/stop_target never came"
deadline = time.monotonic() + 30
subs = []
while time.monotonic() < deadline and not subs:
    subs = [(i.node_name, i.node_namespace) for i in node.get_subscriptions_info_by_topic("/launch_test/camera")]
    time.sleep(0.2)
fut = stop.call_async(StopTarget.Request(target_id="nobody"))
rclpy.spin_until_future_complete(node, fut, timeout_sec=60)
r = fut.result()
names = node.get_node_names_and_namespaces()
print(json.dumps({"subs": subs, "stop": [r.success, r.message], "nodes": names}))
node.destroy_node()
rclpy.shutdown()
"""


def _launch_import_error(env) -> str | None:
    probe = run_python("import launch.launch_description_sources, launch_ros.actions", env, timeout=60, check=False)
    return None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["?"])[-1]


def test_launch_file_starts_the_node_with_its_arguments(ros_domain_env, tmp_path):
    """The installed launch file, started by the launch API with image, namespace, backend and weights: the node
    comes up in the namespace, subscribes to the remapped image topic and answers its services."""
    require_rclpy()
    prefix = _install()
    missing = _launch_import_error(ros_domain_env)
    if missing:
        pytest.skip(f"the ROS 2 launch packages (launch, launch_ros) are not installed in this environment "
                    f"({missing}); a robot's ROS 2 install has them")
    from siam_tracker_ros.config import ModelConfig
    from siam_tracker_ros.model import build_model, save_weights

    weights = tmp_path / "w.pt"
    save_weights(build_model(ModelConfig(width=0.25)), weights)
    launch_file = prefix / "share" / PKG / "launch" / "tracker.launch.py"
    with open(tmp_path / "launch.log", "w") as log:
        launched = start_python(LAUNCH_CODE, ros_domain_env, args=(launch_file, weights), stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            out = json.loads(run_python(PROBE_CODE, ros_domain_env, timeout=180).stdout.strip().splitlines()[-1])
        finally:
            stop(launched)
    assert ["tracker_node", "/lt"] in [list(n) for n in out["nodes"]], out
    assert ("tracker_node", "/lt") in [tuple(s) for s in out["subs"]], out
    assert out["stop"][0] is False and "no target 'nobody'" in out["stop"][1], out


def _launch_arguments() -> dict:
    tree = ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))
    declared = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument":
            declared[node.args[0].value] = {kw.arg for kw in node.keywords}
    return declared


def test_launch_file_documents_its_arguments():
    """The README lists these launch arguments; each has a description (`ros2 launch ... --show-args`)."""
    declared = _launch_arguments()
    for name in ("image", "params_file", "backend", "weights", "namespace", "log_level", "depth_image", "camera_info"):
        assert name in declared and "description" in declared[name], name


def test_tracker_yaml_is_a_ros_params_file_for_the_node():
    doc = yaml.safe_load((REPO_ROOT / "config" / "tracker.yaml").read_text())
    assert list(doc) == ["tracker_node"]
    params = doc["tracker_node"]["ros__parameters"]
    assert isinstance(params, dict) and params
    # every key is a parameter the node declares, and the launch file's overrides name declared parameters
    from siam_tracker_ros.ros.params import PARAMS
    declared = {p.name for p in PARAMS}
    assert set(params) <= declared, set(params) - declared
    assert {"backend", "model", "weights"} <= declared


def test_service_type_definitions():
    """Field names and types of the package's services (what robots and the README rely on), and their REASON_*
    constants: the reasons the node answers with (engine/jobs.py), each one, with the value its name says."""
    require_rclpy()
    code = r"""
import json
from siam_tracker_ros.srv import InitTarget, StopTarget
print(json.dumps({
    "init_req": InitTarget.Request.get_fields_and_field_types(),
    "init_res": InitTarget.Response.get_fields_and_field_types(),
    "stop_req": StopTarget.Request.get_fields_and_field_types(),
    "stop_res": StopTarget.Response.get_fields_and_field_types(),
    "init_reasons": {k: getattr(InitTarget.Response, k) for k in dir(InitTarget.Response) if k.startswith("REASON_")},
    "stop_reasons": {k: getattr(StopTarget.Response, k) for k in dir(StopTarget.Response) if k.startswith("REASON_")},
}))
"""
    _install()
    env = dict(os.environ)
    out = json.loads(run_python(code, env, timeout=60).stdout.strip().splitlines()[-1])
    assert out["init_req"] == {"header": "std_msgs/Header", "target_id": "string",
                               "bbox": "vision_msgs/BoundingBox2D"}
    assert out["init_res"] == {"success": "boolean", "reason": "string", "message": "string", "target_id": "string",
                               "caught_up_frames": "uint32"}
    assert out["stop_req"] == {"target_id": "string"}
    assert out["stop_res"] == {"success": "boolean", "reason": "string", "message": "string"}
    from siam_tracker_ros.engine import jobs

    assert out["init_reasons"] == {f"REASON_{r.upper()}": r for r in jobs.INIT_REASONS}
    assert out["stop_reasons"] == {f"REASON_{r.upper()}": r for r in jobs.STOP_REASONS}


def _launch_log_colour_env(stdout_is_a_terminal: bool, environ: dict) -> dict:
    """The launch file's _log_colour_env (it reads only os.environ and sys.stdout), run without importing `launch`,
    which an environment without the ROS 2 launch packages lacks."""
    from types import SimpleNamespace

    tree = ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_log_colour_env")
    scope = {"os": SimpleNamespace(environ=environ),
             "sys": SimpleNamespace(stdout=SimpleNamespace(isatty=lambda: stdout_is_a_terminal))}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), str(LAUNCH_FILE), "exec"), scope)
    return scope["_log_colour_env"]()


def _log_through_a_terminal(extra_env: dict) -> str:
    """What a real rclpy node writes when its output is a terminal, as launch's emulate_tty gives it."""
    import pty

    require_rclpy()
    env = {k: v for k, v in os.environ.items() if k != "RCUTILS_COLORIZED_OUTPUT"}
    env.update(extra_env)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", "import rclpy; rclpy.init(); "
                             "rclpy.create_node('colour_check').get_logger().warning('refused (box): colour check')"],
                            stdout=slave, stderr=slave, env=env, cwd=neutral_cwd())
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    proc.wait(timeout=30)
    return out.decode(errors="replace")


def test_launch_colours_node_logs_only_when_its_output_is_a_terminal():
    assert _launch_log_colour_env(False, {}) == {"RCUTILS_COLORIZED_OUTPUT": "0"}
    assert _launch_log_colour_env(True, {}) == {"RCUTILS_COLORIZED_OUTPUT": "1"}
    assert _launch_log_colour_env(False, {"RCUTILS_COLORIZED_OUTPUT": "1"}) == {}  # the user's choice stands
    # the nodes write to a terminal under launch (emulate_tty): the variable decides
    plain = _log_through_a_terminal(_launch_log_colour_env(False, {}))
    assert "colour check" in plain and "\x1b[" not in plain, repr(plain)
    coloured = _log_through_a_terminal(_launch_log_colour_env(True, {}))
    assert "colour check" in coloured and "\x1b[" in coloured, repr(coloured)
