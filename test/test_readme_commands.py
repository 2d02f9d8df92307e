"""The README's commands in "Start tracking", "Camera input", "Lifecycle" and "Depth", run as written against a
launched node, so that a command that does not work in ROS 2 fails the suite.

Each section's commands (the fenced bash blocks' lines, and the complete `ros2 ...` commands quoted in its text) run
in the order they appear, in the section's own ROS domain: a `ros2 launch siam_tracker_ros ...` line starts the
launch (sections without one run against `ros2 launch siam_tracker_ros tracker.launch.py`, the Robot workflow's
command), a stand-in camera streams the built-in sequence on the launch's image topic (with a registered depth image and
its camera_info when the launch has depth_image) and a target is started once the node is active, as the operator would.
A command that runs until Ctrl-C (`ros2 launch`, `ros2 topic echo` without --once, `ros2 topic hz`) runs in the
background until its output shows it works; any other must end with exit code 0 and its verb's answer. The commands
NOT_RUN names are not run, each for the reason listed with it.
"""
from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass

import pytest

from launch_helpers import (Background, Camera, Launch, close_domain, half_size, launch_env, require_ros2_cli, ros2,
                            service_init, start_target, wait_until_active)
from node_helpers import Client, sequence  # noqa: F401  (sequence: a pytest fixture)
from ros_helpers import REPO_ROOT

SECTIONS = ("Start tracking", "Camera input", "Lifecycle", "Depth")
# (pattern in the command, why the test does not run it)
NOT_RUN = [
    (r"^siam-tracker ui\b", "the operator page is for a browser: test_operator_ui.py drives it in Chromium, "
                            "test_launch.py starts it with ui:=true"),
    (r"^ros2 launch realsense2_camera\b", "a RealSense camera's driver (hardware, another package): the test's "
                                          "camera publishes its topics instead"),
    (r"\.\.\.", "elided: names a command shown in full elsewhere"),
    (r"^ros2 \w+( \w+)?$", "names a ros2 verb, not a command line"),
    (r"^curl\b.*\$TOKEN", "a script's call of the operator page with the token it logged: "
                          "test_operator_page_access.py makes these calls"),
]
# What a command that ends prints when it worked, by verb.
ANSWERS = {("service", "call"): "response:", ("lifecycle", "set"): "Transitioning successful"}
# The output of a command that runs until Ctrl-C once it works.
RUNNING = {("topic", "echo"): "\n---", ("topic", "hz"): "average rate:"}


@dataclass
class Command:
    text: str  # as the README writes it
    argv: list[str]  # as the shell splits it (comments dropped)

    @property
    def verb(self) -> tuple[str, str]:
        return tuple(self.argv[1:3]) if self.argv[0] == "ros2" else ("", "")

    def runs_until_ctrl_c(self) -> bool:
        return self.verb in RUNNING and "--once" not in self.argv or self.argv[:2] == ["ros2", "launch"]


def section_text(title: str) -> str:
    """The README's text under the heading that starts with `title`, up to the next heading of any level (a `#` line
    inside a fenced block is a comment, not a heading)."""
    lines, inside, fenced = [], False, False
    for line in (REPO_ROOT / "README.md").read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#+ ", line):
            if inside:
                break
            inside = re.match(rf"#+ {re.escape(title)}", line) is not None
            continue
        if inside:
            lines.append(line)
    assert lines, f"README has no section '{title}'"
    return "\n".join(lines) + "\n"


def shell_lines(block: str) -> list[Command]:
    """The commands of a bash block: backslash continuations and quoted strings joined, comments dropped."""
    commands, current = [], ""
    for line in block.splitlines():
        current = f"{current}\n{line}" if current else line
        if current.endswith("\\"):
            current = current[:-1]
            continue
        try:
            argv = shlex.split(current, comments=True)
        except ValueError:  # a quoted string goes on on the next line
            continue
        if argv:
            commands.append(Command(" ".join(current.split()), argv))
        current = ""
    return commands


def readme_commands(title: str) -> list[Command]:
    """The section's commands in their order: the fenced bash blocks' lines and the `ros2 ...` quoted in the text."""
    text = section_text(title)
    found = []
    for m in re.finditer(r"```bash\n(.*?)```|`(ros2 [^`\n]*)`", text, re.S):
        if m.group(1) is not None:
            found += shell_lines(m.group(1))
        else:
            found.append(Command(m.group(2), shlex.split(m.group(2))))
    return found


def not_run_reason(command: Command) -> str | None:
    return next((why for pattern, why in NOT_RUN if re.search(pattern, command.text)), None)


def launch_topics(argv: list[str]) -> dict:
    """The topics a `ros2 launch siam_tracker_ros tracker.launch.py a:=b ...` line gives the node."""
    args = dict(a.split(":=", 1) for a in argv[4:] if ":=" in a)
    topics = {"image": args.get("image", "/camera/image_raw"), "managed": args.get("managed", "false")}
    if args.get("depth_image"):
        topics["depth_image"] = args["depth_image"]
        topics["camera_info"] = args.get("camera_info") or args["depth_image"].rsplit("/", 1)[0] + "/camera_info"
    return topics


class Session:
    """One section's domain: its launches and background commands, the test's client and camera."""

    def __init__(self, folder, frames):
        self.folder, self.frames = folder, frames
        self.env = launch_env(folder / "ros_log")
        self.client = Client(int(self.env["ROS_DOMAIN_ID"]))
        self.background: list[Background] = []
        self.cameras: list[Camera] = []
        self.ran: list[str] = []
        self.not_run: list[tuple[str, str]] = []

    def launch(self, argv: list[str]) -> Launch:
        launch = Launch(argv[4:], self.env, self.folder / f"launch{len(self.background)}.log")
        self.background.append(launch)
        # as a user who reads the launch's output before typing the next command: the ros2 commands (through the
        # domain's ros2 daemon) see the node
        deadline = time.monotonic() + 180
        while "/tracker_node" not in ros2(["node", "list"], self.env).stdout.split():
            assert time.monotonic() < deadline and launch.running(), f"the node never came up\n{launch.tail()}"
            time.sleep(0.5)
        topics = launch_topics(argv)
        camera = Camera(self.client, self.frames[0], topics["image"], depth_topic=topics.get("depth_image"),
                        info_topic=topics.get("camera_info"))
        self.cameras.append(camera)
        if topics["managed"] in ("true", "True", "1", "yes"):
            # up for `ros2 lifecycle`: its verbs find a node by its lifecycle services in the daemon's graph, which
            # can list the node a moment before its services (`ros2 lifecycle set` then says "Node not found")
            while "/tracker_node" not in ros2(["lifecycle", "nodes"], self.env).stdout.split():
                assert time.monotonic() < deadline and launch.running(), \
                    f"`ros2 lifecycle nodes` never listed the node\n{launch.tail()}"
                time.sleep(0.5)
        else:  # the operator starts a target on the live image once the node is up
            wait_until_active(self.client)
            start_target(self.client, camera, service_init(self.client, self.frames[1][0]))
        return launch

    def run(self, command: Command) -> None:
        reason = not_run_reason(command)
        if reason:
            self.not_run.append((command.text, reason))
            return
        argv = command.argv
        assert argv[0] == "ros2", f"a README command the test neither runs nor lists in NOT_RUN: {command.text}"
        if argv[:3] == ["ros2", "launch", "siam_tracker_ros"]:
            self.launch(argv)
        elif command.runs_until_ctrl_c():
            job = Background(argv, self.env, self.folder / f"command{len(self.background)}.log")
            self.background.append(job)
            job.wait_for_output(lambda out: RUNNING[command.verb] in out, 120, f"`{command.text}`")
        else:
            res = ros2(argv[1:], self.env, timeout=120)
            assert res.returncode == 0, f"`{command.text}` exited with {res.returncode}:\n{res.stdout}"
            assert ANSWERS.get(command.verb, "") in res.stdout and res.stdout.strip(), \
                f"`{command.text}` did not answer:\n{res.stdout}"
        self.ran.append(command.text)

    def close(self) -> None:
        for camera in self.cameras:
            camera.close()
        self.client.close()
        for job in reversed(self.background):
            job.stop()
        close_domain(self.env)


@pytest.fixture(scope="module")
def frames(sequence):  # noqa: F811
    require_ros2_cli()
    return half_size(*sequence)


@pytest.mark.parametrize("title", SECTIONS)
def test_readme_commands_work_in_ros2(title, frames, tmp_path):
    commands = readme_commands(title)
    assert commands, f"README section '{title}' has no command"
    session = Session(tmp_path, frames)
    try:
        if not any(c.argv[:3] == ["ros2", "launch", "siam_tracker_ros"] for c in commands):
            # the Robot workflow's launch, which these sections' commands are written against
            session.launch(["ros2", "launch", "siam_tracker_ros", "tracker.launch.py"])
        for command in commands:
            session.run(command)
    finally:
        session.close()
        print(f"README '{title}': ran {session.ran}; not run: {session.not_run}")
    assert session.ran, f"README section '{title}': no command ran ({session.not_run})"
