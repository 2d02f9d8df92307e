"""File names of the exported graphs (one per input size), shared by the exporter and the backends that read them
without importing torch."""


def template_graph_name(exemplar_size: int) -> str:
    return f"template_z{exemplar_size}.onnx"


def search_graph_name(instance_size: int, kernel_size: int) -> str:
    return f"search_x{instance_size}_k{kernel_size}.onnx"
