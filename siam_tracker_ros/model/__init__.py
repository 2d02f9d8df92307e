"""The network: backbone, neck (fusion, attention) and the Siamese head. Pure PyTorch."""
from .siamese import SiamEnsemble, SiamNet, TrackerNet, build_model, cross_correlate
from .weights import WeightsError, load_weights, save_weights

__all__ = ["SiamEnsemble", "SiamNet", "TrackerNet", "build_model", "cross_correlate", "WeightsError", "load_weights",
           "save_weights"]
