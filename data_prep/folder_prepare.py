"""Any folder-per-speaker corpus -> the same CSVs and trial lists as VoxCeleb.

Layout: ``<root>/<speaker>/**/*.{wav,flac,ogg}``, any sample rates and channel counts. Files
that are not 16 kHz mono wav are converted once (in parallel, resumably) into
``<save_folder>/wav16k/`` so that the CSVs always point at 16 kHz mono wav that SpeechBrain's
loaders read unchanged. Some speakers are held out for testing, with an automatically drawn,
balanced trial list; others for validation; the rest train. Reproducible from ``seed``; a
second run with the same options does nothing. This is how a user's own data and our demo
corpus enter the pipeline.
"""

import logging
import os
import random
from pathlib import Path

from tqdm import tqdm

from custom_modules.audio import AudioError, AudioInfo, audio_info, read_audio, write_wav
from custom_modules.data.catalogue import Utterance, by_speaker
from custom_modules.data.trials import Trial, make_trials
from custom_modules.errors import InputError
from data_prep.manifest import (
    REPORT_FILE,
    already_prepared,
    mark_prepared,
    modification_stamp,
    process_pool,
    scan,
    trial_entry,
    worker_count,
    write_json,
)
from data_prep.splits import SplitOptions, write_test_side, write_train_dev, write_validation

logger = logging.getLogger(__name__)
SAMPLE_RATE = 16000
EXTENSIONS = (".wav", ".flac", ".ogg")


def prepare_folder(data_folder: str, save_folder: str, test_speakers: float, test_trials: int,
                   splits: SplitOptions, num_workers: int | None) -> dict:
    """Prepare the corpus ``data_folder`` (each sub-folder one speaker) into ``save_folder``
    on ``num_workers`` processes (``None``: all cores); returns a summary (counts, whether it
    was skipped). ``test_speakers`` (a share below 1, else a number) are held out, with
    ``test_trials`` trials; ``splits`` splits the rest (validation trials only with
    ``dev_split: speakers``)."""
    root = Path(data_folder).resolve()
    if not root.is_dir():
        raise InputError(f"{root}: corpus folder not found")
    options = {"data_folder": str(root), "test_speakers": test_speakers,
               "test_trials": test_trials, **splits.record(),
               "modified": modification_stamp([root])}
    outputs = ["train.csv", "dev.csv", "enrol.csv", "test.csv", "test_trials.txt", REPORT_FILE]
    if already_prepared(save_folder, options, outputs):
        logger.info("%s already prepared in %s with the same options: nothing to do", root,
                    save_folder)
        return {"skipped": True, "save_folder": save_folder}
    Path(save_folder).mkdir(parents=True, exist_ok=True)
    utterances, skipped = _usable_16k_mono(root, save_folder, splits.min_duration,
                                           worker_count(num_workers))
    speakers = sorted({u.speaker for u in utterances})
    held_out = _held_out(root, speakers, test_speakers, splits.seed)
    trials = _write_test(save_folder, [u for u in utterances if u.speaker in held_out],
                         test_trials, splits.seed)
    train, dev = write_train_dev(save_folder, [u for u in utterances if u.speaker not in held_out],
                                 splits, SAMPLE_RATE)
    valid = write_validation(save_folder, dev, splits.valid_trials, splits.seed) \
        if splits.dev_split == "speakers" else []

    summary = {"files_usable": len(utterances), "files_skipped": len(skipped),
               "speakers": len(speakers), "test_speakers": len(held_out),
               "train_utterances": len(train), "dev_utterances": len(dev),
               "test_trials": len(trials), "valid_trials": len(valid), "skipped": False,
               "save_folder": save_folder}
    write_json(Path(save_folder, REPORT_FILE), {**summary, "skipped_files": skipped})
    mark_prepared(save_folder, options)
    logger.info("%s prepared in %s: %s", root, save_folder, summary)
    return summary


def _usable_16k_mono(root: Path, save_folder: str, min_duration: float,
                     workers: int) -> tuple[list[Utterance], list[dict]]:
    """Every usable audio file under ``root``, as 16 kHz mono wav (``_to_16k_mono``), and a
    record per file skipped (files outside a speaker folder among them)."""
    files = [(os.path.join(d, n), os.path.relpath(os.path.join(d, n), root).replace(os.sep, "/"))
             for d, _, names in os.walk(root) for n in names if n.lower().endswith(EXTENSIONS)]
    loose = [{"file": path, "relative": rel, "reason": "not inside a speaker folder"}
             for path, rel in files if "/" not in rel]
    scanned = scan(sorted(f for f in files if "/" in f[1]), min_duration, None, workers)
    utterances, failed = _to_16k_mono(scanned.utterances, scanned.headers,
                                      Path(save_folder, "wav16k"), min_duration, workers)
    return utterances, scanned.skipped + loose + failed


def _held_out(root: Path, speakers: list[str], test_speakers: float, seed: int) -> set[str]:
    """The test speakers, drawn reproducibly from ``seed``; at least 2, leaving at least 2."""
    count = int(test_speakers) if test_speakers >= 1 else round(test_speakers * len(speakers))
    if not 2 <= count <= len(speakers) - 2:
        raise InputError(f"{root}: {len(speakers)} usable speakers cannot give {count} test "
                         f"speakers and at least 2 training speakers; add speakers or change "
                         f"test_speakers")
    return set(random.Random(seed).sample(speakers, count))


def _write_test(save_folder: str, test: list[Utterance], num_trials: int,
                seed: int) -> list[Trial]:
    """Balanced trials among the held-out speakers' utterances ``test``, written with their
    CSVs (``test_trials.txt``, ``enrol.csv``, ``test.csv``)."""
    trials = make_trials({s: [trial_entry(u) for u in us] for s, us in by_speaker(test).items()},
                         num_trials, seed)
    write_test_side(save_folder, "test", {"test": trials}, test)
    return trials


def _convert(job: tuple[str, str, float]) -> str | None:
    source, target, min_duration = job
    try:
        if not os.path.isfile(target):
            write_wav(target, read_audio(source, SAMPLE_RATE, min_duration=min_duration),
                      SAMPLE_RATE)
    except AudioError as error:
        return error.problem
    return None


def _to_16k_mono(utterances: list[Utterance], headers: dict[str, AudioInfo], target_root: Path,
                 min_duration: float, num_workers: int) -> tuple[list[Utterance], list[dict]]:
    """Point every utterance at a 16 kHz mono wav, converting the others into
    ``target_root`` (skipped when already there)."""
    ready, todo = [], []
    for u in utterances:
        usable = (headers[u.wav].sample_rate == SAMPLE_RATE and headers[u.wav].channels == 1
                  and u.wav.lower().endswith(".wav"))
        (ready if usable else todo).append(u)
    targets = [str(target_root / f"{u.id}.wav") for u in todo]
    failed: list[dict] = []
    if not todo:
        return ready, failed
    with process_pool(num_workers) as pool:
        jobs = [(u.wav, t, min_duration) for u, t in zip(todo, targets, strict=True)]
        problems = pool.map(_convert, jobs, chunksize=16)
        for u, target, problem in tqdm(zip(todo, targets, problems, strict=True),
                                       total=len(todo), desc="Converting to 16 kHz mono"):
            if problem is None:
                info = audio_info(target)
                ready.append(u._replace(wav=target, stop=info.frames, duration=info.duration))
            else:
                failed.append({"file": u.wav, "relative": trial_entry(u), "reason": problem})
    return sorted(ready, key=lambda u: u.id), failed
