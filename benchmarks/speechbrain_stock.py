"""SpeechBrain's stock ECAPA-TDNN and features as modules our training recipe can train, for
``bench_demo_vs_speechbrain.py``: the same recipe, data and budget with SpeechBrain's model.

``SpeechBrainFrontend`` is ``Fbank`` then sentence-level mean normalisation, called like
``MelFrontend(wavs, lengths)``; ``SpeechBrainStockECAPA`` is SpeechBrain's ``ECAPA_TDNN``
unchanged. Each carries the ``config`` of its equivalent in ``custom_modules`` (same features,
same state-dict keys), so our exporter writes a folder that loads through our modules. Integer
lengths are turned into SpeechBrain's relative lengths (its padding behaviour).
"""

import torch
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN as SpeechBrainECAPA
from speechbrain.processing.features import InputNormalization

from custom_modules.interop.speechbrain import ecapa_config, frontend_config


class SpeechBrainFrontend(torch.nn.Module):
    """SpeechBrain's recipe features as one module; ``config`` holds the equivalent
    ``MelFrontend`` arguments."""

    def __init__(self, n_mels: int = 80, sample_rate: int = 16000):
        super().__init__()
        self.fbank = Fbank(n_mels=n_mels, sample_rate=sample_rate)
        self.normalization = InputNormalization(norm_type="sentence", std_norm=False)

    @property
    def config(self) -> dict:
        return frontend_config(self.fbank, self.normalization)

    def frame_counts(self, samples: torch.Tensor) -> torch.Tensor:
        """Frames of each row for integer sample counts (as ``MelFrontend.frame_counts``)."""
        return 1 + torch.div(samples, self.fbank.compute_STFT.hop_length, rounding_mode="floor")

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            lengths = torch.ones(len(wavs), device=wavs.device)
        elif not lengths.is_floating_point():
            lengths = lengths / wavs.shape[1]
        return self.normalization(self.fbank(wavs), lengths)


class SpeechBrainStockECAPA(SpeechBrainECAPA):
    """SpeechBrain's stock ``ECAPA_TDNN`` with the ``config`` of the equivalent
    ``custom_modules`` model."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.config = ecapa_config(self)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is not None and not lengths.is_floating_point():
            lengths = lengths / x.shape[1]
        return super().forward(x, lengths)
