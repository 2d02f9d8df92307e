"""`siam-tracker convert-nanotrack SRC OUT`: check a user's NanoTrack files and write them as one weights file.

SRC is the folder of a NanoTrack ONNX pair (v2: nanotrack_backbone_sim.onnx + nanotrack_head_sim.onnx, v3:
nanotrack_backbone.onnx + nanotrack_head.onnx), optionally with the PyTorch checkpoint the pair was exported from
(nanotrackv2.pth / nanotrackv3.pth), or that checkpoint with the pair beside it. Checked: the checkpoint's tensors
(names and shapes of the family), the pair's graphs (loaded in ONNX Runtime, run on a template and a search crop,
output shapes of the family), and that both are of one family. Written: this package's weights format
(model/weights.py: format, version) with `family`, the pair's bytes under `onnx` (what the ONNX Runtime backend
runs), the checkpoint's state dict when there is one, and a card in `metadata` and beside the file (OUT + .json):
where the files came from (paths, sha256), the licence (Apache-2.0: keep its text with the file), what the file is.
The weights stay the user's: the package ships none and downloads none.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np

from ..model.weights import FORMAT_NAME, FORMAT_VERSION, WeightsError
from .nanotrack import FAMILIES, NanoTrackFamily, NanoTrackOnnxBackend, file_sha256, pair_family

LICENCE = "Apache-2.0"
ORIGIN = ("NanoTrack by Honglin Chu, github.com/HonglinChu/SiamTrackers (NanoTrack/), Apache License 2.0; the "
          "licence asks that its text and any NOTICE travel with the files")
DESCRIPTIONS = {
    "nanotrack_v2": "NanoTrack v2: MobileNetV3-small backbone (48 channels at stride 16), pointwise correlation and an "
                    "anchor-free head (2 class logits, 4 side distances on a 16 x 16 grid); template 127, search 255",
    "nanotrack_v3": "NanoTrack v3: MobileNetV3-small backbone (96 channels at stride 16), depth-wise and pointwise "
                    "correlation and an anchor-free head (2 class logits, 4 side distances on a 15 x 15 grid); "
                    "template 127, search 255",
}


class ConvertError(ValueError):
    """The files are not a NanoTrack network this package can run; the message says what is wrong."""


def _numpy_safe_globals() -> list:
    """The numpy scalar and dtype types the public checkpoints pickle (their training epoch's bookkeeping): plain
    data, allowed to torch.load(weights_only=True), which still refuses any other object."""
    core = getattr(np, "_core", None) or np.core
    return [(core.multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype,
            *{type(np.dtype(t)) for t in ("float32", "float64", "int32", "int64")}]


def check_checkpoint(path: Path) -> tuple[str, dict]:
    """(family, state dict) of a NanoTrack PyTorch checkpoint, or ConvertError saying why it is not one."""
    import torch

    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConvertError(f"{path} is not a NanoTrack checkpoint: PyTorch cannot read it as a checkpoint of plain "
                           f"tensors ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if isinstance(payload, dict) and payload.get("format") == FORMAT_NAME:
        raise ConvertError(f"{path} is not a NanoTrack checkpoint: it is a siam_tracker_ros weights file already")
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConvertError(f"{path} is not a NanoTrack checkpoint: it holds no state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    for family in FAMILIES.values():
        if all(k in state and tuple(state[k].shape) == shape for k, shape in family.checkpoint_keys.items()):
            return family.name, state
    expected = "; ".join(f"{f.name}: " + ", ".join(f"{k} {tuple(s)}" for k, s in f.checkpoint_keys.items())
                         for f in FAMILIES.values())
    raise ConvertError(f"{path} is not a NanoTrack checkpoint: its tensors are not those of NanoTrack v2 or v3 "
                       f"(expected {expected}; the file has {len(state)} tensors, e.g. {', '.join(list(state)[:3])})")


def check_pair(folder: Path) -> NanoTrackFamily:
    """The family of the ONNX pair in `folder`, after running it on a template and a search crop."""
    family = pair_family(folder)
    if family is None:
        names = "; ".join(f"{f.backbone_file} + {f.head_file} ({f.name})" for f in FAMILIES.values())
        raise ConvertError(f"{folder} holds no NanoTrack ONNX pair: expected {names}")
    try:
        backend = NanoTrackOnnxBackend(folder, num_threads=1)
        rng = np.random.default_rng(0)
        kernel = backend.template(rng.uniform(0, 255, (2, 3, 127, 127)).astype(np.float32))
        out = backend.search(rng.uniform(0, 255, (2, 3, 255, 255)).astype(np.float32), kernel)
    except Exception as err:
        raise ConvertError(f"the ONNX pair in {folder} does not run as {family.name}: {err}") from None
    if kernel.shape[1:] != (family.channels, 8, 8) or out.shape[:2] != (2, 6) or out.shape[2] not in (15, 16):
        raise ConvertError(f"the ONNX pair in {folder} gives template features {kernel.shape[1:]} and outputs "
                           f"{out.shape[1:]}: not {family.name} ({family.channels} x 8 x 8; 6 x 15/16 x 15/16)")
    return family


def convert(src: str | Path, out: str | Path, command: str = "") -> dict:
    """Check `src` (module notes) and write `out` and its card `out`.json; returns the card."""
    src, out = Path(src), Path(out)
    if not src.exists():
        raise ConvertError(f"{src} does not exist")
    checkpoint = None
    if src.is_dir():
        folder = src
        candidates = sorted(folder.glob("*.pth"))
        if len(candidates) == 1:
            checkpoint = candidates[0]
    else:
        folder = src.parent
        if src.suffix == ".onnx":
            pass
        else:
            checkpoint = src
    ck_family, state = (None, {})
    if checkpoint is not None:
        ck_family, state = check_checkpoint(checkpoint)
    if pair_family(folder) is None and checkpoint is not None:
        raise ConvertError(f"{checkpoint} is a {ck_family} checkpoint, but its ONNX pair ("
                           f"{FAMILIES[ck_family].backbone_file} + {FAMILIES[ck_family].head_file}) is not beside it "
                           f"in {folder}: this package runs NanoTrack through that pair")
    family = check_pair(folder)
    if ck_family is not None and ck_family != family.name:
        raise ConvertError(f"{checkpoint} is a {ck_family} checkpoint but the ONNX pair in {folder} is "
                           f"{family.name}")
    files = [folder / family.backbone_file, folder / family.head_file] + ([checkpoint] if checkpoint else [])
    licence_file = folder / "LICENSE"
    card = {
        "family": family.name,
        "what": DESCRIPTIONS[family.name],
        "origin": ORIGIN,
        "licence": LICENCE,
        "licence_file": str(licence_file) if licence_file.is_file() else None,
        "source_files": {str(p): file_sha256(p) for p in files},
        "converted": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "note": "user-supplied weights: not part of siam_tracker_ros and not to be redistributed without the "
                "licence's conditions",
    }
    payload = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "family": family.name, "model_config": {},
               "state_dict": state,
               "onnx": {"backbone": files[0].read_bytes(), "head": files[1].read_bytes()},
               "metadata": {**card, "licence_text": licence_file.read_text() if licence_file.is_file() else None}}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    import torch

    torch.save(payload, tmp)
    tmp.replace(out)
    Path(str(out) + ".json").write_text(json.dumps(card, indent=2))
    return card


def add_convert_parser(sub) -> None:
    p = sub.add_parser("convert-nanotrack",
                       help="check a user's NanoTrack v2/v3 files and write them as one weights file with a card")
    p.add_argument("src", help="folder of the ONNX pair (and optionally the .pth checkpoint), or the checkpoint")
    p.add_argument("out", help="the weights file to write (its card goes to OUT.json)")
    p.set_defaults(func=run_convert)


def run_convert(args) -> int:
    import sys

    try:
        card = convert(args.src, args.out, command=f"siam-tracker convert-nanotrack {args.src} {args.out}")
    except (ConvertError, WeightsError, OSError) as err:
        print(f"siam-tracker convert-nanotrack: {err}", file=sys.stderr)
        return 2
    print(f"{args.out}: {card['family']} ({card['licence']}), card in {args.out}.json")
    return 0
