"""Frames: reading one image, a sequence folder's frames with its ground truth, and frame sources for the player.

Every reader of images in the package goes through `read_frame` (a clear error instead of OpenCV's silent None), and
every consumer of a ``<folder>/{00001.jpg, ..., groundtruth.txt}`` sequence through `load_sequence`.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from ..resources import shared_root
from .sequences import list_images, read_box_file, read_folder_sequence

# Sequences of ../shared/data/train tried, in order, by the tools that need "a real sequence" (bench, tests).
DEFAULT_SEQUENCES = ("vot-car1", "otb-Football1", "davis-car-roundabout")


def read_frame(path) -> np.ndarray:
    """(H, W, 3) uint8 BGR image; OSError naming the file when OpenCV cannot read it."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"cannot read image {path}")
    return img


def data_root() -> Path:
    """The project's data folder: $SIAM_DATA_DIR, else ../shared/data (resources.shared_root)."""
    return Path(os.environ["SIAM_DATA_DIR"]) if os.environ.get("SIAM_DATA_DIR") else shared_root() / "data"


def peers_root() -> Path:
    """The peer trackers' folder (../shared/peers/README.md): $SIAM_PEERS_DIR, else ../shared/peers
    (resources.shared_root)."""
    return Path(os.environ["SIAM_PEERS_DIR"]) if os.environ.get("SIAM_PEERS_DIR") else shared_root() / "peers"


def find_sequence(name: str | None = None) -> Path | None:
    """``data_root()/train/<name>`` (or the first of DEFAULT_SEQUENCES that exists), None when there is none."""
    for candidate in ([name] if name else DEFAULT_SEQUENCES):
        folder = data_root() / "train" / candidate
        if (folder / "groundtruth.txt").is_file():
            return folder
    return None


def load_sequence(folder, n: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """The first `n` frames (all when None) of a sequence folder and their (n, 4) ground-truth boxes (NaN: absent)."""
    seq = read_folder_sequence(folder)
    paths = seq.frame_paths if n is None else seq.frame_paths[:n]
    return [read_frame(p) for p in paths], seq.boxes[: len(paths)]


def read_groundtruth(path) -> np.ndarray:
    """A ground-truth file (x,y,w,h per line, or a polygon; commas, tabs or spaces) -> (N, 4), NaN where absent."""
    return read_box_file(path)


def fit_size(img: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """The image resized to (width, height) (area filter when shrinking), or itself when size is None or equal."""
    if size is None or (img.shape[1], img.shape[0]) == tuple(size):
        return img
    interp = cv2.INTER_AREA if size[0] < img.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(img, tuple(size), interpolation=interp)


# --------------------------------------------------------------------------------------------------------------
# Frame sources: frames in order from a folder, memory, a video file or a camera (the player's and `track`'s input)

class FrameSource:
    """Frames in order; `read()` -> BGR uint8 image or None at the end; `rewind()` to play again."""

    name = "frames"
    length: int | None = None  # number of frames when known
    native_rate: float | None = None  # frames per second the source itself suggests (video/camera)

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def rewind(self) -> bool:
        """Start again from the first frame; False when the source cannot (a camera)."""
        return False

    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the frames when known before playing them (None: unknown)."""
        return None

    def close(self) -> None:
        pass

    def __iter__(self):
        while (img := self.read()) is not None:
            yield img


class ArraySource(FrameSource):
    """Frames already in memory (the built-in sequence)."""

    def __init__(self, frames, name="frames"):
        self.frames = list(frames)
        if not self.frames:
            raise ValueError("no frames")
        self.name = name
        self.length = len(self.frames)
        self._next = 0

    def read(self):
        if self._next >= len(self.frames):
            return None
        self._next += 1
        return self.frames[self._next - 1]

    def rewind(self):
        self._next = 0
        return True

    def frame_size(self):
        return self.frames[0].shape[1], self.frames[0].shape[0]


class FolderSource(ArraySource):
    """A folder of images in natural file-name order (00002.jpg before 00010.jpg), read as they are played;
    unreadable images are skipped with a line on stderr."""

    def __init__(self, folder):
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"frames folder {folder} does not exist")
        paths = list_images(folder)
        if not paths:
            raise FileNotFoundError(f"no images in {folder}")
        super().__init__(paths, name=str(folder))

    def read(self):
        while (path := super().read()) is not None:
            try:
                return read_frame(path)
            except OSError as err:
                print(f"skipping: {err}", file=sys.stderr)
        return None

    def frame_size(self):
        for path in self.frames[:5]:  # the first readable image (an unreadable one is skipped when played)
            with contextlib.suppress(OSError):
                img = read_frame(path)
                return img.shape[1], img.shape[0]
        return None


class CaptureSource(FrameSource):
    """A video file or a camera through cv2.VideoCapture."""

    def __init__(self, target, is_camera: bool):
        self.target, self.is_camera = target, is_camera
        if not is_camera and not Path(target).is_file():
            raise FileNotFoundError(f"video file {target} does not exist")
        self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            raise RuntimeError(f"cannot open {'camera' if is_camera else 'video'} {target!r} with OpenCV")
        self.name = f"camera {target}" if is_camera else str(target)
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.native_rate = fps if 0.5 < fps < 1000 else None
        n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.length = n if (n > 0 and not is_camera) else None

    def read(self):
        ok, img = self.cap.read()
        if not ok or img is None:
            return None
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        return img

    def frame_size(self):
        w, h = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        return (w, h) if w > 0 and h > 0 else None

    def rewind(self):
        if self.is_camera:
            return False
        self.cap.release()
        self.cap = cv2.VideoCapture(self.target)
        return self.cap.isOpened()

    def close(self):
        self.cap.release()


def open_source(frames=None, video=None, camera=None, builtin=False, builtin_frames=None) -> FrameSource:
    """Exactly one of: a frames folder, a video file, a camera index, the built-in sequence."""
    chosen = [x is not None and x is not False for x in (frames, video, camera, builtin)]
    if sum(chosen) != 1:
        raise ValueError("choose exactly one source: --frames DIR, --video FILE, --camera INDEX or --builtin")
    if frames is not None:
        return FolderSource(frames)
    if video is not None:
        return CaptureSource(str(video), is_camera=False)
    if camera is not None:
        return CaptureSource(int(camera), is_camera=True)
    from .. import synthetic

    n = synthetic.DEFAULT_FRAMES if builtin_frames is None else int(builtin_frames)
    imgs, _ = synthetic.make_sequence(n_frames=n)
    return ArraySource(imgs, name=f"built-in sequence ({n} frames)")


def open_path(source) -> FrameSource:
    """A folder of frames or a video file, by what the path is."""
    return FolderSource(source) if Path(source).is_dir() else CaptureSource(str(source), is_camera=False)
