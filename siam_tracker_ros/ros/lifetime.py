"""The end of a node's process (tracker_node, the frame player): Ctrl-C / SIGTERM handled by the process itself, its
own threads stopped, the executor shut down, the node destroyed, rclpy shut down.

Why the process handles its signals rather than rclpy: rclpy's handler chains to Python's, which raises
KeyboardInterrupt in the main thread wherever it happens to be, and rclpy's shutdown restores that handler; Python's
own teardown resets a handled SIGINT to the default action (death by signal, exit code -2). A second Ctrl-C (a
terminal sends one to the whole process group, `ros2 launch` forwards its own) could then land in a `finally`, in
rclpy's shutdown or after the last line of `main`, and end the process with a traceback or -2. Here a signal only sets
a flag the main loop polls; once the shutdown has begun, more signals are noted on stderr and ignored.

The process also stops when the `ros2 launch` or `ros2 run` that started it exits (ParentWatch): killed with SIGTERM
they exit at once and leave their processes running (launch's own log says so: ros2/launch#666), and a tracker left
publishing `tracked_object` after its launch was stopped would go on steering whatever follows it.
"""
from __future__ import annotations

import os
import select
import signal
import stat
import sys

import rclpy

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ParentWatch:
    """Whether the `ros2 launch` or `ros2 run` that started this process has exited: the parent read at start was one
    of them and the process has since been re-parented. Any other parent (a shell, a supervisor, init, a user's own
    script) is not watched: a process started from a shell with nohup keeps running after the shell exits."""

    def __init__(self):
        self.parent = os.getppid()
        self.watched = self.parent > 1 and _is_ros2_launch_or_run(self.parent)
        self._gone = False

    def gone(self) -> bool:
        """Whether the parent has exited. The first time it has, stdout and stderr are silenced where they are pipes
        nobody reads any more (silence_orphaned_pipes)."""
        if not self._gone and self.watched and os.getppid() != self.parent:
            self._gone = True
            silence_orphaned_pipes()
        return self._gone


def _is_ros2_launch_or_run(pid: int) -> bool:
    """Whether process `pid`'s command line is `... ros2 launch ...` or `... ros2 run ...` (Linux /proc; False where
    it cannot be read)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0")]
    except OSError:
        return False
    return any(os.path.basename(a) == "ros2" and b in ("launch", "run") for a, b in zip(argv, argv[1:]))


class StopSignals:
    """SIGINT / SIGTERM for a node's process, and the exit of the `ros2 launch` / `ros2 run` that started it.

    Install it before `rclpy.init(..., signal_handler_options=NO)`; the main loop spins in short steps while
    `not stop_signals.poll()`. The first signal asks the process to stop; any later one only says that it is
    stopping. `ignore()` at the very end keeps a late Ctrl-C from killing the exiting interpreter."""

    def __init__(self, name: str):
        self.name = name
        self.requested = False  # a plain attribute: set from the handler, read by the main loop
        self._noted = False
        self._parent = ParentWatch()

    def install(self) -> "StopSignals":
        for sig in SIGNALS:
            signal.signal(sig, self._on_signal)
        return self

    def poll(self) -> bool:
        """Whether the process should stop: a signal came, or the `ros2 launch` / `ros2 run` that started it has
        exited."""
        if not self.requested and self._parent.gone():
            self.requested = True
            _write_stderr(f"{self.name}: the process that started it (pid {self._parent.parent}) has exited: "
                          f"shutting down\n")
        return self.requested

    def _on_signal(self, signum, frame) -> None:
        # Runs in the main thread between two bytecodes, maybe inside a print or a lock: no print (a re-entered
        # buffered stream raises), no lock, no exception.
        if self.requested and not self._noted:
            self._noted = True
            _write_stderr(f"{self.name}: already shutting down ({signal.Signals(signum).name} ignored)\n")
        self.requested = True

    def ignore(self) -> None:
        """From here to the process's exit, SIGINT and SIGTERM do nothing (Python's teardown would otherwise reset
        the handler to the default action and a late Ctrl-C would kill the process)."""
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


def silence_orphaned_pipes() -> None:
    """Point stdout and stderr at /dev/null where they are pipes that nobody reads any more (the exited launch held
    their other end): a write to them would raise BrokenPipeError in the shutdown or at the interpreter's exit. A pipe
    still read (`ros2 run ... | tee log`) and a terminal or file are left as they are."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            try:
                if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                    continue
                poller = select.poll()
                poller.register(fd, select.POLLOUT)
                if any(events & select.POLLERR for _, events in poller.poll(0)):  # no reader left (Linux)
                    os.dup2(devnull, fd)
            except OSError:
                pass
    finally:
        os.close(devnull)


def say(text: str) -> None:
    """One line on stderr that never raises (a closed or broken stderr)."""
    _write_stderr(text.rstrip("\n") + "\n")


def _write_stderr(text: str) -> None:
    try:
        os.write(sys.stderr.fileno(), text.encode())
    except (OSError, ValueError):  # stderr closed
        pass


def close_node(node, executor=None) -> None:
    """`node.shutdown()` (its threads), `executor.shutdown()`, `destroy_node()`, then rclpy's shutdown if still up.

    Each step runs even when an earlier one failed or was interrupted (a caller whose SIGINT still raises
    KeyboardInterrupt): the node is always destroyed and rclpy always shut down.
    """
    steps = []
    if node is not None:
        steps.append(("stopping the node's threads", node.shutdown))
    if executor is not None:
        steps.append(("shutting down the executor", lambda: executor.shutdown(timeout_sec=2.0)))
    if node is not None:
        steps.append(("destroying the node", node.destroy_node))
    steps.append(("shutting down rclpy", rclpy.try_shutdown))
    for what, step in steps:
        try:
            step()
        except KeyboardInterrupt:
            _write_stderr(f"interrupted while {what}: going on with the shutdown\n")
        except Exception as err:  # one step's failure must not skip the others
            _write_stderr(f"error while {what}: {type(err).__name__}: {err}\n")
