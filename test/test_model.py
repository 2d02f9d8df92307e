"""The network: stride arithmetic, every ablation configuration, ONNX export agreeing with PyTorch, weights files."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from siam_tracker_ros.backends import BackendError
from siam_tracker_ros.backends.onnx_backend import OnnxBackend
from siam_tracker_ros.backends.torch_backend import TorchBackend
from siam_tracker_ros.config import Config, ConfigError, ModelConfig
from siam_tracker_ros.model import WeightsError, build_model, cross_correlate, load_weights, save_weights
from siam_tracker_ros.model.backbone import feature_size

ABLATIONS = {
    "siamfc": dict(use_se=False, use_fusion=False, use_gam=False),
    "-MLFF-GAM": dict(use_se=True, use_fusion=False, use_gam=False),
    "+MLFF-GAM": dict(use_se=True, use_fusion=True, use_gam=False),
    "+MLFF+GAM": dict(use_se=True, use_fusion=True, use_gam=True),
    "siamfc+box head": dict(use_se=False, use_fusion=False, use_gam=False, box_head=True),
    "+MLFF+GAM+box head": dict(use_se=True, use_fusion=True, use_gam=True, box_head=True),
}


@pytest.mark.parametrize("z_size,x_size,kernel", [(127, 255, 6), (191, 319, 14), (255, 383, 22)])
def test_stride_arithmetic_matches_the_paper_sizes(z_size, x_size, kernel):
    # Valid convolutions, total stride 8: every (template, search) pair of the paper gives a 17x17 response.
    assert feature_size(z_size)["conv5"] == kernel
    assert feature_size(x_size)["conv5"] - kernel + 1 == 17
    model = build_model(ModelConfig(width=0.25)).eval()
    with torch.no_grad():
        k = model.template(torch.zeros(1, 3, z_size, z_size))
        r = model.search(torch.zeros(2, 3, x_size, x_size), k.expand(2, -1, -1, -1))
    assert k.shape[2:] == (kernel, kernel)
    assert r.shape == (2, 1, 17, 17)


def test_fusion_pools_shallow_maps_to_conv5_resolution():
    model = build_model(ModelConfig(width=0.25)).eval()
    f3, f4, f5 = model.backbone(torch.zeros(1, 3, 255, 255))
    assert (f3.shape[-1], f4.shape[-1], f5.shape[-1]) == (26, 24, 22)
    assert model.fusion(f3, f4, f5).shape[-1] == 22


class _Correlate(torch.nn.Module):
    def forward(self, x, kernel):
        return cross_correlate(x, kernel)


@pytest.mark.parametrize("feature,kernel", [(22, 6), (30, 14), (38, 22), (7, 7)])
def test_exported_cross_correlation_equals_per_sample_convolution(feature, kernel, tmp_path):
    """The exported form (tap table + Gather) against a plain convolution of each sample with its own kernel, with a
    different kernel per sample and a batch size other than the one exported with."""
    import onnxruntime as ort

    gen = torch.Generator().manual_seed(feature)
    x = torch.randn(2, 5, feature, feature, generator=gen)
    k = torch.randn(2, 5, kernel, kernel, generator=gen)
    path = tmp_path / "xcorr.onnx"
    torch.onnx.export(_Correlate().eval(), (x, k), str(path), input_names=["x", "kernel"], output_names=["out"],
                      dynamic_axes={"x": {0: "b"}, "kernel": {0: "b"}, "out": {0: "b"}}, opset_version=17,
                      dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x3 = torch.randn(3, 5, feature, feature, generator=gen)
    k3 = torch.randn(3, 5, kernel, kernel, generator=gen)
    got = session.run(None, {"x": x3.numpy(), "kernel": k3.numpy()})[0]
    want = torch.cat([torch.nn.functional.conv2d(x3[i:i + 1], k3[i:i + 1]) for i in range(3)]).numpy()
    assert got.shape == want.shape == (3, 1, feature - kernel + 1, feature - kernel + 1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    np.testing.assert_allclose(cross_correlate(x3, k3).numpy(), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


class _DepthwiseCorrelate(torch.nn.Module):
    def forward(self, x, kernel):
        from siam_tracker_ros.model.box_head import depthwise_correlate
        return depthwise_correlate(x, kernel)


@pytest.mark.parametrize("feature,kernel", [(22, 6), (38, 6), (9, 3)])
def test_exported_depthwise_correlation_equals_per_channel_convolution(feature, kernel, tmp_path):
    """The box head's correlation, exported (Gather + Mul + ReduceSum) and eager (grouped convolution), against each
    sample's each channel convolved with its own kernel channel, at a batch size other than the exported one."""
    import onnxruntime as ort

    from siam_tracker_ros.model.box_head import depthwise_correlate

    gen = torch.Generator().manual_seed(feature)
    x = torch.randn(2, 4, feature, feature, generator=gen)
    k = torch.randn(2, 4, kernel, kernel, generator=gen)
    path = tmp_path / "dwxcorr.onnx"
    torch.onnx.export(_DepthwiseCorrelate().eval(), (x, k), str(path), input_names=["x", "kernel"],
                      output_names=["out"], dynamic_axes={"x": {0: "b"}, "kernel": {0: "b"}, "out": {0: "b"}},
                      opset_version=17, dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x3 = torch.randn(3, 4, feature, feature, generator=gen)
    k3 = torch.randn(3, 4, kernel, kernel, generator=gen)
    got = session.run(None, {"x": x3.numpy(), "kernel": k3.numpy()})[0]
    want = torch.stack([torch.stack([torch.nn.functional.conv2d(x3[i:i + 1, c:c + 1], k3[i:i + 1, c:c + 1])[0, 0]
                                     for c in range(4)]) for i in range(3)]).numpy()
    assert got.shape == want.shape == (3, 4, feature - kernel + 1, feature - kernel + 1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    np.testing.assert_allclose(depthwise_correlate(x3, k3).numpy(), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_each_ablation_builds_runs_and_exports(name, tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.25, **ABLATIONS[name])).eval()
    assert (model.se is not None) == ABLATIONS[name]["use_se"]
    assert (model.fusion is not None) == ABLATIONS[name]["use_fusion"]
    assert (model.gam is not None) == ABLATIONS[name]["use_gam"]
    rng = np.random.default_rng(0)
    z = rng.uniform(0, 255, (1, 3, 127, 127)).astype(np.float32)
    x = rng.uniform(0, 255, (3, 3, 255, 255)).astype(np.float32)
    ref = TorchBackend(model)
    onnx = OnnxBackend(model, onnx_dir=tmp_path)
    k_ref, k_onnx = ref.template(z), onnx.template(z)
    np.testing.assert_allclose(k_onnx, k_ref, rtol=1e-4, atol=1e-4 * np.abs(k_ref).max())
    kernel = np.repeat(k_ref, 3, axis=0)
    r_ref, r_onnx = ref.search(x, kernel), onnx.search(x, kernel)
    channels = 6 if ABLATIONS[name].get("box_head") else 1
    assert r_ref.shape == (3, channels, 17, 17) and onnx.output_channels == channels
    # Each output channel against its own range: the response logits and the side distances differ in scale.
    for c in range(channels):
        np.testing.assert_allclose(r_onnx[:, c], r_ref[:, c], rtol=1e-4, atol=1e-4 * np.abs(r_ref[:, c]).max())


def test_gam_starts_close_to_identity():
    # The attention biases start so that A ~ 1: the fused features pass through at initialisation.
    model = build_model(ModelConfig(width=0.25)).eval()
    u = torch.randn(1, model.main_channels, 6, 6)
    with torch.no_grad():
        a = model.gam.attention(u)
    assert float(a.mean()) > 0.9


def test_weights_round_trip_and_errors(tmp_path):
    model = build_model(ModelConfig(width=0.25))
    path = tmp_path / "w.pt"
    save_weights(model, path, metadata={"note": "test"})
    loaded = load_weights(path, expected=ModelConfig(width=0.25))
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)

    with pytest.raises(WeightsError, match="does not exist"):
        load_weights(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="corrupt"):
        load_weights(corrupt)
    with pytest.raises(WeightsError, match=r"another model configuration: width=0.25 in the file, 0.5 expected"):
        load_weights(path, expected=ModelConfig(width=0.5))
    foreign = tmp_path / "foreign.pt"
    torch.save(model.state_dict(), foreign)  # a bare state dict is not our format
    with pytest.raises(WeightsError, match="not a siam_tracker_ros weights file"):
        load_weights(foreign)


def test_ensemble_of_trained_networks_averages_them_and_exports(tmp_path):
    from siam_tracker_ros.model.weights import combine_weights

    paths = []
    for seed in range(3):  # three "runs" of one configuration
        torch.manual_seed(seed)
        paths.append(tmp_path / f"run{seed}.pt")
        save_weights(build_model(ModelConfig(width=0.25)), paths[-1], metadata={"seed": seed})
    ens, meta = combine_weights(paths)
    assert ens.config.members == 3 and [m["seed"] for m in meta["members"]] == [0, 1, 2]
    singles = [load_weights(p) for p in paths]
    assert ens.kernel_channels == 3 * singles[0].kernel_channels
    rng = np.random.default_rng(1)
    z = torch.from_numpy(rng.uniform(0, 255, (1, 3, 127, 127)).astype(np.float32))
    x = torch.from_numpy(rng.uniform(0, 255, (2, 3, 255, 255)).astype(np.float32))
    with torch.no_grad():
        alone = [m.search(x, m.template(z).expand(2, -1, -1, -1)) for m in singles]
        together = ens.search(x, ens.template(z).expand(2, -1, -1, -1))
    assert not torch.allclose(alone[0], alone[1])
    torch.testing.assert_close(together, torch.stack(alone).mean(0), rtol=1e-5, atol=1e-6)
    # ONNX Runtime runs the whole ensemble as one network with a wider kernel
    onnx = OnnxBackend(ens, onnx_dir=tmp_path / "onnx")
    r = onnx.search(x.numpy(), onnx.template(z.numpy()).repeat(2, axis=0))
    np.testing.assert_allclose(r, together.numpy(), rtol=1e-4, atol=1e-4 * float(together.abs().max()))
    # the weights file carries the member count; `siam-tracker ensemble` writes the same one
    save_weights(ens, tmp_path / "ens.pt", metadata=meta)
    from siam_tracker_ros.cli import main
    assert main(["ensemble", *map(str, paths), "--out", str(tmp_path / "cli.pt")]) == 0
    for a, b in zip(ens.state_dict().values(), load_weights(tmp_path / "cli.pt").state_dict().values()):
        assert torch.equal(a, b)
    loaded = load_weights(tmp_path / "ens.pt", expected=ModelConfig(width=0.25, members=3))
    for a, b in zip(ens.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(WeightsError, match="members=3 in the file, 1 expected"):
        load_weights(tmp_path / "ens.pt", expected=ModelConfig(width=0.25))
    # members must share one configuration, be single networks, and be at least two
    save_weights(build_model(ModelConfig(width=0.5)), tmp_path / "wide.pt")
    with pytest.raises(WeightsError, match="another model configuration"):
        combine_weights([paths[0], tmp_path / "wide.pt"])
    with pytest.raises(WeightsError, match="already an ensemble"):
        combine_weights([tmp_path / "ens.pt", paths[0]])
    with pytest.raises(WeightsError, match="at least two"):
        combine_weights(paths[:1])
    with pytest.raises(ConfigError, match="model.members"):
        ModelConfig(members=0).validate()


def test_onnx_graph_that_does_not_match_is_named(tmp_path):
    small = build_model(ModelConfig(width=0.25)).eval()
    other = build_model(ModelConfig(width=0.5)).eval()
    # Graphs exported for the 0.5 model, presented as if they were the 0.25 model's.
    from siam_tracker_ros.backends.export import export_search, export_template, write_manifest
    export_template(other, 127, tmp_path)
    export_search(other, 255, 6, tmp_path)
    write_manifest(small, tmp_path)
    backend = OnnxBackend(None, onnx_dir=tmp_path)
    kernel = TorchBackend(small).template(np.zeros((1, 3, 127, 127), np.float32))
    with pytest.raises(BackendError, match=r"search_x255_k6.onnx does not match"):
        backend.search(np.zeros((1, 3, 255, 255), np.float32), kernel)
    with pytest.raises(BackendError, match="is missing"):
        backend.template(np.zeros((1, 3, 191, 191), np.float32))


def test_config_yaml_round_trip_and_errors(tmp_path):
    cfg = Config()
    cfg.tracking.window_influence = 0.2
    path = tmp_path / "c.yaml"
    cfg.save(path)
    assert Config.load(path) == cfg
    path.write_text("tracking:\n  window_influenc: 0.3\n")
    with pytest.raises(ConfigError, match="unknown key.*tracking.window_influenc"):
        Config.load(path)
    path.write_text("tracking:\n  num_scales: 2\n")
    with pytest.raises(ConfigError, match="num_scales"):
        Config.load(path)
    assert dataclasses.asdict(Config.from_dict({})) == dataclasses.asdict(Config())
