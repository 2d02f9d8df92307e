"""A constant-velocity Kalman filter of one target's box in image coordinates: the motion prior.

State (cx, cy, w, h, vx, vy, vw, vh), measured (cx, cy, w, h). The noises scale with the target's size (the
parametrisation common in tracking-by-detection filters): position and size std 1/20 of the box's mean side per frame,
velocity std 1/160. While the target is lost, `predict(fade)` multiplies the velocity by `fade` first, so the
prediction guides the search for a few frames and then stops moving.
"""
from __future__ import annotations

import numpy as np

POSITION_STD = 1.0 / 20.0
VELOCITY_STD = 1.0 / 160.0
MEASUREMENT_STD = 1.0 / 20.0
LOST_VELOCITY_FADE = 0.8  # per lost frame: after 10 frames about a tenth of the velocity is left


class BoxKalman:
    def __init__(self, cx: float, cy: float, w: float, h: float):
        self.x = np.array([cx, cy, w, h, 0.0, 0.0, 0.0, 0.0])
        side = self._side()
        self.P = np.diag(np.r_[np.full(4, (2 * POSITION_STD * side) ** 2), np.full(4, (10 * VELOCITY_STD * side) ** 2)])
        self.F = np.eye(8)
        self.F[:4, 4:] = np.eye(4)
        self.H = np.eye(4, 8)

    def _side(self) -> float:
        return max(float(self.x[2] + self.x[3]) / 2.0, 1.0)

    def predict(self, fade: float = 1.0) -> np.ndarray:
        """Advance one frame; returns the predicted (cx, cy, w, h)."""
        self.x[4:] *= fade
        side = self._side()
        q = np.r_[np.full(4, (POSITION_STD * side) ** 2), np.full(4, (VELOCITY_STD * side) ** 2)]
        self.x = self.F @ self.x
        self.P = self.F @ self.P @ self.F.T + np.diag(q)
        return self.x[:4].copy()

    def update(self, cx: float, cy: float, w: float, h: float) -> None:
        r = np.diag(np.full(4, (MEASUREMENT_STD * self._side()) ** 2))
        s = self.H @ self.P @ self.H.T + r
        gain = self.P @ self.H.T @ np.linalg.inv(s)
        self.x = self.x + gain @ (np.array([cx, cy, w, h]) - self.H @ self.x)
        self.P = (np.eye(8) - gain @ self.H) @ self.P

    def position_std(self) -> float:
        """The predicted centre's standard deviation in image pixels (x and y averaged), measurement noise included."""
        r = (MEASUREMENT_STD * self._side()) ** 2
        return float(np.sqrt((self.P[0, 0] + self.P[1, 1]) / 2.0 + r))
