"""ONNX Runtime backend: CPU provider here, CUDA provider where onnxruntime-gpu is installed.

Graphs come from `export.py`: one template graph per exemplar size, one search graph per (instance size, kernel size).
Given the PyTorch model, missing graphs are exported on first use into a cache folder keyed by the model's fingerprint,
so stale graphs of other weights are never picked up. Given only a folder of graphs, each graph's input shapes are
checked against what the tracker feeds it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .base import Backend, BackendError, cache_dir, file_sha256
from .graph_names import search_graph_name, template_graph_name

WEIGHTS_INDEX = "by-weights"  # <cache root>/by-weights/<sha256 of a weights file>.json -> its graphs' folder


def default_cache_root() -> Path:
    return cache_dir("onnx")


def available_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def cached_graphs(root: Path, weights_file: str | Path) -> Path | None:
    """The folder of graphs exported earlier for this weights file (by its bytes), when it is still there."""
    index = root / WEIGHTS_INDEX / (file_sha256(weights_file) + ".json")
    if not index.is_file():
        return None
    folder = root / json.loads(index.read_text())["fingerprint"]
    return folder if (folder / "manifest.json").is_file() else None


def remember_graphs(root: Path, weights_file: str | Path, onnx_dir: Path) -> None:
    """Record that `onnx_dir` holds the graphs of `weights_file`: the next start finds them without torch."""
    index = root / WEIGHTS_INDEX / (file_sha256(weights_file) + ".json")
    index.parent.mkdir(parents=True, exist_ok=True)
    tmp = index.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fingerprint": onnx_dir.name, "weights": str(weights_file)}))
    tmp.replace(index)


def execution_providers(device: str) -> list[str]:
    """ONNX Runtime's providers for `device` (cuda: CUDA first, the CPU for what CUDA does not run); a clear error
    where this onnxruntime build has no CUDA provider."""
    if device != "cuda":
        return ["CPUExecutionProvider"]
    providers = available_providers()
    if "CUDAExecutionProvider" not in providers:
        raise BackendError("onnxruntime's CUDA provider asked for, but this onnxruntime has only "
                           f"{', '.join(providers)}")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def session_options(ort, num_threads: int = 0, allow_spinning: bool = False):
    """ONNX Runtime session options: full graph optimisation, `num_threads` intra-op threads (0: the library's
    choice) and, unless `allow_spinning`, worker threads that sleep instead of busy-waiting between calls (spinning
    measured 2-3x slower per frame on 2 cores with one other CPU-bound process; README, bench)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if num_threads > 0:
        options.intra_op_num_threads = num_threads
    spin = "1" if allow_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return options


class OnnxBackend(Backend):
    name = "onnxruntime"

    def __init__(self, model=None, onnx_dir: str | Path | None = None, device: str = "cpu", num_threads: int = 0,
                 allow_spinning: bool = False, model_loader=None):
        """model: the PyTorch network (graphs exported from it as needed, into onnx_dir / its fingerprint); or None
        and onnx_dir a folder of graphs with its manifest. model_loader: with a folder, loads the network (torch)
        only if a graph the tracker asks for is not there yet."""
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise BackendError(f"backend onnxruntime asked for, but onnxruntime is not installed: {err}") from None
        self._ort = ort
        self.model = model
        self._model_loader = model_loader
        if model is not None:
            from .export import model_fingerprint, write_manifest

            root = Path(onnx_dir) if onnx_dir else default_cache_root()
            fingerprint = model_fingerprint(model)  # hashes every weight: once
            self.onnx_dir = root / fingerprint
            self.onnx_dir.mkdir(parents=True, exist_ok=True)
            write_manifest(model, self.onnx_dir, fingerprint)
            self.kernel_channels = model.kernel_channels
            self.output_channels = model.output_channels
        else:
            if not onnx_dir:
                raise BackendError("backend onnxruntime needs either the model weights or a folder of ONNX graphs")
            self.onnx_dir = Path(onnx_dir)
            manifest = self.onnx_dir / "manifest.json"
            if not manifest.is_file():
                raise BackendError(f"{manifest} is missing: export the graphs with `siam-tracker export`")
            info = json.loads(manifest.read_text())
            self.kernel_channels = int(info["kernel_channels"])
            self.output_channels = int(info.get("output_channels", 1))  # manifests before the box head: 1
        self.providers = execution_providers(device)
        if device == "cuda":
            self.name = "onnxruntime-cuda"
        self.device = device
        self.allow_spinning = allow_spinning
        self.options = session_options(ort, num_threads, allow_spinning)
        self._sessions: dict[str, object] = {}

    def _session(self, filename: str, export, expected: dict[str, tuple]):
        session = self._sessions.get(filename)
        if session is not None:
            return session
        path = self.onnx_dir / filename
        if not path.is_file():
            if self.model is None and self._model_loader is not None:
                self.model = self._model_loader()
            if self.model is None:
                raise BackendError(f"ONNX graph {path} is missing: export it with `siam-tracker export`")
            export(path)
        try:
            session = self._ort.InferenceSession(str(path), self.options, providers=self.providers)
        except Exception as err:
            raise BackendError(f"ONNX graph {path} cannot be loaded: {err}") from None
        inputs = {i.name: tuple(i.shape) for i in session.get_inputs()}
        for name, shape in expected.items():
            got = inputs.get(name)
            if got is None or len(got) != len(shape) or any(
                    isinstance(g, int) and g != s for g, s in zip(got[1:], shape[1:])):
                raise BackendError(f"ONNX graph {path} does not match: input {name!r} should be (batch, "
                                   f"{', '.join(map(str, shape[1:]))}), the file has {got}")
        self._sessions[filename] = session
        return session

    def template(self, z: np.ndarray) -> np.ndarray:
        self.check_inputs(z)
        size = z.shape[2]

        def export(path):
            from .export import export_template
            export_template(self.model, size, path.parent)

        session = self._session(template_graph_name(size), export, {"z": z.shape})
        return session.run(None, {"z": np.ascontiguousarray(z, dtype=np.float32)})[0]

    def search(self, x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        self.check_inputs(x, kernel)
        size, k = x.shape[2], kernel.shape[2]

        def export(path):
            from .export import export_search
            export_search(self.model, size, k, path.parent)

        expected = {"x": x.shape, "kernel": (x.shape[0], self.kernel_channels, k, k)}
        session = self._session(search_graph_name(size, k), export, expected)
        if kernel.shape[1] != self.kernel_channels:
            raise BackendError(f"kernel has {kernel.shape[1]} channels, the graphs in {self.onnx_dir} expect "
                               f"{self.kernel_channels}")
        return session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32),
                                  "kernel": np.ascontiguousarray(kernel, dtype=np.float32)})[0]


__all__ = ["OnnxBackend", "available_providers", "default_cache_root", "execution_providers", "session_options"]
