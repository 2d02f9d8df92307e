"""`siam-tracker play`: publish a folder of frames, a video file, a camera or the built-in sequence as
`sensor_msgs/Image` at a set rate, stamped with the node clock at publish time, like a camera driver would.

    siam-tracker play --frames ../shared/data/train/vot-bag --rate 30 --loop
    siam-tracker play --video clip.mp4 --topic /camera/image_raw --frame-id camera
    siam-tracker play --camera 0
    siam-tracker play --builtin --stamps-out stamps.csv
    ros2 run siam_tracker_ros frame_player --builtin --ros-args -p frame_id:=cam -r __node:=player

Node `frame_player` (rename with `--ros-args -r __node:=...`). Parameters (the command-line options are their
defaults; `--ros-args -p name:=value` overrides):

    frame_id  (string)  header.frame_id of every image               (--frame-id, default "camera")
    rate      (double)  frames per second; <= 0: as fast as possible (--rate, default 30; a camera: its own rate)
    loop      (bool)    start again at the end of a folder/video     (--loop)
    paused    (bool)    while true nothing is published; `ros2 param set /frame_player paused false` resumes.
                        `--hold-first` publishes the first frame and then sets it (the demo initialises the tracker
                        on that frame, then resumes the stream); while held, that frame is sent again (same
                        stamp) every 0.5 s, for subscribers that matched too late to get it.

The publisher QoS is the sensor-data profile (best effort, keep last 5) unless `--reliable`. Each published frame's
stamp and source index can be recorded (`--stamps-out FILE`, CSV `seq,frame,sec,nanosec`; a line is written and
flushed before its frame is published, so a reader that sees an image has its line).

Frames are paced against absolute deadlines (start + k / rate), so the rate does not drift; a frame that is late by
more than one period restarts the schedule (it is published late, none is skipped).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

from ..data.frames import open_source
from .fastdds import use_large_shm_segment

DEFAULT_TOPIC = "/camera/image_raw"
NODE_NAME = "frame_player"


def parse_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 640x480, got {text!r}") from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"size {text} is too small")
    return w, h


# --------------------------------------------------------------------------------------------------------------
# Command line

def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("source (choose one)")
    src.add_argument("--frames", metavar="DIR", help="folder of images, played in file-name order")
    src.add_argument("--video", metavar="FILE", help="video file (anything OpenCV reads)")
    src.add_argument("--camera", metavar="INDEX", type=int, help="camera device index (cv2.VideoCapture)")
    src.add_argument("--builtin", action="store_true", help="the built-in synthetic sequence (scikit-image photos)")
    src.add_argument("--builtin-frames", type=int, default=None, help="length of the built-in sequence (150)")
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help=f"image topic (default {DEFAULT_TOPIC})")
    parser.add_argument("--frame-id", default="camera", help="header.frame_id (parameter frame_id)")
    parser.add_argument("--rate", type=float, default=None,
                        help="frames per second (default 30; a video or camera: its own rate); <= 0: unthrottled")
    parser.add_argument("--loop", action="store_true", help="restart at the end of a folder or video")
    parser.add_argument("--reliable", action="store_true", help="reliable QoS (default: sensor-data, best effort)")
    parser.add_argument("--encoding", default="bgr8", help="image encoding (bgr8, rgb8, mono8, ...; default bgr8)")
    parser.add_argument("--size", type=parse_size, default=None, metavar="WxH", help="resize every frame, e.g. 640x480")
    parser.add_argument("--count", type=int, default=None, help="stop after publishing this many frames")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--depth-topic", metavar="TOPIC",
                        help="also publish, with every frame and its stamp, a synthetic depth image registered to it "
                             "(16UC1: a tilted plane 1.5-3 m away) on TOPIC and its camera_info next to it "
                             "(<TOPIC's namespace>/camera_info): a stand-in RGB-D camera for `latency --depth`")
    parser.add_argument("--stamps-out", metavar="FILE", help="CSV of every published frame: seq,frame,sec,nanosec")
    parser.add_argument("--wait-subscribers", type=int, default=0, metavar="N",
                        help="publish only once N subscribers are matched on the topic")
    parser.add_argument("--wait-timeout", type=float, default=60.0, help="seconds to wait for subscribers (60)")
    parser.add_argument("--paused", action="store_true", help="start paused (set parameter paused:=false to play)")
    parser.add_argument("--hold-first", action="store_true",
                        help="publish the first frame, then pause until parameter paused is set to false")
    parser.add_argument("--no-shm-profile", action="store_true",
                        help="do not give Fast DDS a larger shared-memory segment for the images (see "
                             "use_large_shm_segment)")
    parser.add_argument("--linger", type=float, default=0.5,
                        help="seconds to keep the node alive after the last frame (default 0.5)")


def add_play_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("play", help="publish frames (folder, video, camera, built-in) as sensor_msgs/Image",
                              description=__doc__.splitlines()[0])
    add_arguments(p)
    p.set_defaults(func=run_play)
    return p


def run_play(args, ros_args: list[str] | None = None) -> int:
    """Run the player until the source ends (or --count/--duration, or Ctrl-C). Returns an exit code."""
    try:
        source = open_source(args.frames, args.video, args.camera, args.builtin, args.builtin_frames)
    except (ValueError, FileNotFoundError, RuntimeError, ImportError) as err:
        print(f"siam-tracker play: {err}", file=sys.stderr)
        return 2

    profile = shm_warning = None
    if not args.no_shm_profile:
        w, h = args.size or source.frame_size() or (1920, 1080)  # unknown before the first frame: up to 1080p
        profile, shm_warning = use_large_shm_segment(w * h * 4)

    import rclpy
    import rclpy.exceptions
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from ..ros.lifetime import StopSignals, close_node

    # SIGINT/SIGTERM: stop publishing and shut down cleanly, however many come (ros/lifetime.py). run_play is the
    # body of a process (frame_player, `siam-tracker play`): at its end the process ignores them until it exits.
    stop_signal = StopSignals("frame_player").install()
    rclpy.init(args=["siam-tracker-play"] + list(ros_args or []), signal_handler_options=_no_signal_handlers())
    node = None
    code = 0
    try:
        from .player_node import FramePlayer

        node = FramePlayer(source, args)
        rate = node.get_parameter("rate").value
        if shm_warning:
            node.get_logger().warning(shm_warning)
        node.get_logger().info(
            f"publishing {source.name} on {node.pub.topic_name} at "
            f"{'max rate' if rate <= 0 else f'{rate:g} Hz'} ({'reliable' if args.reliable else 'sensor-data QoS'}"
            f"{', loop' if args.loop else ''})")
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        node.start()
        while not node.done.is_set() and not stop_signal.poll():
            executor.spin_once(timeout_sec=0.05)
        if node.error is not None:
            raise node.error
        linger_end = time.monotonic() + max(0.0, args.linger)
        while time.monotonic() < linger_end and not stop_signal.poll():
            executor.spin_once(timeout_sec=0.05)
        node.get_logger().info(f"published {node.published} frames")
    except TimeoutError as err:
        print(f"siam-tracker play: {err}", file=sys.stderr)
        code = 3
    except (ValueError, TypeError, rclpy.exceptions.ParameterException) as err:
        print(f"siam-tracker play: bad parameter: {err}", file=sys.stderr)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        stop_signal.requested = True  # from here on a signal only says that the player is already stopping
        close_node(node)
        if profile:
            with contextlib.suppress(OSError):
                os.unlink(profile)
        stop_signal.ignore()
    return code


def _no_signal_handlers():
    from rclpy.signals import SignalHandlerOptions

    return SignalHandlerOptions.NO


def main(argv: list[str] | None = None) -> int:
    """`frame_player` executable (lib/siam_tracker_ros/frame_player): player options, then optional --ros-args."""
    from rclpy.utilities import remove_ros_args

    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = []
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        ros_args = argv[i:]
        argv = remove_ros_args(["x"] + argv)[1:]
    parser = argparse.ArgumentParser(prog=os.path.basename(sys.argv[0]) or NODE_NAME,
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    if not any([args.frames, args.video, args.camera is not None, args.builtin]):
        args.builtin = True  # a bare `ros2 run siam_tracker_ros frame_player` plays the built-in sequence
    return run_play(args, ros_args)


if __name__ == "__main__":
    sys.exit(main())
