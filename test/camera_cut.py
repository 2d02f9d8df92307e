"""A camera cut played to a tracker node over DDS (test_node_nanotrack.py, test_node_camera_cut.py): a real track of
../shared/data, the camera cutting away to another real track for 2 s, then back to the first.

Frame by frame: each frame is published and its detections and state are awaited before the next one, so the node
tracks every frame (none is superseded) and every deadline is counted in frames of the 30 Hz camera; the wall-clock
timeouts only bound a wait for one frame's answer.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from node_helpers import iou, require_node_pieces

from siam_tracker_ros.data.frames import find_sequence, load_sequence

CAMERA_HZ = 30
CUT_FRAMES = 2 * CAMERA_HZ  # the camera shows the other scene for 2 s
WITHIN_1_S = CAMERA_HZ  # frames
FRAME_TIMEOUT_S = 30.0  # the longest wait for one frame's answer on a loaded machine


@dataclass
class CutScene:
    frames: list  # the host track's frames
    boxes: np.ndarray  # their ground truth, (N, 4)
    other: list  # CUT_FRAMES frames of the other track, resized to the host's size


def load_cut_scene(host: str, cut_to: str, host_frames: int) -> CutScene:
    """The first `host_frames` frames of track `host` and CUT_FRAMES of `cut_to`; skips, saying which, when either
    track is not in ../shared/data ($SIAM_DATA_DIR), or without the ROS 2 pieces a node test needs."""
    require_node_pieces()
    folders = {name: find_sequence(name) for name in (host, cut_to)}
    missing = [name for name, folder in folders.items() if folder is None]
    if missing:
        pytest.skip(f"real tracks {', '.join(missing)} not found (../shared/data or $SIAM_DATA_DIR)")
    frames, boxes = load_sequence(folders[host], host_frames)
    other, _ = load_sequence(folders[cut_to], CUT_FRAMES)
    h, w = frames[0].shape[:2]
    return CutScene(frames, boxes, [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in other])


@dataclass
class Seen:
    """What the node published for one target on one frame."""

    stamp: object
    box: tuple  # (x, y, w, h)
    lost: bool
    reacquisitions: int


def play(client, frames, target: str, ids: list[str] | None = None) -> list[Seen]:
    """Publish each frame, wait for its detections of every id of `ids` (default: `target` alone) and its state;
    what the node said of `target` on each."""
    from siam_tracker_ros.ros import messages

    out = []
    for frame in frames:
        stamp, array = client.publish_and_track(frame, ids=ids or [target], timeout=FRAME_TIMEOUT_S)
        detection = next(d for d in array.detections if d.id == target)
        state = client.state_for(stamp, target, timeout=FRAME_TIMEOUT_S)
        out.append(Seen(stamp, messages.bbox_to_box(detection.bbox), messages.is_lost(state),
                        int(state.reacquisitions)))
    return out


def lost_flags(seen: list[Seen]) -> list[bool]:
    return [s.lost for s in seen]


def back_on_target(after: list[Seen], boxes) -> int | None:
    """The first frame after the return reported TRACKED with its box on the target (IoU >= 0.5), or None."""
    return next((i for i, (s, truth) in enumerate(zip(after, boxes)) if not s.lost and iou(s.box, truth) >= 0.5),
                None)


def describe(seen: list[Seen], boxes) -> list[tuple[float, str]]:
    """Per frame (IoU with the truth, TRACKED / LOST): what an assertion shows."""
    return [(round(iou(s.box, truth), 2), "LOST" if s.lost else "TRACKED") for s, truth in zip(seen, boxes)]
