"""Inference backends behind one interface (base.Backend): PyTorch, ONNX Runtime, TensorRT."""
from .base import Backend, BackendError
from .select import create_backend, default_weights_path

__all__ = ["Backend", "BackendError", "create_backend", "default_weights_path"]
