"""One builder for every tracker: the model family decides the class (SiamTracker or NanoTracker).

build_tracker(config, weights, backend) is what the node, eval, bench, track and the demo call. The family comes from
`weights` (a folder holding a NanoTrack ONNX pair, a weights file converted by `siam-tracker convert-nanotrack`, or
any other weights file: the paper's network) or, with no weights, from backend.model (nanotrack_v2 / nanotrack_v3:
the user's files in $SIAM_PEERS_DIR/<model> or ../shared/peers/<model>).

A converted file is unpacked once into the ONNX cache (backends/base.cache_dir("onnx") / <its sha256>.nanotrack),
keyed by the file's bytes: afterwards it is found without reading the file, so the ONNX Runtime path never imports
torch.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..config import NANOTRACK_MODELS, BackendConfig, Config

SIAM = "siam"


def nanotrack_source(backend: BackendConfig, weights=None) -> tuple[str, Path] | None:
    """(family, folder of its ONNX pair) when `weights` / backend.model name a NanoTrack network, else None.

    Raises BackendError for a NanoTrack model whose files are missing, and WeightsError for a file that cannot be
    read."""
    from ..backends.base import BackendError, cache_dir
    from ..backends.nanotrack import CONVERTED_SUFFIX, file_sha256, pair_family, write_pair_cache

    if weights is None or str(weights) == "":
        if backend.model not in NANOTRACK_MODELS:
            return None
        from ..data import peers_root

        folder = peers_root() / backend.model
        family = pair_family(folder)
        if family is None or family.name != backend.model:
            raise BackendError(f"backend.model {backend.model}: no {backend.model} ONNX pair in {folder}. The files "
                               "are the user's: README, NanoTrack, says where the public ones are; give their folder "
                               "as the weights or set SIAM_PEERS_DIR to the folder holding "
                               f"{backend.model}/")
        return family.name, folder
    path = Path(weights)
    if path.is_dir():
        family = pair_family(path)
        if family is None:
            raise BackendError(f"weights folder {path} holds no NanoTrack ONNX pair (nanotrack_backbone_sim.onnx + "
                               "nanotrack_head_sim.onnx for v2, nanotrack_backbone.onnx + nanotrack_head.onnx for v3)")
        return family.name, path
    if not path.is_file() or path.suffix == ".npz":
        return None
    root = Path(backend.onnx_dir) if backend.onnx_dir else cache_dir("onnx")
    cached = root / (file_sha256(path) + CONVERTED_SUFFIX)
    manifest = cached / "manifest.json"
    if manifest.is_file():
        return json.loads(manifest.read_text())["family"], cached
    from ..backends.onnx_backend import cached_graphs

    if cached_graphs(root, path) is not None:  # the paper's network, its graphs exported before: no need to read it
        return None
    from ..model.weights import read_weights

    payload = read_weights(path)
    family = payload.get("family")
    if family is None:
        return None
    graphs = payload.get("onnx") or {}
    if family not in NANOTRACK_MODELS or not {"backbone", "head"} <= set(graphs):
        raise BackendError(f"weights file {path} says family {family!r} but holds no ONNX pair of a known NanoTrack "
                           f"family ({', '.join(NANOTRACK_MODELS)}): convert the files again")
    write_pair_cache(cached, family, bytes(graphs["backbone"]), bytes(graphs["head"]), str(path))
    return family, cached


def model_family(config: Config, weights=None) -> str:
    """Name the family: "siam" (the paper's network) or the NanoTrack family that `weights` / backend.model name."""
    source = nanotrack_source(config.backend, weights)
    return source[0] if source else SIAM


def create_nanotrack_backend(backend: BackendConfig, weights=None):
    """The NanoTrack network that `weights` / backend.model name: on ONNX Runtime (CPU, or CUDA where asked for and
    available; backend auto or onnxruntime), or on PyTorch (backend torch: model/nanotrack.py)."""
    from ..backends.base import BackendError
    from ..backends.nanotrack import NanoTrackOnnxBackend

    source = nanotrack_source(backend, weights)
    if source is None:
        raise BackendError(f"{weights or backend.model} is not a NanoTrack network")
    family, folder = source
    device = "cuda" if backend.device == "cuda" else "cpu"
    if backend.name == "torch":
        from ..backends.nanotrack_torch import NanoTrackTorchBackend

        return NanoTrackTorchBackend(_checkpoint_state(family, folder, weights), family, device=device,
                                     fp16=backend.fp16, num_threads=backend.num_threads)
    if backend.name not in ("auto", "onnxruntime"):
        raise BackendError(f"{family} runs on ONNX Runtime or PyTorch, not {backend.name}")
    return NanoTrackOnnxBackend(folder, family=family, device=device, num_threads=backend.num_threads,
                                allow_spinning=backend.onnx_allow_spinning)


def _checkpoint_state(family: str, folder: Path, weights) -> dict:
    """The PyTorch checkpoint's tensors: from a converted file, else the one .pth beside the ONNX pair."""
    from ..backends.base import BackendError

    if weights is not None and Path(weights).is_file():
        from ..model.weights import read_weights

        state = read_weights(weights).get("state_dict") or {}
        if not state:
            raise BackendError(f"{weights} was converted without the PyTorch checkpoint: convert the folder that "
                               "holds it too, or use backend onnxruntime")
        return state
    checkpoints = sorted(Path(folder).glob("*.pth"))
    if len(checkpoints) != 1:
        raise BackendError(f"backend torch for {family} needs its PyTorch checkpoint (one .pth) in {folder}; found "
                           f"{len(checkpoints)}")
    from ..backends.nanotrack_convert import ConvertError, check_checkpoint

    try:
        found, state = check_checkpoint(checkpoints[0])
    except ConvertError as err:
        raise BackendError(str(err)) from None
    if found != family:
        raise BackendError(f"{checkpoints[0]} is a {found} checkpoint, the ONNX pair beside it {family}")
    return state


def build_tracker(config: Config | None = None, weights=None, backend=None):
    """The tracker for `config` and `weights`: a NanoTracker for a NanoTrack network, a SiamTracker otherwise.
    `backend`: an already created backend of the right family (skips creating one)."""
    config = config or Config()
    if backend is not None:
        from ..backends.nanotrack import NanoTrackOnnxBackend
        from .nanotrack import NanoTracker

        if isinstance(backend, NanoTrackOnnxBackend) or getattr(backend, "family", None) is not None:
            return NanoTracker(backend, config.nanotrack)
    elif nanotrack_source(config.backend, weights) is not None:
        from .nanotrack import NanoTracker

        return NanoTracker(create_nanotrack_backend(config.backend, weights), config.nanotrack)
    from .tracker import SiamTracker

    return SiamTracker.from_config(config, weights=weights, backend=backend)
