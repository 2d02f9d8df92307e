"""PyTorch backend: CPU, or CUDA with fp16 when a GPU is there."""
from __future__ import annotations

import numpy as np
import torch

from ..model import TrackerNet
from .base import Backend, BackendError


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model: TrackerNet, device: str = "cpu", fp16: bool = True, num_threads: int = 0):
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendError("backend torch on cuda asked for, but PyTorch sees no CUDA device")
        if num_threads > 0 and device == "cpu":
            torch.set_num_threads(num_threads)
        self.device = device
        self.dtype = torch.float16 if (device == "cuda" and fp16) else torch.float32
        self.model = model.eval().to(device=device, dtype=self.dtype)
        self.output_channels = model.output_channels
        if device == "cuda":
            self.name = "torch-cuda-fp16" if self.dtype == torch.float16 else "torch-cuda"
            torch.backends.cudnn.benchmark = True

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(self.device, self.dtype, non_blocking=True)

    @torch.inference_mode()
    def template(self, z: np.ndarray) -> np.ndarray:
        self.check_inputs(z)
        return self.model.template(self._tensor(z)).float().cpu().numpy()

    @torch.inference_mode()
    def search(self, x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        self.check_inputs(x, kernel)
        return self.model.search(self._tensor(x), self._tensor(kernel)).float().cpu().numpy()
