"""The one place that reads and writes audio: decode, downmix, resample, validate.

Every problem with a file is an ``AudioError`` (a ``ValueError``) whose message names the file
and the problem in one line, so that data preparation can skip and count it and the interface
can show it to the user.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional

SILENCE_PEAK = 1e-4  # a waveform whose peak stays below this is treated as silent


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


@dataclass(frozen=True)
class AudioInfo:
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

    Raises ``AudioError`` for a missing, empty, unreadable or zero-length file.
    """
    if not os.path.isfile(path):
        raise AudioError(path, "no such file")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise AudioError(path, f"unreadable audio ({_first_line(error)})") from None
    if info.frames <= 0:
        raise AudioError(path, "no audio samples in the file")
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels))


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
        raise AudioError(path, f"cannot decode audio ({_first_line(error)})") from None
    if samples.shape[0] == 0:
        raise AudioError(path, "no audio samples could be decoded (truncated file?)")
    if not np.isfinite(samples).all():
        raise AudioError(path, "audio contains NaN or infinite samples")
    waveform = torch.from_numpy(samples.mean(axis=1))
    if info.sample_rate != sample_rate:
        waveform = torchaudio.functional.resample(waveform, info.sample_rate, sample_rate)
    if float(waveform.abs().max()) < SILENCE_PEAK:
        raise AudioError(path, f"silent (peak amplitude below {SILENCE_PEAK})")
    if waveform.numel() < min_duration * sample_rate:
        raise AudioError(path, f"too short: {waveform.numel() / sample_rate:.2f} s, the "
                               f"minimum is {min_duration:.2f} s")
    return waveform


def write_wav(path: str | os.PathLike, waveform: torch.Tensor | np.ndarray,
              sample_rate: int) -> None:
    """Write a mono waveform as 16-bit PCM wav, atomically: a reader never sees a partial
    file, and an interrupted write leaves no file behind under ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    samples = waveform.numpy() if isinstance(waveform, torch.Tensor) else waveform
    soundfile.write(str(partial), np.clip(samples, -1.0, 1.0), sample_rate,
                    subtype="PCM_16", format="WAV")
    os.replace(partial, path)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
