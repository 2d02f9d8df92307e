"""NanoTrack-family networks (v2, v3) through ONNX Runtime, on the user's own ONNX pair (backbone + head).

The public files (../shared/peers/README.md says where they come from; Apache-2.0) are a MobileNetV3 backbone, the
same for template (127 px -> C x 8 x 8) and search (255 px -> C x 16 x 16), and a head that correlates the two and
gives, per point of an n x n grid at stride 16, two class logits (background, target) and the distances from the
point to the box's four sides (left, top, right, bottom; search-crop pixels, already positive).

The files declare a fixed 1 x 3 x 255 x 255 input; the networks are fully convolutional. They are made batchable
here, in memory (the files are never changed): every graph input and output gets a free batch dimension, the
backbone's spatial dimensions become free (the template is 127 px), and the reshapes that spell out batch 1 copy the
batch instead. v2's head then takes a whole batch of (template, search) pairs; v3's head turns each template into a
convolution weight, so it runs once per pair (its backbone still runs once for the batch).

The search runs as one graph, the backbone's output wired into the head and the two outputs joined (search_graph):
one ONNX Runtime call and one thread pool per frame instead of two, which measured 0.3-0.7 ms less per update of
one target with 2 threads on a 2-core machine (docs/results.md, NanoTrack). The backbone alone stays a session of
its own for the template. v3's joined graph takes one pair per call; a batch of v3 crops goes the two-graph way.

Backend contract (backends/base.py): template(z) -> features (N, C, 8, 8); search(x, features) -> (B, 6, n, n):
channels 0-1 the class logits (background, target), 2-5 the side distances l, t, r, b. Crops are float32 NCHW pixel
values 0-255 in the channel order the tracker chose (tracking/nanotrack.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import Backend, BackendError, file_sha256  # noqa: F401 (file_sha256: one import place for the family)


@dataclass(frozen=True)
class NanoTrackFamily:
    name: str  # nanotrack_v2 | nanotrack_v3
    backbone_file: str
    head_file: str
    channels: int  # feature channels of the backbone's output
    head_batches: bool  # whether the head's graph takes a batch of pairs (see the module notes)
    # Tensor names and shapes that identify the public PyTorch checkpoint (model/nanotrack_convert.py checks them)
    checkpoint_keys: dict


FAMILIES = {
    "nanotrack_v2": NanoTrackFamily(
        "nanotrack_v2", "nanotrack_backbone_sim.onnx", "nanotrack_head_sim.onnx", 48, True,
        {"backbone.features.8.conv.7.weight": (48, 144, 1, 1), "neck.downsample.0.weight": (64, 64, 1, 1),
         "ban_head.cls_pred.0.weight": (2, 96, 1, 1), "ban_head.bbox_pred.0.weight": (4, 96, 1, 1)}),
    "nanotrack_v3": NanoTrackFamily(
        "nanotrack_v3", "nanotrack_backbone.onnx", "nanotrack_head.onnx", 96, False,
        {"backbone.features.9.conv.7.weight": (96, 288, 1, 1), "neck.downsample.0.weight": (96, 96, 1, 1),
         "ban_head.cls_logits.0.weight": (2, 96, 1, 1), "ban_head.bbox_pred.0.weight": (4, 96, 1, 1)}),
}
OUTPUT_CHANNELS = 6  # class logits (2) + side distances (4)
CONVERTED_SUFFIX = ".nanotrack"  # cache folders of converted files: <sha256 of the file>.nanotrack


def pair_family(folder: str | Path) -> NanoTrackFamily | None:
    """The family whose ONNX pair (by its public file names) lies in `folder`, or None."""
    folder = Path(folder)
    for family in FAMILIES.values():
        if (folder / family.backbone_file).is_file() and (folder / family.head_file).is_file():
            return family
    return None


def batchable(model_bytes: bytes, free_spatial: bool) -> bytes:
    """The graph with a free batch dimension (and free spatial dimensions of its image input and output when
    `free_spatial`), its batch-1 reshapes copying the batch instead (module notes). Returns serialized ONNX."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[0].dim_param = "batch"
        if free_spatial and len(dims) == 4:
            dims[2].dim_param, dims[3].dim_param = f"{value.name}_h", f"{value.name}_w"
    del graph.value_info[:]  # shapes inferred for batch 1 would contradict the free batch
    shapes = {init.name: init for init in graph.initializer}
    constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    for node in graph.node:
        if node.op_type != "Reshape":
            continue
        name = node.input[1]
        if name in shapes:
            value = numpy_helper.to_array(shapes[name])
        elif name in constants:
            value = numpy_helper.to_array(constants[name].attribute[0].t)
        else:
            continue
        # A leading 1 is the batch spelt out; a shape not led by 1 (v3's template-as-weight) stays as it is.
        if value.ndim == 1 and value.size >= 2 and value[0] == 1:
            fixed = numpy_helper.from_array(np.concatenate([[0], value[1:]]).astype(value.dtype), name)
            if name in shapes:
                shapes[name].CopyFrom(fixed)
            else:
                constants[name].attribute[0].t.CopyFrom(fixed)
    return model.SerializeToString()


SEARCH_INPUTS = ("crops", "template")  # the joined search graph's inputs, and its one output
SEARCH_OUTPUT = "scores_and_sides"


def search_graph(backbone: bytes, head: bytes) -> bytes:
    """One graph for the search (module notes): inputs SEARCH_INPUTS (search crops (B, 3, 255, 255), template
    features (B, C, 8, 8)), output SEARCH_OUTPUT (B, 6, n, n): the head's class logits and side distances joined.
    `backbone` and `head` are serialized graphs as batchable() gives them. Returns serialized ONNX."""
    import onnx
    from onnx import compose, helper

    named = ((backbone, "backbone/"), (head, "head/"))
    parts = [compose.add_prefix(onnx.load_from_string(b), prefix) for b, prefix in named]
    image, template = parts[0].graph.input[0].name, parts[1].graph.input[0].name
    joined = compose.merge_models(parts[0], parts[1], io_map=[(parts[0].graph.output[0].name,
                                                               parts[1].graph.input[1].name)])
    graph = joined.graph
    outputs = [o.name for o in graph.output]
    graph.node.append(helper.make_node("Concat", outputs, [SEARCH_OUTPUT], axis=1))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(SEARCH_OUTPUT, onnx.TensorProto.FLOAT, None))
    for value in graph.input:
        value.name = {image: SEARCH_INPUTS[0], template: SEARCH_INPUTS[1]}.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [{image: SEARCH_INPUTS[0], template: SEARCH_INPUTS[1]}.get(n, n) for n in node.input]
    return joined.SerializeToString()


class NanoTrackOnnxBackend(Backend):
    """A NanoTrack ONNX pair in ONNX Runtime (module notes). `folder` holds the pair under the public names; or give
    `backbone` and `head` as bytes (a converted weights file's copy) and `family`."""

    name = "onnxruntime"
    output_channels = OUTPUT_CHANNELS

    def __init__(self, folder: str | Path | None = None, family: str | None = None, backbone: bytes | None = None,
                 head: bytes | None = None, device: str = "cpu", num_threads: int = 0,
                 allow_spinning: bool = False):
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise BackendError(f"backend onnxruntime asked for, but onnxruntime is not installed: {err}") from None
        from .onnx_backend import execution_providers, session_options

        if folder is not None:
            found = pair_family(folder)
            if found is None:
                names = "; ".join(f"{f.backbone_file} + {f.head_file} ({f.name})" for f in FAMILIES.values())
                raise BackendError(f"{folder} holds no NanoTrack ONNX pair: expected {names}")
            if family is not None and family != found.name:
                raise BackendError(f"{folder} holds the {found.name} pair, not {family}")
            self.family = found
            backbone = (Path(folder) / found.backbone_file).read_bytes()
            head = (Path(folder) / found.head_file).read_bytes()
            self.source = str(folder)
        else:
            if family not in FAMILIES or backbone is None or head is None:
                raise BackendError("NanoTrackOnnxBackend needs a folder with the ONNX pair, or both graphs and the "
                                   f"family ({', '.join(FAMILIES)})")
            self.family = FAMILIES[family]
            self.source = "bytes"
        self.providers = execution_providers(device)
        if device == "cuda":
            self.name = "onnxruntime-cuda"
        self.device = device
        self.allow_spinning = allow_spinning
        self.kernel_channels = self.family.channels
        options = session_options(ort, num_threads, allow_spinning)
        try:
            backbone = batchable(backbone, free_spatial=True)
            head = batchable(head, free_spatial=False) if self.family.head_batches else head
            self._backbone = ort.InferenceSession(backbone, options, providers=self.providers)
            self._head = ort.InferenceSession(head, options, providers=self.providers)
            self._search = ort.InferenceSession(search_graph(backbone, head), options, providers=self.providers)
        except BackendError:
            raise
        except Exception as err:
            raise BackendError(f"the {self.family.name} ONNX pair ({self.source}) cannot be loaded: {err}") from None
        self._backbone_input = self._backbone.get_inputs()[0].name
        self._head_inputs = [i.name for i in self._head.get_inputs()]
        if len(self._head_inputs) != 2:
            raise BackendError(f"the {self.family.name} head has inputs {self._head_inputs}, expected two "
                               "(template features, search features)")
        self._head_outputs = [o.name for o in self._head.get_outputs()]

    def describe(self) -> str:
        return f"{self.family.name} {self.name} on {self.device}"

    def features(self, x: np.ndarray) -> np.ndarray:
        """The backbone on a batch of crops (N, 3, H, W) -> (N, C, H/16, W/16)."""
        self.check_inputs(x)
        return self._backbone.run(None, {self._backbone_input: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def template(self, z: np.ndarray) -> np.ndarray:
        return self.features(z)

    def search(self, x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        self.check_inputs(x, kernel)
        if not self.family.head_batches and len(x) > 1:
            return self.head(kernel, self.features(x))
        self._check_kernel(kernel, len(x))
        return self._search.run(None, {SEARCH_INPUTS[0]: np.ascontiguousarray(x, dtype=np.float32),
                                       SEARCH_INPUTS[1]: np.ascontiguousarray(kernel, dtype=np.float32)})[0]

    def _check_kernel(self, kernel: np.ndarray, batch: int) -> None:
        if kernel.ndim != 4 or kernel.shape[1] != self.kernel_channels or kernel.shape[0] != batch:
            raise BackendError(f"template features {kernel.shape} for {batch} search crops: {self.family.name} "
                               f"expects {self.kernel_channels} channels, one template per search crop")

    def head(self, kernel: np.ndarray, xf: np.ndarray) -> np.ndarray:
        """The head on template features (B, C, 8, 8) and search features (B, C, 16, 16) -> (B, 6, n, n)."""
        self._check_kernel(kernel, xf.shape[0])
        kernel = np.ascontiguousarray(kernel, dtype=np.float32)
        if self.family.head_batches:
            cls, box = self._head.run(self._head_outputs, {self._head_inputs[0]: kernel, self._head_inputs[1]: xf})
        else:
            parts = [self._head.run(self._head_outputs, {self._head_inputs[0]: kernel[i:i + 1],
                                                         self._head_inputs[1]: xf[i:i + 1]})
                     for i in range(len(xf))]
            cls = np.concatenate([p[0] for p in parts])
            box = np.concatenate([p[1] for p in parts])
        return np.concatenate([cls, box], axis=1)


def write_pair_cache(folder: Path, family: str, backbone: bytes, head: bytes, origin: str) -> Path:
    """The ONNX pair of a converted weights file, unpacked into `folder` (written atomically) with a manifest."""
    fam = FAMILIES[family]
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in ((fam.backbone_file, backbone), (fam.head_file, head)):
        tmp = folder / (name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(folder / name)
    (folder / "manifest.json").write_text(json.dumps({"family": family, "origin": origin}, indent=2))
    return folder
