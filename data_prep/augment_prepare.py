"""Augmentation corpora -> the CSVs the training examples' augmenter reads.

Writes four CSVs in SpeechBrain's extended format (``ID,duration,wav,wav_format,wav_opts``):
``noise.csv``, ``music.csv``, ``speech.csv`` (one talker per file; babble is mixed from 3 to 7
of them at training time) and ``rir.csv`` (room impulse responses). Their sources:

- MUSAN (``noise/``, ``music/``, ``speech/``) and RIRS_NOISES (``simulated_rirs/`` and the
  ``*rir*`` files of ``real_rirs_isotropic_noises/``), the corpora the published VoxCeleb
  systems train with;
- or, when ``generated`` is True and a folder is not given, a set generated here, offline and
  reproducibly: coloured noises (white, pink, brown, blue), music-like tone sequences, training
  utterances as talkers (synthetic voices when no training CSV is given) and synthetic room
  impulse responses. A recipe that has no corpus and does not allow generated ones stops with
  an error instead of falling back to them.

Files that are not 16 kHz mono are skipped and listed in ``augment_report.json``, which also
says where each CSV came from (the training log and the exported model's README repeat it).
"""

import csv
import json
import logging
import os
from pathlib import Path

import numpy as np

from custom_modules.audio import write_wav
from custom_modules.errors import InputError
from custom_modules.training.augment import REPORT
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
CORPORA = {"noise": ("musan", ["noise"]), "music": ("musan", ["music"]),
           "speech": ("musan", ["speech"]),
           "rir": ("rirs_noises", ["simulated_rirs", "real_rirs_isotropic_noises"])}


def prepare_augmentation(save_folder: str, musan_folder: str | None, rirs_folder: str | None,
                         generated: bool, talkers_csv: str | None = None,
                         num_generated: int = 100, seconds: float = 6.0,
                         num_workers: int | None = None, seed: int = 1234) -> dict:
    """Write the four CSVs under ``save_folder``; returns their paths and where each came
    from (``{"noise": "musan", ..., "rir": "generated"}``).

    ``generated`` allows the generated substitute for a corpus whose folder is ``None``;
    without it a missing folder is an ``InputError``. ``talkers_csv`` is a SpeechBrain CSV
    with a ``wav`` column (e.g. the training CSV) whose utterances are the generated talkers;
    ``num_generated`` files of ``seconds`` seconds are generated per other missing corpus.
    """
    folders = {"musan": musan_folder, "rirs_noises": rirs_folder}
    missing = [name for name, folder in (("--musan_folder", musan_folder),
                                         ("--rirs_folder", rirs_folder)) if folder is None]
    if missing and not generated:
        raise InputError(f"no augmentation corpus given ({' and '.join(missing)}): give MUSAN "
                         f"and RIRS_NOISES, or set --generated_augmentation=True to train with "
                         f"the generated substitutes")
    options = {"musan_folder": musan_folder, "rirs_folder": rirs_folder,
               "generated": generated, "talkers_csv": talkers_csv,
               "num_generated": num_generated, "seconds": seconds, "seed": seed,
               "modified": modification_stamp([talkers_csv])}
    save = Path(save_folder)
    outputs = {name: str(save / f"{name}.csv") for name in CORPORA}
    if already_prepared(save, options, [f"{name}.csv" for name in CORPORA] + [REPORT]):
        logger.info("Augmentation CSVs already in %s: nothing to do", save)
        report = json.loads((save / REPORT).read_text(encoding="utf-8"))
        return {**outputs, "sources": report["sources"], "skipped": True}
    save.mkdir(parents=True, exist_ok=True)
    workers = worker_count(num_workers)
    rng = np.random.default_rng(seed)
    sources, skipped = {}, []
    for name, (corpus, parts) in CORPORA.items():
        folder = folders[corpus]
        if folder is not None:
            files = _corpus_files(Path(folder), parts, rir_only=name == "rir")
            if not files:
                raise InputError(f"{folder}: none of {parts} holds wav files; is this "
                                 f"{'MUSAN' if corpus == 'musan' else 'RIRS_NOISES'}?")
            scanned = scan(files, 0.0, SAMPLE_RATE, workers)
            skipped += scanned.skipped
            _write_csv(outputs[name], [(u.wav, u.duration) for u in scanned.utterances])
            sources[name] = corpus
        else:
            _write_csv(outputs[name], _generate(name, save / "generated" / name, num_generated,
                                                seconds, rng, talkers_csv))
            sources[name] = "training utterances" if name == "speech" and talkers_csv \
                else "generated"
    write_json(save / REPORT, {"sources": sources, "skipped_files": skipped})
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
              talkers_csv: str | None) -> list[tuple[str, float]]:
    """The generated substitute for ``kind``: ``(path, duration)`` pairs."""
    if kind == "speech" and talkers_csv is not None:
        return _training_talkers(talkers_csv, count)
    made = []
    for index in range(count):
        if kind == "noise":
            colour = list(COLOURS)[index % len(COLOURS)]
            wave = synthetic_audio.coloured_noise(seconds, SAMPLE_RATE, rng, COLOURS[colour])
            name = f"{colour}_{index:04d}.wav"
        elif kind == "music":
            wave, name = synthetic_audio.tone_music(seconds, SAMPLE_RATE, rng), \
                f"music_{index:04d}.wav"
        elif kind == "speech":
            wave = synthetic_audio.speech_like(seconds, SAMPLE_RATE, rng)
            name = f"talker_{index:04d}.wav"
        else:
            wave = synthetic_audio.room_impulse_response(SAMPLE_RATE, rng)
            name = f"rir_{index:04d}.wav"
        path = folder / name
        write_wav(path, wave.astype(np.float32), SAMPLE_RATE)
        made.append((str(path), len(wave) / SAMPLE_RATE))
    return made


def _training_talkers(talkers_csv: str, limit: int) -> list[tuple[str, float]]:
    """Up to ``limit`` utterances spread over the CSV (whole files), as talkers."""
    with open(talkers_csv, newline="", encoding="utf-8") as handle:
        rows = sorted({(row["wav"], float(row["duration"])) for row in csv.DictReader(handle)})
    return rows[:: max(1, len(rows) // limit)][:limit]


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
