"""An init/stop request on its way from a service coroutine to the worker, answered exactly once."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .frame_buffer import Frame


@dataclass
class Job:
    """One init/stop request for the worker. `lock` orders the three ways it can end: the worker claims it (then it
    completes), its timer expires, or a newer init of the same id supersedes it (both cancel it if not claimed)."""

    kind: str  # "init" | "stop"
    target_id: str
    box: tuple | None = None
    frame: Frame | None = None
    future: object = None  # rclpy Future the service coroutine awaits, completed on the executor (notify)
    notify: object = None  # called once answered, from whichever thread answered it (the node wakes its executor)
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    timer: object = None
    claimed: bool = False  # the worker is committing its result: no longer cancellable
    cancelled: bool = False
    finished: bool = False  # answered
    success: bool = False
    message: str = ""

    def finish(self, success: bool, message: str) -> bool:
        """Answer the job once; False when it was answered already."""
        with self.lock:
            if self.finished:
                return False
            self.finished, self.success, self.message = True, success, message
        if self.timer is not None:
            self.timer.cancel()
        self.done.set()
        if self.notify is not None:
            self.notify(self)
        return True

    def cancel(self, reason: str) -> bool:
        """Cancel and answer a job the worker has not claimed; False when it is claimed or answered."""
        with self.lock:
            if self.claimed or self.finished:
                return False
            self.cancelled = True
        return self.finish(False, reason)

    def claim(self) -> bool:
        """The worker commits to the job's result (install / stop); False when it was cancelled meanwhile."""
        with self.lock:
            if self.cancelled or self.finished:
                return False
            self.claimed = True
            return True
