"""SpecAugment-style time and frequency masking, drawn independently for every sample.

Each sample of a batch gets its own ``time_masks`` bands of up to ``max_time`` frames and
``freq_masks`` bands of up to ``max_freq`` mel bins set to zero (the mean after mean
normalisation), all drawn in one vectorised call, not one mask shared by the batch.
"""

import torch
import torch.nn as nn


class PerSampleSpecAugment(nn.Module):
    """Random time and frequency masks on ``(batch, frames, bins)`` features, in training only.

    Example
    -------
    >>> augment = PerSampleSpecAugment(time_masks=1, max_time=5, freq_masks=1, max_freq=4)
    >>> out = augment(torch.ones(2, 50, 20))
    >>> out.shape, bool((out == 0).any())
    (torch.Size([2, 50, 20]), True)
    """

    def __init__(self, time_masks: int = 2, max_time: int = 10, freq_masks: int = 2,
                 max_freq: int = 8):
        super().__init__()
        self.time_masks, self.max_time = time_masks, max_time
        self.freq_masks, self.max_freq = freq_masks, max_freq

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Return ``feats`` with masked bands (unchanged in eval mode)."""
        if not self.training:
            return feats
        keep = _bands(feats.shape[0], feats.shape[1], self.time_masks, self.max_time,
                      feats.device).unsqueeze(2)
        keep = keep & _bands(feats.shape[0], feats.shape[2], self.freq_masks, self.max_freq,
                             feats.device).unsqueeze(1)
        return feats * keep


def _bands(batch: int, size: int, count: int, max_width: int,
           device: torch.device) -> torch.Tensor:
    """Boolean ``(batch, size)``: False inside ``count`` random bands per sample."""
    if count == 0 or max_width == 0:
        return torch.ones(batch, size, dtype=torch.bool, device=device)
    widths = torch.randint(0, max_width + 1, (batch, count, 1), device=device)
    starts = (torch.rand(batch, count, 1, device=device) * (size - widths + 1)).long()
    positions = torch.arange(size, device=device)
    inside = (positions >= starts) & (positions < starts + widths)
    return ~inside.any(dim=1)
