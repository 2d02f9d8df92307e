"""An init/stop request on its way from a service coroutine to the worker, answered exactly once."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .frame_buffer import Frame

# The machine-readable kinds of answer, the REASON_* constants of InitTarget.srv / StopTarget.srv (a test checks
# that they agree): the `reason` field of every answer, OK exactly when success.
OK = "ok"
INACTIVE = "inactive"
UNAVAILABLE = "unavailable"
BAD_ID = "bad_id"
BAD_BOX = "bad_box"
UNKNOWN_STAMP = "unknown_stamp"
BAD_FRAME = "bad_frame"
TOO_MANY_TARGETS = "too_many_targets"
BUSY = "busy"
TIMED_OUT = "timed_out"
SUPERSEDED = "superseded"
NOT_TRACKED = "not_tracked"
FAILED = "failed"
INIT_REASONS = (OK, INACTIVE, UNAVAILABLE, BAD_ID, BAD_BOX, UNKNOWN_STAMP, BAD_FRAME, TOO_MANY_TARGETS, BUSY,
                TIMED_OUT, SUPERSEDED, FAILED)
STOP_REASONS = (OK, INACTIVE, UNAVAILABLE, BAD_ID, NOT_TRACKED, BUSY, TIMED_OUT, FAILED)


@dataclass(frozen=True)
class Answer:
    """What a service answers: success, the machine-readable reason (one of the constants above) and the message
    for people; `caught_up_frames` for an init."""

    success: bool
    reason: str
    message: str
    caught_up_frames: int = 0

    @classmethod
    def refused(cls, reason: str, message: str) -> "Answer":
        return cls(False, reason, message)


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
    answer: Answer | None = None

    @property
    def success(self) -> bool:
        return self.answer is not None and self.answer.success

    @property
    def message(self) -> str:
        return "" if self.answer is None else self.answer.message

    def finish(self, answer: Answer) -> bool:
        """Answer the job once; False when it was answered already."""
        with self.lock:
            if self.finished:
                return False
            self.finished, self.answer = True, answer
        if self.timer is not None:
            self.timer.cancel()
        self.done.set()
        if self.notify is not None:
            self.notify(self)
        return True

    def cancel(self, reason: str, message: str) -> bool:
        """Cancel and answer a job the worker has not claimed (refused with `reason`); False when it is claimed or
        answered."""
        with self.lock:
            if self.claimed or self.finished:
                return False
            self.cancelled = True
        return self.finish(Answer.refused(reason, message))

    def claim(self) -> bool:
        """The worker commits to the job's result (install / stop); False when it was cancelled meanwhile."""
        with self.lock:
            if self.cancelled or self.finished:
                return False
            self.claimed = True
            return True
