"""Build a backend from the config: an explicit choice, or `auto`, which takes the fastest one available.

auto order: TensorRT, ONNX Runtime CUDA, PyTorch CUDA (GPU present), then ONNX Runtime CPU, PyTorch CPU. On CPU ONNX
Runtime comes first because it measured faster than eager PyTorch for this network (see the README's bench table).
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from ..config import BackendConfig, ModelConfig
from ..resources import shipped_file
from .base import Backend, BackendError

log = logging.getLogger(__name__)

# The two shipped models (weights/*.json are their cards): the small network is the CPU default, the full-width one
# the GPU default; BackendConfig.model picks by hand.
WEIGHTS_NAMES = {"small": "siam_small.pt", "large": "siam_large.pt", "small_box": "siam_small_box.pt"}


def default_weights_path(model: str = "auto", cuda: bool | None = None) -> Path:
    """The shipped weights: $SIAM_TRACKER_WEIGHTS, else `model` (small | large | small_box; auto: large on a CUDA
    machine, small otherwise) from the shipped weights/ (resources.shipped_file)."""
    env = os.environ.get("SIAM_TRACKER_WEIGHTS")
    if env:
        return Path(env)
    if model == "auto":
        model = "large" if (cuda_available() if cuda is None else cuda) else "small"
    if model not in WEIGHTS_NAMES:
        raise BackendError(f"model {model!r}: expected auto, {', '.join(WEIGHTS_NAMES)}")
    return shipped_file(f"weights/{WEIGHTS_NAMES[model]}")


def cuda_available() -> bool:
    """Whether PyTorch sees a CUDA device. Without an NVIDIA driver on the machine the answer is no without
    importing torch (the ONNX Runtime path stays torch-free on a CPU machine)."""
    if "torch" not in sys.modules and not (Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()):
        return False
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def create_backend(config: BackendConfig, weights: str | Path | None = None,
                   expected_model: ModelConfig | None = None, model=None, max_batch: int | None = None) -> Backend:
    """The backend named by `config` (or the best for `auto`), loaded with `weights` (default: shipped weights).

    max_batch: the largest search batch the tracker will send (tracking.search_plan.SearchPlan.max_batch); backends
    with a fixed batch range (TensorRT) are built for it. None: the default tracking configuration's limit for
    config.max_targets.
    """
    want_cuda = config.device == "cuda" or (config.device == "auto" and cuda_available())
    path = None
    if model is None:
        path = Path(weights or default_weights_path(config.model, want_cuda))
        if config.name in ("auto", "onnxruntime") and not want_cuda and expected_model is None:
            lean = _cached_onnx_backend(config, path)
            if lean is not None:
                return lean
        from ..model import load_weights

        model = load_weights(path, expected_model)
    if config.name != "auto":
        return _remember(_make(config.name, config, model, "cuda" if want_cuda else "cpu", max_batch), config, path)
    candidates = []
    if want_cuda:
        candidates += [("tensorrt", "cuda"), ("onnxruntime", "cuda"), ("torch", "cuda")]
    if config.device != "cuda":
        candidates += [("onnxruntime", "cpu"), ("torch", "cpu")]
    errors = []
    for name, device in candidates:
        try:
            backend = _make(name, config, model, device, max_batch)
        except BackendError as err:
            errors.append(f"{name}/{device}: {err}")
            continue
        log.info("backend auto: picked %s%s", backend.describe(),
                 f" (unavailable: {'; '.join(errors)})" if errors else "")
        return _remember(backend, config, path)
    raise BackendError("no backend is available: " + "; ".join(errors))


def _onnx_root(config: BackendConfig) -> Path:
    from .onnx_backend import default_cache_root

    return Path(config.onnx_dir) if config.onnx_dir else default_cache_root()


def _cached_onnx_backend(config: BackendConfig, path: Path) -> Backend | None:
    """The lean ONNX Runtime path: the graphs exported earlier for this weights file (onnx_backend.cached_graphs),
    opened without importing torch; the network is loaded only if a graph is missing. None when there are none (or
    for a pretrained .npz, which is converted on load)."""
    if not path.is_file() or path.suffix == ".npz":
        return None
    try:
        from .onnx_backend import OnnxBackend, cached_graphs
    except ImportError:
        return None
    folder = cached_graphs(_onnx_root(config), path)
    if folder is None:
        return None

    def load():
        from ..model import load_weights
        return load_weights(path)

    try:
        return OnnxBackend(None, onnx_dir=folder, device="cpu", num_threads=config.num_threads,
                           allow_spinning=config.onnx_allow_spinning, model_loader=load)
    except BackendError as err:
        log.info("cached ONNX graphs of %s not usable (%s): loading the weights", path, err)
        return None


def _remember(backend: Backend, config: BackendConfig, path: Path | None) -> Backend:
    """After an ONNX Runtime backend was made from a weights file: index its graphs' folder by the file's bytes."""
    if path is not None and path.is_file() and path.suffix != ".npz" and getattr(backend, "onnx_dir", None) \
            and getattr(backend, "model", None) is not None and backend.name == "onnxruntime":
        from .onnx_backend import remember_graphs

        remember_graphs(_onnx_root(config), path, backend.onnx_dir)
    return backend


def _make(name: str, config: BackendConfig, model, device: str, max_batch: int | None = None) -> Backend:
    if name == "torch":
        from .torch_backend import TorchBackend
        return TorchBackend(model, device=device, fp16=config.fp16, num_threads=config.num_threads)
    if name == "onnxruntime":
        from .onnx_backend import OnnxBackend
        return OnnxBackend(model, onnx_dir=config.onnx_dir or None, device=device, num_threads=config.num_threads,
                           allow_spinning=config.onnx_allow_spinning)
    if name == "tensorrt":
        if device != "cuda":
            raise BackendError("TensorRT needs a CUDA GPU")
        try:
            from .tensorrt_backend import TensorRTBackend
        except ImportError as err:
            raise BackendError(f"TensorRT backend unavailable: {err}") from None
        return TensorRTBackend(model, config, max_batch=max_batch)
    raise BackendError(f"unknown backend {name!r}")
