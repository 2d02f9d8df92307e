"""NanoTrack v2 / v3 in PyTorch (model/nanotrack.py) behind the NanoTrack backend contract (backends/nanotrack.py):
CPU, or CUDA with FP16 where a GPU is there. The tensors come from the public checkpoint (a folder's .pth, or a file
written by `siam-tracker convert-nanotrack`)."""
from __future__ import annotations

import numpy as np
import torch

from .base import Backend, BackendError
from .nanotrack import FAMILIES, OUTPUT_CHANNELS


class NanoTrackTorchBackend(Backend):
    name = "torch"
    output_channels = OUTPUT_CHANNELS

    def __init__(self, state: dict, family: str = "nanotrack_v2", device: str = "cpu", fp16: bool = True,
                 num_threads: int = 0):
        from ..model.nanotrack import MODULES, nanotrack_from_state

        if family not in MODULES:
            raise BackendError(f"{family} has no PyTorch module here ({', '.join(MODULES)})")
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendError("backend torch on cuda asked for, but PyTorch sees no CUDA device")
        if num_threads > 0 and device == "cpu":
            torch.set_num_threads(num_threads)
        try:
            model = nanotrack_from_state(family, state)
        except RuntimeError as err:
            raise BackendError(f"the checkpoint's tensors do not fit {family}: {err}") from None
        self.family = FAMILIES[family]
        self.kernel_channels = self.family.channels
        self.device = device
        self.dtype = torch.float16 if (device == "cuda" and fp16) else torch.float32
        self.model = model.to(device=device, dtype=self.dtype)
        if device == "cuda":
            self.name = "torch-cuda-fp16" if self.dtype == torch.float16 else "torch-cuda"

    def describe(self) -> str:
        return f"{self.family.name} {self.name} on {self.device}"

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.device, self.dtype)

    @torch.inference_mode()
    def features(self, x: np.ndarray) -> np.ndarray:
        self.check_inputs(x)
        return self.model.features(self._tensor(x)).float().cpu().numpy()

    def template(self, z: np.ndarray) -> np.ndarray:
        return self.features(z)

    @torch.inference_mode()
    def head(self, kernel: np.ndarray, xf: np.ndarray) -> np.ndarray:
        return self.model.head(self._tensor(kernel), self._tensor(xf)).float().cpu().numpy()

    @torch.inference_mode()
    def search(self, x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        self.check_inputs(x, kernel)
        xf = self.model.features(self._tensor(x))
        return self.model.head(self._tensor(kernel), xf).float().cpu().numpy()
