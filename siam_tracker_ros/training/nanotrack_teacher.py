"""NanoTrack v2 as a distillation teacher (`siam-tracker train --teacher nanotrack`).

NanoTrack v2 (the ONNX pair in ../shared/peers/nanotrack_v2, Apache-2.0, never committed) learned what a target looks
like from far more data than our 65 tracks. Run on the same crop pairs as the student (127 template, 255 search,
SiamFC context, BGR 0-255: the crop convention NanoTrack's tracker uses too), its foreground probability per cell is
a soft label for every position of the search crop, distractors and negative pairs included. It only runs during
training; nothing of it goes into the weights but what the student learns.

Geometry: NanoTrack's backbone maps 255 -> 16 x 16 cells (stride 16) and 127 -> 8 x 8; cell i's point is (i - 8) x 16
search pixels from the crop's centre (OpenCV's TrackerNano grid; on 60 real training pairs with shifts of up to 48
px the peak cell sat within the quantisation of that point, median 5 px). The student's response cell j is at
(j - (n - 1) / 2) x 8 (training/loss.py cell_points); the teacher's map is sampled there bilinearly and returned as
logits, which is what training/loss.py distillation_loss takes.

The published backbone graph has a fixed 1 x 3 x 255 x 255 input; its convolutions do not depend on the size, so the
input's height and width are made free here (as OpenCV's dnn module reshapes it for the template). Its squeeze-
excitation reshapes fix the batch at 1: pairs go through one at a time (7-9 ms a pair on one CPU thread here).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

NANOTRACK_STRIDE = 16
NANOTRACK_CENTRE_CELL = 8  # the cell whose point is the search crop's centre
STUDENT_STRIDE = 8
_PROB_CLIP = 1e-4  # logits of exactly 0 or 1 would be infinite


def _free_spatial_input(model_bytes: bytes) -> bytes:
    """The backbone graph with the input's and output's height and width made symbolic (shapes re-inferred at run
    time)."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    for value, names in ((model.graph.input[0], ("H", "W")), (model.graph.output[0], ("h", "w"))):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = names
    del model.graph.value_info[:]  # the stored intermediate shapes are those of 255 x 255
    return model.SerializeToString()


def _interpolation_matrix(n_student: int, n_teacher: int) -> np.ndarray:
    """(n_student, n_teacher) weights that sample the teacher's cells at the student's cell points (linear,
    clamped at the teacher map's border)."""
    points = (np.arange(n_student) - (n_student - 1) / 2.0) * STUDENT_STRIDE
    pos = np.clip(NANOTRACK_CENTRE_CELL + points / NANOTRACK_STRIDE, 0, n_teacher - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_teacher - 1)
    frac = pos - lo
    weights = np.zeros((n_student, n_teacher))
    weights[np.arange(n_student), lo] += 1.0 - frac
    weights[np.arange(n_student), hi] += frac
    return weights


class NanoTrackTeacher(torch.nn.Module):
    """teacher(z, x) -> (B, 1, n, n) logits of NanoTrack's foreground probability on the student's response grid.
    z: (B, 3, 127, 127), x: (B, 3, 255, 255) float, BGR 0-255, on any device (the result comes back on z's)."""

    def __init__(self, folder: str | Path | None = None, threads: int = 1):
        super().__init__()
        import onnxruntime as ort

        from ..evaluation.runner import nanotrack_files

        backbone, head = nanotrack_files(folder)
        self.files = (str(backbone), str(head))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        self._backbone = ort.InferenceSession(_free_spatial_input(Path(backbone).read_bytes()), opts,
                                              providers=providers)
        self._head = ort.InferenceSession(str(head), opts, providers=providers)
        self._head_inputs = [i.name for i in self._head.get_inputs()]
        self._backbone_input = self._backbone.get_inputs()[0].name

    def probabilities(self, z: np.ndarray, x: np.ndarray) -> np.ndarray:
        """(B, 3, 127, 127), (B, 3, 255, 255) float32 BGR 0-255 -> (B, 16, 16) foreground probabilities."""
        out = []
        for zi, xi in zip(z, x):
            fz = self._backbone.run(None, {self._backbone_input: zi[None]})[0]
            fx = self._backbone.run(None, {self._backbone_input: xi[None]})[0]
            cls = self._head.run(None, {self._head_inputs[0]: fz, self._head_inputs[1]: fx})[0][0]
            e = np.exp(cls - cls.max(axis=0, keepdims=True))
            out.append(e[1] / e.sum(axis=0))  # channel 1 is the foreground
        return np.stack(out)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        zs = z.detach().float().cpu().numpy()
        xs = x.detach().float().cpu().numpy()
        prob = self.probabilities(zs, xs)
        n = (xs.shape[-1] - zs.shape[-1]) // STUDENT_STRIDE + 1  # SiamFC's response size: 17 for 127 / 255
        wy = _interpolation_matrix(n, prob.shape[1])
        wx = _interpolation_matrix(n, prob.shape[2])
        sampled = np.clip(np.einsum("yi,bij,xj->byx", wy, prob, wx), _PROB_CLIP, 1.0 - _PROB_CLIP)
        logits = np.log(sampled) - np.log1p(-sampled)
        return torch.from_numpy(logits[:, None].astype(np.float32)).to(z.device)
