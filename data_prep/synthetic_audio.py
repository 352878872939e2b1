"""Signals made from nothing: speech-like babble, coloured noise, music-like tones and room
impulse responses.

They stand in for MUSAN and RIRS_NOISES when a user has neither, so augmentation always works
offline; the tests use them as realistic input. All functions return float64 numpy arrays and
are reproducible from a ``numpy.random.Generator``.
"""

from typing import NamedTuple

import numpy as np
from scipy.signal import butter, lfilter, sosfilt


class Timbre(NamedTuple):
    """What stays the same across one speaker's utterances: the mean pitch (Hz) and the
    centres of the three formants (Hz)."""

    pitch: float
    formants: tuple[float, float, float]


def random_timbre(rng: np.random.Generator) -> Timbre:
    """A speaker drawn from the ranges ``speech_like`` uses."""
    pitch = rng.uniform(90, 180)
    return Timbre(pitch, (rng.uniform(500, 800), rng.uniform(1200, 1800),
                          rng.uniform(2300, 2900)))


def speech_like(seconds: float, sample_rate: int, rng: np.random.Generator,
                timbre: Timbre | None = None) -> np.ndarray:
    """One voice: a glottal pulse train with gliding pitch (90-250 Hz), shaped by three
    moving formants, cut into ~200 ms syllables with a pause, plus faint noise; peak 0.5.

    With ``timbre`` the speaker is fixed and ``rng`` only draws what changes between
    utterances (pitch and formant movements, syllable rhythm, the pause, the noise);
    without it the speaker is drawn too.

    >>> speech_like(0.5, 16000, np.random.default_rng(0)).shape
    (8000,)
    """
    samples = int(seconds * sample_rate)
    t = np.arange(samples) / sample_rate
    base = rng.uniform(90, 180) if timbre is None else timbre.pitch
    pitch = base * (1 + 0.35 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t + rng.uniform(0, 6)))
    phase = np.cumsum(pitch / sample_rate)
    source = (np.mod(phase, 1.0) < 0.1).astype(float) - 0.1
    voice = np.zeros(samples)
    centres = (rng.uniform(500, 800), rng.uniform(1200, 1800), rng.uniform(2300, 2900)) \
        if timbre is None else timbre.formants
    for centre, swing in zip(centres, (200, 400, 300), strict=True):
        formant = centre + swing * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t)
        voice += np.sin(2 * np.pi * np.cumsum(formant / sample_rate)) * source
    voice = lfilter(np.hanning(31) / 15, [1.0], voice)
    syllables = np.sin(2 * np.pi * rng.uniform(3.5, 5.5) * t + rng.uniform(0, 6)) ** 2
    pause = int(rng.uniform(0.2, 0.7) * samples)
    syllables[pause:pause + int(0.25 * sample_rate)] = 0.0
    waveform = voice * syllables + 1e-3 * rng.standard_normal(samples)
    return 0.5 * waveform / np.abs(waveform).max()


def babble(seconds: float, sample_rate: int, rng: np.random.Generator,
           voices: int | None = None) -> np.ndarray:
    """Several speech-like voices talking at once (3 to 7 unless ``voices`` is given)."""
    count = voices or int(rng.integers(3, 8))
    mix = sum(speech_like(seconds, sample_rate, rng) * rng.uniform(0.5, 1.0)
              for _ in range(count))
    return 0.5 * mix / np.abs(mix).max()


def tone_music(seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Music-like: a sequence of notes (0.15-0.6 s each) on an equal-tempered scale, each a
    decaying harmonic tone, sometimes with a fifth above; peak 0.5.

    >>> tone_music(0.5, 16000, np.random.default_rng(0)).shape
    (8000,)
    """
    samples = int(seconds * sample_rate)
    music = np.zeros(samples)
    position = 0
    while position < samples:
        length = min(samples - position, int(rng.uniform(0.15, 0.6) * sample_rate))
        t = np.arange(length) / sample_rate
        pitch = 110.0 * 2 ** (int(rng.integers(0, 36)) / 12)
        note = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6))
        if rng.random() < 0.3:
            note = note + 0.6 * np.sin(2 * np.pi * pitch * 1.5 * t)
        music[position:position + length] = note * np.exp(-t * rng.uniform(2.0, 8.0))
        position += length
    return 0.5 * music / max(np.abs(music).max(), 1e-9)


def coloured_noise(seconds: float, sample_rate: int, rng: np.random.Generator,
                   exponent: float) -> np.ndarray:
    """Noise with power spectrum ``1 / f**exponent`` (0 white, 1 pink, 2 brown, -1 blue),
    with a random gentle band limit; peak 0.5."""
    samples = int(seconds * sample_rate)
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.fft.rfftfreq(samples, 1 / sample_rate)
    spectrum[1:] /= freqs[1:] ** (exponent / 2)
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, samples)
    low, high = rng.uniform(20, 200), rng.uniform(3000, 0.49 * sample_rate)
    noise = sosfilt(butter(2, [low, high], "bandpass", fs=sample_rate, output="sos"), noise)
    return 0.5 * noise / np.abs(noise).max()


def room_impulse_response(sample_rate: int, rng: np.random.Generator,
                          rt60: float | None = None) -> np.ndarray:
    """Synthetic room impulse response: a direct path, a few early reflections and an
    exponentially decaying noise tail whose high frequencies die out faster.

    ``rt60`` (seconds to decay by 60 dB) is drawn from 0.15-0.9 s when not given. The peak
    (the direct path) is 1 and comes first, as ``AddReverb`` expects.
    """
    rt60 = rt60 or rng.uniform(0.15, 0.9)
    samples = int(1.2 * rt60 * sample_rate)
    t = np.arange(samples) / sample_rate
    noise = rng.standard_normal(samples)
    split = butter(2, 2000, "lowpass", fs=sample_rate, output="sos")
    low = sosfilt(split, noise)
    tail = low * np.exp(-6.9 * t / rt60) + (noise - low) * np.exp(-6.9 * t / (0.6 * rt60))
    onset = int(rng.uniform(0.002, 0.01) * sample_rate)
    tail[:onset] = 0.0
    response = 0.3 * tail / np.abs(tail).max()
    for _ in range(int(rng.integers(3, 8))):
        delay = int(rng.uniform(0.002, 0.03) * sample_rate)
        response[delay] += rng.uniform(0.2, 0.7) * rng.choice([-1.0, 1.0])
    response = np.clip(response, -0.95, 0.95)
    response[0] = 1.0
    return response
