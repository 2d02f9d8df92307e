"""Drawing boxes and labels on frames and writing annotated videos: the demo's video and `siam-tracker track`'s.
OpenCV only, no ROS."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

STATE_COLOURS = {"tracked": (0, 165, 255), "lost": (0, 0, 255), "init": (255, 255, 255)}  # BGR
GT_COLOUR = (0, 200, 0)


def draw_box(img, box, colour, thickness=2):
    """A rectangle for an (x, y, w, h) box; nothing for a NaN box."""
    x, y, w, h = box
    if not np.all(np.isfinite([x, y, w, h])):
        return
    cv2.rectangle(img, (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h))), colour, thickness,
                  cv2.LINE_AA)


def draw_label(img, text, org, colour, scale=0.5):
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = int(org[0]), int(org[1])
    x0, y0, x1, y1 = max(x - 2, 0), max(y - h - 3, 0), min(x + w + 2, img.shape[1]), min(y + base + 1, img.shape[0])
    if x1 > x0 and y1 > y0:  # a dark band behind the text, so it reads on any background
        img[y0:y1, x0:x1] = (img[y0:y1, x0:x1] * 0.35).astype(img.dtype)
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def annotate(img: np.ndarray, row: dict) -> np.ndarray:
    """A copy of a frame with a report row drawn on it: ground truth, the answer (or the one held), frame info."""
    img = img.copy()
    if "gt" in row:
        draw_box(img, row["gt"], GT_COLOUR, 2)
    state = "init" if row["init"] else ("lost" if row.get("lost") else "tracked")
    if row["answered"]:
        colour = STATE_COLOURS[state]
        draw_box(img, row["box"], colour, 2)
        x, y = row["box"][0], row["box"][1]
        draw_label(img, f"{state} {row['score']:.2f}", (int(max(0, x)), int(max(12, y - 6))), colour)
    elif row.get("held_box") is not None:
        draw_box(img, row["held_box"], (160, 160, 160), 1)  # the previous answer, still the latest the client has
    elif row["init"] and "gt" in row:
        draw_label(img, "init", (int(max(0, row["gt"][0])), int(max(12, row["gt"][1] - 6))), STATE_COLOURS["init"])
    info = f"frame {row['frame'] + 1}"
    if row.get("latency_ms") is not None and not row["init"]:
        info += f"  latency {row['latency_ms']:.0f} ms"
    if "iou" in row:
        info += f"  IoU {row['iou']:.2f}"
    if not row["answered"] and not row["init"]:
        info += "  dropped"
    draw_label(img, info, (8, 20), (255, 255, 255), 0.55)
    draw_label(img, "green: ground truth  orange: tracked  red: lost  grey: previous answer (frame dropped)",
               (8, img.shape[0] - 10), (220, 220, 220), 0.45)
    return img


def open_video_writer(path_stem, size: tuple[int, int], rate: float):
    """(cv2.VideoWriter, path): `path_stem`.mp4 (mp4v) when OpenCV can write it, else .avi (MJPG); (None, None) when
    neither opens. A stem that already ends in .mp4 or .avi tries that container only."""
    stem = str(path_stem)
    choices = [(".mp4", "mp4v"), (".avi", "MJPG")]
    for suffix, fourcc in choices:
        if stem.endswith(suffix):
            stem, choices = stem[: -len(suffix)], [(suffix, fourcc)]
    for suffix, fourcc in choices:
        writer = cv2.VideoWriter(stem + suffix, cv2.VideoWriter_fourcc(*fourcc), float(rate), tuple(size))
        if writer.isOpened():
            return writer, stem + suffix
        writer.release()
    return None, None


def write_video(path_stem: Path, frames_iter, rows_by_frame_seq: list, rate: float) -> str | None:
    """Annotated video of the published frames (rows of report.analyse, in publish order); the path, or None."""
    rows = iter(rows_by_frame_seq)
    writer, out_path = None, None
    written = 0
    row = next(rows, None)
    for index, img in enumerate(frames_iter):
        while row is not None and row["frame"] == index:
            if writer is None:
                writer, out_path = open_video_writer(path_stem, (img.shape[1], img.shape[0]), rate)
                if writer is None:
                    return None
            writer.write(annotate(img, row))
            written += 1
            row = next(rows, None)
        if row is None:
            break
    if writer is not None:
        writer.release()
    if out_path and written and Path(out_path).is_file() and Path(out_path).stat().st_size > 0:
        return out_path
    return None
