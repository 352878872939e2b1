"""Augmentation corpora -> the CSVs SpeechBrain's ``AddNoise`` and ``AddReverb`` read.

Writes three CSVs in SpeechBrain's extended format (``ID,duration,wav,wav_format,wav_opts``):
``noise.csv`` (background noise and music), ``babble.csv`` (other people talking) and
``rir.csv`` (room impulse responses). Their source is, per CSV:

- MUSAN (``noise/`` and ``music/`` -> noise.csv, ``speech/`` -> babble.csv) and RIRS_NOISES
  (``simulated_rirs/`` and the ``*rir*`` files of ``real_rirs_isotropic_noises/``) when the
  user has them;
- otherwise a set generated here, offline and reproducibly: coloured noises (white, pink,
  brown, blue), babble mixed from training utterances (or from synthetic voices when no
  training CSV is given) and synthetic room impulse responses.

Files that are not 16 kHz mono are skipped and listed in ``augment_report.json``.
"""

import csv
import logging
import os
from pathlib import Path

import numpy as np

from custom_modules.audio import AudioError, read_audio, write_wav
from custom_modules.errors import InputError
from data_prep import synthetic_audio
from data_prep.manifest import (
    already_prepared,
    mark_prepared,
    modification_stamp,
    scan,
    worker_count,
    write_json,
)

logger = logging.getLogger(__name__)
SAMPLE_RATE = 16000
COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0, "blue": -1.0}


def prepare_augmentation(save_folder: str, musan_folder: str | None = None,
                         rirs_folder: str | None = None, babble_csv: str | None = None,
                         num_generated: int = 100, seconds: float = 6.0,
                         num_workers: int | None = None, seed: int = 1234) -> dict:
    """Write ``noise.csv``, ``babble.csv`` and ``rir.csv`` under ``save_folder``; returns
    their paths and where each came from ("musan", "rirs_noises" or "generated").

    ``babble_csv`` is a SpeechBrain CSV with a ``wav`` column (e.g. the training CSV) whose
    utterances are mixed into babble when MUSAN is not given; ``num_generated`` files of
    ``seconds`` seconds are generated per missing CSV.
    """
    options = {"musan_folder": musan_folder, "rirs_folder": rirs_folder,
               "babble_csv": babble_csv, "num_generated": num_generated, "seconds": seconds,
               "seed": seed, "modified": modification_stamp([babble_csv])}
    save = Path(save_folder)
    outputs = {name: str(save / f"{name}.csv") for name in ("noise", "babble", "rir")}
    if already_prepared(save, options, ["noise.csv", "babble.csv", "rir.csv"]):
        logger.info("Augmentation CSVs already in %s: nothing to do", save)
        return {**outputs, "skipped": True}
    save.mkdir(parents=True, exist_ok=True)
    workers = worker_count(num_workers)
    rng = np.random.default_rng(seed)
    sources, skipped = {}, []
    for name, folder, parts in (("noise", musan_folder, ["noise", "music"]),
                                ("babble", musan_folder, ["speech"]),
                                ("rir", rirs_folder, ["simulated_rirs",
                                                      "real_rirs_isotropic_noises"])):
        if folder is not None:
            files = _corpus_files(Path(folder), parts, rir_only=name == "rir")
            if not files:
                raise InputError(f"{folder}: none of {parts} holds wav files; is this "
                                 f"{'MUSAN' if name != 'rir' else 'RIRS_NOISES'}?")
            scanned = scan(files, 0.0, SAMPLE_RATE, workers)
            skipped += scanned.skipped
            _write_csv(outputs[name], [(u.wav, u.duration) for u in scanned.utterances])
            sources[name] = "musan" if name != "rir" else "rirs_noises"
        else:
            made = _generate(name, save / "generated" / name, num_generated, seconds, rng,
                             babble_csv)
            _write_csv(outputs[name], made)
            sources[name] = "generated"
    write_json(save / "augment_report.json", {"sources": sources, "skipped_files": skipped})
    mark_prepared(save, options)
    logger.info("Augmentation CSVs in %s from %s", save, sources)
    return {**outputs, "sources": sources, "skipped": False}


def _corpus_files(root: Path, parts: list[str], rir_only: bool) -> list[tuple[str, str]]:
    files = []
    for part in parts:
        for directory, _, names in os.walk(root / part):
            for name in sorted(names):
                keep = name.endswith(".wav") and (not rir_only or part != parts[-1]
                                                  or "rir" in name.lower())
                if keep:
                    path = os.path.join(directory, name)
                    files.append((path, os.path.relpath(path, root).replace(os.sep, "/")))
    return sorted(files)


def _generate(kind: str, folder: Path, count: int, seconds: float, rng: np.random.Generator,
              babble_csv: str | None) -> list[tuple[str, float]]:
    """Write ``count`` generated files of ``kind``; returns ``(path, duration)`` pairs."""
    voices = _training_voices(babble_csv) if kind == "babble" else []
    made = []
    for index in range(count):
        if kind == "noise":
            colour = list(COLOURS)[index % len(COLOURS)]
            wave = synthetic_audio.coloured_noise(seconds, SAMPLE_RATE, rng, COLOURS[colour])
            name = f"{colour}_{index:04d}.wav"
        elif kind == "babble":
            wave = _mix_voices(voices, seconds, rng) if voices else \
                synthetic_audio.babble(seconds, SAMPLE_RATE, rng)
            name = f"babble_{index:04d}.wav"
        else:
            wave = synthetic_audio.room_impulse_response(SAMPLE_RATE, rng)
            name = f"rir_{index:04d}.wav"
        path = folder / name
        write_wav(path, wave.astype(np.float32), SAMPLE_RATE)
        made.append((str(path), len(wave) / SAMPLE_RATE))
    return made


def _training_voices(babble_csv: str | None, limit: int = 200) -> list[str]:
    if babble_csv is None:
        return []
    with open(babble_csv, newline="", encoding="utf-8") as handle:
        paths = sorted({row["wav"] for row in csv.DictReader(handle)})
    return paths[:: max(1, len(paths) // limit)]


def _mix_voices(paths: list[str], seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Babble from 3-7 random training utterances, each at a random level and offset."""
    samples = int(seconds * SAMPLE_RATE)
    mix = np.zeros(samples)
    for path in rng.choice(paths, size=min(len(paths), int(rng.integers(3, 8))), replace=False):
        try:
            voice = read_audio(path, SAMPLE_RATE).numpy()
        except AudioError as error:
            logger.warning("babble: skipping %s", error)
            continue
        voice = np.resize(voice, samples) / (np.abs(voice).max() + 1e-9)
        mix += np.roll(voice, int(rng.integers(samples))) * rng.uniform(0.5, 1.0)
    if not mix.any():
        return synthetic_audio.babble(seconds, SAMPLE_RATE, rng)
    return 0.5 * mix / np.abs(mix).max()


def _write_csv(path: str, entries: list[tuple[str, float]]) -> None:
    """SpeechBrain's extended CSV of audio files, written atomically."""
    if not entries:
        raise InputError(f"{path}: no usable 16 kHz mono audio for this augmentation CSV")
    partial = f"{path}.part"
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "duration", "wav", "wav_format", "wav_opts"])
        for index, (wav, duration) in enumerate(entries):
            writer.writerow([f"{Path(wav).stem}_{index}", f"{duration:.3f}", wav, "wav", ""])
    os.replace(partial, path)
