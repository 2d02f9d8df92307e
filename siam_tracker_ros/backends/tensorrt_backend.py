"""TensorRT backend: engines built from the two ONNX graphs, cached per model, precision, shapes, TensorRT and GPU.

Cross-correlation is exported as unfold + batched matrix product (model/siamese.py), so the search engine needs no
convolution with runtime weights (which TensorRT only supports from 8.5 on): any TensorRT 8.6+ builds it, the batch
stays dynamic, and the GEMM runs on tensor cores in FP16.

Engines are tied to the TensorRT version and the GPU they were built on. Each cached engine has a JSON sidecar with its
cache key; an engine whose key differs, or that TensorRT refuses to deserialize (corrupt, built by another version or
for another GPU: "Version tag does not match"), is rebuilt with a log line that says why and how long it took.
Device buffers are allocated once, at the profile's largest batch, and reused every frame.

Only `tensorrt` and `torch` (for CUDA memory and streams) are imported, lazily, when the backend is created.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from .base import Backend, BackendError
from .export import export_search, export_template, model_fingerprint, search_graph_name, template_graph_name

log = logging.getLogger(__name__)

# ONNX operators our exported graphs use, all supported by TensorRT's ONNX parser (8.6 and newer).
TENSORRT_OPS = {
    "Conv", "BatchNormalization", "Relu", "MaxPool", "Concat", "GlobalAveragePool", "ReduceMean", "ReduceSum", "Sigmoid",
    "Tanh", "Mul", "Add", "Sub", "Div", "MatMul", "Reshape", "Slice", "Gather", "Unsqueeze", "Squeeze", "Shape",
    "Constant", "Identity", "Transpose", "Flatten", "Cast", "ConstantOfShape", "Expand", "Range", "Equal", "Where",
    "Pad", "Gemm", "Floor", "Ceil", "Less", "Greater", "Not", "And", "Or", "Neg", "Abs", "Min", "Max", "Clip",
}


def default_engine_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "siam_tracker_ros" / "engines"


def engine_cache_key(fingerprint: str, graph: str, precision: str, max_batch: int, trt_version: str,
                     gpu_name: str) -> dict:
    """Everything an engine depends on. Two engines are interchangeable only if their keys are equal."""
    return {"model": fingerprint, "graph": graph, "precision": precision, "max_batch": int(max_batch),
            "tensorrt": trt_version, "gpu": gpu_name}


def engine_file_name(key: dict) -> str:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return f"{Path(key['graph']).stem}_{key['precision']}_{digest}.engine"


def rebuild_reason(engine_path: Path, key: dict) -> str | None:
    """Why the cached engine at `engine_path` cannot be used for `key`, or None when it can."""
    sidecar = engine_path.with_suffix(".json")
    if not engine_path.is_file():
        return "no cached engine"
    if engine_path.stat().st_size == 0:
        return "cached engine is empty"
    if not sidecar.is_file():
        return "cached engine has no key file"
    try:
        stored = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return "cached engine's key file is unreadable"
    diffs = [f"{k}: {stored.get(k)!r} -> {v!r}" for k, v in key.items() if stored.get(k) != v]
    return "key changed (" + ", ".join(diffs) + ")" if diffs else None


def check_onnx_for_tensorrt(path: str | Path, dynamic_axes: int = 1) -> list[str]:
    """Static check of an exported graph: operators TensorRT parses, inputs static except the batch dimension.

    Returns a list of problems (empty when the graph is fine).
    """
    import onnx

    model = onnx.load(str(path))
    problems = []
    for node in model.graph.node:
        if node.op_type not in TENSORRT_OPS:
            problems.append(f"operator {node.op_type} ({node.name}) is not in the TensorRT-supported set")
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for i, d in enumerate(dims):
            static = d.HasField("dim_value")
            if i < dynamic_axes:
                continue
            if not static:
                problems.append(f"{value.name} dimension {i} is not static")
    return problems


class TensorRTBackend(Backend):
    name = "tensorrt"
    device = "cuda"

    def __init__(self, model, config, max_batch: int | None = None):
        try:
            import tensorrt as trt
        except ImportError as err:
            raise BackendError(f"TensorRT is not installed: {err}") from None
        import torch

        if not torch.cuda.is_available():
            raise BackendError("TensorRT needs a CUDA GPU, and PyTorch sees none")
        self.trt, self.torch = trt, torch
        self.model = model
        self.precision = "fp16" if config.fp16 else "fp32"
        self.name = f"tensorrt-{self.precision}"
        self.max_batch = max_batch or 3 * config.max_targets + 1
        self.engine_dir = Path(config.engine_cache_dir) if config.engine_cache_dir else default_engine_dir()
        self.engine_dir.mkdir(parents=True, exist_ok=True)
        self.fingerprint = model_fingerprint(model)
        self.gpu_name = torch.cuda.get_device_name(0)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.stream = torch.cuda.Stream()
        self._engines: dict[str, "_Engine"] = {}

    # --------------------------------------------------------------------------------------------- engines
    def _engine(self, graph: str, export, input_shapes: dict[str, tuple]) -> "_Engine":
        engine = self._engines.get(graph)
        if engine is not None:
            return engine
        key = engine_cache_key(self.fingerprint, graph, self.precision, self.max_batch, self.trt.__version__,
                               self.gpu_name)
        path = self.engine_dir / engine_file_name(key)
        reason = rebuild_reason(path, key)
        cuda_engine = None
        if reason is None:
            cuda_engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
            if cuda_engine is None:
                reason = "TensorRT refused the cached engine (corrupt, or built by another TensorRT or GPU)"
        if cuda_engine is None:
            log.warning("building TensorRT %s engine for %s: %s", self.precision, graph, reason)
            start = time.perf_counter()
            plan = self._build(export, input_shapes)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(plan)
            tmp.replace(path)
            path.with_suffix(".json").write_text(json.dumps(key, indent=2))
            cuda_engine = self.runtime.deserialize_cuda_engine(plan)
            if cuda_engine is None:
                raise BackendError(f"TensorRT built an engine for {graph} but cannot load it")
            log.warning("built %s in %.1f s, cached at %s", graph, time.perf_counter() - start, path)
        engine = _Engine(self, cuda_engine, input_shapes)
        self._engines[graph] = engine
        return engine

    def _build(self, export, input_shapes: dict[str, tuple]) -> bytes:
        trt = self.trt
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = export(Path(tmp))
            builder = trt.Builder(self.logger)
            network = builder.create_network(0)
            parser = trt.OnnxParser(network, self.logger)
            if not parser.parse(onnx_path.read_bytes()):
                errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
                raise BackendError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
        if self.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        for name, shape in input_shapes.items():
            rest = tuple(shape[1:])
            opt = 3 if name != "z" else 1
            profile.set_shape(name, (1,) + rest, (min(opt, self.max_batch),) + rest, (self.max_batch,) + rest)
        config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise BackendError("TensorRT failed to build the engine (see the TensorRT log above)")
        return bytes(plan)

    # --------------------------------------------------------------------------------------------- calls
    def template(self, z: np.ndarray) -> np.ndarray:
        self.check_inputs(z)
        size = z.shape[2]
        engine = self._engine(template_graph_name(size), lambda d: export_template(self.model, size, d),
                              {"z": (1, 3, size, size)})
        return engine.run({"z": z})

    def search(self, x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        self.check_inputs(x, kernel)
        if x.shape[0] > self.max_batch:
            raise BackendError(f"{x.shape[0]} search crops exceed the engine's batch limit {self.max_batch}; "
                               "raise backend.max_targets")
        size, k = x.shape[2], kernel.shape[2]
        engine = self._engine(search_graph_name(size, k), lambda d: export_search(self.model, size, k, d),
                              {"x": (1, 3, size, size), "kernel": (1,) + kernel.shape[1:]})
        return engine.run({"x": x, "kernel": kernel})


class _Engine:
    """One engine with its execution context and device buffers, allocated once at the largest batch."""

    def __init__(self, backend: TensorRTBackend, engine, input_shapes: dict[str, tuple]):
        trt, torch = backend.trt, backend.torch
        self.backend, self.engine = backend, engine
        self.context = engine.create_execution_context()
        self.inputs = list(input_shapes)
        self.buffers = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                shape = (backend.max_batch,) + tuple(input_shapes[name][1:])
                self.context.set_input_shape(name, shape)
            else:
                self.output = name
        # Output shape at the largest batch, known once the inputs are set.
        for name in self.inputs + [self.output]:
            shape = tuple(self.context.get_tensor_shape(name))
            self.buffers[name] = torch.empty(shape, dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(name, self.buffers[name].data_ptr())

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        torch = self.backend.torch
        stream = self.backend.stream
        batch = next(iter(feeds.values())).shape[0]
        with torch.cuda.stream(stream):
            for name, array in feeds.items():
                self.buffers[name][:batch].copy_(torch.from_numpy(np.ascontiguousarray(array, np.float32)),
                                                 non_blocking=False)
                self.context.set_input_shape(name, (batch,) + tuple(array.shape[1:]))
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise BackendError("TensorRT execution failed")
            out = self.buffers[self.output][:batch].cpu().numpy()
        return out
