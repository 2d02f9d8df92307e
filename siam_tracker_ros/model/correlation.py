"""Index tables of a valid correlation, for the exported graphs' Gather form of it (model/siamese.py's response,
model/box_head.py's depth-wise correlation): no convolution with runtime weights, the batch dimension left free."""
from __future__ import annotations

import torch


def window_cells(height: int, width: int, h: int, w: int) -> torch.Tensor:
    """(out_h * out_w, h * w) flat indices into a (height * width) feature map: output cell (y, x) of a valid
    correlation with an h x w kernel reads, for each kernel tap (i, j), feature cell (y + i, x + j)."""
    out_h, out_w = height - h + 1, width - w + 1
    y = torch.arange(out_h).view(-1, 1, 1, 1)
    x = torch.arange(out_w).view(1, -1, 1, 1)
    i = torch.arange(h).view(1, 1, -1, 1)
    j = torch.arange(w).view(1, 1, 1, -1)
    return ((y + i) * width + (x + j)).reshape(out_h * out_w, h * w)
