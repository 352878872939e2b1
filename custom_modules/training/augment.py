"""Noise, music, babble and reverberation added to each training example in the DataLoader
worker that loads it, reading only the seconds it mixes.

SpeechBrain's ``AddNoise`` loads whole noise files for every batch, in the training process,
and cuts them on the device: MUSAN's speech and music files last minutes, so the GPUs wait
for it. Here every example draws its own augmentation (the Kaldi / WeSpeaker recipe: with
probability ``probability`` one of the kinds whose corpus is given), and the noise is read
from a random offset of a random file, as many samples as the crop has, in the worker:

- ``noise`` and ``music``: one segment at an SNR drawn from the kind's range;
- ``babble``: 3 to 7 speech segments (``babble_talkers``) of different talkers, summed, at the
  babble SNR (MUSAN's speech part is one talker per file);
- ``reverb``: a room impulse response, aligned on its direct path, at the example's level.

The corpora are the CSVs ``data_prep.augment_prepare`` writes (``ID,duration,wav,...``); the
randomness is torch's, which the DataLoader seeds per worker.
"""

import csv
import json
import logging
import os
from pathlib import Path

import torch

from custom_modules.audio import AudioError, read_audio
from custom_modules.errors import InputError

logger = logging.getLogger(__name__)
KINDS = ("noise", "music", "babble", "reverb")
REPORT = "augment_report.json"   # written beside the CSVs by data_prep.augment_prepare


class ExampleAugmenter:
    """Augments one waveform ``(samples,)`` at a time.

    Arguments
    ---------
    noise_csv, music_csv, speech_csv, rir_csv : str, optional
        The corpora; ``None`` leaves that kind out (babble needs ``speech_csv``).
    probability : float
        Share of the examples that get one augmentation.
    noise_snr, music_snr, babble_snr : (float, float)
        SNR ranges in dB (Kaldi's VoxCeleb recipe: 0-15, 5-15, 13-20).
    babble_talkers : (int, int)
        Talkers summed into one babble, inclusive.
    sample_rate : int
        Rate of the examples.
    """

    def __init__(self, noise_csv: str | None, music_csv: str | None, speech_csv: str | None,
                 rir_csv: str | None, probability: float, noise_snr: tuple[float, float],
                 music_snr: tuple[float, float], babble_snr: tuple[float, float],
                 babble_talkers: tuple[int, int], sample_rate: int):
        if not 0 <= probability <= 1:
            raise InputError(f"ExampleAugmenter: probability={probability} must be in [0, 1]")
        if not 1 <= babble_talkers[0] <= babble_talkers[1]:
            raise InputError(f"ExampleAugmenter: babble_talkers={babble_talkers} must be "
                             f"[low, high] with 1 <= low <= high")
        self.probability = probability
        self.sample_rate = sample_rate
        self.snr = {"noise": noise_snr, "music": music_snr, "babble": babble_snr}
        self.babble_talkers = babble_talkers
        self.csvs = {kind: path for kind, path in (("noise", noise_csv), ("music", music_csv),
                                                   ("babble", speech_csv), ("reverb", rir_csv))
                     if path is not None}
        self.kinds = [kind for kind in KINDS if kind in self.csvs]
        self.files: dict[str, list[tuple[str, int]]] | None = None

    def load(self) -> None:
        """Read each kind's CSV (``(wav, frames)`` per file). Not in the constructor: the
        preparation writes the CSVs after the YAML that names them is loaded; the training set
        calls it before the DataLoader workers start, so they inherit the lists."""
        self.files = {kind: read_corpus(path, self.sample_rate)
                      for kind, path in self.csvs.items()}

    def sources(self) -> dict[str, str]:
        """Where each kind's corpus came from ("musan", "rirs_noises", "generated"), from the
        preparation's report beside its CSV."""
        found = {}
        for kind, path in self.csvs.items():
            report = Path(path).parent / REPORT
            sources = json.loads(report.read_text(encoding="utf-8"))["sources"] \
                if report.is_file() else {}
            found[kind] = sources.get({"babble": "speech", "reverb": "rir"}.get(kind, kind),
                                      "unknown (no augment_report.json)")
        return found

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        """``wave`` with one augmentation, or unchanged (``1 - probability`` of the time, and
        when the corpus file drawn cannot be read: a warning names it, training goes on)."""
        if not self.kinds or float(torch.rand(1)) >= self.probability:
            return wave
        if self.files is None:
            self.load()
        kind = self.kinds[int(torch.randint(len(self.kinds), (1,)))]
        try:
            if kind == "reverb":
                return self.reverberate(wave, self.pick("reverb", None))
            if kind == "babble":
                low, high = self.babble_talkers
                talkers = int(torch.randint(low, high + 1, (1,)))
                noise = sum(_unit_power(self.pick("babble", len(wave))) for _ in range(talkers))
            else:
                noise = self.pick(kind, len(wave))
        except AudioError as error:
            logger.warning("augmentation skipped: %s", error)
            return wave
        low, high = self.snr[kind]
        return mix_at_snr(wave, noise, low + (high - low) * float(torch.rand(1)))

    def pick(self, kind: str, samples: int | None) -> torch.Tensor:
        """A random segment of exactly ``samples`` samples (the whole file for ``None``) of a
        random file of ``kind``, tiled when the file is shorter. A silent stretch of a long
        file gives silence (no noise there)."""
        files = self.files[kind]
        path, frames = files[int(torch.randint(len(files), (1,)))]
        if samples is None or frames <= samples:
            segment = read_audio(path, self.sample_rate)
            return segment if samples is None else _exactly(segment, samples)
        start = int(torch.randint(frames - samples + 1, (1,)))
        try:
            # The CSV's duration is rounded: the file may end a few samples before `frames`.
            return _exactly(read_audio(path, self.sample_rate, start, start + samples), samples)
        except AudioError as error:
            if not error.problem.startswith("silent"):
                raise
            return torch.zeros(samples)

    @staticmethod
    def reverberate(wave: torch.Tensor, rir: torch.Tensor) -> torch.Tensor:
        """``wave`` convolved with ``rir`` (aligned on its strongest tap, the direct path), at
        ``wave``'s RMS level."""
        rir = rir[int(rir.abs().argmax()):]
        size = len(wave) + len(rir) - 1
        spectrum = torch.fft.rfft(wave, size) * torch.fft.rfft(rir, size)
        wet = torch.fft.irfft(spectrum, size)[:len(wave)]
        return wet * (wave.pow(2).mean() / wet.pow(2).mean().clamp(min=1e-12)).sqrt()


def mix_at_snr(clean: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """``clean + noise``, the noise scaled to ``snr_db`` below the clean signal's power.

    >>> clean, noise = torch.ones(4), torch.tensor([1.0, -1.0, 1.0, -1.0])
    >>> round((mix_at_snr(clean, noise, 20.0) - clean).pow(2).mean().item(), 6)
    0.01
    """
    clean_power = clean.pow(2).mean().clamp(min=1e-10)
    noise_power = noise.pow(2).mean().clamp(min=1e-10)
    return clean + noise * (clean_power / (noise_power * 10 ** (snr_db / 10))).sqrt()


def _exactly(segment: torch.Tensor, samples: int) -> torch.Tensor:
    """``segment`` tiled or cut to ``samples`` samples."""
    return segment.repeat(samples // len(segment) + 1)[:samples]


def _unit_power(wave: torch.Tensor) -> torch.Tensor:
    return wave / wave.pow(2).mean().clamp(min=1e-10).sqrt()


def read_corpus(path: str, sample_rate: int) -> list[tuple[str, int]]:
    """``(wav, frames)`` of each row of an augmentation CSV (``ID,duration,wav,...``)."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: augmentation CSV not found; run the data preparation")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise InputError(f"{path}: the augmentation CSV lists no files")
    try:
        return [(row["wav"], round(float(row["duration"]) * sample_rate)) for row in rows]
    except (KeyError, ValueError):
        raise InputError(f"{path}: expected the columns ID,duration,wav with durations in "
                         f"seconds") from None
