"""The tracking engine, without ROS: frames, jobs and the per-frame step around one tracker (engine.py: a
SiamTracker or a NanoTracker), the frame buffer (frame_buffer.py) and the jobs with their answers (jobs.py).
ros/node.py is its ROS adapter."""
from . import jobs
from .engine import Limits, StepResult, TrackingEngine, missing_frame_message, no_target_message
from .frame_buffer import TIME_JUMP_NS, Frame, FrameBuffer, format_stamp
from .jobs import Answer, Job

__all__ = ["TIME_JUMP_NS", "Answer", "Frame", "FrameBuffer", "Job", "Limits", "StepResult", "TrackingEngine",
           "format_stamp", "jobs", "missing_frame_message", "no_target_message"]
