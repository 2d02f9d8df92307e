"""The TensorRT engine cache without a GPU: the key follows the builder's code, and engines and their key files are
written atomically through temporary files of each process's own (backends/tensorrt_backend.py)."""
from __future__ import annotations

import importlib.util
import json
import multiprocessing
from pathlib import Path

from siam_tracker_ros.backends import tensorrt_backend
from siam_tracker_ros.backends.tensorrt_backend import (builder_code_version, engine_cache_key, engine_file_name,
                                                        rebuild_reason, store_engine)


def key(**kw):
    return engine_cache_key("abc123", "search_x255_k6.onnx", "fp16", {"x": (3, 255, 255)}, 12, "10.13.0", "GPU",
                            (9, 0), export_version="e1", **kw)


def builder_version_of(source: str, tmp_path: Path, name: str) -> str:
    """builder_code_version() of a copy of tensorrt_backend.py with `source` as its text (imported as a sibling module
    of the real one, so its relative imports resolve)."""
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"siam_tracker_ros.backends.{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.builder_code_version()


def test_cache_key_changes_with_the_builder_code(tmp_path):
    assert key()["builder_code"] == builder_code_version() and len(builder_code_version()) == 16
    assert engine_file_name(key(builder_version="b2")) != engine_file_name(key(builder_version="b1"))
    source = Path(tensorrt_backend.__file__).read_text()
    workspace = "config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)"
    assert workspace in source
    same = builder_version_of(source, tmp_path, "trt_same")
    bigger = builder_version_of(source.replace(workspace, workspace.replace("1 << 30", "1 << 31")), tmp_path,
                                "trt_workspace")
    flags = "flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)"
    assert flags in source
    no_flags = builder_version_of(source.replace(flags, "flags = 0"), tmp_path, "trt_flags")
    assert same == builder_code_version()
    assert len({same, bigger, no_flags}) == 3
    # An engine cached by the older builder is rebuilt, and the log line says why.
    engine = tmp_path / engine_file_name(key(builder_version=same))
    store_engine(engine, b"plan", key(builder_version=same))
    assert rebuild_reason(engine, key(builder_version=same)) is None
    reason = rebuild_reason(engine, key(builder_version=bigger))
    assert reason is not None and "builder_code" in reason


def _writer(path: str, plan: bytes, rounds: int, errors) -> None:
    try:
        k = key()
        for _ in range(rounds):
            store_engine(Path(path), plan, k)
    except Exception as err:  # reported to the test
        errors.put(f"{type(err).__name__}: {err}")


def test_engines_from_concurrent_processes_never_share_a_temporary_file(tmp_path):
    """Two processes (two nodes started together) cache the same engine at once: neither fails, no temporary file is
    left, and the cached pair is complete and consistent."""
    path = tmp_path / engine_file_name(key())
    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    plan = bytes(range(256)) * 4096  # 1 MiB: writes that take long enough to overlap
    procs = [ctx.Process(target=_writer, args=(str(path), plan, 40, errors)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert not found, found
    assert all(p.exitcode == 0 for p in procs)
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted([path.name, path.with_suffix(".json").name])
    assert path.read_bytes() == plan
    assert json.loads(path.with_suffix(".json").read_text()) == key()
    assert rebuild_reason(path, key()) is None
