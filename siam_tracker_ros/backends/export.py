"""Export the network as two ONNX graphs: the template branch and the search branch.

Spatial shapes are static (one graph per input size); the batch dimension is left free so one search graph serves any
number of targets x scales (ONNX Runtime), and TensorRT builds an optimisation profile over it. The search graph takes
the template kernels as its second input: the template branch runs once per target, the search branch every frame.
"""
from __future__ import annotations

import functools
import hashlib
import json
import warnings
from pathlib import Path

import torch

from ..model import TrackerNet
from ..model.backbone import feature_size
from .graph_names import search_graph_name, template_graph_name

OPSET = 17


class _TemplateGraph(torch.nn.Module):
    def __init__(self, model: TrackerNet):
        super().__init__()
        self.model = model

    def forward(self, z):
        return self.model.template(z)


class _SearchGraph(torch.nn.Module):
    def __init__(self, model: TrackerNet):
        super().__init__()
        self.model = model

    def forward(self, x, kernel):
        return self.model.search(x, kernel)


def kernel_size_for(exemplar_size: int) -> int:
    return feature_size(exemplar_size)["conv5"]


@functools.lru_cache(maxsize=1)
def export_code_version() -> str:
    """Hash of the code that turns the network into ONNX graphs (this file and the model package)."""
    here = Path(__file__).resolve().parent
    files = [here / "export.py"] + sorted((here.parent / "model").glob("*.py"))
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def model_fingerprint(model: TrackerNet) -> str:
    """Hash of the weights, config and export code: ties exported graphs and engines to the exact model, and graphs
    cached by an older export (another form of the cross-correlation, say) are not reused."""
    h = hashlib.sha256(export_code_version().encode())
    h.update(json.dumps(model.config.__dict__, sort_keys=True).encode())
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _export(module: torch.nn.Module, args: tuple, path: Path, input_names: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    dynamic = {name: {0: "batch"} for name in input_names + ["output"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes about the int() casts that make shapes static
        torch.onnx.export(module.eval(), args, str(tmp), input_names=input_names, output_names=["output"],
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    # The tracer leaves the output's spatial sizes symbolic; ONNX shape inference resolves them to the static values
    # (TensorRT and the static check want every dimension but the batch fixed).
    import onnx

    graph = onnx.shape_inference.infer_shapes(onnx.load(str(tmp)))
    onnx.save(graph, str(tmp))
    tmp.replace(path)


def export_template(model: TrackerNet, exemplar_size: int, out_dir: str | Path, half: bool = False) -> Path:
    """The template graph; half: in float16 (inputs, weights, output), converting `model` in place."""
    path = Path(out_dir) / template_graph_name(exemplar_size)
    dtype = torch.float16 if half else torch.float32
    z = torch.zeros(1, 3, exemplar_size, exemplar_size, dtype=dtype)
    _export(_TemplateGraph(model.to(dtype).eval()), (z,), path, ["z"])
    return path


def export_search(model: TrackerNet, instance_size: int, kernel_size: int, out_dir: str | Path,
                  half: bool = False) -> Path:
    """The search graph; half: in float16 (inputs, weights, output), converting `model` in place."""
    path = Path(out_dir) / search_graph_name(instance_size, kernel_size)
    dtype = torch.float16 if half else torch.float32
    x = torch.zeros(3, 3, instance_size, instance_size, dtype=dtype)
    kernel = torch.zeros(3, model.kernel_channels, kernel_size, kernel_size, dtype=dtype)
    _export(_SearchGraph(model.to(dtype).eval()), (x, kernel), path, ["x", "kernel"])
    return path


def write_manifest(model: TrackerNet, out_dir: str | Path, fingerprint: str | None = None) -> Path:
    path = Path(out_dir) / "manifest.json"
    path.write_text(json.dumps({"fingerprint": fingerprint or model_fingerprint(model),
                                "model_config": dict(model.config.__dict__),
                                "kernel_channels": model.kernel_channels,
                                "output_channels": model.output_channels, "opset": OPSET}, indent=2))
    return path


def export_all(model: TrackerNet, out_dir: str | Path, pairs: list[tuple[int, int]]) -> list[Path]:
    """Export template and search graphs for each (exemplar_size, instance_size) pair."""
    paths = []
    for z_size, x_size in pairs:
        paths.append(export_template(model, z_size, out_dir))
        paths.append(export_search(model, x_size, kernel_size_for(z_size), out_dir))
    paths.append(write_manifest(model, out_dir))
    return paths
