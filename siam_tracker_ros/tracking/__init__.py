"""Tracking: crops, the SiamFC tracker with confidence and lost/re-acquire state, box geometry. numpy + OpenCV."""
from .geometry import center_error, iou
from .offline import track_sequence
from .tracker import DEFAULT_TARGET, SiamTracker, TrackResult
from .validation import InputError, prepare_frame, validate_box

__all__ = ["DEFAULT_TARGET", "InputError", "SiamTracker", "TrackResult", "prepare_frame", "track_sequence",
           "validate_box", "iou", "center_error"]
