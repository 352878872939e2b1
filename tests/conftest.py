"""Shared test helpers: speech-like audio made on the spot (no downloads)."""

import math

import torch


def speech_like(seconds: float, sample_rate: int = 16000, seed: int = 0) -> torch.Tensor:
    """A mono waveform ``(samples,)`` with the structure of voiced speech.

    A glottal pulse train with a gliding pitch (100-220 Hz) is shaped by three moving formant
    resonances, modulated into syllables of about 200 ms, interrupted by a 300 ms pause, and
    mixed with low-level noise; peak amplitude 0.5.
    """
    generator = torch.Generator().manual_seed(seed)
    samples = int(seconds * sample_rate)
    t = torch.arange(samples, dtype=torch.float64) / sample_rate
    rand = torch.rand(6, generator=generator, dtype=torch.float64)
    pitch = 100 + 120 * (0.5 + 0.5 * torch.sin(2 * math.pi * (0.3 + rand[0]) * t))
    phase = torch.cumsum(pitch / sample_rate, dim=0)
    source = (phase.frac() < 0.1).to(torch.float64) - 0.1
    signal = torch.zeros(samples, dtype=torch.float64)
    for centre, swing, speed in ((700, 200, 2.0), (1500, 500, 1.3), (2600, 300, 0.7)):
        formant = centre + swing * torch.sin(2 * math.pi * speed * (1 + rand[1]) * t)
        carrier = torch.sin(2 * math.pi * torch.cumsum(formant / sample_rate, dim=0))
        signal += carrier * torch.nn.functional.conv1d(
            source.view(1, 1, -1), torch.hann_window(41, dtype=torch.float64).view(1, 1, -1),
            padding=20).view(-1)
    syllables = (0.5 + 0.5 * torch.sin(2 * math.pi * (4.5 + rand[2]) * t)).pow(2)
    pause_start = int((0.3 + 0.4 * rand[3]) * samples)
    syllables[pause_start:pause_start + int(0.3 * sample_rate)] = 0.0
    noise = torch.randn(samples, generator=generator, dtype=torch.float64)
    waveform = signal * syllables + 1e-3 * noise
    return (0.5 * waveform / waveform.abs().max()).to(torch.float32)


def padded_batch(seconds: list[float], sample_rate: int = 16000) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
    """Zero-padded batch ``(batch, samples)`` of speech-like utterances and relative lengths."""
    waves = [speech_like(s, sample_rate, seed=i) for i, s in enumerate(seconds)]
    longest = max(w.numel() for w in waves)
    batch = torch.zeros(len(waves), longest)
    for row, wave in enumerate(waves):
        batch[row, :wave.numel()] = wave
    return batch, torch.tensor([w.numel() / longest for w in waves])
