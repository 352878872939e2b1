"""Recording conditions for the demo corpus: each session of a speaker gets its own channel
(band limit, equaliser, optional telephone band and room, kind of background noise), and each
utterance its own stretch of that noise at a random SNR, so that a voice is heard in several
conditions.

Example
-------
>>> rng = np.random.default_rng(0)
>>> channel = random_channel(rng)
>>> out = apply_channel(np.sin(np.arange(16000) / 5.0), channel, 16000, rng)
>>> out.shape, bool(np.abs(out).max() <= 1.0)
((16000,), True)
"""

import functools
from typing import NamedTuple

import numpy as np
from scipy.signal import butter, fftconvolve, lfilter, resample_poly, sosfilt

from data_prep.synthetic_audio import babble, coloured_noise, room_impulse_response

NOISE_BEDS = 4          # recordings of each kind of noise, 15 s each, cut at random offsets


@functools.lru_cache(maxsize=4 * NOISE_BEDS)
def noise_bed(kind: str, sample_rate: int, number: int) -> np.ndarray:
    """A 15 s recording of background noise (made once per process: babble is slow)."""
    rng = np.random.default_rng([number, len(kind)])
    if kind == "babble":
        return babble(15.0, sample_rate, rng)
    exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind]
    return coloured_noise(15.0, sample_rate, rng, exponent)


class Channel(NamedTuple):
    """One session's recording chain."""

    highpass: float          # Hz
    lowpass: float           # Hz
    eq_frequency: float      # Hz, centre of one peaking filter
    eq_gain: float           # dB
    telephone: bool          # 300-3400 Hz, 8 kHz, mu-law
    rt60: float | None       # room reverberation, None: close microphone
    noise: str               # white, pink, brown or babble
    snr_range: tuple[float, float]


def random_channel(rng: np.random.Generator) -> Channel:
    """A random but plausible recording chain."""
    low_snr = float(rng.uniform(5, 25))
    return Channel(highpass=float(rng.uniform(50, 250)), lowpass=float(rng.uniform(3800, 7800)),
                   eq_frequency=float(rng.uniform(300, 3500)), eq_gain=float(rng.uniform(-8, 8)),
                   telephone=bool(rng.random() < 0.15),
                   rt60=float(rng.uniform(0.2, 0.7)) if rng.random() < 0.4 else None,
                   noise=str(rng.choice(["white", "pink", "brown", "babble"])),
                   snr_range=(low_snr, low_snr + 10))


def peaking_filter(frequency: float, gain_db: float, sample_rate: int, q: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Biquad peaking equaliser coefficients ``(b, a)`` (the audio EQ cookbook's)."""
    amplitude = 10 ** (gain_db / 40)
    omega = 2 * np.pi * frequency / sample_rate
    alpha = np.sin(omega) / (2 * q)
    b = np.array([1 + alpha * amplitude, -2 * np.cos(omega), 1 - alpha * amplitude])
    a = np.array([1 + alpha / amplitude, -2 * np.cos(omega), 1 - alpha / amplitude])
    return b / a[0], a / a[0]


def apply_channel(wave: np.ndarray, channel: Channel, sample_rate: int,
                  rng: np.random.Generator) -> np.ndarray:
    """``wave`` through ``channel`` with fresh noise; peak scaled to a random level <= 0.9."""
    wave = np.asarray(wave, dtype=np.float64)
    if channel.rt60 is not None:
        response = room_impulse_response(sample_rate, rng, channel.rt60)
        wave = fftconvolve(wave, response)[:len(wave)]
    low, high = (300.0, 3400.0) if channel.telephone else (channel.highpass, channel.lowpass)
    wave = sosfilt(butter(4, [low, min(high, 0.45 * sample_rate)], "bandpass", fs=sample_rate,
                          output="sos"), wave)
    wave = lfilter(*peaking_filter(channel.eq_frequency, channel.eq_gain, sample_rate), wave)
    bed = noise_bed(channel.noise, sample_rate, int(rng.integers(NOISE_BEDS)))
    noise = np.resize(np.roll(bed, int(rng.integers(len(bed)))), len(wave))
    snr = rng.uniform(*channel.snr_range)
    scale = np.sqrt(np.mean(wave ** 2) / max(np.mean(noise ** 2), 1e-12) / 10 ** (snr / 10))
    wave = wave + scale * noise
    if channel.telephone:
        wave = _telephone(wave, sample_rate)
    return (wave / max(np.abs(wave).max(), 1e-9) * rng.uniform(0.3, 0.9)).astype(np.float32)


def _telephone(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Down to 8 kHz, 8-bit mu-law, and back up."""
    narrow = resample_poly(wave / max(np.abs(wave).max(), 1e-9), 8000, sample_rate)
    mu = 255.0
    coded = np.round(np.sign(narrow) * np.log1p(mu * np.abs(narrow.clip(-1, 1))) / np.log1p(mu)
                     * 127) / 127
    decoded = np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(mu)) / mu
    return resample_poly(decoded, sample_rate, 8000)[:len(wave)]
