"""Weights files: one file holding the state dict, the model config and a format version.

Saved with torch.save and read with torch.load(weights_only=True): only tensors and plain containers, never arbitrary
pickled objects.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

# WeightsError lives in config (torch-free); model users import it from here too
from ..config import ConfigError, ModelConfig, WeightsError, model_config_from_dict  # noqa: F401
from .siamese import TrackerNet, build_model

FORMAT_NAME = "siam_tracker_ros.weights"
FORMAT_VERSION = 1


def save_weights(model: TrackerNet, path: str | Path, metadata: dict[str, Any] | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model_config": dataclasses.asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": metadata or {},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # never leave a half-written file behind


def read_weights(path: str | Path) -> dict[str, Any]:
    """The raw payload, validated for format and version."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise WeightsError(f"weights file {path} is corrupt or not a siam_tracker_ros weights file: {err}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise WeightsError(f"weights file {path} is not a siam_tracker_ros weights file "
                           f"(expected a dict with format={FORMAT_NAME!r})")
    if payload.get("version") != FORMAT_VERSION:
        raise WeightsError(f"weights file {path} has format version {payload.get('version')!r}; "
                           f"this build reads version {FORMAT_VERSION}")
    return payload


def load_weights(path: str | Path, expected: ModelConfig | None = None) -> TrackerNet:
    """Build the network the file describes and load its weights.

    With `expected`, a file for another model configuration is an error naming the differing fields. A public
    SiamFC `.npz` (../shared/pretrained) gives the untouched pretrained network (plain SiamFC, model/pretrained.py):
    the reference the project's own weights are measured against.
    """
    if str(path).endswith(".npz"):
        from .pretrained import build_from_pretrained

        model = build_from_pretrained(path)
        if expected is not None and model.config != expected:
            raise WeightsError(f"pretrained file {path} is a plain SiamFC network, not the expected configuration")
        return model
    return _model_from_payload(read_weights(path), path, expected)


def _model_from_payload(payload: dict[str, Any], path: str | Path, expected: ModelConfig | None) -> TrackerNet:
    if payload.get("family"):
        raise WeightsError(f"weights file {path} holds a {payload['family']} network (siam-tracker convert-nanotrack), "
                           "not the paper's: build its tracker with tracking.build.build_tracker")
    try:
        config = model_config_from_dict(payload["model_config"])
    except (ConfigError, KeyError, TypeError) as err:
        raise WeightsError(f"weights file {path} holds an invalid model config: {err}") from None
    if expected is not None and config != expected:
        diff = {k: (getattr(config, k), getattr(expected, k)) for k in dataclasses.asdict(config)
                if getattr(config, k) != getattr(expected, k)}
        raise WeightsError(f"weights file {path} is for another model configuration: "
                           + ", ".join(f"{k}={a!r} in the file, {b!r} expected" for k, (a, b) in diff.items()))
    model = build_model(config)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, KeyError) as err:
        raise WeightsError(f"weights file {path} does not match its model config: {err}") from None
    model.eval()
    return model


def weights_metadata(path: str | Path) -> dict[str, Any]:
    return dict(read_weights(path).get("metadata", {}))


def combine_weights(paths: list[str | Path]) -> tuple[TrackerNet, dict[str, Any]]:
    """An ensemble of separately trained single networks of one configuration, and its metadata (the members')."""
    if len(paths) < 2:
        raise WeightsError("an ensemble needs at least two weights files")
    payloads = [read_weights(p) for p in paths]  # each file read once: network and metadata
    nets = [_model_from_payload(payload, p, None) for payload, p in zip(payloads, paths)]
    first = nets[0].config
    for path, net in zip(paths, nets):
        if net.config.members != 1:
            raise WeightsError(f"weights file {path} is already an ensemble ({net.config.members} members)")
        if net.config != first:
            raise WeightsError(f"weights file {path} is for another model configuration than {paths[0]}")
    ensemble = build_model(dataclasses.replace(first, members=len(nets)))
    for member, net in zip(ensemble.members, nets):
        member.load_state_dict(net.state_dict())
    ensemble.eval()
    return ensemble, {"members": [{"file": str(p), **payload.get("metadata", {})}
                                  for p, payload in zip(paths, payloads)]}
