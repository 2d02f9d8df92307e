#!/usr/bin/env python3
"""GPU check: every GPU backend against the CPU reference on real frames, then `siam-tracker bench` on the GPU.

Run on a machine with an NVIDIA GPU, from the repository root:

    python3 tools/gpu_check.py --install            # pip installs tensorrt, onnxruntime-gpu when they are missing
    python3 tools/gpu_check.py --data SEQ_DIR --weights W --json gpu_check.json

For each GPU backend present (TensorRT FP16, ONNX Runtime CUDA, PyTorch CUDA FP16) it checks, against ONNX Runtime on
the CPU with the same weights:
  * response maps on real search crops within FP16 tolerance (max abs error <= 2e-2 of the map's range),
  * the tracker's boxes over the whole sequence (mean IoU >= 0.98 with the CPU boxes),
and then times each backend with the bench. Backends that cannot be created are listed with the reason; the script
exits non-zero when a present backend disagrees.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GPU_BACKENDS = ["tensorrt", "onnxruntime-cuda", "torch-cuda"]


def install_missing() -> None:
    wanted = []
    for module, package in [("tensorrt", "tensorrt"), ("onnxruntime", "onnxruntime-gpu")]:
        try:
            mod = __import__(module)
            if module == "onnxruntime" and "CUDAExecutionProvider" not in mod.get_available_providers():
                wanted.append(package)
        except ImportError:
            wanted.append(package)
    if wanted:
        print(f"[gpu_check] installing {' '.join(wanted)}", flush=True)
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", *wanted])
        if proc.returncode != 0:
            print(f"[gpu_check] could not install {' '.join(wanted)} (offline?): those backends will be skipped")


def load_sequence(folder: Path | None, n: int):
    import numpy as np

    if folder is None:
        from siam_tracker_ros.synthetic import make_sequence
        frames, boxes = make_sequence(n_frames=n)
        return frames, np.asarray(boxes, dtype=float), "built-in synthetic sequence"
    from siam_tracker_ros.data import load_sequence as load_folder

    frames, boxes = load_folder(folder, n)
    return frames, boxes, str(folder)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="pip install missing GPU packages first")
    parser.add_argument("--data", help="a sequence folder (frames + groundtruth.txt); default: built-in synthetic")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--weights", help="weights (default: the shipped weights)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--bench-json", help="where the bench writes its figures")
    parser.add_argument("--no-bench", action="store_true")
    return parser.parse_args()


def run_bench(args, results: dict, weights: str) -> None:
    """`siam-tracker bench` on the backends that were available."""
    present = [s for s, r in results["backends"].items() if r.get("available")]
    if not present:
        return
    cmd = [sys.executable, "-m", "siam_tracker_ros.cli", "bench", "--weights", weights, "--backends",
           ",".join(present), "--frames", str(args.frames)]
    if args.data:
        cmd += ["--data", args.data]
    if args.bench_json:
        cmd += ["--json", args.bench_json]
    subprocess.run(cmd, cwd=REPO)


def main() -> int:
    args = parse_args()
    if args.install:
        install_missing()

    import numpy as np
    import torch

    from siam_tracker_ros.backends import BackendError, create_backend, default_weights_path
    from siam_tracker_ros.config import BackendConfig, TrackingConfig
    from siam_tracker_ros.model import load_weights
    from siam_tracker_ros.tracking import SiamTracker, iou, track_sequence
    from siam_tracker_ros.tracking.crops import channel_mean, crop_square, to_tensor_layout
    from siam_tracker_ros.tracking.geometry import to_center

    if not torch.cuda.is_available():
        print("[gpu_check] no CUDA GPU visible to PyTorch: nothing to check")
        return 2
    gpu = torch.cuda.get_device_name(0)
    weights = args.weights or str(default_weights_path())
    model = load_weights(weights)
    frames, gt, source = load_sequence(Path(args.data) if args.data else None, args.frames)
    print(f"[gpu_check] {gpu}; torch {torch.__version__}; weights {weights}; {len(frames)} frames of {source}",
          flush=True)

    reference = create_backend(BackendConfig(name="onnxruntime", device="cpu"), model=model)
    ref_boxes, _ = track_sequence(SiamTracker(reference, TrackingConfig()), frames, gt[0])
    cx, cy, _, _ = to_center(gt[0])
    side = float(np.sqrt((gt[0][2] * 1.5 + gt[0][3] * 0.5) * (gt[0][3] * 1.5 + gt[0][2] * 0.5))) * 255 / 127
    crops = to_tensor_layout([crop_square(frames[1], cx, cy, side * f, 255, channel_mean(frames[1]))
                              for f in (0.96, 1.0, 1.04)])
    z = to_tensor_layout([crop_square(frames[0], cx, cy, side * 127 / 255, 127, channel_mean(frames[0]))])
    ref_kernel = reference.template(z)
    ref_map = reference.search(crops, np.repeat(ref_kernel, 3, axis=0))

    results = {"gpu": gpu, "torch": torch.__version__, "source": source, "frames": len(frames), "backends": {}}
    failed = False
    for spec in GPU_BACKENDS:
        name, _, device = spec.partition("-")
        cfg = BackendConfig(name=name, device=device or "cuda", fp16=True)
        try:
            start = time.perf_counter()
            backend = create_backend(cfg, model=model)
            kernel = backend.template(z)  # first call builds / loads engines
            setup_s = time.perf_counter() - start
        except BackendError as err:
            print(f"[gpu_check] {spec}: unavailable: {err}", flush=True)
            results["backends"][spec] = {"available": False, "reason": str(err)}
            continue
        gpu_map = backend.search(crops, np.repeat(kernel, 3, axis=0))
        span = float(ref_map.max() - ref_map.min())
        map_err = float(np.abs(gpu_map - ref_map).max()) / max(span, 1e-9)
        boxes, _ = track_sequence(SiamTracker(backend, TrackingConfig()), frames, gt[0])
        box_iou = float(np.mean(iou(boxes, ref_boxes)))
        ok = map_err <= 2e-2 and box_iou >= 0.98
        failed |= not ok
        results["backends"][spec] = {"available": True, "backend": backend.describe(), "setup_s": setup_s,
                                      "response_max_err_rel_range": map_err, "mean_iou_vs_cpu": box_iou, "ok": ok}
        print(f"[gpu_check] {spec}: {backend.describe()}: response max error {map_err:.2e} of range, boxes mean "
              f"IoU vs CPU {box_iou:.4f} -> {'OK' if ok else 'MISMATCH'} (setup {setup_s:.1f} s)", flush=True)

    if not args.no_bench:
        run_bench(args, results, weights)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
