"""The interface every inference backend implements: two calls, numpy in, numpy out.

template(z)          (N, 3, Hz, Wz) float32 exemplar crops        -> (N, C, h, w) float32 kernels
search(x, kernel)    (B, 3, Hx, Wx) float32 search crops, and one
                     kernel per crop (B, C, h, w)                   -> (B, output_channels, H, W) float32: channel 0
                                                                       the response logits; with a box head
                                                                       (model/box_head.py) then the quality logit
                                                                       and the four side distances

Crops are BGR pixel values 0-255. The tracker batches all scales of all targets into one `search` call.
"""
from __future__ import annotations

import abc
import hashlib
import os
from pathlib import Path

import numpy as np


def cache_dir(kind: str) -> Path:
    """Where a backend keeps what it builds (`onnx` graphs, TensorRT `engines`) unless configured otherwise:
    $XDG_CACHE_HOME (else ~/.cache) / siam_tracker_ros / kind."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "siam_tracker_ros" / kind


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes: the key of what is cached for a weights file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class BackendError(RuntimeError):
    """A backend cannot be created or run: missing library, missing or mismatched model file, wrong shapes."""


class Backend(abc.ABC):
    name: str = "base"
    device: str = "cpu"
    output_channels: int = 1  # of `search`: 1, or 6 for a network with the box head

    @abc.abstractmethod
    def template(self, z: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def search(self, x: np.ndarray, kernel: np.ndarray) -> np.ndarray: ...

    def describe(self) -> str:
        return f"{self.name} on {self.device}"

    @staticmethod
    def check_inputs(x: np.ndarray, kernel: np.ndarray | None = None) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise BackendError(f"expected crops of shape (N, 3, H, W), got {x.shape}")
        if kernel is not None and kernel.shape[0] != x.shape[0]:
            raise BackendError(f"{x.shape[0]} search crops but {kernel.shape[0]} kernels")
