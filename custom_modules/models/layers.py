"""Time-delay layers shared by the ECAPA-TDNN blocks, with SpeechBrain's state-dict layout.

SpeechBrain wraps ``nn.Conv1d`` and ``nn.BatchNorm1d`` in modules that hold them as ``.conv``
and ``.norm``; keeping the same nesting keeps the parameter names (``blocks.0.conv.conv.weight``,
``blocks.0.norm.norm.running_mean``, ...) so weights move between the two without renaming.

All tensors here are channels-first: ``x: (batch, channels, frames)``.
"""

from typing import Optional, Type

import torch
import torch.nn as nn
import torch.nn.functional as F

from custom_modules.errors import InputError


def frame_mask(lengths: Optional[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Mask ``(batch, 1, frames)`` of the frames of ``x: (batch, channels, frames)`` that lie
    inside each utterance, in ``x``'s dtype.

    Frame ``t`` is valid when ``t < lengths * frames`` (SpeechBrain's ``length_to_mask``
    convention for relative lengths); ``lengths=None`` means every frame is valid. Pass
    ``lengths`` as a long tensor of frame counts to give them exactly.

    >>> frame_mask(torch.tensor([1.0, 0.5]), torch.zeros(2, 3, 4)).squeeze(1)
    tensor([[1., 1., 1., 1.],
            [1., 1., 0., 0.]])
    """
    batch, num_frames = x.shape[0], x.shape[2]
    if lengths is None:
        return torch.ones(batch, 1, num_frames, device=x.device, dtype=x.dtype)
    if not lengths.is_floating_point():
        valid = torch.arange(num_frames, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
        return valid.to(x.dtype).unsqueeze(1)
    positions = torch.arange(num_frames, device=x.device, dtype=lengths.dtype)
    valid = positions.unsqueeze(0) < (lengths * num_frames).unsqueeze(1)
    return valid.to(x.dtype).unsqueeze(1)


def reflect_index(frames: torch.Tensor, size: int, padding: int) -> torch.Tensor:
    """Source positions ``(batch, size + 2 * padding)`` of a reflect padding that mirrors each
    row at its first and at its own last valid frame (``frames[b] - 1``).

    >>> reflect_index(torch.tensor([4, 3]), 4, 2)
    tensor([[2, 1, 0, 1, 2, 3, 2, 1],
            [2, 1, 0, 1, 2, 1, 0, 0]])
    """
    positions = torch.arange(-padding, size + padding, device=frames.device).abs()
    last = (frames - 1).unsqueeze(1)
    return torch.where(positions > last, 2 * last - positions, positions).clamp(0, size - 1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over time of ``x: (batch, channels, frames)`` using only frames where ``mask`` is 1.

    Returns ``(batch, channels, 1)``.
    """
    return (x * mask).sum(dim=2, keepdim=True) / mask.sum(dim=2, keepdim=True)


class SameConv1d(nn.Module):
    """1-D convolution whose output has as many frames as its input.

    The input is reflect-padded by ``dilation * (kernel_size - 1) // 2`` frames on each side, as
    SpeechBrain's ``Conv1d(padding="same")`` does. ``kernel_size`` must be odd.

    Arguments
    ---------
    in_channels, out_channels : int
        Channels in and out.
    kernel_size, dilation, groups : int
        As in ``nn.Conv1d``.

    Example
    -------
    >>> SameConv1d(8, 4, kernel_size=3, dilation=2)(torch.randn(2, 8, 50)).shape
    torch.Size([2, 4, 50])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 dilation: int = 1, groups: int = 1):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise InputError(f"SameConv1d: kernel_size must be a positive odd number, "
                             f"got {kernel_size}")
        self.padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size,
                              dilation=dilation, groups=groups)

    def forward(self, x: torch.Tensor, frames: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x: (batch, in_channels, frames)`` -> ``(batch, out_channels, frames)``.

        With ``frames`` (valid frames per row) each row is reflected at its own last valid
        frame instead of the batch's, so valid outputs do not depend on the padding.
        """
        if self.padding > 0 and frames is None:
            x = F.pad(x, (self.padding, self.padding), mode="reflect")
        elif self.padding > 0:
            index = reflect_index(frames, x.shape[2], self.padding)
            x = x.gather(2, index.unsqueeze(1).expand(-1, x.shape[1], -1))
        return self.conv(x)


class ChannelBatchNorm(nn.Module):
    """Batch normalisation over the channel axis of ``(batch, channels, frames)``, kept as
    ``.norm`` so that the parameter names match SpeechBrain's ``BatchNorm1d`` wrapper."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (batch, channels, frames)`` -> same shape."""
        return self.norm(x)


class TDNNBlock(nn.Module):
    """Time-delay layer: convolution -> activation -> batch norm -> channel dropout.

    Arguments
    ---------
    in_channels, out_channels : int
        Channels in and out.
    kernel_size, dilation : int
        Temporal context of the convolution (odd kernel, "same" length output).
    activation : type
        Activation class, instantiated once (default ``nn.ReLU``).
    groups : int
        Convolution groups.
    dropout : float
        Probability of dropping whole channels during training.

    Example
    -------
    >>> TDNNBlock(80, 32, kernel_size=5, dilation=1)(torch.randn(2, 80, 100)).shape
    torch.Size([2, 32, 100])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int,
                 activation: Type[nn.Module] = nn.ReLU, groups: int = 1, dropout: float = 0.0):
        super().__init__()
        self.conv = SameConv1d(in_channels, out_channels, kernel_size, dilation, groups)
        self.activation = activation()
        self.norm = ChannelBatchNorm(out_channels)
        self.dropout = nn.Dropout1d(p=dropout)

    def forward(self, x: torch.Tensor, frames: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x: (batch, in_channels, frames)`` -> ``(batch, out_channels, frames)``."""
        return self.dropout(self.norm(self.activation(self.conv(x, frames))))
