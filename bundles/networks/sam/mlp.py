"""The two small MLPs of SAM: the transformer feed-forward block and the hypernetwork / IoU heads."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FeedForward", "MLP"]


class FeedForward(nn.Module):
    """``lin2(act(lin1(x)))`` on (..., dim): SAM's ``MLPBlock`` (keys ``lin1``, ``lin2``).

    GELU in the image encoder, ReLU in the two-way transformer (segment-anything ``common.py`` /
    ``transformer.py``).
    """

    def __init__(self, dim: int, hidden_dim: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden_dim)
        self.lin2 = nn.Linear(hidden_dim, dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them (keys ``layers.0``, ``layers.1``, ...).

    The mask decoder's hypernetworks (dim -> dim -> dim -> dim/8) and IoU head (dim -> 256 -> 256 -> 4).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x
