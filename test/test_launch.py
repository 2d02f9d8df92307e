"""The installed launch file run as a user runs it: `ros2 launch siam_tracker_ros tracker.launch.py ...` in its own
process group and ROS domain (test/launch_helpers.py), driven by the `ros2` command line and by the tests' own rclpy
client over DDS, stopped with Ctrl-C to the process group.

Skipped, saying why, where the ROS 2 command line is not installed (tools/ros_env/bootstrap.sh installs it from
../shared/ros2). The camera plays the package's built-in sequence (node_helpers.built_in_frames).
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from launch_helpers import (GLOBAL_NAMES, Camera, Launch, close_domain, half_size, launch_env, require_ros2_cli,
                            ros2, service_init, start_target, wait_until_active)
from node_helpers import Client, iou, node_config, sequence  # noqa: F401  (sequence: a pytest fixture)
from ros_helpers import REPO_ROOT

SHOW_ARGS_LINE = re.compile(r"^\s+'(\w+)':", re.M)


@pytest.fixture(scope="module")
def frames(sequence):  # noqa: F811
    require_ros2_cli()
    return half_size(*sequence)


@pytest.fixture
def launched(tmp_path):
    """A function of the launch arguments giving (Launch, Client, env): a launch on a domain of its own, the test's
    client there and the domain's environment (for `ros2` commands beside it); afterwards the client closed, the
    launch stopped with Ctrl-C (unless the test did), the ros2 daemon stopped and the domain released."""
    require_ros2_cli()
    started = []

    def start(*arguments: str):
        env = launch_env(tmp_path / f"ros_log{len(started)}")
        launch = Launch(list(arguments), env, tmp_path / f"launch{len(started)}.log")
        client = Client(int(env["ROS_DOMAIN_ID"]))
        started.append((launch, client, env))
        return launch, client, env

    yield start
    for launch, client, env in started:
        client.close()
        launch.stop()
        close_domain(env)


@pytest.fixture(scope="module")
def default_launch(frames, tmp_path_factory):
    """`ros2 launch siam_tracker_ros tracker.launch.py` with no argument at all, shared by the tests below that do
    not change it; the last one stops it with Ctrl-C."""
    folder = tmp_path_factory.mktemp("default_launch")
    env = launch_env(folder / "ros_log")
    launch = Launch([], env, folder / "launch.log")
    client = Client(int(env["ROS_DOMAIN_ID"]))
    yield launch, client
    client.close()
    launch.stop()
    close_domain(env)


def track(client, frames, target_id="default"):
    """Publish frames one by one, each once the previous one's Detection2D of `target_id` came on /tracked_object;
    their boxes. A frame the node did not get (a best-effort subscription on a loaded machine) is published again."""
    from siam_tracker_ros.ros import messages

    boxes = []
    for i, frame in enumerate(frames):
        for attempt in range(3):
            stamp = client.publish(frame)
            try:
                det = client.wait_for(lambda: next((d for d in client.dets if d.header.stamp == stamp
                                                    and d.id == target_id), None), 20, f"frame {i}'s box")
                break
            except AssertionError:
                if attempt == 2:
                    raise
        boxes.append(messages.bbox_to_box(det.bbox))
    return boxes


# ------------------------------------------------------------------------------------------------------- defaults
def test_defaults_serve_a_client_that_waits_for_the_service_and_follow_a_real_track(default_launch, frames):
    """No argument: the node comes up with the shipped model; a script that waits for /init_target, streams and calls
    at once is served (no wait for anything else), and /tracked_object follows the sequence as the same tracker does
    offline."""
    from siam_tracker_ros.backends.select import default_weights_path
    from siam_tracker_ros.tracking import SiamTracker

    launch, client = default_launch
    images, gt = frames
    assert client.init_client.wait_for_service(timeout_sec=180), launch.tail()
    deadline = time.monotonic() + 60
    while True:  # only a frame lost in transport ("no frame ...") is sent again; any other refusal fails here
        res = client.init(gt[0], stamp=client.publish(images[0]))  # asks again for 5 s while the frame is in transit
        if res.success or "no frame" not in res.message or time.monotonic() > deadline:
            break
    assert res.success, f"{res.message}\n{launch.tail()}"
    boxes = track(client, images[1:])

    tracker = SiamTracker.from_config(node_config(), default_weights_path("small"))
    tracker.init(images[0], gt[0])
    offline = [tracker.update(f)["default"].box for f in images[1:]]
    ious = [iou(a, b) for a, b in zip(boxes, offline)]
    assert np.mean(ious) >= 0.98, ious
    truth = [iou(a, b) for a, b in zip(boxes, gt[1:])]
    assert np.mean(truth) >= 0.5, truth  # a real track of the ball, not a box that stays put
    assert client.stop("").success


# ------------------------------------------------------------------------------------------------------ arguments
def _readme_launch_arguments() -> list[str]:
    """The first column of the README's launch argument table (section "Robot workflow")."""
    text = (REPO_ROOT / "README.md").read_text().split("## Robot workflow", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", text, re.M)


def test_show_args_lists_exactly_the_arguments_the_readme_lists(tmp_path):
    require_ros2_cli()
    env = launch_env(tmp_path)
    try:
        res = ros2(["launch", "siam_tracker_ros", "tracker.launch.py", "--show-args"], env)
    finally:
        close_domain(env)
    assert res.returncode == 0, res.stdout
    shown = SHOW_ARGS_LINE.findall(res.stdout)
    assert shown and sorted(shown) == sorted(_readme_launch_arguments()), (shown, _readme_launch_arguments())
    # the boolean arguments offer the same spellings
    choices = {name: re.search(rf"'{name}':.*?Valid choices are: (\[.*?\])", res.stdout, re.S).group(1)
               for name in ("managed", "ui")}
    assert choices["managed"] == choices["ui"], choices


BOOLEAN_PROBE = r"""
import importlib.util, json, sys
from launch import LaunchContext
from launch.actions import DeclareLaunchArgument
from launch_ros.actions import LifecycleNode

spec = importlib.util.spec_from_file_location("tracker_launch", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
declared = [a for a in module.generate_launch_description().entities if isinstance(a, DeclareLaunchArgument)]
out = {}
for spelling in sys.argv[2:]:
    context = LaunchContext()
    for arg in declared:
        context.launch_configurations[arg.name] = "" if arg.name in ("params_file",) else \
            "".join(s.perform(context) for s in arg.default_value)
    context.launch_configurations.update({"managed": spelling, "ui": spelling, "params_file": "/dev/null"})
    refused = []
    for arg in declared:
        try:
            arg.execute(context)
        except Exception as err:
            refused.append(arg.name)
    nodes = module._tracker_node(context) if not refused else []
    out[spelling] = {"refused": refused, "lifecycle": any(isinstance(n, LifecycleNode) for n in nodes),
                     "nodes": len(nodes)}
print(json.dumps(out))
"""


def test_boolean_arguments_accept_the_same_spellings(tmp_path):
    """managed and ui, through the launch file's own code on launch's real objects: true/True/1/yes give a managed
    (LifecycleNode) tracker and the operator page, false/False/0/no neither; any other spelling stops the launch for
    both (and `ros2 launch` says so, listing the choices)."""
    from ros_helpers import install_prefix, run_python

    require_ros2_cli()
    launch_file = install_prefix() / "share" / "siam_tracker_ros" / "launch" / "tracker.launch.py"
    spellings = ["true", "True", "1", "yes", "false", "False", "0", "no", "maybe", "TRUE"]
    env = launch_env(tmp_path)
    try:
        proc = run_python(BOOLEAN_PROBE.replace("sys.argv[1]", repr(str(launch_file))).replace(
            "sys.argv[2:]", repr(spellings)), env, timeout=120)
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        for s in ("true", "True", "1", "yes"):
            assert out[s] == {"refused": [], "lifecycle": True, "nodes": 2}, (s, out[s])
        for s in ("false", "False", "0", "no"):
            assert out[s] == {"refused": [], "lifecycle": False, "nodes": 1}, (s, out[s])
        for s in ("maybe", "TRUE"):
            assert sorted(out[s]["refused"]) == ["managed", "ui"], (s, out[s])
        res = ros2(["launch", "siam_tracker_ros", "tracker.launch.py", "managed:=maybe"], env)
        assert res.returncode != 0 and "Valid options are" in res.stdout and "'True'" in res.stdout, res.stdout
    finally:
        close_domain(env)


# ------------------------------------------------------------------------------------------------------- managed
def test_managed_true_waits_for_ros2_lifecycle_set_through_every_transition(launched, frames):
    """managed:=True (the capitalised spelling, a boolean like any other): the node waits unconfigured; `ros2
    lifecycle set` drives configure -> activate -> deactivate -> activate (the target kept) -> deactivate -> cleanup ->
    shutdown (cleanup is a transition of inactive only), each state read back with `ros2 lifecycle get`."""
    launch, client, env = launched("managed:=True")
    images, gt = frames

    def get_state() -> str:
        res = ros2(["lifecycle", "get", "/tracker_node"], env)
        return res.stdout if res.returncode == 0 else ""

    deadline = time.monotonic() + 180
    while not get_state().startswith("unconfigured") and time.monotonic() < deadline:  # still starting
        time.sleep(0.5)
    assert get_state().startswith("unconfigured"), launch.tail()
    before = "unconfigured"
    for transition, state in (("configure", "inactive"), ("activate", "active"), ("deactivate", "inactive"),
                              ("activate", "active"), ("deactivate", "inactive"), ("cleanup", "unconfigured"),
                              ("shutdown", "finalized")):
        res = ros2(["lifecycle", "set", "/tracker_node", transition], env)
        if res.returncode < 0 and get_state().startswith(before):
            # The `ros2` command's own process died of a signal before the node changed state (rare, on a loaded
            # machine: SIGSEGV with no output): run it again, as a user would. The node's state is what is checked.
            res = ros2(["lifecycle", "set", "/tracker_node", transition], env)
        if res.returncode < 0:
            assert get_state().startswith(state), (transition, res.returncode, res.stdout, get_state())
        else:
            assert res.returncode == 0 and "Transitioning successful" in res.stdout, (transition, res.stdout)
        assert get_state().startswith(state), (transition, get_state())
        before = state
        if state == "active":
            if not any(d.id == "default" for d in client.dets):  # first activation: start a target
                res = client.init(gt[0], stamp=client.publish(images[0]))
                assert res.success, res.message
            track(client, images[1:4])  # the second time: the target kept through deactivate
    launch.interrupt()
    launch.assert_clean_exit(launch.wait(60))


# ------------------------------------------------------------------------------------------------------- the page
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _page_request(page_url: str, path: str = "", body: dict | None = None) -> urllib.request.Request:
    """A request to the page at the address it logged, as a script makes it: the logged URL's token sent as
    `Authorization: token <t>` (a browser trades it for a cookie instead)."""
    parts = urllib.parse.urlsplit(page_url)
    token = urllib.parse.parse_qs(parts.query).get("token", [""])[0]
    url = urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + path, query=""))
    headers = {"Authorization": f"token {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    return urllib.request.Request(url, data=data, headers=headers)


def _api(page_url: str, path: str, body: dict | None = None) -> dict:
    """A call of the page's JSON API."""
    with urllib.request.urlopen(_page_request(page_url, path, body), timeout=60) as resp:
        return json.loads(resp.read())


def test_ui_true_serves_the_page_on_the_chosen_port_and_starts_a_target(launched, frames):
    port = _free_port()
    launch, client, _ = launched("ui:=True", f"ui_port:={port}")
    images, gt = frames
    text = launch.wait_for_output(lambda t: "operator page at " in t, 180, "the operator page's address")
    page = text.split("operator page at ", 1)[1].split()[0]
    assert urllib.parse.urlsplit(page).port == port, page
    with urllib.request.urlopen(_page_request(page), timeout=60) as resp:
        assert resp.status == 200 and b"<html" in resp.read().lower()
    wait_until_active(client)
    camera = Camera(client, images, "/camera/image_raw")
    try:
        def page_init(stamp_ns):
            res = _api(page, "api/init", {"target_id": "ball", "box": list(gt[0]),
                                          "stamp": f"{stamp_ns // 10 ** 9}.{stamp_ns % 10 ** 9:09d}"})
            return res["success"], res["reason"], res["message"]
        start_target(client, camera, page_init)
        client.wait_for(lambda: any(t.id == "ball" for a in client.states for t in a.targets), 30,
                        "the page's target on tracked_objects/state")
    finally:
        camera.close()


# ------------------------------------------------------------------------------------------------------- depth
def test_depth_image_and_camera_info_give_the_known_distance(launched, frames):
    """An explicit camera_info (not the one next to depth_image): each Detection3D lies at the plane's distance."""
    launch, client, _ = launched("image:=/camera/color/image_raw",
                                 "depth_image:=/camera/aligned_depth_to_color/image_raw",
                                 "camera_info:=/camera/aligned_depth_to_color/info_of_this_test")
    images, gt = frames
    wait_until_active(client)
    arrays3d = []
    from vision_msgs.msg import Detection3DArray

    client.node.create_subscription(Detection3DArray, "/tracked_objects_3d", lambda m: client._add(arrays3d, m), 50)
    camera = Camera(client, images, "/camera/color/image_raw", depth_topic="/camera/aligned_depth_to_color/image_raw",
                    info_topic="/camera/aligned_depth_to_color/info_of_this_test", distance=1.75)
    try:
        start_target(client, camera, service_init(client, gt[0]))
        client.wait_for(lambda: sum(1 for a in arrays3d if a.detections) >= 5, 60, "5 frames on tracked_objects_3d")
        h, w = images[0].shape[:2]
        for array in [a for a in arrays3d if a.detections][:5]:
            det3d = array.detections[0]
            det2d = client.wait_for(lambda: next((d for d in client.dets if d.header.stamp == array.header.stamp),
                                                 None), 10, "the frame's Detection2D")
            centre = det3d.bbox.center.position
            assert det3d.id == "default" and centre.z == pytest.approx(1.75, rel=0.01), centre
            # back-projected through this camera_info's K: the argument named the topic the node read
            u = det2d.bbox.center.position.x
            assert centre.x == pytest.approx((u - (w - 1) / 2) * centre.z / Camera.FX, abs=0.01), (centre, u)
    finally:
        camera.close()


# ----------------------------------------------------------------------------------------------------- namespace
def test_namespace_puts_every_topic_and_service_under_it(launched, frames):
    from siam_tracker_ros.srv import StopTarget

    launch, client, _ = launched("namespace:=robot1", "image:=camera/image_raw")
    wait_until_active(client, "/robot1/tracker_node")
    node = client.node
    graph = {}

    def settled():
        names = dict(node.get_node_names_and_namespaces())
        if names.get("tracker_node") != "/robot1":
            return False
        graph["topics"] = [n for n, _ in node.get_publisher_names_and_types_by_node("tracker_node", "/robot1")] + \
            [n for n, _ in node.get_subscriber_names_and_types_by_node("tracker_node", "/robot1")]
        graph["services"] = [n for n, _ in node.get_service_names_and_types_by_node("tracker_node", "/robot1")]
        return "/robot1/camera/image_raw" in graph["topics"] and "/robot1/init_target" in graph["services"]
    client.wait_for(settled, 60, "the node's image subscription and services in the graph")
    outside = [n for n in graph["topics"] + graph["services"]
               if not n.startswith("/robot1/") and n not in GLOBAL_NAMES]
    assert not outside, (outside, graph)
    for name in ("/robot1/tracked_object", "/robot1/tracked_objects", "/robot1/tracked_objects/state"):
        assert name in graph["topics"], (name, graph)
    for name in ("/robot1/stop_target", "/robot1/tracker_node/get_state", "/robot1/tracker_node/set_parameters"):
        assert name in graph["services"], (name, graph)
    stop = node.create_client(StopTarget, "/robot1/stop_target")
    res = client.call(stop, StopTarget.Request(target_id="nobody"))
    assert not res.success and "nobody" in res.message, res.message


# ------------------------------------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_twice_while_tracking_exits_cleanly(launched, frames):
    """A second Ctrl-C 0.2 s after the first, to the launch's process group (as a terminal sends it), while a target
    is tracked: exit 0, no 'process has died', no traceback."""
    launch, client, _ = launched()
    images, gt = frames
    wait_until_active(client)
    camera = Camera(client, images, "/camera/image_raw")
    try:
        start_target(client, camera, service_init(client, gt[0]))
        count = len(client.dets)
        client.wait_for(lambda: len(client.dets) >= count + 5, 60, "the target tracked on the stream")
        launch.interrupt()
        time.sleep(0.2)  # the gap between two key presses (not a synchronisation)
        launch.interrupt()
        code = launch.wait(90)
    finally:
        camera.close()
    launch.assert_clean_exit(code)


def test_ctrl_c_pressed_again_and_again_exits_cleanly(launched):
    """Ctrl-C pressed every 50 ms until `ros2 launch` has ended, so that one lands in every phase of the shutdown:
    the node's, launch's loop, and the launch process's own end after its loop (its interpreter puts SIGINT back
    to the default, kill, unless it is ignored). Exit 0, no 'process has died', no traceback."""
    launch, client, _ = launched()
    wait_until_active(client)
    presses, deadline = 0, time.monotonic() + 60
    while launch.running() and time.monotonic() < deadline:
        launch.interrupt()
        presses += 1
        time.sleep(0.05)  # the key's repeat rate (not a synchronisation)
    launch.assert_clean_exit(launch.wait(30))
    assert presses > 1, launch.tail()


def test_ctrl_c_once_exits_cleanly(default_launch):
    """Last of the tests on the shared launch: one Ctrl-C to its process group after it tracked."""
    launch, client = default_launch
    assert launch.running(), launch.tail()
    launch.interrupt()
    launch.assert_clean_exit(launch.wait(90))
    assert "tracker_node: shut down" in launch.text(), launch.tail()


def _children(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid`: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == pid:
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, IndexError, ValueError):  # ended meanwhile
                pass
    return found


def _running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its new parent to reap it has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_sigterm_to_the_launch_stops_the_node_and_the_page_too(launched, frames):
    """`kill <pid of ros2 launch>` (SIGTERM to the launch process alone): launch exits at once and leaves its
    processes running (its own log says so); the node and the operator page see their parent gone and shut down
    instead of publishing and serving on their own."""
    port = _free_port()
    launch, client, _ = launched("ui:=true", f"ui_port:={port}")
    launch.wait_for_output(lambda t: "operator page at " in t, 180, "the operator page's address")
    wait_until_active(client)
    started = _children(launch.proc.pid)
    node = [pid for pid, cmd in started.items() if "tracker_node" in cmd]
    page = [pid for pid, cmd in started.items() if "operator_ui" in cmd]
    assert len(node) == 1 and len(page) == 1, started
    os.kill(launch.proc.pid, signal.SIGTERM)
    assert launch.wait(60) is not None, launch.tail()
    deadline = time.monotonic() + 60
    while any(_running(pid) for pid in node + page) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {pid: started[pid] for pid in node + page if _running(pid)}
    for pid in left:  # the test's own cleanup: the launch that would have stopped them is gone
        os.kill(pid, signal.SIGKILL)
    assert not left, f"still running 60 s after the launch ended: {left}\n{launch.tail()}"
