"""Debug heatmap: the tracker's response map, coloured, blended over the frame where it was computed.

The response map of a target covers the square `response_region = (cx, cy, side)` of the image (the search area the
tracker looked at). `render_heatmap` resizes the map to that square, colours it with an OpenCV colour map and blends it
over the frame; the part of the square outside the image is clipped. The tracked box is drawn on top (green while
tracked, red when lost) with the target id and confidence.
"""
from __future__ import annotations

import cv2
import numpy as np


def _box_int(box):
    x, y, w, h = (float(v) for v in box)
    return int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h))


def blend_response(frame: np.ndarray, response: np.ndarray, region, alpha: float = 0.5,
                   colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Blend `response` (float map in [0, 1]) over `frame` (BGR uint8, modified in place) on the square `region`."""
    cx, cy, side = (float(v) for v in region)
    if not (np.isfinite(cx) and np.isfinite(cy) and np.isfinite(side)) or side < 1 or response.size == 0:
        return frame
    height, width = frame.shape[:2]
    x0, y0 = cx - side / 2.0, cy - side / 2.0
    # Integer destination rectangle of the square, clipped to the image.
    ix0, iy0 = int(np.floor(x0)), int(np.floor(y0))
    ix1, iy1 = int(np.ceil(x0 + side)), int(np.ceil(y0 + side))
    cx0, cy0, cx1, cy1 = max(ix0, 0), max(iy0, 0), min(ix1, width), min(iy1, height)
    if cx1 <= cx0 or cy1 <= cy0:
        return frame
    # Map the response onto the clipped rectangle with one affine warp (no huge intermediate for big regions);
    # with WARP_INVERSE_MAP, destination (u, v) reads the response at m @ [u, v, 1].
    rh, rw = response.shape[:2]
    sx, sy = rw / side, rh / side
    # Pixel centres: destination pixel u sits at image x = cx0 + u + 0.5, i.e. response x = (x - x0) * sx - 0.5.
    m = np.array([[sx, 0.0, (cx0 - x0 + 0.5) * sx - 0.5], [0.0, sy, (cy0 - y0 + 0.5) * sy - 0.5]], dtype=np.float64)
    resp = np.clip(np.nan_to_num(response.astype(np.float32)), 0.0, 1.0)
    patch = cv2.warpAffine(resp, m, (cx1 - cx0, cy1 - cy0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)
    coloured = cv2.applyColorMap((patch * 255.0 + 0.5).astype(np.uint8), colormap)
    roi = frame[cy0:cy1, cx0:cx1]
    cv2.addWeighted(coloured, alpha, roi, 1.0 - alpha, 0.0, dst=roi)
    return frame


def render_heatmap(frame: np.ndarray, results, alpha: float = 0.5, draw_boxes: bool = True,
                   distances: dict | None = None) -> np.ndarray:
    """A copy of `frame` with every result's response blended in and its box drawn.

    results: iterable of objects with `target_id`, `box` (x, y, w, h), `confidence`, `lost`, `response` and
    `response_region` (the tracker's TrackResult). distances (depth input on): {target id: metres or None}, written
    beside each box ("2.43 m", or "-- m" without a depth).
    """
    out = np.ascontiguousarray(frame).copy()
    results = list(results)
    for r in results:
        response = r.response  # the tracker's TrackResult computes it on each read
        if response is not None:
            blend_response(out, response, r.response_region, alpha)
    if draw_boxes:
        for r in results:
            x0, y0, x1, y1 = _box_int(r.box)
            colour = (0, 0, 255) if r.lost else (0, 255, 0)
            cv2.rectangle(out, (x0, y0), (x1, y1), colour, 2)
            label = f"{r.target_id} {r.confidence:.2f}{' LOST' if r.lost else ''}"
            cv2.putText(out, label, (x0, max(y0 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
            if distances is not None:
                _draw_distance(out, (x0, y0, x1, y1), distances.get(r.target_id), colour)
    return out


def _draw_distance(out: np.ndarray, corners, metres, colour) -> None:
    """The distance beside the box: right of it, or left where the right side has no room."""
    x0, y0, x1, y1 = corners
    text = f"{metres:.2f} m" if metres is not None and np.isfinite(metres) else "-- m"
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    x = x1 + 4 if x1 + 4 + tw <= out.shape[1] else max(x0 - 4 - tw, 0)
    y = min(max(y0 + th + 2, th + 2), out.shape[0] - 2)
    cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)  # dark outline
    cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
