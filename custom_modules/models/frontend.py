"""Log-mel frontend: waveform -> (optionally mean-normalised) log-mel filterbank energies.

With its defaults ``MelFrontend`` computes what SpeechBrain's VoxCeleb recipe feeds ECAPA-TDNN:
``speechbrain.lobes.features.Fbank(n_mels=80)`` (16 kHz, 25 ms / 10 ms Hamming frames,
n_fft 400, 80 triangular mel filters from 0 to 8000 Hz, dB with an 80 dB floor below each
utterance's peak) followed by ``InputNormalization(norm_type="sentence", std_norm=False)``,
so models trained with SpeechBrain can be used through it.
"""

import math

import torch
import torch.nn as nn

from custom_modules.errors import InputError

WINDOWS = {"hamming": torch.hamming_window, "hann": torch.hann_window}


def hz_to_mel(hz: float) -> float:
    """HTK mel scale: ``2595 * log10(1 + hz / 700)``."""
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float,
                   f_max: float) -> torch.Tensor:
    """Triangular mel filters ``(n_fft // 2 + 1, n_mels)`` as SpeechBrain defines them.

    ``n_mels + 2`` points are spaced evenly on the mel scale from ``f_min`` to ``f_max``; filter
    ``m`` is centred on point ``m + 1`` (in Hz) and falls to zero one left-spacing away on each
    side. Computed in float32 in SpeechBrain's order of operations, so that the features match
    its own to rounding. Raises ``InputError`` if a filter covers no FFT bin.

    >>> mel_filterbank(16000, 400, 80, 0.0, 8000.0).shape
    torch.Size([201, 80])
    """
    mels = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)
    hz = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    centre, band = hz[1:-1], hz[1:-1] - hz[:-2]
    bins = torch.linspace(0, sample_rate // 2, n_fft // 2 + 1)
    slope = (bins.unsqueeze(1) - centre) / band
    filters = torch.clamp(torch.minimum(slope + 1.0, 1.0 - slope), min=0.0)
    empty = (filters.sum(dim=0) == 0).nonzero().flatten().tolist()
    if empty:
        raise InputError(
            f"mel filterbank: n_mels={n_mels}, n_fft={n_fft}, sample_rate={sample_rate}, "
            f"f_min={f_min} leaves filters {empty} empty (no FFT bin inside them; bins are "
            f"{sample_rate / n_fft:.1f} Hz apart, the narrowest filter is "
            f"{2 * float(band.min()):.1f} Hz wide): use fewer mels, a larger n_fft or a "
            f"higher f_min")
    return filters


def sentence_normalise(feats: torch.Tensor, valid: torch.Tensor | None,
                       std_norm: bool) -> torch.Tensor:
    """Per-utterance mean (and with ``std_norm`` variance) normalisation of ``feats``
    ``(batch, frames, n_mels)`` over the ``valid`` frames ``(batch, frames)`` (``None``: all),
    as SpeechBrain's sentence ``InputNormalization``."""
    if valid is None:
        valid = torch.ones(feats.shape[0], feats.shape[1], device=feats.device,
                           dtype=torch.bool)
    weights = valid.unsqueeze(2).to(feats.dtype)
    count = weights.sum(dim=1, keepdim=True)
    mean = (feats * weights).sum(dim=1, keepdim=True) / count
    if not std_norm:
        return feats - mean
    variance = ((feats - mean) * weights).pow(2).sum(dim=1, keepdim=True) / count
    return (feats - mean) / variance.sqrt().clamp(min=1e-10)


def valid_positions(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """Boolean ``(batch, size)``: position ``t`` is inside utterance ``b`` when
    ``t < lengths[b] * size`` (SpeechBrain's ``make_padding_mask``, with its 1e-6 tolerance)."""
    positions = torch.arange(size, device=lengths.device)
    return positions.unsqueeze(0) < (lengths * size - 1e-6).unsqueeze(1)


class MelFrontend(nn.Module):
    """Waveforms ``(batch, samples)`` -> log-mel features ``(batch, frames, n_mels)``.

    Pipeline: optional pre-emphasis -> STFT (centred, zero-padded) -> power spectrum -> mel
    filterbank -> dB (``10 log10``, floored at ``amin`` and at ``top_db`` below each
    utterance's maximum) -> optional per-utterance mean (and std) normalisation over the valid
    frames only. Frames count from ``1 + samples // hop``. All constants are buffers.

    Arguments
    ---------
    sample_rate : int
        Expected sample rate of the input in Hz.
    n_fft : int
        FFT size; ``n_fft // 2 + 1`` frequency bins.
    win_length, hop_length : float
        Window and hop in milliseconds.
    n_mels, f_min, f_max : int, float, float
        Number and range of mel filters (``f_max=None`` means ``sample_rate / 2``).
    window : str
        ``"hamming"`` or ``"hann"``.
    pre_emphasis : float
        Coefficient ``a`` of ``y[t] = x[t] - a x[t-1]``; 0 switches it off.
    top_db : float or None
        Dynamic range kept below each utterance's peak; ``None`` keeps everything.
    amin : float
        Floor of the power before the logarithm.
    mean_norm, std_norm : bool
        Subtract each utterance's mean (and divide by its standard deviation) per mel bin.

    Example
    -------
    >>> frontend = MelFrontend()
    >>> frontend(torch.randn(2, 16000), torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 101, 80])
    """

    def __init__(self, sample_rate: int = 16000, n_fft: int = 400, win_length: float = 25.0,
                 hop_length: float = 10.0, n_mels: int = 80, f_min: float = 0.0,
                 f_max: float | None = None, window: str = "hamming", pre_emphasis: float = 0.0,
                 top_db: float | None = 80.0, amin: float = 1e-10, mean_norm: bool = True,
                 std_norm: bool = False):
        super().__init__()
        self.config = {"sample_rate": sample_rate, "n_fft": n_fft, "win_length": win_length,
                       "hop_length": hop_length, "n_mels": n_mels, "f_min": f_min,
                       "f_max": f_max, "window": window, "pre_emphasis": pre_emphasis,
                       "top_db": top_db, "amin": amin, "mean_norm": mean_norm,
                       "std_norm": std_norm}
        f_max = sample_rate / 2 if f_max is None else f_max
        self.win_samples = int(round(sample_rate * win_length / 1000))
        self.hop_samples = int(round(sample_rate * hop_length / 1000))
        problems = {
            f"sample_rate={sample_rate} must be positive": sample_rate <= 0,
            f"hop_length={hop_length} ms gives no samples": self.hop_samples < 1,
            f"win_length={win_length} ms must give 1 to n_fft={n_fft} samples":
                not 1 <= self.win_samples <= n_fft,
            f"n_mels={n_mels} must be at least 1": n_mels < 1,
            f"need 0 <= f_min={f_min} < f_max={f_max} <= sample_rate/2={sample_rate / 2}":
                not 0 <= f_min < f_max <= sample_rate / 2,
            f"window={window!r} is not one of {sorted(WINDOWS)}": window not in WINDOWS,
            f"pre_emphasis={pre_emphasis} must be in [0, 1)": not 0 <= pre_emphasis < 1,
            f"top_db={top_db} must be positive or None": top_db is not None and top_db <= 0,
            f"amin={amin} must be positive": amin <= 0,
            "std_norm=True needs mean_norm=True": std_norm and not mean_norm,
        }
        for message, failed in problems.items():
            if failed:
                raise InputError(f"MelFrontend: {message}")
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.n_mels = n_mels
        self.pre_emphasis = float(pre_emphasis)
        self.top_db = top_db
        self.amin = float(amin)
        self.mean_norm = mean_norm
        self.std_norm = std_norm
        self.register_buffer("window", WINDOWS[window](self.win_samples))
        self.register_buffer("filters", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max))

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` samples (centred STFT)."""
        return 1 + num_samples // self.hop_samples

    def frame_counts(self, samples: torch.Tensor) -> torch.Tensor:
        """Valid frames of each row for integer sample counts ``(batch,)``."""
        return 1 + torch.div(samples, self.hop_samples, rounding_mode="floor")

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Compute features.

        Arguments
        ---------
        wavs : torch.Tensor
            ``(batch, samples)``, zero-padded at the end.
        lengths : torch.Tensor, optional
            ``(batch,)`` relative lengths in (0, 1] (SpeechBrain's convention and numbers),
            or an integer tensor of sample counts: then each row's features equal those of
            the row alone. ``None`` means no padding.

        Returns
        -------
        torch.Tensor
            ``(batch, 1 + samples // hop, n_mels)``, in the dtype of the buffers.
        """
        if torch.jit.is_scripting() or torch.jit.is_tracing():
            return self._features(wavs, lengths)
        self._check_input(wavs, lengths)
        with torch.autocast(device_type=wavs.device.type, enabled=False):
            return self._features(wavs.to(self.filters.dtype), lengths)

    def _features(self, wavs: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        exact = lengths is not None and not lengths.is_floating_point()
        if self.pre_emphasis > 0:
            wavs = torch.cat([wavs[:, :1], wavs[:, 1:] - self.pre_emphasis * wavs[:, :-1]], 1)
            if lengths is not None:
                wavs = wavs * self._valid(lengths, wavs.shape[1], 1).to(wavs.dtype)
        decibels = 10.0 * torch.log10(torch.clamp(self._power(wavs).transpose(1, 2)
                                                  @ self.filters, min=self.amin))
        decibels = decibels - 10.0 * math.log10(max(self.amin, 1.0))
        valid = None if lengths is None else self._valid(lengths, decibels.shape[1],
                                                          self.hop_samples)
        top_db = self.top_db
        if top_db is not None:
            # SpeechBrain takes the peak over all frames; with exact lengths, valid ones only.
            peaks = decibels.masked_fill(~valid.unsqueeze(2), -math.inf) \
                if exact and valid is not None else decibels
            decibels = torch.maximum(decibels, peaks.amax(dim=(1, 2), keepdim=True) - top_db)
        if not self.mean_norm:
            return decibels
        return sentence_normalise(decibels, valid, self.std_norm)

    @staticmethod
    def _valid(lengths: torch.Tensor, size: int, hop: int) -> torch.Tensor:
        """Boolean ``(batch, size)`` of valid positions: from relative ``lengths`` as
        SpeechBrain computes them, or, for integer sample counts, exactly (a centred STFT has
        ``1 + samples // hop`` frames; ``hop=1`` gives samples)."""
        if lengths.is_floating_point():
            return valid_positions(lengths, size)
        count = lengths if hop == 1 else 1 + torch.div(lengths, hop, rounding_mode="floor")
        return torch.arange(size, device=lengths.device).unsqueeze(0) < count.unsqueeze(1)

    def _power(self, wavs: torch.Tensor) -> torch.Tensor:
        """Power spectrum ``(batch, n_fft // 2 + 1, frames)`` of a centred, zero-padded STFT."""
        if torch.jit.is_tracing():
            # The TorchScript-based ONNX exporter only handles the real-valued STFT output.
            parts = torch.stft(wavs, self.n_fft, self.hop_samples, self.win_samples,
                               self.window, center=True, pad_mode="constant",
                               return_complex=False)
            return parts.pow(2).sum(dim=-1)
        spectrum = torch.stft(wavs, self.n_fft, self.hop_samples, self.win_samples, self.window,
                              center=True, pad_mode="constant", return_complex=True)
        return spectrum.real.pow(2) + spectrum.imag.pow(2)

    def _check_input(self, wavs: torch.Tensor, lengths: torch.Tensor | None) -> None:
        """Raise a one-line ``ValueError`` for input the frontend cannot use."""
        if wavs.dim() != 2:
            hint = " (use wavs.unsqueeze(0) for a single waveform)" if wavs.dim() == 1 else ""
            raise ValueError(f"MelFrontend: expected waveforms (batch, samples), got shape "
                             f"{tuple(wavs.shape)}{hint}")
        if not wavs.is_floating_point():
            raise ValueError(f"MelFrontend: expected float waveforms, got {wavs.dtype}")
        if lengths is None:
            return
        if lengths.shape != (wavs.shape[0],):
            raise ValueError(f"MelFrontend: lengths must have shape ({wavs.shape[0]},), got "
                             f"{tuple(lengths.shape)}")
        if not lengths.is_floating_point():
            if not ((lengths > 0) & (lengths <= wavs.shape[1])).all():
                raise ValueError(f"MelFrontend: sample counts must be in 1..{wavs.shape[1]}, "
                                 f"got {lengths.tolist()}")
            return
        if not ((lengths > 0) & (lengths <= 1 + 1e-6)).all():
            raise ValueError(f"MelFrontend: relative lengths must be in (0, 1], got "
                             f"{lengths.tolist()}")



class SentenceNormalisation(nn.Module):
    """The ``mean_var_norm`` module SpeechBrain's ``EncoderClassifier`` calls after
    ``compute_features(wavs)``, with relative ``lengths``: the frontend's own per-utterance
    normalisation, over the valid frames. On features the frontend has normalised already it
    changes nothing (centring twice is centring once), so a folder gives the same embeddings
    in SpeechBrain's loader as in ours; ``(batch, frames, n_mels)`` -> the same shape."""

    def __init__(self, mean_norm: bool = True, std_norm: bool = False):
        super().__init__()
        self.mean_norm, self.std_norm = mean_norm, std_norm

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> torch.Tensor:
        if not self.mean_norm:
            return feats
        valid = None if lengths is None else valid_positions(lengths, feats.shape[1])
        return sentence_normalise(feats, valid, self.std_norm)
