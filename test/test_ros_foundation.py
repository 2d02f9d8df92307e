"""The ROS 2 package itself: colcon install tree, launch file, and the package's services over real DDS."""
import ast
import json
import os
import time
from pathlib import Path

import pytest
import yaml

from ros_helpers import REPO_ROOT, install_prefix, require_rclpy, run_python, start_python, stop
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


def test_installed_files_are_the_sources():
    prefix = _install()
    share = prefix / "share" / PKG
    for rel in ("package.xml", "launch/tracker.launch.py", "config/tracker.yaml"):
        assert (share / rel).read_text() == (REPO_ROOT / rel).read_text(), rel


# ------------------------------------------------------------------------------------------------- launch
def _launch_tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


def _call_name(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _const(node):
    return node.value if isinstance(node, ast.Constant) else None


def _kw(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _is_launch_config(node, name: str) -> bool:
    return (isinstance(node, ast.Call) and _call_name(node) == "LaunchConfiguration"
            and node.args and _const(node.args[0]) == name)


def test_launch_file_uses_only_the_standard_launch_api():
    allowed = {"launch", "launch_ros"}
    imported = {}
    for node in ast.walk(_launch_tree()):
        if isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] in allowed, "non-launch import: %s" % node.module
            for alias in node.names:
                imported[alias.asname or alias.name] = node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] in allowed | {"os"}, "non-launch import: %s" % alias.name
    assert imported.get("Node") == "launch_ros.actions"
    assert imported.get("DeclareLaunchArgument") == "launch.actions"
    assert imported.get("LaunchConfiguration") == "launch.substitutions"
    assert imported.get("LaunchDescription") == "launch"
    funcs = {n.name for n in _launch_tree().body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs


def test_launch_file_declares_its_arguments():
    declared = {}
    for node in ast.walk(_launch_tree()):
        if isinstance(node, ast.Call) and _call_name(node) == "DeclareLaunchArgument":
            declared[_const(node.args[0])] = node
    for name in ("image", "params_file", "backend", "weights", "namespace"):
        assert name in declared, "launch argument %r not declared" % name
        assert _kw(declared[name], "description") is not None, "launch argument %r has no description" % name
    # params_file defaults to the installed config/tracker.yaml
    default = _kw(declared["params_file"], "default_value")
    assert isinstance(default, ast.Call) and _call_name(default) == "PathJoinSubstitution"
    parts = default.args[0].elts
    assert _call_name(parts[0]) == "FindPackageShare" and _const(parts[0].args[0]) == PKG
    assert [_const(p) for p in parts[1:]] == ["config", "tracker.yaml"]


def test_launch_file_starts_the_node_with_params_file_and_image_remapping():
    nodes = [n for n in ast.walk(_launch_tree()) if isinstance(n, ast.Call) and _call_name(n) == "Node"]
    assert len(nodes) == 1, "expected exactly one launch_ros Node"
    node = nodes[0]
    assert _const(_kw(node, "package")) == PKG
    assert _const(_kw(node, "executable")) == "tracker_node"
    params = _kw(node, "parameters")
    assert isinstance(params, ast.List) and len(params.elts) == 2, "parameters=[params_file, overrides]"
    assert _is_launch_config(params.elts[0], "params_file")
    remaps = _kw(node, "remappings")
    assert isinstance(remaps, ast.List)
    pairs = {_const(t.elts[0]): t.elts[1] for t in remaps.elts if isinstance(t, ast.Tuple)}
    assert "image" in pairs and _is_launch_config(pairs["image"], "image")
    assert _is_launch_config(_kw(node, "namespace"), "namespace")


def test_tracker_yaml_is_a_ros_params_file_for_the_node():
    doc = yaml.safe_load((REPO_ROOT / "config" / "tracker.yaml").read_text())
    assert list(doc) == ["tracker_node"]
    params = doc["tracker_node"]["ros__parameters"]
    assert isinstance(params, dict) and params
    # the launch file's overrides must name parameters the file has
    assert "backend" in params and "weights" in params


# ----------------------------------------------------------------------------------------- services on DDS
SERVER_CODE = r"""
import rclpy, sys, time
from siam_tracker_ros.srv import InitTarget, StopTarget

rclpy.init()
node = rclpy.create_node("init_target_server")
served = []

def init_cb(req, resp):
    ok = req.bbox.size_x > 0 and req.bbox.size_y > 0
    resp.success = ok
    resp.target_id = req.target_id or "default"
    resp.message = "%s %d.%09d %s %.1f %.1f %.1f %.1f" % (
        "ok" if ok else "empty box", req.header.stamp.sec, req.header.stamp.nanosec, req.header.frame_id,
        req.bbox.center.position.x, req.bbox.center.position.y, req.bbox.size_x, req.bbox.size_y)
    served.append(resp.target_id)
    return resp

def stop_cb(req, resp):
    resp.success = True
    resp.message = "stopped " + (req.target_id or "all")
    served.append("stop")
    return resp

node.create_service(InitTarget, "init_target", init_cb)
node.create_service(StopTarget, "stop_target", stop_cb)
print("READY", flush=True)
deadline = time.monotonic() + 90
while rclpy.ok() and len(served) < 3 and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.1)
end = time.monotonic() + 1.0  # let the last response go out
while rclpy.ok() and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.1)
print("SERVED " + ",".join(served), flush=True)
node.destroy_node()
rclpy.shutdown()
sys.exit(0 if len(served) == 3 else 3)
"""

CLIENT_CODE = r"""
import json, rclpy
from siam_tracker_ros.srv import InitTarget, StopTarget

rclpy.init()
node = rclpy.create_node("init_target_client")
init = node.create_client(InitTarget, "init_target")
stop = node.create_client(StopTarget, "stop_target")
assert init.wait_for_service(timeout_sec=60), "init_target not discovered"
assert stop.wait_for_service(timeout_sec=60), "stop_target not discovered"

def call(client, req):
    fut = client.call_async(req)
    rclpy.spin_until_future_complete(node, fut, timeout_sec=30)
    assert fut.done(), "no response"
    return fut.result()

out = []
req = InitTarget.Request()
req.header.stamp.sec = 12
req.header.stamp.nanosec = 500
req.header.frame_id = "camera"
req.bbox.center.position.x = 320.5
req.bbox.center.position.y = 240.0
req.bbox.size_x = 64.0
req.bbox.size_y = 48.0
r = call(init, req)
out.append([r.success, r.target_id, r.message])
req = InitTarget.Request()
req.target_id = "car"
r = call(init, req)
out.append([r.success, r.target_id, r.message])
r = call(stop, StopTarget.Request())
out.append([r.success, r.message])
print(json.dumps(out))
node.destroy_node()
rclpy.shutdown()
"""


def test_init_target_served_and_called_over_dds(ros_domain_env):
    """One rclpy process serves siam_tracker_ros/srv/InitTarget (and StopTarget), another calls it."""
    require_rclpy()
    _install()
    server = start_python(SERVER_CODE, ros_domain_env)
    try:
        assert server.stdout.readline().strip() == "READY", stop(server)
        client = run_python(CLIENT_CODE, ros_domain_env, timeout=120)
        results = json.loads(client.stdout.strip().splitlines()[-1])
        server_out, server_err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            stop(server)
    assert server.returncode == 0, server_out + server_err
    assert "SERVED default,car,stop" in server_out
    assert results[0] == [True, "default", "ok 12.000000500 camera 320.5 240.0 64.0 48.0"]
    assert results[1] == [False, "car", "empty box 0.000000000  0.0 0.0 0.0 0.0"]
    assert results[2] == [True, "stopped all"]


def test_service_type_definitions():
    """Field names and types of the package's services (what robots and the README rely on)."""
    require_rclpy()
    code = r"""
import json
from siam_tracker_ros.srv import InitTarget, StopTarget
print(json.dumps({
    "init_req": InitTarget.Request.get_fields_and_field_types(),
    "init_res": InitTarget.Response.get_fields_and_field_types(),
    "stop_req": StopTarget.Request.get_fields_and_field_types(),
    "stop_res": StopTarget.Response.get_fields_and_field_types(),
}))
"""
    _install()
    env = dict(os.environ)
    out = json.loads(run_python(code, env, timeout=60).stdout.strip().splitlines()[-1])
    assert out["init_req"] == {"header": "std_msgs/Header", "target_id": "string",
                               "bbox": "vision_msgs/BoundingBox2D"}
    assert out["init_res"] == {"success": "boolean", "message": "string", "target_id": "string"}
    assert out["stop_req"] == {"target_id": "string"}
    assert out["stop_res"] == {"success": "boolean", "message": "string"}
