"""The embedded demo corpus: many speakers from the speech synthesis voices installed here,
read in several recording conditions, written as a VoxCeleb-shaped tree with trial lists.

    <output_folder>/wav/idNNNNN/sessNN/NNNNN.wav    16 kHz mono
    <output_folder>/speakers.csv                    ID, engine, voice, language, gender, split
    <output_folder>/utterances.csv                  every file written (SpeechBrain's columns:
                                                    ID, duration, wav, start, stop, spk_id)
    <output_folder>/trials_standard.txt             held-out voices, any non-target pair
    <output_folder>/trials_hard.txt                 non-targets share language and gender
                                                    (absent when no two test voices do)
    <output_folder>/corpus_report.json              voices per engine, failures, warnings

Every utterance has its own text, speaking rate and pitch; every session its own channel
(``data_prep.demo.channels``). Generation is seeded (the same options give the same corpus),
runs on all cores, and is skipped when the folder already holds a finished corpus made with the
same options. The audio stays on the machine that made it (the voices' licences).

The generator knows which voices are held out and how long every file is, and says so in
``speakers.csv`` and ``utterances.csv``: ``data_prep.demo.prepare`` builds the training and
test CSVs from those two files, so the held-out voices are the generator's, not re-derived
from a trial list.
"""

import csv
import logging
import os
import random
import shutil
import tempfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly
from tqdm import tqdm

from custom_modules.data.catalogue import Utterance
from custom_modules.data.trials import make_trials, utterance_id, write_trials
from custom_modules.errors import InputError
from data_prep.demo.channels import apply_channel, random_channel
from data_prep.demo.text import utterance_text
from data_prep.demo.voices import Voice, find_voices, synthesize, synthesize_festival
from data_prep.manifest import (
    already_prepared,
    mark_prepared,
    process_pool,
    utterance_rows,
    worker_count,
    write_csv,
    write_json,
)

logger = logging.getLogger(__name__)
SAMPLE_RATE = 16000
OUTPUTS = ["speakers.csv", "utterances.csv", "trials_standard.txt", "corpus_report.json"]
MARKER = ".demo_corpus"   # this folder's audio is ours to replace
VERSION = 4         # of the way utterances are made: a corpus made differently is regenerated
# Per utterance: speaking rate and pitch factors around the voice's own. A reader's mean pitch
# moves by a few per cent between sentences; a wider range makes the voices that one
# synthesiser derives from another (espeak-ng variants) overlap.
RATE_RANGE = (0.85, 1.2)
PITCH_RANGE = (0.92, 1.08)
# Engines without a pitch control get a resampling factor instead (pitch and tempo together).
RESAMPLED_ENGINES = {"festival", "flite"}
SPEED_RANGE = (0.94, 1.06)
# Files of one voice a worker makes in one task (a Festival voice says them in one process).
TASK_FILES = 10


def generate_demo_corpus(output_folder: str, utterances_per_voice: int = 50,
                         sessions_per_voice: int = 5, max_voices: int | None = None,
                         test_voices: float = 0.2, trials: int = 8000, min_words: int = 12,
                         num_workers: int | None = None, seed: int = 1234) -> dict:
    """Generate the corpus; returns a summary (also in ``corpus_report.json``).

    Arguments
    ---------
    output_folder : str
        Where the tree, the speaker list, the trial lists and the report go.
    utterances_per_voice, sessions_per_voice : int
        Utterances of each voice, spread over this many recording conditions.
    max_voices : int, optional
        Use at most this many voices, drawn evenly across engines (tests, quick runs).
    test_voices : float
        Share of the voices held out for the trial lists (drawn within each engine).
    trials : int
        Trials in each list, half target and half non-target.
    min_words : int
        Words per utterance at least (about 0.35 s each).
    """
    options = {"utterances_per_voice": utterances_per_voice, "sessions": sessions_per_voice,
               "max_voices": max_voices, "test_voices": test_voices, "trials": trials,
               "min_words": min_words, "seed": seed, "version": VERSION}
    voices, warnings = _choose_voices(max_voices, seed)
    options["voices"] = [v.key for v in voices]      # other voices installed: a new corpus
    if already_prepared(output_folder, options, OUTPUTS):
        logger.info("demo corpus already in %s with the same options: nothing to do",
                    output_folder)
        return {"skipped": True, "output_folder": output_folder}
    _clear_old_audio(Path(output_folder))
    if len(voices) < 4:
        raise InputError(f"the demo corpus needs at least 4 voices (2 held out for trials), "
                         f"{len(voices)} available")
    speakers = {f"id{10001 + i}": voice for i, voice in enumerate(voices)}
    held_out = _held_out(speakers, test_voices, seed)
    jobs = [_job(output_folder, speaker, index, voice, u, sessions_per_voice, min_words, seed)
            for index, (speaker, voice) in enumerate(speakers.items())
            for u in range(utterances_per_voice)]
    written, failures = _run(jobs, worker_count(num_workers))
    files: dict[str, list[str]] = {speaker: [] for speaker in speakers}
    for relative in sorted(written):
        files[relative.split("/", 1)[0]].append(relative)
    wav_root = Path(output_folder, "wav").resolve()
    write_csv(Path(output_folder, "utterances.csv"), utterance_rows(
        [Utterance(utterance_id(r), str(wav_root / r), 0, frames, r.split("/", 1)[0],
                   frames / SAMPLE_RATE) for r, frames in sorted(written.items())], ids="trial"))
    failed = sorted(speakers[s].key for s, f in files.items() if not f)
    if failed:
        warnings.append(f"{len(failed)} of {len(speakers)} voices made no audio and are left "
                        f"out: {', '.join(failed)}")
    test_files = {s: f for s, f in files.items() if s in held_out and f}
    groups = {s: _group(speakers[s]) for s in test_files}
    write_trials(Path(output_folder, "trials_standard.txt"),
                 make_trials(test_files, trials, seed))
    hard_path = Path(output_folder, "trials_hard.txt")
    hard_path.unlink(missing_ok=True)
    try:
        hard = make_trials(test_files, trials, seed, groups)
        write_trials(hard_path, hard)
    except InputError as error:
        warnings.append(f"no hard trial list: {error}")
        hard = []
    _write_speakers(Path(output_folder, "speakers.csv"), speakers, held_out, files)
    for warning in warnings:
        logger.warning(warning)
    summary = {"voices": len(speakers) - len(failed),
               "voices_by_engine": dict(Counter(v.engine for s, v in speakers.items()
                                                if files[s])),
               "test_voices": len(test_files), "utterances": len(written),
               "failed_utterances": len(failures), "failures": failures[:20],
               "hard_trials": len(hard), "warnings": warnings, "skipped": False,
               "output_folder": output_folder}
    write_json(Path(output_folder, "corpus_report.json"), summary)
    mark_prepared(output_folder, options)
    return summary


def _clear_old_audio(folder: Path) -> None:
    """Remove the audio of an earlier corpus made here with other options (it would mix into
    this one); refuse to touch a ``wav/`` folder this generator did not make."""
    if (folder / "wav").exists():
        if not (folder / MARKER).is_file():
            raise InputError(f"{folder / 'wav'} exists and was not made by the demo corpus "
                             f"generator: choose another output folder")
        shutil.rmtree(folder / "wav")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).touch()


def _choose_voices(max_voices: int | None, seed: int) -> tuple[list[Voice], list[str]]:
    voices = find_voices()
    if not voices:
        raise InputError("no speech synthesis voices found: install espeak-ng (or run "
                         "`python -m data_prep.demo.install_voices` as root for every voice Debian "
                         "packages)")
    warnings = []
    if {v.engine for v in voices} <= {"espeak"}:
        warnings.append("only espeak-ng's own voices were found: the corpus is small and "
                        "formant-synthesised; run `python -m data_prep.demo.install_voices` as "
                        "root to add MBROLA, RHVoice, Festival, Flite and Pico voices from "
                        "contrib and non-free")
    if max_voices is not None and max_voices < len(voices):
        rng = random.Random(seed)
        by_engine = _grouped(voices, [v.engine for v in voices])
        for group in by_engine.values():
            rng.shuffle(group)
        # Round-robin over the engines, so a small corpus still mixes them.
        ordered = [group[i] for i in range(len(voices)) for group in by_engine.values()
                   if i < len(group)]
        voices = sorted(ordered[:max_voices], key=voices.index)
    return voices, warnings


def _held_out(speakers: dict[str, Voice], share: float, seed: int) -> set[str]:
    """Test speakers: ``share`` of each language-and-gender group's voices, and at least two of
    every group of four or more, so that the hard list has many impostor pairs rather than a
    few; in a small corpus where no group would have two, two of the largest group, so that
    there is a hard list at all (at least two test speakers overall)."""
    rng = random.Random(seed)
    groups = _grouped(list(speakers), [_group(v) for v in speakers.values()])
    held_out = set()
    for key in sorted(groups):
        members = groups[key]
        count = round(share * len(members))
        held_out |= set(rng.sample(members, max(count, 2) if len(members) >= 4 else count))
    largest = max(sorted(groups), key=lambda key: len(groups[key]))
    if len(groups[largest]) >= 2 and all(len(held_out & set(g)) < 2 for g in groups.values()):
        held_out |= set(rng.sample(sorted(set(groups[largest]) - held_out),
                                   2 - len(held_out & set(groups[largest]))))
    if len(held_out) < 2:
        held_out |= set(rng.sample(sorted(set(speakers) - held_out), 2 - len(held_out)))
    return held_out


def _group(voice: Voice) -> str:
    """What the hard list's impostors share: language (without region) and gender."""
    return f"{voice.language.split('_')[0]}/{voice.gender}"


def _grouped(items: list, keys: list[str]) -> dict[str, list]:
    """``items`` grouped by their key, in order."""
    groups: dict[str, list] = {}
    for item, key in zip(items, keys, strict=True):
        groups.setdefault(key, []).append(item)
    return groups


def _job(folder: str, speaker: str, index: int, voice: Voice, utterance: int, sessions: int,
         min_words: int, seed: int) -> dict:
    """Everything one worker needs to make one file, drawn here so it is reproducible."""
    session = utterance % sessions
    rng = random.Random(zlib.crc32(f"{seed}/{index}/{utterance}".encode()))
    text, _ = utterance_text(voice.language, rng, min_words)
    return {"voice": voice, "text": text, "rate": rng.uniform(*RATE_RANGE),
            "pitch": rng.uniform(*PITCH_RANGE),
            "speed": rng.uniform(*SPEED_RANGE) if voice.engine in RESAMPLED_ENGINES else 1.0,
            "channel_seed": zlib.crc32(f"{seed}/{index}/session{session}".encode()),
            "noise_seed": rng.getrandbits(32), "folder": folder,
            "relative": f"{speaker}/sess{session + 1:02d}/{utterance + 1:05d}.wav"}


def _run(jobs: list[dict], workers: int) -> tuple[dict[str, int], list[str]]:
    """Every job on ``workers`` processes, ``TASK_FILES`` consecutive jobs of one voice a task:
    the files written (relative path -> samples) and the problems."""
    tasks: list[list[dict]] = []
    for job in jobs:
        if tasks and len(tasks[-1]) < TASK_FILES and tasks[-1][0]["voice"] == job["voice"]:
            tasks[-1].append(job)
        else:
            tasks.append([job])
    written, failures = {}, []
    with process_pool(workers, runs_torch=False) as pool, \
            tqdm(total=len(jobs), desc="Synthesising", unit="file") as progress:
        for results in pool.map(make_utterances, tasks):
            for relative, samples, problem in results:
                if problem is None:
                    written[relative] = samples
                else:
                    failures.append(problem)
            progress.update(len(results))
    return written, failures


def make_utterances(jobs: list[dict]) -> list[tuple[str, int, str | None]]:
    """``make_utterance`` for each of ``jobs``, all of one voice; a Festival voice says them
    all in one process first (a file it did not make is made alone)."""
    with tempfile.TemporaryDirectory() as scratch:
        raws = [os.path.join(scratch, f"{index}.wav") for index in range(len(jobs))]
        made = set()
        if jobs[0]["voice"].engine == "festival":
            made = synthesize_festival(jobs[0]["voice"], [
                (job["text"], raw, job["rate"]) for job, raw in zip(jobs, raws, strict=True)])
        return [make_utterance(job, raw if raw in made else None)
                for job, raw in zip(jobs, raws, strict=True)]


def make_utterance(job: dict, raw: str | None = None) -> tuple[str, int, str | None]:
    """Synthesise (unless ``raw`` is the voice's audio already), resample, pass through the
    session's channel and write one file; returns its relative path, its length in samples
    and ``None``, or the problem."""
    target = Path(job["folder"], "wav", job["relative"])
    try:
        with tempfile.TemporaryDirectory() as scratch:
            if raw is None:
                raw = os.path.join(scratch, "raw.wav")
                synthesize(job["voice"], job["text"], raw, job["rate"], job["pitch"])
            wave, rate = soundfile.read(raw, dtype="float64", always_2d=True)
        wave = wave.mean(axis=1)
        # Played at `speed` times the original rate: a resampling to rate / speed.
        source = round(rate * job["speed"])
        divisor = np.gcd(SAMPLE_RATE, source)
        wave = resample_poly(wave, SAMPLE_RATE // divisor, source // divisor)
        if len(wave) < SAMPLE_RATE // 2 or np.abs(wave).max() == 0:
            raise RuntimeError(f"{job['voice'].key}: no speech in the output")
        channel = random_channel(np.random.default_rng(job["channel_seed"]))
        wave = apply_channel(wave, channel, SAMPLE_RATE, np.random.default_rng(job["noise_seed"]))
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part.wav")
        soundfile.write(partial, wave, SAMPLE_RATE, subtype="PCM_16")
        os.replace(partial, target)
        return job["relative"], len(wave), None
    except (RuntimeError, OSError, ValueError, soundfile.LibsndfileError) as error:
        return job["relative"], 0, f"{job['relative']}: {error}"


def _write_speakers(path: Path, speakers: dict[str, Voice], held_out: set[str],
                    files: dict[str, list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "engine", "voice", "language", "gender", "split", "files"])
        for speaker, voice in speakers.items():
            writer.writerow([speaker, voice.engine, voice.name, voice.language, voice.gender,
                             "test" if speaker in held_out else "train", len(files[speaker])])
