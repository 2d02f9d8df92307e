"""TensorRT backend: engines built from the two ONNX graphs, cached per everything that changes an engine.

Follows the TensorRT 10 Python API: networks are created strongly typed (`1 << NetworkDefinitionCreationFlag.
STRONGLY_TYPED`; explicit batch is the only mode in TensorRT 10), so the precision is the ONNX graph's own: for fp16
the graphs are exported from a half-precision copy of the network instead of setting the deprecated
`BuilderFlag.FP16`. Device buffers take the engine's tensor types (`engine.get_tensor_dtype`), and an execution
context that TensorRT could not create (`create_execution_context()` returns None, e.g. out of GPU memory) is an error.

Cross-correlation is exported as a batched matrix product of features and kernel taps followed by a Gather and a sum
(model.siamese.cross_correlate), so the search engine needs no convolution with runtime weights: the batch stays
dynamic. The optimisation profile covers batch 1 to
`max_batch`: the search plan's batch limit for the node's max_targets (tracking.search_plan.SearchPlan.max_batch).

Engines are tied to the model, the export code, the TensorRT version and the GPU. Each cached engine has a JSON sidecar
with its cache key (engine_cache_key: weights hash, export code version, builder code version, ONNX opset, precision,
input shapes and batch range, TensorRT version, GPU name and compute capability); engine and sidecar are each written
through a temporary file of the writing process and renamed into place; an engine whose key differs, or that
TensorRT refuses to deserialize (corrupt, or built by another version or for another GPU), is rebuilt with a log line
that says why and how long it took. Device buffers are allocated once, at the profile's largest batch, and reused
every frame.

Only `tensorrt` and `torch` (for CUDA memory and streams) are imported, lazily, when the backend is created.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..config import TrackingConfig
from ..tracking.search_plan import SearchPlan
from .base import Backend, BackendError, cache_dir
from .export import (OPSET, export_code_version, export_search, export_template, model_fingerprint, search_graph_name,
                     template_graph_name)

log = logging.getLogger(__name__)

# ONNX operators our exported graphs use, all supported by TensorRT's ONNX parser (8.6 and newer).
TENSORRT_OPS = {
    "Conv", "BatchNormalization", "Relu", "MaxPool", "Concat", "GlobalAveragePool", "ReduceMean", "ReduceSum",
    "Sigmoid",
    "Tanh", "Mul", "Add", "Sub", "Div", "MatMul", "Reshape", "Slice", "Gather", "Unsqueeze", "Squeeze", "Shape",
    "Constant", "Identity", "Transpose", "Flatten", "Cast", "ConstantOfShape", "Expand", "Range", "Equal", "Where",
    "Pad", "Gemm", "Floor", "Ceil", "Less", "Greater", "Not", "And", "Or", "Neg", "Abs", "Min", "Max", "Clip",
    "Exp",  # the box head's side distances
}


def default_engine_dir() -> Path:
    return cache_dir("engines")


def default_plan() -> SearchPlan:
    """The search plan of the default tracking configuration: the batch range for callers that pass no max_batch."""
    return SearchPlan(TrackingConfig())


@functools.lru_cache(maxsize=1)
def builder_code_version() -> str:
    """Hash of the code that turns a graph into an engine (`TensorRTBackend._build`: workspace, profile, network
    flags) and the constant it reads: a change there must not reuse engines built by the older builder."""
    h = hashlib.sha256(inspect.getsource(TensorRTBackend._build).encode())
    h.update(repr(default_plan().crops_per_pair).encode())
    return h.hexdigest()[:16]


def engine_cache_key(fingerprint: str, graph: str, precision: str, input_shapes: dict, max_batch: int,
                     trt_version: str, gpu_name: str, compute_capability, opset: int = OPSET,
                     export_version: str | None = None, builder_version: str | None = None) -> dict:
    """Everything an engine depends on. Two engines are interchangeable only if their keys are equal.

    input_shapes: input name -> shape without the batch dimension; max_batch: the profile's largest batch.
    """
    return {"model": fingerprint, "graph": graph, "precision": precision,
            "inputs": {k: [int(v) for v in shape] for k, shape in sorted(input_shapes.items())},
            "max_batch": int(max_batch), "opset": int(opset),
            "export_code": export_version if export_version is not None else export_code_version(),
            "builder_code": builder_version if builder_version is not None else builder_code_version(),
            "tensorrt": trt_version, "gpu": gpu_name,
            "compute_capability": ".".join(str(int(v)) for v in compute_capability)}


def engine_file_name(key: dict) -> str:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return f"{Path(key['graph']).stem}_{key['precision']}_{digest}.engine"


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `path` through a temporary file of this process's own in the same folder, then rename it over `path`:
    a reader (another process) sees the old file or the whole new one, and two processes never share a temporary."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store_engine(path: Path, plan: bytes, key: dict) -> None:
    """Cache an engine and its key sidecar (`.json`), each written atomically; the engine first, so a sidecar never
    names an engine that is not complete (a sidecar without its engine, or an older one, means a rebuild)."""
    _write_atomically(path, plan)
    _write_atomically(path.with_suffix(".json"), json.dumps(key, indent=2).encode())


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
        self.output_channels = model.output_channels
        self.precision = "fp16" if config.fp16 else "fp32"
        self.name = f"tensorrt-{self.precision}"
        self.max_batch = int(max_batch or default_plan().max_batch(config.max_targets))
        self.engine_dir = Path(config.engine_cache_dir) if config.engine_cache_dir else default_engine_dir()
        self.engine_dir.mkdir(parents=True, exist_ok=True)
        self.fingerprint = model_fingerprint(model)
        self.export_version = export_code_version()
        self.builder_version = builder_code_version()
        self.gpu_name = torch.cuda.get_device_name(0)
        self.compute_capability = tuple(torch.cuda.get_device_capability(0))
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        if self.runtime is None:
            raise BackendError("TensorRT could not create a runtime")
        self.stream = torch.cuda.Stream()
        self._export_model = None  # the network in the engine's precision, made on the first build
        self._engines: dict[str, "_Engine"] = {}

    # --------------------------------------------------------------------------------------------- engines
    def _graph_model(self):
        """The network the graphs are exported from: a half-precision copy for fp16 (strongly typed networks take
        their precision from the graph), the network itself for fp32."""
        if self._export_model is None:
            self._export_model = copy.deepcopy(self.model).half().eval() if self.precision == "fp16" else \
                self.model.float().eval()
        return self._export_model

    def _engine(self, graph: str, export, input_shapes: dict[str, tuple]) -> "_Engine":
        engine = self._engines.get(graph)
        if engine is not None:
            return engine
        key = engine_cache_key(self.fingerprint, graph, self.precision,
                               {k: tuple(v[1:]) for k, v in input_shapes.items()}, self.max_batch,
                               self.trt.__version__, self.gpu_name, self.compute_capability,
                               export_version=self.export_version, builder_version=self.builder_version)
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
            store_engine(path, plan, key)
            cuda_engine = self.runtime.deserialize_cuda_engine(plan)
            if cuda_engine is None:
                raise BackendError(f"TensorRT built an engine for {graph} but cannot load it")
            log.warning("built %s in %.1f s, cached at %s", graph, time.perf_counter() - start, path)
        engine = _Engine(self, cuda_engine, input_shapes)
        self._engines[graph] = engine
        return engine

    def _build(self, export, input_shapes: dict[str, tuple]) -> bytes:
        trt = self.trt
        builder = trt.Builder(self.logger)
        # TensorRT 10: networks are always explicit batch (EXPLICIT_BATCH is deprecated and ignored); strongly typed
        # networks keep the graph's types, so fp16 comes from the fp16 graph, not from BuilderFlag.FP16.
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self.logger)
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = export(Path(tmp))
            if not parser.parse(onnx_path.read_bytes()):
                errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
                raise BackendError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
        profile = builder.create_optimization_profile()
        for name, shape in input_shapes.items():
            rest = tuple(shape[1:])
            opt = min(default_plan().crops_per_pair if name != "z" else 1, self.max_batch)
            profile.set_shape(name, (1,) + rest, (opt,) + rest, (self.max_batch,) + rest)
        config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise BackendError("TensorRT failed to build the engine (see the TensorRT log above)")
        return bytes(plan)

    # --------------------------------------------------------------------------------------------- calls
    def template(self, z: np.ndarray) -> np.ndarray:
        self.check_inputs(z)
        size = z.shape[2]
        engine = self._engine(template_graph_name(size),
                              lambda d: export_template(self._graph_model(), size, d, half=self.precision == "fp16"),
                              {"z": (1, 3, size, size)})
        return engine.run({"z": z})

    def search(self, x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        self.check_inputs(x, kernel)
        if x.shape[0] > self.max_batch:
            raise BackendError(f"{x.shape[0]} search crops exceed the engines' batch limit {self.max_batch} "
                               "(the search plan's limit for max_targets at start-up)")
        size, k = x.shape[2], kernel.shape[2]
        engine = self._engine(search_graph_name(size, k),
                              lambda d: export_search(self._graph_model(), size, k, d,
                                                      half=self.precision == "fp16"),
                              {"x": (1, 3, size, size), "kernel": (1,) + kernel.shape[1:]})
        return engine.run({"x": x, "kernel": kernel})


def torch_dtype_for(trt, torch, trt_dtype):
    """The torch dtype of a TensorRT tensor type (via trt.nptype); BackendError for types this backend cannot feed."""
    try:
        np_dtype = np.dtype(trt.nptype(trt_dtype))
    except TypeError:
        raise BackendError(f"TensorRT tensor type {trt_dtype} has no numpy equivalent") from None
    table = {np.dtype(np.float32): torch.float32, np.dtype(np.float16): torch.float16}
    if np_dtype not in table:
        raise BackendError(f"engine tensor type {np_dtype} is not supported (float32 or float16 expected)")
    return table[np_dtype]


class _Engine:
    """One engine with its execution context and device buffers, allocated once at the largest batch."""

    def __init__(self, backend: TensorRTBackend, engine, input_shapes: dict[str, tuple]):
        trt, torch = backend.trt, backend.torch
        self.backend, self.engine = backend, engine
        self.context = engine.create_execution_context()
        if self.context is None:
            raise BackendError("TensorRT could not create an execution context (out of GPU memory?)")
        self.inputs = [n for n in input_shapes]
        self.output = None
        self.buffers = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                if name not in input_shapes:
                    raise BackendError(f"engine input {name!r} is not one of {', '.join(input_shapes)}")
                shape = (backend.max_batch,) + tuple(input_shapes[name][1:])
                if not self.context.set_input_shape(name, shape):
                    raise BackendError(f"engine refused input {name!r} of shape {shape}")
            else:
                self.output = name
        if self.output is None:
            raise BackendError("engine has no output tensor")
        # Output shape at the largest batch, known once the inputs are set; each buffer in the engine's own type.
        for name in self.inputs + [self.output]:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = torch_dtype_for(trt, torch, engine.get_tensor_dtype(name))
            self.buffers[name] = torch.empty(shape, dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, self.buffers[name].data_ptr())

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        torch = self.backend.torch
        stream = self.backend.stream
        batch = next(iter(feeds.values())).shape[0]
        with torch.cuda.stream(stream):
            for name, array in feeds.items():
                buf = self.buffers[name]
                buf[:batch].copy_(torch.from_numpy(np.ascontiguousarray(array)).to(buf.dtype), non_blocking=False)
                if not self.context.set_input_shape(name, (batch,) + tuple(array.shape[1:])):
                    raise BackendError(f"engine refused input {name!r} of batch {batch}")
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise BackendError("TensorRT execution failed")
            out = self.buffers[self.output][:batch].float().cpu().numpy()
        return out
