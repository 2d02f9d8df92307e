"""Start the operator page: `siam-tracker ui` (options below) or `ros2 run siam_tracker_ros operator_ui --ros-args
...` (parameters host, port, stream_rate, jpeg_quality, use_compressed, tracker_node, service_timeout; bridge.py).

    siam-tracker ui --image /camera/image_raw                    # http://127.0.0.1:8080/
    siam-tracker ui --image /cam/image --namespace /robot1 --port 8081
    ros2 run siam_tracker_ros operator_ui --ros-args -r image:=/camera/image_raw -p port:=8080
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys


def add_ui_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("ui", help="the operator page: draw a box on the live image to start tracking (ROS)",
                              description=__doc__.splitlines()[0])
    p.add_argument("--image", default=None, metavar="TOPIC",
                   help="image topic shown (remaps 'image', as for tracker_node; default: image in the namespace)")
    p.add_argument("--namespace", default=None, metavar="NS", help="the tracker node's namespace (default: none)")
    p.add_argument("--host", default=None,
                   help="address to serve on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it, no auth)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default 8080; 0: any free port, logged)")
    p.add_argument("--compressed", action="store_true", help="show <image>/compressed instead of the raw topic")
    p.add_argument("ros_args", nargs=argparse.REMAINDER,
                   help="--ros-args ... passed on (e.g. -p stream_rate:=10.0)")
    p.set_defaults(func=run_ui_command)
    return p


def run_ui_command(args) -> int:
    ros_args = list(args.ros_args or [])
    if ros_args and ros_args[0] == "--":
        ros_args = ros_args[1:]
    if ros_args and ros_args[0] != "--ros-args":
        print(f"siam-tracker ui: unexpected arguments {' '.join(ros_args)} (ROS arguments follow --ros-args)",
              file=sys.stderr)
        return 2
    extra = []
    if args.image:
        extra += ["-r", f"image:={args.image}"]
    if args.namespace:
        extra += ["-r", f"__ns:={'/' + args.namespace.strip('/')}"]
    for name, value in (("host", args.host), ("port", args.port)):
        if value is not None:
            extra += ["-p", f"{name}:={value}"]
    if args.compressed:
        extra += ["-p", "use_compressed:=true"]
    if extra:
        ros_args = (ros_args or ["--ros-args"]) + extra
    return run(["operator_ui"] + ros_args)


def run(argv: list[str]) -> int:
    """The process: rclpy node in a thread of its own, web server on the main thread's event loop, until Ctrl-C."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from siam_tracker_ros.runs.launcher import DemoError, ensure_interfaces

    try:
        ensure_interfaces()
    except DemoError as err:
        print(f"operator_ui: {err}", file=sys.stderr)
        return 2
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    bridge = None
    try:
        from .bridge import OperatorBridge
        from .server import serve

        bridge = OperatorBridge()
        host = str(bridge.get_parameter("host").value)
        port = int(bridge.get_parameter("port").value)
        if not 0 <= port <= 65535:
            bridge.get_logger().error(f"port {port} is not a TCP port")
            return 2
        bridge.start()
        log = bridge.get_logger()

        def ready(url: str) -> None:
            log.info(f"operator page at {url} (image {bridge.image_topic}, services {bridge.init_service} and "
                     f"{bridge.stop_service})")
            if host not in ("127.0.0.1", "localhost", "::1"):
                log.warning(f"the page is served on {host}: anyone who can reach this port can start and stop "
                            f"tracking (no authentication)")

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await serve(bridge, host, port, stop, ready)

        try:
            asyncio.run(main())
        except OSError as err:  # address in use, address not available
            log.error(f"cannot serve on {host}:{port}: {err} (set the host / port parameters)")
            return 1
        return 0
    finally:
        if bridge is not None:
            bridge.shutdown()
            bridge.destroy_node()
        rclpy.try_shutdown()


def main(argv: list[str] | None = None) -> int:
    """`operator_ui` executable (lib/siam_tracker_ros/operator_ui): ROS arguments only."""
    argv = list(sys.argv if argv is None else ["operator_ui"] + argv)
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
