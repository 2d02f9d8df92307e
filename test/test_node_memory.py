"""The node's lean ONNX Runtime path: once the shipped network's graphs are exported (the first start's warm-up
does it, cached by the weights file's sha256), a later start tracks without importing torch, which is most of the
node's memory. The RSS figures are printed, not asserted (docs/results.md has them); what is asserted is that the
second process never loads libtorch."""
from __future__ import annotations

from pathlib import Path

import pytest

from node_helpers import tracker_node


def _maps_torch(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_a_second_start_with_exported_graphs_runs_without_torch(tmp_path):
    if not Path("/proc/self/maps").is_file():
        pytest.skip("reads /proc/<pid>/maps (Linux)")
    config = tmp_path / "config.yaml"
    config.write_text(f"backend:\n  name: onnxruntime\n  onnx_dir: {tmp_path / 'onnx'}\n")
    args = ["-p", f"config_file:={config}"]
    loaded = []
    for start in ("first", "second"):
        with tracker_node(tmp_path / f"{start}.log", *args) as (client, proc, log):
            client.latest_diag(timeout=60.0)  # the node is up and reporting
            loaded.append(_maps_torch(proc.pid))
            print(f"{start} start: RSS {_rss_mib(proc.pid):.0f} MiB, libtorch loaded: {loaded[-1]}")
    assert loaded[0], "the first start exports the graphs with torch (else this test checks nothing)"
    assert not loaded[1], "a start that finds its exported graphs must not import torch"
