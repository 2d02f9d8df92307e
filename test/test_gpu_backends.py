"""GPU backends without a GPU: lazy imports, the TensorRT engine-cache key and rebuild decision, the static check of
the exported graphs against TensorRT's operator set. The GPU itself is exercised by tools/gpu_check.py."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from siam_tracker_ros.backends import BackendError, create_backend
from siam_tracker_ros.backends.export import export_search, export_template
from siam_tracker_ros.backends.tensorrt_backend import (check_onnx_for_tensorrt, engine_cache_key, engine_file_name,
                                                        rebuild_reason)
from siam_tracker_ros.config import BackendConfig, ModelConfig
from siam_tracker_ros.model import build_model


def key(**changes):
    k = engine_cache_key("abc123", "search_x255_k6.onnx", "fp16", 13, "10.13.0", "NVIDIA H100 80GB HBM3")
    k.update(changes)
    return k


def test_importing_the_backends_does_not_import_tensorrt():
    import siam_tracker_ros.backends.tensorrt_backend  # noqa: F401
    assert "tensorrt" not in sys.modules or sys.modules["tensorrt"] is not None


def test_engine_file_name_changes_with_every_part_of_the_key():
    base = engine_file_name(key())
    for field, value in [("model", "def456"), ("precision", "fp32"), ("max_batch", 4), ("tensorrt", "10.14.1"),
                         ("gpu", "Orin"), ("graph", "search_x383_k6.onnx")]:
        assert engine_file_name(key(**{field: value})) != base, field
    assert engine_file_name(key()) == base


def test_rebuild_decision(tmp_path):
    k = key()
    engine = tmp_path / engine_file_name(k)
    assert rebuild_reason(engine, k) == "no cached engine"
    engine.write_bytes(b"")
    assert rebuild_reason(engine, k) == "cached engine is empty"
    engine.write_bytes(b"plan bytes")
    assert rebuild_reason(engine, k) == "cached engine has no key file"
    engine.with_suffix(".json").write_text("{not json")
    assert rebuild_reason(engine, k) == "cached engine's key file is unreadable"
    engine.with_suffix(".json").write_text(json.dumps(k))
    assert rebuild_reason(engine, k) is None
    reason = rebuild_reason(engine, key(tensorrt="10.14.1", gpu="Orin"))
    assert "tensorrt" in reason and "10.14.1" in reason and "gpu" in reason


@pytest.mark.parametrize("cfg", [ModelConfig(width=0.25), ModelConfig(width=0.25, use_se=False, use_fusion=False,
                                                                      use_gam=False)])
def test_exported_graphs_pass_the_tensorrt_static_check(cfg, tmp_path):
    model = build_model(cfg).eval()
    for path in (export_template(model, 127, tmp_path), export_search(model, 255, 6, tmp_path),
                 export_search(model, 383, 6, tmp_path)):
        assert check_onnx_for_tensorrt(path) == [], path.name


def test_static_check_reports_unsupported_operators_and_dynamic_shapes(tmp_path):
    class Odd(torch.nn.Module):
        def forward(self, x):
            return torch.det(x)
    path = tmp_path / "odd.onnx"
    torch.onnx.export(Odd(), (torch.eye(3)[None],), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b", 1: "n", 2: "n"}}, opset_version=17, dynamo=False)
    problems = check_onnx_for_tensorrt(path)
    assert any("Det" in p for p in problems)
    assert any("dimension 1 is not static" in p for p in problems)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error path")
def test_gpu_backends_without_a_gpu_give_clear_errors():
    model = build_model(ModelConfig(width=0.25))
    with pytest.raises(BackendError, match="TensorRT"):
        create_backend(BackendConfig(name="tensorrt", device="cuda"), model=model)
    with pytest.raises(BackendError, match="CUDA"):
        create_backend(BackendConfig(name="torch", device="cuda"), model=model)
    with pytest.raises(BackendError, match="CUDA provider"):
        create_backend(BackendConfig(name="onnxruntime", device="cuda"), model=model)
    # auto falls back to the CPU backends and says what it skipped.
    backend = create_backend(BackendConfig(name="auto"), model=model)
    assert backend.name == "onnxruntime" and backend.device == "cpu"
