"""Channel-dependent attentive statistics pooling (ECAPA-TDNN, section 2.3).

Every channel gets its own softmax over time; the pooled vector is the attention-weighted
mean and standard deviation of each channel. Padded frames get exactly zero weight.
"""

from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from custom_modules.models.layers import SameConv1d, TDNNBlock


def weighted_statistics(x: torch.Tensor, weights: torch.Tensor,
                        eps: float = 1e-12) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean and standard deviation over time.

    Arguments
    ---------
    x : torch.Tensor
        ``(batch, channels, frames)``.
    weights : torch.Tensor
        ``(batch, channels or 1, frames)``, summing to one over frames.
    eps : float
        Floor on the variance, so that the gradient of the square root stays finite.

    Returns
    -------
    mean, std : torch.Tensor
        Each ``(batch, channels)``.

    Example
    -------
    >>> x = torch.tensor([[[1.0, 3.0, 100.0]]])
    >>> weighted_statistics(x, torch.tensor([[[0.5, 0.5, 0.0]]]))
    (tensor([[2.]]), tensor([[1.]]))
    """
    mean = (weights * x).sum(dim=2)
    variance = (weights * (x - mean.unsqueeze(2)).pow(2)).sum(dim=2)
    return mean, variance.clamp(min=eps).sqrt()


class AttentiveStatisticsPooling(nn.Module):
    """Attentive statistics pooling with optional global context.

    With ``global_context`` the attention network also sees the utterance-level mean and
    standard deviation of every channel (computed over valid frames), appended to each frame.

    Arguments
    ---------
    channels : int
        Channels of the frame-level input.
    attention_channels : int
        Width of the attention bottleneck.
    global_context : bool
        Whether the attention sees utterance-level statistics.

    Example
    -------
    >>> pool = AttentiveStatisticsPooling(64, attention_channels=16).eval()
    >>> mask = torch.ones(2, 1, 30)
    >>> mask[1, :, 15:] = 0
    >>> stats, weights = pool(torch.randn(2, 64, 30), mask)
    >>> stats.shape, weights.shape
    (torch.Size([2, 128, 1]), torch.Size([2, 64, 30]))
    >>> bool((weights[1, :, 15:] == 0).all())
    True
    """

    def __init__(self, channels: int, attention_channels: int = 128,
                 global_context: bool = True):
        super().__init__()
        self.eps = 1e-12
        self.global_context = global_context
        context_channels = channels * 3 if global_context else channels
        self.tdnn = TDNNBlock(context_channels, attention_channels, 1, 1)
        self.tanh = nn.Tanh()
        self.conv = SameConv1d(attention_channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor,
                mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pool frames into one vector per utterance.

        Arguments
        ---------
        x : torch.Tensor
            ``(batch, channels, frames)`` frame-level features.
        mask : torch.Tensor
            ``(batch, 1, frames)``, 1 for valid frames and 0 for padding; every row must have
            at least one valid frame.

        Returns
        -------
        stats : torch.Tensor
            ``(batch, 2 * channels, 1)``: the weighted means, then the weighted stds.
        weights : torch.Tensor
            ``(batch, channels, frames)`` attention weights, summing to one over valid frames.
        """
        if self.global_context:
            hidden = self._attention_with_context(x, mask)
        else:
            hidden = self.tdnn(x)
        scores = self.conv(self.tanh(hidden))
        scores = scores.masked_fill(mask == 0, float("-inf"))
        weights = torch.softmax(scores, dim=2)
        mean, std = weighted_statistics(x, weights, self.eps)
        return torch.cat([mean, std], dim=1).unsqueeze(2), weights

    def _attention_with_context(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``self.tdnn`` applied to ``[x; mean; std]`` (the global context appended to every
        frame), without building that tensor: the 1x1 convolution splits into a per-frame
        product with ``x`` and a per-utterance product with the statistics, which are the same
        for every frame. Same function, a third of the multiplications."""
        uniform = mask / mask.sum(dim=2, keepdim=True)
        mean, std = weighted_statistics(x, uniform, self.eps)
        conv = self.tdnn.conv.conv
        frame_weight, mean_weight, std_weight = conv.weight.squeeze(2).split(x.shape[1], dim=1)
        utterance = F.linear(mean, mean_weight, conv.bias) + F.linear(std, std_weight)
        hidden = torch.matmul(frame_weight, x) + utterance.unsqueeze(2)
        return self.tdnn.dropout(self.tdnn.norm(self.tdnn.activation(hidden)))
