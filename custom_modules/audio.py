"""The one place that reads and writes audio: decode, downmix, resample, validate.

Every problem with a file is an ``AudioError`` (an ``InputError``) whose message names the file
and the problem in one line, so that data preparation can skip and count it and the interface
can show it to the user.
"""

import os
import struct
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile
import torch
import torchaudio.functional

from custom_modules.errors import InputError, first_line
from custom_modules.files import write_atomic

SILENCE_PEAK = 1e-4  # a waveform whose peak stays below this is treated as silent
MAX_PEAK = 1e5       # larger samples are no audio at any scale (int16 values as floats: 3e4)
RATES = (4000, 192000)  # sample rates accepted, in Hz
# Resampling by the ratio of two rates whose reduced terms are larger than this (16,001 Hz
# to 16,000: 16000/16001) would build a filter bank of gigabytes; the ratio is then the
# nearest one with terms this small (16,001 Hz: 1/1, off by 6e-5; 160,163 Hz: 1/10, 1e-3).
MAX_RESAMPLE_TERMS = 500     # the ratio is then off by at most about 1e-3
MAX_BLOCK_VALUES = 8_000_000  # decoded values per block of a long recording (32 MB)


class AudioError(InputError):
    """An audio file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


class AudioInfo(NamedTuple):
    """What a file's header says: sample rate, frames per channel and channels."""

    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of ``path`` without decoding the samples.

    Plain PCM / float wav headers are parsed directly (several times faster than libsndfile,
    which matters for a million VoxCeleb files); anything else goes through ``soundfile``.
    Raises ``AudioError`` for a missing, empty, unreadable or zero-length file.
    """
    try:
        size = os.stat(path).st_size
    except OSError:
        raise AudioError(path, "no such file") from None
    if size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    header = _wav_header(path, size) if str(path).lower().endswith(".wav") else None
    if header is not None:
        return _checked(path, header)
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise AudioError(path, f"unreadable audio ({first_line(error)})") from None
    if info.frames <= 0:
        raise AudioError(path, "no audio samples in the file")
    return _checked(path, AudioInfo(int(info.samplerate), int(info.frames), int(info.channels)))


def _checked(path: str | os.PathLike, info: AudioInfo) -> AudioInfo:
    if not RATES[0] <= info.sample_rate <= RATES[1]:
        raise AudioError(path, f"sample rate {info.sample_rate} Hz, outside {RATES[0]} to "
                               f"{RATES[1]} Hz")
    return info


def _wav_header(path: str | os.PathLike, size: int) -> AudioInfo | None:
    """Parse a RIFF/WAVE header whose ``fmt `` and ``data`` chunks lie in the first 1 kB.

    Returns ``None`` (let libsndfile decide) for anything unusual: compressed formats, RF64,
    streamed sizes, chunks further in. A data chunk cut short by truncation counts only the
    frames that are really there, as libsndfile does.
    """
    with open(path, "rb") as handle:
        head = handle.read(1024)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    position, fmt = 12, None
    while position + 8 <= len(head):
        chunk, length = head[position:position + 4], struct.unpack_from("<I", head, position + 4)[0]
        if chunk == b"fmt " and position + 24 <= len(head):
            fmt = struct.unpack_from("<HHIIHH", head, position + 8)
        elif chunk == b"data":
            if fmt is None or fmt[0] not in (1, 3, 0xFFFE) or fmt[4] == 0 or fmt[2] == 0:
                return None
            if length in (0, 0xFFFFFFFF):
                return None
            frames = min(length, size - position - 8) // fmt[4]
            if frames <= 0:
                return None
            return AudioInfo(sample_rate=fmt[2], frames=frames, channels=fmt[1])
        position += 8 + length + (length & 1)
    return None


def read_audio(path: str | os.PathLike, sample_rate: int = 16000, start: int = 0,
               stop: int | None = None, min_duration: float = 0.0) -> torch.Tensor:
    """Decode ``path`` to a mono float32 waveform ``(samples,)`` at ``sample_rate``.

    Arguments
    ---------
    path : str
        Any format libsndfile reads (wav, flac, ogg, ...), int or float samples.
    sample_rate : int
        Rate of the returned waveform; other rates are resampled.
    start, stop : int
        Segment to read, in samples at ``sample_rate`` (``stop=None``: to the end).
    min_duration : float
        Shortest acceptable result in seconds.

    Raises ``AudioError`` for unreadable, empty, truncated, non-finite, silent or too short
    audio. Stereo and multi-channel audio is averaged to mono.
    """
    info = audio_info(path)
    ratio = info.sample_rate / sample_rate
    first = int(round(start * ratio))
    last = None if stop is None else int(round(stop * ratio))
    if first >= info.frames or (last is not None and last <= first):
        raise AudioError(path, f"segment {start}:{stop} is outside the file "
                               f"({info.duration:.2f} s)")
    try:
        samples, _ = soundfile.read(str(path), start=first, stop=last, dtype="float32",
                                    always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise AudioError(path, f"cannot decode audio ({first_line(error)})") from None
    if samples.shape[0] == 0:
        raise AudioError(path, "no audio samples could be decoded (truncated file?)")
    waveform = resample(_mono(path, samples), info.sample_rate, sample_rate)
    if float(waveform.abs().max()) < SILENCE_PEAK:
        raise AudioError(path, f"silent (peak amplitude below {SILENCE_PEAK})")
    if waveform.numel() < min_duration * sample_rate:
        raise AudioError(path, f"too short: {waveform.numel() / sample_rate:.2f} s, the "
                               f"minimum is {min_duration:.2f} s")
    return waveform


def _mono(path: str | os.PathLike, samples: np.ndarray) -> torch.Tensor:
    """Decoded ``(frames, channels)`` samples checked (finite, of a sane scale) and averaged
    to mono."""
    if not np.isfinite(samples).all():
        raise AudioError(path, "audio contains NaN or infinite samples")
    peak = float(np.abs(samples).max())
    if peak > MAX_PEAK:
        raise AudioError(path, f"samples up to {peak:.3g}: not audio at any sane scale "
                               f"(at most {MAX_PEAK:g})")
    return torch.from_numpy(samples.mean(axis=1))


def read_blocks(path: str | os.PathLike, sample_rate: int, block_seconds: float
                ) -> Iterator[tuple[float, torch.Tensor]]:
    """A long recording as consecutive mono blocks ``(samples,)`` of at most
    ``block_seconds`` at ``sample_rate``, each with its start in seconds (counted in the
    file's own samples, so a resampling ratio rounded by ``resample`` does not drift),
    decoded one at a time: memory stays that of a block (at most ``MAX_BLOCK_VALUES``
    decoded values, whatever the rate and channels) whatever the file's length. The checks
    of ``read_audio`` apply to each block (a silent block is returned as it is: silence
    inside a recording is no error).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.wav"
    >>> write_wav(path, torch.full((40000,), 0.1), 16000)
    >>> [(start, len(b)) for start, b in read_blocks(path, 16000, 1.0)]
    [(0.0, 16000), (1.0, 16000), (2.0, 8000)]
    """
    info = audio_info(path)
    frames = max(1, min(int(round(block_seconds * info.sample_rate)),
                        MAX_BLOCK_VALUES // info.channels))
    done = 0
    try:
        with soundfile.SoundFile(str(path)) as source:
            while True:
                samples = source.read(frames, dtype="float32", always_2d=True)
                if not len(samples):
                    return
                yield done / info.sample_rate, resample(_mono(path, samples),
                                                        info.sample_rate, sample_rate)
                done += len(samples)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise AudioError(path, f"cannot decode audio ({first_line(error)})") from None


def resample(waveform: torch.Tensor, rate: int, target: int) -> torch.Tensor:
    """``waveform`` ``(samples,)`` at ``rate`` resampled to ``target`` (torchaudio's
    windowed sinc), in bounded memory whatever the two rates (``MAX_RESAMPLE_TERMS``).

    >>> resample(torch.ones(16001), 16001, 16000).shape     # within 6e-5: kept as it is
    torch.Size([16001])
    >>> resample(torch.ones(44100), 44100, 16000).shape
    torch.Size([16000])
    """
    ratio = Fraction(target, rate)
    if max(ratio.numerator, ratio.denominator) > MAX_RESAMPLE_TERMS:
        ratio = ratio.limit_denominator(MAX_RESAMPLE_TERMS)
    if ratio == 1:
        return waveform
    return torchaudio.functional.resample(waveform, ratio.denominator, ratio.numerator)


def write_wav(path: str | os.PathLike, waveform: torch.Tensor | np.ndarray,
              sample_rate: int) -> None:
    """Write a mono waveform as 16-bit PCM wav, atomically: a reader never sees a partial
    file, and an interrupted write leaves no file behind under ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = waveform.numpy() if isinstance(waveform, torch.Tensor) else waveform
    write_atomic(path, lambda sink: soundfile.write(sink, np.clip(samples, -1.0, 1.0),
                                                    sample_rate, subtype="PCM_16",
                                                    format="WAV"))
