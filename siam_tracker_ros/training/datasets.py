"""The data set readers live in `siam_tracker_ros.data` (training, evaluation, bench, demo and tests share them);
this module only keeps the training modules' import path."""
from ..data.sequences import *  # noqa: F401,F403
