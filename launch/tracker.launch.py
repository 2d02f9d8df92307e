"""Start the Siamese tracker node.

    ros2 launch siam_tracker_ros tracker.launch.py image:=/camera/image_raw
    ros2 launch siam_tracker_ros tracker.launch.py image:=/cam/image backend:=onnxruntime weights:=/path/to/weights.pt

    ros2 launch siam_tracker_ros tracker.launch.py image:=/cam/image model:=large
    ros2 launch siam_tracker_ros tracker.launch.py image:=/cam/image ui:=true ui_port:=8080

    ros2 launch siam_tracker_ros tracker.launch.py image:=/cam/image managed:=true   # for a lifecycle manager

    ros2 launch siam_tracker_ros tracker.launch.py image:=/camera/color/image_raw \
        depth_image:=/camera/aligned_depth_to_color/image_raw     # + 3D targets on tracked_objects_3d

Parameters come from config/tracker.yaml (or params_file:=...); the launch arguments backend, model and weights
override the file when given (an empty value leaves the file's value). The node is a lifecycle node: by default it
configures and activates itself (autostart); with managed:=true it is started as a launch_ros LifecycleNode with
autostart false and waits, unconfigured, for a lifecycle manager (Nav2's lifecycle_manager, `ros2 lifecycle set`).
`ui:=true` also starts the operator page (operator_ui, same namespace and image topic) on ui_host:ui_port.
depth_image (a depth image registered to the colour image) turns the depth input on; its camera_info is the topic next
to it (.../camera_info) unless camera_info:= names another.
"""
import os
import signal
import sys
import threading

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnShutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

# The spellings a boolean argument (managed, ui) accepts; anything else stops the launch with these listed.
TRUE_SPELLINGS = ("true", "True", "1", "yes")
FALSE_SPELLINGS = ("false", "False", "0", "no")
BOOLEAN_CHOICES = list(TRUE_SPELLINGS + FALSE_SPELLINGS)


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument(
            "image", default_value="/camera/image_raw",
            description="sensor_msgs/Image topic to track on (remapped onto the node's 'image' input)"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("siam_tracker_ros"), "config", "tracker.yaml"]),
            description="YAML parameter file for tracker_node"),
        DeclareLaunchArgument(
            "backend", default_value="",
            description="inference backend override: auto, torch, onnxruntime or tensorrt (empty: keep params_file)"),
        DeclareLaunchArgument(
            "model", default_value="",
            description="model override: auto, small, large, small_box, or nanotrack_v2 / nanotrack_v3 (the user's "
                        "NanoTrack files) (empty: keep params_file)"),
        DeclareLaunchArgument(
            "weights", default_value="",
            description="weights file (or a NanoTrack ONNX pair's folder) override (empty: keep params_file)"),
        DeclareLaunchArgument(
            "namespace", default_value="",
            description="namespace for the node, its topics and services"),
        DeclareLaunchArgument(
            "log_level", default_value="info",
            description="logging level: debug, info, warn, error"),
        DeclareLaunchArgument(
            "depth_image", default_value="",
            description="depth image registered to the colour image (16UC1 mm or 32FC1 m), e.g. "
                        "/camera/aligned_depth_to_color/image_raw: turns the depth input and tracked_objects_3d on "
                        "(empty: off, unless params_file sets use_depth)"),
        DeclareLaunchArgument(
            "camera_info", default_value="",
            description="camera_info of the depth image (empty: the topic next to depth_image, "
                        "<depth_image's namespace>/camera_info)"),
        DeclareLaunchArgument(
            "managed", default_value="false", choices=BOOLEAN_CHOICES,
            description="true: leave the node unconfigured for a lifecycle manager (autostart false); false: the "
                        "node configures and activates itself"),
        DeclareLaunchArgument(
            "ui", default_value="false", choices=BOOLEAN_CHOICES,
            description="also start the operator page (operator_ui): draw a box on the live image to start tracking"),
        DeclareLaunchArgument(
            "ui_host", default_value="127.0.0.1",
            description="address the operator page is served on (another than loopback exposes it: it then "
                        "needs its token, on by default, and TLS through ui_tls_certfile or a reverse proxy)"),
        DeclareLaunchArgument(
            "ui_port", default_value="8080",
            description="TCP port of the operator page"),
        DeclareLaunchArgument(
            "ui_token_file", default_value="",
            description="a file holding the operator page's fixed token (a fleet's); empty: a new random token at "
                        "each start, printed in the page's URL"),
        DeclareLaunchArgument(
            "ui_allowed_hosts", default_value="",
            description="comma-separated host names the page answers to besides loopback and ui_host (the names "
                        "a browser uses to reach it); any other Host header is refused"),
        DeclareLaunchArgument(
            "ui_tls_certfile", default_value="",
            description="PEM certificate: the page is served over HTTPS (with ui_tls_keyfile)"),
        DeclareLaunchArgument(
            "ui_tls_keyfile", default_value="",
            description="PEM private key of ui_tls_certfile"),
    ]

    return LaunchDescription(arguments + [OpaqueFunction(function=_tracker_node),
                                          RegisterEventHandler(OnShutdown(on_shutdown=_quiet_later_ctrl_c))])


def _quiet_later_ctrl_c(event, context):
    """Once the launch is shutting down, a further Ctrl-C is ignored by this process. Launch itself says "again,
    ignoring" while its loop runs, but when every node has stopped the process goes on to end its interpreter, which
    puts SIGINT back to the system's default (kill): a Ctrl-C then made `ros2 launch` die of SIGINT (exit -2)
    instead of 0. An ignored signal stays ignored through that. (Only Python's main thread may set a handler: a
    launch run from another thread, which no terminal's Ctrl-C reaches that way, is left alone.)"""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _tracker_node(context):
    # Overrides only for arguments given a non-empty value, so params_file stays the single source of defaults.
    overrides = {}
    for name in ("backend", "model", "weights"):
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = value
    managed = _flag(context, "managed")
    overrides["autostart"] = not managed
    # LifecycleNode (launch_ros) when managed: its lifecycle can then also be driven by launch events (ChangeState).
    remappings = [("image", LaunchConfiguration("image"))]
    for name in ("depth_image", "camera_info"):  # remapped only when given (a remapped depth_image turns depth on)
        value = LaunchConfiguration(name).perform(context)
        if value:
            remappings.append((name, value))
    node_class = LifecycleNode if managed else Node
    nodes = [
        node_class(
            package="siam_tracker_ros",
            executable="tracker_node",
            name="tracker_node",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            emulate_tty=True,
            additional_env=_log_colour_env(),
            parameters=[LaunchConfiguration("params_file"), overrides],
            remappings=remappings,
            ros_arguments=["--log-level", LaunchConfiguration("log_level")],
        )
    ]
    if _flag(context, "ui"):
        nodes.append(Node(
            package="siam_tracker_ros",
            executable="operator_ui",
            name="operator_ui",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            emulate_tty=True,
            additional_env=_log_colour_env(),
            parameters=[_ui_parameters(context)],
            remappings=[("image", LaunchConfiguration("image"))],
            ros_arguments=["--log-level", LaunchConfiguration("log_level")],
        ))
    return nodes


def _ui_parameters(context):
    """The operator page's parameters from the ui_* arguments (its token, Host and TLS options only when given)."""
    params = {"host": LaunchConfiguration("ui_host").perform(context),
              "port": int(LaunchConfiguration("ui_port").perform(context))}
    for argument, parameter in (("ui_token_file", "token_file"), ("ui_tls_certfile", "tls_certfile"),
                                ("ui_tls_keyfile", "tls_keyfile")):
        value = LaunchConfiguration(argument).perform(context)
        if value:
            params[parameter] = value
    hosts = [h.strip() for h in LaunchConfiguration("ui_allowed_hosts").perform(context).split(",") if h.strip()]
    if hosts:
        params["allowed_hosts"] = hosts
    return params


def _flag(context, name):
    """A boolean argument's value (DeclareLaunchArgument's choices have refused any other spelling)."""
    return LaunchConfiguration(name).perform(context) in TRUE_SPELLINGS


def _log_colour_env():
    """emulate_tty gives the nodes a terminal, so rcutils would colour their log lines even when this launch's own
    output goes to a file or a pipe (systemd, `| tee`): colour only when it is a terminal, unless the user chose."""
    if os.environ.get("RCUTILS_COLORIZED_OUTPUT"):
        return {}
    return {"RCUTILS_COLORIZED_OUTPUT": "1" if sys.stdout.isatty() else "0"}
