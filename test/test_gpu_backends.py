"""GPU backends without a GPU: lazy imports, the TensorRT engine-cache key and rebuild decision, the static check of
the exported graphs against TensorRT's operator set. The GPU itself is exercised by tools/gpu_check.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from siam_tracker_ros.backends import BackendError, create_backend
from siam_tracker_ros.backends.export import export_search, export_template
from siam_tracker_ros.backends.tensorrt_backend import (check_onnx_for_tensorrt, default_plan, engine_cache_key,
                                                        engine_file_name, rebuild_reason)
from siam_tracker_ros.config import BackendConfig, ModelConfig, TrackingConfig
from siam_tracker_ros.model import build_model
from siam_tracker_ros.tracking.search_plan import SearchPlan


def key(**changes):
    k = engine_cache_key("abc123", "search_x255_k6.onnx", "fp16", {"x": (3, 255, 255), "kernel": (64, 6, 6)}, 12,
                         "10.13.0", "NVIDIA H100 80GB HBM3", (9, 0), opset=17, export_version="e1")
    k.update(changes)
    return k


def test_importing_the_backends_does_not_import_tensorrt(tmp_path):
    """A stand-in `tensorrt` module that is importable (whether or not TensorRT is installed) must stay unimported."""
    (tmp_path / "tensorrt.py").write_text("raise SystemExit('tensorrt was imported')\n")
    code = ("import sys; import siam_tracker_ros.backends, siam_tracker_ros.backends.tensorrt_backend, "
            "siam_tracker_ros.tracking; print('tensorrt' in sys.modules)")
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(repo), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "False", res.stdout + res.stderr
    # the stand-in works: importing it does end the process
    res = subprocess.run([sys.executable, "-c", "import tensorrt"], env=env, capture_output=True, text=True)
    assert "tensorrt was imported" in res.stderr


def test_a_cached_engine_is_found_again_by_a_new_process(tmp_path):
    """The cache only pays if a later process (a node restart) computes the same file name and accepts the stored
    key: the name must not depend on per-process hashing, and the key must survive its JSON sidecar unchanged although
    TensorRT reports shapes and the compute capability as tuples."""
    from siam_tracker_ros.backends.tensorrt_backend import store_engine

    k = engine_cache_key("abc123", "search_x255_k6.onnx", "fp16", {"x": (3, 255, 255), "kernel": (64, 6, 6)}, 12,
                         "10.13.0", "NVIDIA H100 80GB HBM3", (9, 0), opset=17, export_version="e1")
    path = tmp_path / engine_file_name(k)
    store_engine(path, b"plan bytes", k)
    code = ("import sys; from pathlib import Path; "
            "from siam_tracker_ros.backends.tensorrt_backend import engine_cache_key as key, engine_file_name, "
            "rebuild_reason; "
            "k = key('abc123', 'search_x255_k6.onnx', 'fp16', {'kernel': (64, 6, 6), 'x': (3, 255, 255)}, "
            "12, '10.13.0', 'NVIDIA H100 80GB HBM3', (9, 0), opset=17, export_version='e1'); "
            "p = Path(sys.argv[1]) / engine_file_name(k); print(p.name, rebuild_reason(p, k))")
    repo = Path(__file__).resolve().parents[1]
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed,
                   PYTHONPATH=os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]))
        res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        assert res.stdout.split() == [path.name, "None"], res.stdout


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


def test_engine_key_names_the_exact_weights_a_running_stat_included():
    """The key's "model" part (model_fingerprint): equal for an identical copy, different after a change to one
    weight, to one BatchNorm running statistic (a buffer, not a parameter) or to the architecture alone; and the GPU's
    compute capability as TensorRT reports it, a tuple, is written "major.minor"."""
    import copy

    from siam_tracker_ros.backends.export import model_fingerprint

    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.25)).eval()
    base = model_fingerprint(model)
    assert model_fingerprint(copy.deepcopy(model)) == base
    for name in ("backbone.conv3.0.weight", "backbone.conv3.1.running_var"):
        changed = copy.deepcopy(model)
        state = changed.state_dict()
        assert name in state, sorted(state)[:6]
        state[name].view(-1)[0] += 1e-3  # state_dict tensors share storage with the module
        assert model_fingerprint(changed) != base, name
    other = build_model(ModelConfig(width=0.25, use_gam=False)).eval()
    other.load_state_dict(model.state_dict(), strict=False)
    assert model_fingerprint(other) != base
    assert engine_cache_key("m", "g.onnx", "fp32", {"z": (3, 127, 127)}, 1, "10.0", "gpu", (8, 7))[
        "compute_capability"] == "8.7"


@pytest.mark.parametrize("num_scales,max_targets", [(3, 4), (3, 5), (5, 5), (1, 1)])
def test_batch_limit_covers_every_search_call(num_scales, max_targets):
    """max_targets 5 with 3 scales sends 15 crops in one call: the engines' batch limit must cover it; so must the
    lost targets' wide searches with the re-detection scan's windows in the same batch."""
    cfg = TrackingConfig(num_scales=num_scales)
    windows = cfg.redetect_windows if cfg.redetect_after > 0 else 0
    calls = SearchPlan(cfg).search_calls(max_targets)
    assert SearchPlan(cfg).max_batch(max_targets) == max(b for _, _, b in calls) == max(
        num_scales * max_targets, max_targets + windows)
    batches = {b for _, x, b in calls if x == 255}
    # every tracked-target count, and init's one reference search of the new target
    assert batches == {num_scales * k for k in range(1, max_targets + 1)} | {1}
    # lost mode: every count of frozen targets' wide searches, with 0 to `windows` scan windows beside them
    assert {b for _, x, b in calls if x == 383} == set(range(1, max_targets + windows + 1))


@pytest.mark.parametrize("drift_check", [True, False])
def test_batch_sizes_with_the_multi_scale_test(drift_check):
    cfg = TrackingConfig(multi_scale_test=True, test_sizes=[[127, 255], [127, 383]], drift_check=drift_check)
    windows = cfg.redetect_windows
    calls = SearchPlan(cfg).search_calls(2)
    # (127, 383) is both a scale set and the lost-mode size: its batches mix 3 crops per tracked target, one per lost
    # one and 0 to `windows` scan windows (a frozen target's; with the drift check, a tracked one's too)
    expected = {3 * tracked + lost + w for tracked in range(3) for lost in range(3 - tracked) if tracked + lost
                for w in (range(windows + 1) if lost or drift_check else [0])}
    assert {b for _, x, b in calls if x == 383} == expected
    assert SearchPlan(cfg).max_batch(2) == max(expected)


def test_box_mode_plans_one_crop_per_target_and_the_backend_default_covers_the_pyramid():
    cfg = TrackingConfig()
    windows = cfg.redetect_windows
    box = SearchPlan(cfg, box_mode=True)
    assert box.search_calls(2) == [(127, 255, 1), (127, 255, 2)] + [(127, 383, b) for b in range(1, 2 + windows + 1)]
    assert box.max_batch(4) == 4 + windows
    # A backend built without max_batch takes the default configuration's pyramid limit, which covers box mode too.
    assert default_plan().max_batch(4) == max(3 * 4, 4 + windows) >= box.max_batch(4)
    # The export makes every graph of either mode and the lost search.
    multi_scale = SearchPlan(TrackingConfig(multi_scale_test=True))
    assert multi_scale.graph_pairs() == [(127, 255), (127, 383), (191, 319), (255, 383)]
    assert SearchPlan(TrackingConfig()).graph_pairs() == [(127, 255), (127, 383)]


def test_half_precision_graphs_for_strongly_typed_engines(tmp_path):
    """fp16 engines are built from fp16 graphs (a strongly typed network keeps the graph's types)."""
    import copy

    import onnx

    model = build_model(ModelConfig(width=0.25)).eval()
    half = copy.deepcopy(model)
    for path in (export_template(half, 127, tmp_path, half=True), export_search(half, 255, 6, tmp_path, half=True)):
        graph = onnx.load(str(path)).graph
        types = {v.type.tensor_type.elem_type for v in list(graph.input) + list(graph.output)}
        assert types == {onnx.TensorProto.FLOAT16}, path.name
        assert check_onnx_for_tensorrt(path) == [], path.name
    assert next(model.parameters()).dtype == torch.float32  # the caller's network is untouched


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU and TensorRT (tools/gpu_check.py)")
def test_tensorrt_engine_against_torch(tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    import numpy as np

    from siam_tracker_ros.tracking import SiamTracker

    model = build_model(ModelConfig(width=0.25)).eval()
    cfg = BackendConfig(name="tensorrt", device="cuda", fp16=False, max_targets=2, engine_cache_dir=str(tmp_path))
    backend = create_backend(cfg, model=model, max_batch=SearchPlan(TrackingConfig()).max_batch(2))
    tracker = SiamTracker(backend, TrackingConfig())
    calls = tracker.warm_up(2)
    assert ("search", 383, 2) in calls and ("search", 255, 6) in calls
    ref = create_backend(BackendConfig(name="torch", device="cpu"), model=model)
    z = np.random.default_rng(0).uniform(0, 255, (1, 3, 127, 127)).astype(np.float32)
    np.testing.assert_allclose(backend.template(z), ref.template(z), rtol=1e-2, atol=1e-2)
