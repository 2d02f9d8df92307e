"""A real backend with every (branch, input size, batch) it is called with written down: the warm-up tests check that
tracking after warm-up makes no call of a new size or batch (a new ONNX Runtime shape or TensorRT profile)."""
from __future__ import annotations


class RecordingBackend:
    """Wraps `inner` (any backend: template / search, output_channels, and NanoTrack's family)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, set()
        self.output_channels = inner.output_channels
        self.family = getattr(inner, "family", None)  # None: the tracker builder reads the Siam family

    def template(self, z):
        self.calls.add(("template", z.shape[2], z.shape[0]))
        return self.inner.template(z)

    def search(self, x, kernel):
        self.calls.add(("search", x.shape[2], x.shape[0]))
        return self.inner.search(x, kernel)

    def describe(self) -> str:
        return f"recording {self.inner.describe()}"
