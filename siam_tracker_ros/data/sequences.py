"""Readers for tracking data sets: one common `Sequence` type for every layout (the one place ground truth is read).

Layouts (each reader takes the data set's root folder):

  folder   the layout of ../shared/data: ``<root>/<seq>/{00001.jpg, ..., groundtruth.txt}``, one ``x,y,w,h`` line per
           frame (0-based top-left) or ``nan,nan,nan,nan`` where the target is absent. The packed training data of
           tools/pack_training_data.py is this layout too. A root that itself holds groundtruth.txt is one sequence.
  got10k   ``<root>/<seq>/{00000001.jpg, ..., groundtruth.txt, absence.label}`` (GOT-10k train/val; absence.label
           holds 1 where the target is absent).
  lasot    ``<root>/<class>/<class>-N/{img/*.jpg, groundtruth.txt, full_occlusion.txt, out_of_view.txt}``.
  otb      ``<root>/<Seq>/{img/*.jpg, groundtruth_rect.txt}`` (comma, tab or space separated, 1-based coordinates;
           ``groundtruth_rect.1.txt``, ``.2.txt`` are separate targets of one video).
  vot      ``<root>/<seq>/{color/*.jpg or *.jpg, groundtruth.txt}`` with 4 values (x,y,w,h) or 8 (a rotated
           polygon, made axis-aligned by its extent) per line.
  vid      ILSVRC2015-VID: ``<root>/Data/VID/<split>/.../*.JPEG`` with ``<root>/Annotations/VID/<split>/.../*.xml``;
           every ``trackid`` of a snippet is its own sequence.

Boxes are always float ``(N, 4)`` arrays of 0-based ``x, y, w, h`` with a NaN row where the target is absent, the
line is unreadable or the box is degenerate (non-positive size): such frames are skipped by the samplers and the
metrics, never crashed on.
"""
from __future__ import annotations

import logging
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
LAYOUTS = ("folder", "got10k", "lasot", "otb", "vot", "vid")


@dataclass
class Sequence:
    """One target track: frame image paths in order and one box per frame (NaN row = absent)."""

    name: str
    frame_paths: list[str]
    boxes: np.ndarray  # (N, 4) float64 x, y, w, h, 0-based, NaN rows where absent
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        if len(self.boxes) != len(self.frame_paths):
            n = min(len(self.boxes), len(self.frame_paths))
            log.warning("sequence %s: %d frames but %d boxes; using the first %d", self.name,
                        len(self.frame_paths), len(self.boxes), n)
            self.frame_paths = list(self.frame_paths[:n])
            self.boxes = self.boxes[:n]
        self.boxes = sanitize_boxes(self.boxes)

    def __len__(self) -> int:
        return len(self.frame_paths)

    @property
    def valid(self) -> np.ndarray:
        """Boolean mask of the frames with a usable box."""
        return np.isfinite(self.boxes).all(axis=1)

    @property
    def valid_indices(self) -> np.ndarray:
        return np.flatnonzero(self.valid)


def sanitize_boxes(boxes: np.ndarray, min_size: float = 1.0) -> np.ndarray:
    """NaN out rows that are non-finite or smaller than `min_size` pixels on a side."""
    boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    bad = ~np.isfinite(boxes).all(axis=1)
    with np.errstate(invalid="ignore"):
        bad |= (boxes[:, 2] < min_size) | (boxes[:, 3] < min_size)
    boxes[bad] = np.nan
    return boxes


# ----------------------------------------------------------------------------------------------------------- parsing
_SPLIT = re.compile(r"[,\s;]+")


def parse_box_lines(text: str, one_based: bool = False) -> np.ndarray:
    """Lines of 4 (x,y,w,h) or 8 (polygon x1,y1,...,x4,y4) numbers -> (N, 4) boxes; unreadable lines become NaN.

    Separators may be commas, tabs or spaces. A polygon becomes the axis-aligned box of its extent. Empty lines
    at the end are dropped; empty lines inside count as absent frames.
    """
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    out = np.full((len(lines), 4), np.nan)
    for i, line in enumerate(lines):
        parts = [p for p in _SPLIT.split(line.strip()) if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            continue  # e.g. a VOT mask line "m..." or a header
        if len(values) == 4:
            out[i] = values
        elif len(values) >= 6 and len(values) % 2 == 0:
            xs, ys = np.array(values[0::2]), np.array(values[1::2])
            out[i] = (xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min())
    if one_based:
        out[:, :2] -= 1.0
    return out


def format_box_lines(boxes: np.ndarray) -> str:
    """groundtruth.txt text, the inverse of parse_box_lines: one ``x,y,w,h`` line per box, ``nan,nan,nan,nan`` where
    the target is absent (any non-finite value)."""
    lines = []
    for b in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        lines.append("nan,nan,nan,nan" if not np.all(np.isfinite(b)) else ",".join(f"{v:g}" for v in b))
    return "\n".join(lines) + "\n"


def read_box_file(path: str | Path, one_based: bool = False) -> np.ndarray:
    return parse_box_lines(Path(path).read_text(errors="replace"), one_based=one_based)


def read_flags(path: str | Path) -> np.ndarray | None:
    """A file of 0/1 flags (one per line or comma-separated on one line) -> bool array, None if missing."""
    path = Path(path)
    if not path.is_file():
        return None
    values = [p for p in _SPLIT.split(path.read_text()) if p]
    try:
        return np.array([int(float(v)) != 0 for v in values], dtype=bool)
    except ValueError:
        log.warning("unreadable flag file %s: ignored", path)
        return None


def list_images(folder: str | Path) -> list[str]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS)]
    return [str(folder / n) for n in sorted(names, key=_natural_key)]


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _apply_absent(boxes: np.ndarray, *flag_arrays: np.ndarray | None) -> np.ndarray:
    boxes = boxes.copy()
    for flags in flag_arrays:
        if flags is None:
            continue
        n = min(len(flags), len(boxes))
        boxes[:n][flags[:n]] = np.nan
    return boxes


def _subdirs(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: _natural_key(p.name))


# ----------------------------------------------------------------------------------------------------------- readers
def read_folder_sequence(folder: str | Path, name: str | None = None) -> Sequence:
    folder = Path(folder)
    return Sequence(name or folder.name, list_images(folder), read_box_file(folder / "groundtruth.txt"))


def read_folder(root: str | Path) -> list[Sequence]:
    """The ../shared/data layout (also GOT-10k-like folders without absence.label)."""
    root = Path(root)
    if (root / "groundtruth.txt").is_file():
        return [read_folder_sequence(root)]
    return [read_folder_sequence(d) for d in _subdirs(root) if (d / "groundtruth.txt").is_file()]


def read_got10k(root: str | Path) -> list[Sequence]:
    root = Path(root)
    dirs = [root] if (root / "groundtruth.txt").is_file() else _subdirs(root)
    seqs = []
    for d in dirs:
        if not (d / "groundtruth.txt").is_file():
            continue
        boxes = _apply_absent(read_box_file(d / "groundtruth.txt"), read_flags(d / "absence.label"))
        seqs.append(Sequence(d.name, list_images(d), boxes))
    return seqs


def read_lasot(root: str | Path) -> list[Sequence]:
    root = Path(root)
    seqs = []
    candidates = []
    for d in _subdirs(root):
        if (d / "groundtruth.txt").is_file():
            candidates.append(d)  # root is one class folder
        else:
            candidates.extend(s for s in _subdirs(d) if (s / "groundtruth.txt").is_file())
    for d in candidates:
        boxes = _apply_absent(read_box_file(d / "groundtruth.txt"), read_flags(d / "full_occlusion.txt"),
                              read_flags(d / "out_of_view.txt"))
        seqs.append(Sequence(d.name, list_images(d / "img"), boxes))
    return seqs


def read_otb(root: str | Path) -> list[Sequence]:
    root = Path(root)
    seqs = []
    for d in _subdirs(root):
        frames = list_images(d / "img")
        gts = sorted(d.glob("groundtruth_rect*.txt"), key=lambda p: _natural_key(p.name))
        for gt in gts:
            suffix = gt.name[len("groundtruth_rect"):-len(".txt")].strip(".")
            name = d.name if not suffix else f"{d.name}-{suffix}"
            seqs.append(Sequence(name, frames, read_box_file(gt, one_based=True)))
    return seqs


def read_vot(root: str | Path) -> list[Sequence]:
    root = Path(root)
    seqs = []
    for d in _subdirs(root):
        if not (d / "groundtruth.txt").is_file():
            continue
        frames = list_images(d / "color") or list_images(d)
        seqs.append(Sequence(d.name, frames, read_box_file(d / "groundtruth.txt")))
    return seqs


def read_vid(root: str | Path, split: str = "train") -> list[Sequence]:
    """ILSVRC2015-VID: one sequence per (snippet, trackid); frames without that object are NaN."""
    root = Path(root)
    ann_root = root / "Annotations" / "VID" / split
    data_root = root / "Data" / "VID" / split
    if not ann_root.is_dir():
        raise FileNotFoundError(f"{ann_root} does not exist (expected an ILSVRC2015 root holding Annotations/VID)")
    seqs = []
    for dirpath, _dirnames, filenames in sorted(os.walk(ann_root)):
        xmls = sorted((f for f in filenames if f.endswith(".xml")), key=_natural_key)
        if not xmls:
            continue
        rel = Path(dirpath).relative_to(ann_root)
        frames, tracks = [], {}
        for i, fname in enumerate(xmls):
            stem = fname[:-4]
            frames.append(str(data_root / rel / (stem + ".JPEG")))
            try:
                tree = ET.parse(os.path.join(dirpath, fname)).getroot()
            except ET.ParseError:
                log.warning("unreadable annotation %s: frame counted as empty", os.path.join(dirpath, fname))
                continue
            for obj in tree.iter("object"):
                try:
                    tid = int(obj.findtext("trackid"))
                    bb = obj.find("bndbox")
                    x0, x1 = float(bb.findtext("xmin")), float(bb.findtext("xmax"))
                    y0, y1 = float(bb.findtext("ymin")), float(bb.findtext("ymax"))
                except (TypeError, ValueError, AttributeError):
                    continue
                tracks.setdefault(tid, {})[i] = (x0, y0, x1 - x0 + 1, y1 - y0 + 1)
        for tid, per_frame in sorted(tracks.items()):
            boxes = np.full((len(frames), 4), np.nan)
            for i, box in per_frame.items():
                boxes[i] = box
            seqs.append(Sequence(f"{rel.as_posix().replace('/', '_')}-{tid}", frames, boxes))
    return seqs


READERS: dict[str, Callable[[Path], list[Sequence]]] = {
    "folder": read_folder,
    "got10k": read_got10k,
    "lasot": read_lasot,
    "otb": read_otb,
    "vot": read_vot,
    "vid": read_vid,
}


def detect_layout(root: str | Path) -> str:
    """Guess a root folder's layout from its files."""
    root = Path(root)
    if (root / "Annotations" / "VID").is_dir():
        return "vid"
    if (root / "groundtruth.txt").is_file():
        return "got10k" if (root / "absence.label").is_file() else "folder"
    for d in _subdirs(root)[:20]:
        if list(d.glob("groundtruth_rect*.txt")):
            return "otb"
        if (d / "groundtruth.txt").is_file():
            if (d / "absence.label").is_file():
                return "got10k"
            if (d / "color").is_dir():
                return "vot"
            return "folder"
        for s in _subdirs(d)[:3]:
            if (s / "img").is_dir() and (s / "groundtruth.txt").is_file():
                return "lasot"
    raise ValueError(f"cannot tell the data layout of {root}; name it as LAYOUT:PATH with LAYOUT one of "
                     f"{', '.join(LAYOUTS)}")


def parse_source(spec: str) -> tuple[str, str]:
    """'got10k:/data/GOT-10k/train' -> ('got10k', path); a bare path -> ('auto', path)."""
    head, sep, tail = spec.partition(":")
    if sep and head in LAYOUTS + ("auto",):
        return head, tail
    return "auto", spec


def load_sequences(spec: str | Path, layout: str = "auto", base: str | Path | None = None) -> list[Sequence]:
    """Read every sequence of one data source. `spec` is a path or 'LAYOUT:PATH'; relative paths are resolved
    against `base` (when given and the path does not exist relative to the working directory)."""
    if layout == "auto":
        layout, path = parse_source(str(spec))
    else:
        path = str(spec)
    p = Path(path).expanduser()
    if not p.is_absolute() and not p.exists() and base is not None:
        p = Path(base) / p
    if not p.is_dir():
        raise FileNotFoundError(f"data folder {p} does not exist")
    if layout == "auto":
        layout = detect_layout(p)
    if layout not in READERS:
        raise ValueError(f"unknown data layout {layout!r}; known: {', '.join(LAYOUTS)}")
    seqs = READERS[layout](p)
    for s in seqs:
        s.meta.setdefault("layout", layout)
        s.meta.setdefault("source", str(p))
    return seqs


def load_many(specs: Iterable[str], base: str | Path | None = None, min_valid: int = 2) -> list[Sequence]:
    """All sequences of several sources, dropping those with fewer than `min_valid` usable frames."""
    out = []
    for spec in specs:
        for s in load_sequences(spec, base=base):
            if int(s.valid.sum()) >= min_valid and len(s.frame_paths) > 0:
                out.append(s)
            else:
                log.info("sequence %s skipped: fewer than %d usable frames", s.name, min_valid)
    return out


def split_sequences(seqs: list[Sequence], held_out: Iterable[str]) -> tuple[list[Sequence], list[Sequence]]:
    """(train, val): sequences whose name is in `held_out` go to val, never to train."""
    held = set(held_out)
    train = [s for s in seqs if s.name not in held]
    val = [s for s in seqs if s.name in held]
    return train, val
