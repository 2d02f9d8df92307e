"""Helpers for tests that start real ROS 2 processes (rclpy over DDS, Fast DDS).

Rules every ROS test follows:
- DDS traffic stays on this machine: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST in every child process.
- Each test gets its own ROS_DOMAIN_ID (``claim_domain_id``), held by a file lock so that parallel pytest
  runs (or parallel workers) on the same machine never share a domain.
- ROS processes run as subprocesses with a working directory OUTSIDE the source tree: from the repository
  root, ``import siam_tracker_ros`` would find the source package, which lacks the generated ``srv``
  sub-package that only the colcon install has.

Typical use::

    from ros_helpers import require_rclpy, ros_env, start_python, run_python

    def test_something():
        require_rclpy()
        env = ros_env()                      # fresh domain id, LOCALHOST discovery
        server = start_python(SERVER_CODE, env)
        try:
            out = run_python(CLIENT_CODE, env, timeout=60)
        finally:
            stop(server)
"""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

# The domain-id locks and the child environment are the package's (the demo uses them too, so a demo and the tests
# never share a domain).
from siam_tracker_ros.runs.launcher import (  # noqa: E402,F401
    claim_free_domain_id as claim_domain_id, child_environment, release_domain_id)

REPO_ROOT = Path(__file__).resolve().parents[1]

# A non-interactive shell starts background jobs (`make test &`) with SIGINT ignored, and children inherit that, so
# the Ctrl-C the tests stop their ROS children with would do nothing. A handled signal is reset to its default by
# exec, so handling it here gives every child the usual Ctrl-C.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def install_prefix() -> Path:
    """Install prefix of siam_tracker_ros: $SIAM_TRACKER_ROS_INSTALL (set by .ros/env.sh), else the ament index
    (a sourced colcon workspace on a robot), else the bootstrap's .ros/install."""
    env = os.environ.get("SIAM_TRACKER_ROS_INSTALL")
    if env:
        return Path(env)
    try:
        from ament_index_python.packages import get_package_prefix

        return Path(get_package_prefix("siam_tracker_ros"))
    except Exception:  # ament_index_python missing or the package not on AMENT_PREFIX_PATH
        return REPO_ROOT / ".ros" / "install"


@functools.lru_cache(maxsize=None)
def _rclpy_import_error() -> str | None:
    """Import rclpy in a child process (keeps the test process free of an rclpy context)."""
    probe = subprocess.run(
        [sys.executable, "-c", "import rclpy, rclpy.node"],
        cwd=neutral_cwd(), env=os.environ.copy(), capture_output=True, text=True, timeout=60,
    )
    if probe.returncode == 0:
        return None
    lines = (probe.stderr or probe.stdout).strip().splitlines()
    return lines[-1] if lines else "exit code %d" % probe.returncode


def rclpy_available() -> bool:
    return _rclpy_import_error() is None


def require_rclpy() -> None:
    """Skip the calling test, with the reason, when rclpy cannot be imported in this environment."""
    err = _rclpy_import_error()
    if err is not None:
        pytest.skip(
            "rclpy is not importable (%s): run the tests through `make test`, or `source .ros/env.sh` "
            "after tools/ros_env/bootstrap.sh, or source a ROS 2 install" % err
        )


def ros_env(domain_id: int | None = None, **extra: str) -> dict:
    """Environment for a ROS child process: this one's, plus its own domain and LOCALHOST discovery."""
    env = child_environment(claim_domain_id() if domain_id is None else domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.update(extra)
    return env


@pytest.fixture
def ros_domain_env():
    """pytest fixture: ros_env() for one test, its domain id released afterwards."""
    require_rclpy()
    env = ros_env()
    yield env
    release_domain_id(int(env["ROS_DOMAIN_ID"]))


@functools.lru_cache(maxsize=None)
def neutral_cwd() -> str:
    """A directory outside the source tree to run ROS children in (see the module docstring)."""
    return tempfile.mkdtemp(prefix="siam_tracker_ros_test_")


def start_python(code: str, env: dict, args=(), **popen_kw) -> subprocess.Popen:
    """Start `python -c code args...` (this interpreter) as a ROS child process; stdout/stderr are pipes (text)
    unless given."""
    popen_kw.setdefault("cwd", neutral_cwd())
    popen_kw.setdefault("stdout", subprocess.PIPE)
    popen_kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, text=True, **popen_kw)


def run_python(code: str, env: dict, timeout: float = 60.0, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python -c code` to completion; with check, a non-zero exit fails the test with its output."""
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=neutral_cwd(), capture_output=True, text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        pytest.fail("child exited with %d\n--- stdout\n%s\n--- stderr\n%s"
                    % (proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))
    return proc


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> tuple[str, str]:
    """Stop a child started by start_python (SIGINT, then SIGKILL); returns its (stdout, stderr)."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            return proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.communicate()


def sigint_process_group(proc: subprocess.Popen, delays, shut_down=lambda: False) -> None:
    """Ctrl-C in a terminal (the child started with start_new_session=True, alone in its process group): SIGINT to
    the group, then again after each of `delays` (seconds after the one before; "shut down": as soon as
    `shut_down()` is true, i.e. the process has printed that it has shut down) while the process runs."""
    os.killpg(proc.pid, signal.SIGINT)
    for delay in delays:
        if delay == "shut down":
            deadline = time.monotonic() + 30
            while not shut_down() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
        elif proc.poll() is None:
            try:
                proc.wait(timeout=delay)  # the delay is the test's point; an early exit ends it
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            return
