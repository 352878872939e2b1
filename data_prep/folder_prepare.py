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
from custom_modules.data.trials import make_trials
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
from data_prep.splits import split_train_dev, write_test_side, write_training, write_validation

logger = logging.getLogger(__name__)
SAMPLE_RATE = 16000
EXTENSIONS = (".wav", ".flac", ".ogg")


def prepare_folder(data_folder: str, save_folder: str, test_speakers: float = 0.2,
                   test_trials: int = 20000, mode: str = "utterances", seg_dur: float = 3.0,
                   min_duration: float = 1.0, split_ratio: tuple[float, float] = (90, 10),
                   dev_split: str = "speakers", valid_trials: int = 5000,
                   num_workers: int | None = None, seed: int = 1234) -> dict:
    """Prepare a folder-per-speaker corpus; returns a summary (counts, whether it was skipped).

    Arguments
    ---------
    data_folder : str
        The corpus root; each sub-folder is one speaker.
    save_folder : str
        Where the CSVs, trial lists, converted audio and ``prep_report.json`` go.
    test_speakers : float
        Share of speakers (below 1) or number of speakers (1 or more) held out for testing.
    test_trials, valid_trials : int
        Trials to draw among test / validation speakers (half target, half non-target).
    mode, seg_dur, min_duration, split_ratio, dev_split, num_workers, seed
        As in ``data_prep.voxceleb_prepare.prepare_voxceleb``.
    """
    root = Path(data_folder).resolve()
    if not root.is_dir():
        raise InputError(f"{root}: corpus folder not found")
    options = {"data_folder": str(root), "test_speakers": test_speakers,
               "test_trials": test_trials, "mode": mode, "seg_dur": seg_dur,
               "min_duration": min_duration, "split_ratio": list(split_ratio),
               "dev_split": dev_split, "valid_trials": valid_trials, "seed": seed,
               "modified": modification_stamp([root])}
    outputs = ["train.csv", "dev.csv", "enrol.csv", "test.csv", "test_trials.txt", REPORT_FILE]
    if already_prepared(save_folder, options, outputs):
        logger.info("%s already prepared in %s with the same options: nothing to do", root,
                    save_folder)
        return {"skipped": True, "save_folder": save_folder}
    Path(save_folder).mkdir(parents=True, exist_ok=True)
    workers = worker_count(num_workers)

    files = [(os.path.join(d, n), os.path.relpath(os.path.join(d, n), root).replace(os.sep, "/"))
             for d, _, names in os.walk(root) for n in names if n.lower().endswith(EXTENSIONS)]
    loose = [{"file": path, "relative": rel, "reason": "not inside a speaker folder"}
             for path, rel in files if "/" not in rel]
    scanned = scan(sorted(f for f in files if "/" in f[1]), min_duration, None, workers)
    skipped = scanned.skipped + loose
    utterances, failed = _to_16k_mono(scanned.utterances, scanned.headers,
                                      Path(save_folder, "wav16k"), min_duration, workers)
    skipped += failed

    rng = random.Random(seed)
    speakers = sorted({u.speaker for u in utterances})
    count = int(test_speakers) if test_speakers >= 1 else round(test_speakers * len(speakers))
    if not 2 <= count <= len(speakers) - 2:
        raise InputError(f"{root}: {len(speakers)} usable speakers cannot give {count} test "
                         f"speakers and at least 2 training speakers; add speakers or change "
                         f"test_speakers")
    held_out = set(rng.sample(speakers, count))
    test = [u for u in utterances if u.speaker in held_out]
    trials = make_trials({s: [trial_entry(u) for u in us]
                          for s, us in by_speaker(test).items()}, test_trials, seed)
    train, dev = split_train_dev([u for u in utterances if u.speaker not in held_out],
                                 split_ratio, dev_split, seed)
    write_training(save_folder, train, dev, mode, seg_dur, SAMPLE_RATE)
    write_test_side(save_folder, "test", {"test": trials}, test)
    valid = write_validation(save_folder, dev, valid_trials, seed) \
        if dev_split == "speakers" else []

    summary = {"files_usable": len(utterances), "files_skipped": len(skipped),
               "speakers": len(speakers), "test_speakers": count,
               "train_utterances": len(train), "dev_utterances": len(dev),
               "test_trials": len(trials), "valid_trials": len(valid), "skipped": False,
               "save_folder": save_folder}
    write_json(Path(save_folder, REPORT_FILE), {**summary, "skipped_files": skipped})
    mark_prepared(save_folder, options)
    logger.info("%s prepared in %s: %s", root, save_folder, summary)
    return summary


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
