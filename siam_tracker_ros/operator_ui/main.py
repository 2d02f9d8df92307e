"""Start the operator page: `siam-tracker ui` (options below) or `ros2 run siam_tracker_ros operator_ui --ros-args
...` (parameters host, port, require_token, token, token_file, allowed_hosts, tls_certfile, tls_keyfile,
stream_rate, jpeg_quality, use_compressed, tracker_node, service_timeout; bridge.py).

    siam-tracker ui --image /camera/image_raw                    # logs http://127.0.0.1:8080/?token=...
    siam-tracker ui --image /cam/image --namespace /robot1 --port 8081
    ros2 run siam_tracker_ros operator_ui --ros-args -r image:=/camera/image_raw -p port:=8080
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys
from pathlib import Path


def add_ui_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("ui", help="the operator page: draw a box on the live image to start tracking (ROS)",
                              description=__doc__.splitlines()[0])
    p.add_argument("--image", default=None, metavar="TOPIC",
                   help="image topic shown (remaps 'image', as for tracker_node; default: image in the namespace)")
    p.add_argument("--namespace", default=None, metavar="NS", help="the tracker node's namespace (default: none)")
    p.add_argument("--host", default=None,
                   help="address to serve on (default 127.0.0.1: this machine only; another address needs the "
                        "token, and TLS: --tls-cert or a reverse proxy)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default 8080; 0: any free port, logged)")
    p.add_argument("--token-file", default=None, metavar="FILE",
                   help="a fixed token (first line of FILE) instead of a random one per start")
    p.add_argument("--no-token", action="store_true",
                   help="serve without a token (only on a loopback --host; any local process or web page the "
                        "browser visits can then reach the API)")
    p.add_argument("--allowed-host", action="append", default=None, metavar="NAME",
                   help="a name the page answers to besides 127.0.0.1/localhost/[::1] (the robot's DNS name, a "
                        "reverse proxy's name); repeat for more")
    p.add_argument("--tls-cert", default=None, metavar="PEM", help="serve HTTPS with this certificate chain")
    p.add_argument("--tls-key", default=None, metavar="PEM", help="the private key of --tls-cert")
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
    for name, value in (("host", args.host), ("port", args.port), ("token_file", args.token_file),
                        ("tls_certfile", args.tls_cert), ("tls_keyfile", args.tls_key)):
        if value is not None:
            extra += ["-p", f"{name}:={value}"]
    if args.no_token:
        extra += ["-p", "require_token:=false"]
    if args.allowed_host:
        extra += ["-p", f"allowed_hosts:=[{','.join(repr(h) for h in args.allowed_host)}]"]
    if args.compressed:
        extra += ["-p", "use_compressed:=true"]
    if extra:
        ros_args = (ros_args or ["--ros-args"]) + extra
    return run(["operator_ui"] + ros_args)


def make_access(bridge, host: str):
    """The page's access rules from the node's parameters; raises AccessError for a configuration that would
    expose the API (a non-loopback host without a token, an unreadable or too short fixed token)."""
    from .access import Access, AccessError, check_token, is_loopback, new_token

    g = lambda name: bridge.get_parameter(name).value  # noqa: E731
    token_file, fixed = str(g("token_file")), str(g("token"))
    if not g("require_token"):
        if token_file or fixed:
            raise AccessError("require_token is false but a token or token_file is set: choose one")
        if not is_loopback(host):
            raise AccessError(f"host {host} is not a loopback address: the page needs its token there "
                              f"(require_token true)")
        token = None
    elif token_file:
        try:
            lines = Path(token_file).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise AccessError(f"cannot read token_file: {err}") from None
        token = check_token(lines[0] if lines else "")
    elif fixed:
        token = check_token(fixed)
    else:
        token = new_token()
    allowed = [h for h in (g("allowed_hosts") or []) if h]
    if not is_loopback(host) and host not in ("0.0.0.0", "::"):
        allowed.append(f"[{host}]" if ":" in host else host)  # the address it is served on
    tls = bool(g("tls_certfile"))
    return Access(token=token, allowed_hosts=tuple(allowed), secure_cookie=tls,
                  log=bridge.get_logger().warning)


def make_ssl_context(bridge):
    certfile, keyfile = str(bridge.get_parameter("tls_certfile").value), str(bridge.get_parameter("tls_keyfile")
                                                                             .value)
    if not certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile or None)
    return context


def run(argv: list[str]) -> int:
    """The process: rclpy node in a thread of its own, web server on the main thread's event loop, until Ctrl-C."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from siam_tracker_ros.ros.lifetime import ParentWatch
    from siam_tracker_ros.runs.launcher import DemoError, ensure_interfaces

    parent = ParentWatch()

    try:
        ensure_interfaces()
    except DemoError as err:
        print(f"operator_ui: {err}", file=sys.stderr)
        return 2
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    bridge = None
    try:
        from .access import AccessError, is_loopback
        from .bridge import OperatorBridge
        from .server import serve

        bridge = OperatorBridge()
        host = str(bridge.get_parameter("host").value)
        port = int(bridge.get_parameter("port").value)
        log = bridge.get_logger()
        if not 0 <= port <= 65535:
            log.error(f"port {port} is not a TCP port")
            return 2
        try:
            access = make_access(bridge, host)
            ssl_context = make_ssl_context(bridge)
        except AccessError as err:
            log.error(f"not serving the page: {err}")
            return 2
        except (OSError, ssl.SSLError) as err:
            log.error(f"not serving the page: cannot load tls_certfile / tls_keyfile: {err}")
            return 2
        bridge.start()

        def ready(url: str) -> None:
            log.info(f"operator page at {url} (image {bridge.image_topic}, services {bridge.init_service} and "
                     f"{bridge.stop_service})")
            if access.token is None:
                log.warning("the page asks for no token (require_token false): any process on this machine, and "
                            "any web page its browsers open, can reach its API")
            if ssl_context is None and not is_loopback(host):
                log.warning(f"the page is served on {host} without TLS: the token and the camera image cross the "
                            f"network in clear (tls_certfile, or a reverse proxy with HTTPS)")

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            watch = asyncio.create_task(stop_when_orphaned(parent, stop))
            await serve(bridge, access, host, port, stop, ready, ssl_context)
            watch.cancel()

        async def stop_when_orphaned(parent, stop) -> None:
            # The page stops with the launch that started it (ros/lifetime.py: ParentWatch).
            while not stop.is_set():
                if parent.gone():
                    log.info(f"the process that started it (pid {parent.parent}) has exited: shutting down")
                    stop.set()
                    return
                await asyncio.sleep(0.2)

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
