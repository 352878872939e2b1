"""VoxCeleb -> SpeechBrain CSVs (train / dev / valid / enrol / test) and trial lists.

The published setup by default: the model trains on VoxCeleb2 dev (``data_folder``) and is
tested on VoxCeleb1 (``test_folder``, dev and test parts) with the lists of ``trial_lists``:
VoxCeleb1-O (cleaned, shipped in ``data_prep/trial_lists``), and -E and -H when their lists
are given. ``train_on_test_folder`` trains on VoxCeleb1 too (less the speakers the lists name),
as SpeechBrain's recipe does; VoxCeleb1-E and -H are drawn from VoxCeleb1 dev, so they are then
refused (a list that names more than half of the test folder's speakers), and only -O can be
reported.

Point it at the folders as distributed: ``<folder>/wav/idXXXXX/<video>/NNNNN.wav`` and, for
VoxCeleb2, ``<folder>/aac/idXXXXX/<video>/NNNNN.m4a`` (converted once to 16 kHz mono wav, in
parallel and resumably) or already converted ``<folder>/wav/...``. Callable from a training
YAML (``!name:data_prep.voxceleb_prepare.prepare_voxceleb``) or on its own.

Durations come from file headers on all cores. Speakers of the trial lists never reach train or
dev. By default the validation split holds out whole speakers and writes ``valid.csv`` with
``valid_trials.txt``, so training can select checkpoints by EER; ``dev_split="utterances"`` is
SpeechBrain's utterance-level split (every speaker trains; the validation trials are then among
held-out utterances of training speakers, a progress signal rather than an estimate). Unusable
files are skipped and listed with the reason in ``prep_report.json``; a second run with the
same options does nothing.
"""

import logging
import os
from pathlib import Path

from custom_modules.data.catalogue import Utterance
from custom_modules.data.trials import Trial, read_trials, trial_speakers, utterance_id
from custom_modules.errors import InputError
from data_prep.ffmpeg_convert import convert_to_wav
from data_prep.manifest import (
    REPORT_FILE,
    already_prepared,
    mark_prepared,
    modification_stamp,
    scan,
    worker_count,
    write_json,
)
from data_prep.splits import split_train_dev, write_test_side, write_training, write_validation

logger = logging.getLogger(__name__)
SAMPLE_RATE = 16000


def prepare_voxceleb(data_folder: str | list[str], save_folder: str, test_folder: str,
                     trial_lists: dict[str, str | None], train_on_test_folder: bool = False,
                     mode: str = "utterances", seg_dur: float = 3.0, min_duration: float = 1.0,
                     split_ratio: tuple[float, float] = (98, 2), dev_split: str = "speakers",
                     valid_trials: int = 20000, converted_folder: str | None = None,
                     skip_missing_trials: bool = False, num_workers: int | None = None,
                     seed: int = 1234) -> dict:
    """Prepare VoxCeleb; returns a summary (counts and output paths).

    Arguments
    ---------
    data_folder : str or list of str
        The training VoxCeleb folders (a comma-separated string works too, as in SpeechBrain):
        VoxCeleb2 dev for the published setup.
    save_folder : str
        Where the CSVs, trial lists and ``prep_report.json`` go.
    test_folder : str
        The VoxCeleb1 folder the trial lists' entries are in (``<test_folder>/wav/<entry>``).
    trial_lists : dict
        Name -> trial list file (``None`` leaves it out); each is written as
        ``<name>_trials.txt``, and ``enrol.csv`` / ``test.csv`` cover all of them.
    train_on_test_folder : bool
        Train on the test folder too (less the speakers the lists name).
    mode : str
        ``"utterances"`` (whole files; the recipe crops at load time) or ``"chunks"``
        (SpeechBrain's fixed ``seg_dur``-second chunks).
    min_duration : float
        Files shorter than this (seconds) are skipped and reported.
    split_ratio : (float, float)
        Percentages of training speakers (or utterances) for train and dev.
    dev_split : str
        ``"speakers"`` (speaker-disjoint dev) or ``"utterances"`` (SpeechBrain's
        utterance-level split, made per speaker so that every dev speaker is also a training
        class); either way with ``valid.csv`` and ``valid_trials.txt`` from the dev side.
    valid_trials : int
        Number of validation trials to draw (half target, half non-target); 0: none (no
        validation during training).
    converted_folder : str, optional
        Where m4a files are converted to (default ``<data folder>/wav``).
    skip_missing_trials : bool
        Drop trials whose audio is missing or unusable instead of stopping.
    num_workers : int, optional
        Processes for reading headers and converting (default: all cores).
    seed : int
        Seed of the splits and of the validation trials.
    """
    folders, tests = _folders(data_folder), _folders(test_folder)
    lists = {name: path for name, path in trial_lists.items() if path is not None}
    if not lists:
        raise InputError("prepare_voxceleb: trial_lists names no list (every entry is null)")
    if mode not in ("utterances", "chunks") or dev_split not in ("speakers", "utterances"):
        raise InputError(f"prepare_voxceleb: mode must be 'utterances' or 'chunks' and "
                         f"dev_split 'speakers' or 'utterances', got {mode!r}, {dev_split!r}")
    if set(tests) & set(folders):
        raise InputError(f"{tests[0]} is the test folder and in data_folder too: give it as "
                         f"test_folder only, and set train_on_test_folder=True "
                         f"(--train_on_voxceleb1=True) to train on it as well")
    training_folders = folders + (tests if train_on_test_folder else [])
    options = {"data_folder": [str(f) for f in folders], "test_folder": str(tests[0]),
               "trial_lists": {n: os.path.abspath(p) for n, p in lists.items()},
               "train_on_test_folder": train_on_test_folder, "mode": mode, "seg_dur": seg_dur,
               "min_duration": min_duration, "split_ratio": list(split_ratio),
               "dev_split": dev_split, "valid_trials": valid_trials,
               "converted_folder": converted_folder,
               "skip_missing_trials": skip_missing_trials, "seed": seed,
               "modified": modification_stamp([*lists.values(), *training_folders, *tests])}
    outputs = ["train.csv", "dev.csv", "enrol.csv", "test.csv", REPORT_FILE,
               *(f"{name}_trials.txt" for name in lists)]
    outputs += ["valid.csv", "valid_trials.txt"] if valid_trials else []
    if already_prepared(save_folder, options, outputs):
        logger.info("VoxCeleb already prepared in %s with the same options: nothing to do",
                    save_folder)
        return {"skipped": True, "save_folder": save_folder}
    Path(save_folder).mkdir(parents=True, exist_ok=True)
    workers = worker_count(num_workers)

    skipped = convert_to_wav(_m4a_jobs(training_folders, converted_folder), workers,
                             SAMPLE_RATE)
    scanned = scan(_wav_files(list(dict.fromkeys(training_folders + tests)), converted_folder),
                   min_duration, SAMPLE_RATE, workers)
    skipped += scanned.skipped
    test_roots = [str(folder / "wav") + os.sep for folder in tests]
    test_side = [u for u in scanned.utterances if u.wav.startswith(tuple(test_roots))]
    kept_lists, missing, excluded = {}, [], set()
    for name, path in lists.items():
        all_trials = read_trials(path)
        kept_lists[name], lost = _check_trials(path, all_trials, test_side, skipped,
                                               skip_missing_trials)
        missing += lost
        speakers = trial_speakers(all_trials)
        if train_on_test_folder and len(speakers) > 0.5 * len({u.speaker for u in test_side}):
            raise InputError(f"{path}: it names {len(speakers)} speakers of {tests[0]}, which "
                             f"also trains the model (train_on_test_folder): they would all "
                             f"leave training. VoxCeleb1-E and -H come from VoxCeleb1 dev; "
                             f"report them with train_on_test_folder False (VoxCeleb2 dev only)")
        excluded |= speakers
    train_roots = tuple(str(folder / "wav") + os.sep for folder in training_folders) + \
        ((str(Path(converted_folder)) + os.sep,) if converted_folder else ())
    pool = [u for u in scanned.utterances if u.speaker not in excluded
            and u.wav.startswith(train_roots)]
    train, dev = split_train_dev(pool, split_ratio, dev_split, seed)
    write_training(save_folder, train, dev, mode, seg_dur, SAMPLE_RATE)
    write_test_side(save_folder, "test", kept_lists, test_side)
    valid = write_validation(save_folder, dev, valid_trials, seed) if valid_trials else []

    summary = {"files_usable": len(scanned.utterances), "files_skipped": len(skipped),
               "train_utterances": len(train), "train_speakers": len({u.speaker for u in train}),
               "dev_utterances": len(dev), "dev_speakers": len({u.speaker for u in dev}),
               "test_speakers_excluded": len(excluded),
               "test_trials": {name: len(trials) for name, trials in kept_lists.items()},
               "test_trials_dropped": len(missing), "valid_trials": len(valid),
               "save_folder": save_folder, "skipped": False}
    write_json(Path(save_folder, REPORT_FILE), {**summary, "skipped_files": skipped,
                                               "missing_trial_utterances": missing})
    mark_prepared(save_folder, options)
    logger.info("VoxCeleb prepared in %s: %s", save_folder, summary)
    return summary


def _folders(data_folder: str | list[str]) -> list[Path]:
    names = data_folder.split(",") if isinstance(data_folder, str) else data_folder
    folders = [Path(name.strip()).resolve() for name in names if name.strip()]
    for folder in folders:
        if not (folder / "wav").is_dir() and not (folder / "aac").is_dir():
            raise InputError(f"{folder}: not a VoxCeleb folder (it has neither wav/ nor aac/)")
    return folders


def _m4a_jobs(folders: list[Path], converted_folder: str | None) -> list[tuple[str, str]]:
    jobs = []
    for folder in folders:
        target_root = Path(converted_folder) if converted_folder else folder / "wav"
        for path, relative in _walk(folder / "aac", ".m4a"):
            jobs.append((path, str(target_root / Path(relative).with_suffix(".wav"))))
    return jobs


def _wav_files(folders: list[Path], converted_folder: str | None) -> list[tuple[str, str]]:
    roots = [folder / "wav" for folder in folders]
    if converted_folder:
        roots.append(Path(converted_folder))
    files: dict[str, str] = {}
    for root in dict.fromkeys(roots):
        for path, relative in _walk(root, ".wav"):
            files.setdefault(path, relative)
    return sorted(files.items())


def _walk(root: Path, suffix: str) -> list[tuple[str, str]]:
    """``(absolute path, path relative to root)`` of every file ending in ``suffix``."""
    found = []
    prefix = len(str(root)) + 1
    for directory, _, names in os.walk(root):
        for name in names:
            if name.endswith(suffix):
                path = os.path.join(directory, name)
                found.append((path, path[prefix:]))
    return sorted(found)


def _check_trials(path: str, trials: list[Trial], utterances: list[Utterance],
                  skipped: list[dict], skip_missing: bool) -> tuple[list[Trial], list[dict]]:
    """Trials whose two utterances are usable; stops with a clear error on any other unless
    ``skip_missing``. Returns the kept trials and a record per missing utterance."""
    usable = {u.id for u in utterances}
    # Skipped files (read failures, conversions) carry their path relative to the corpus root.
    reasons = {utterance_id(s["relative"]): s["reason"] for s in skipped if "relative" in s}
    lost = sorted({e for t in trials for e in (t.enrol, t.test) if utterance_id(e) not in usable})
    missing = [{"utterance": e, "reason": reasons.get(utterance_id(e), "not found on disk")}
               for e in lost]
    if missing and not skip_missing:
        first = "; ".join(f"{m['utterance']} ({m['reason']})" for m in missing[:3])
        raise InputError(f"{path}: {len(missing)} of the trial utterances are missing or "
                         f"unusable, e.g. {first}; set skip_missing_trials=True "
                         f"(--skip_missing_trials=True) to drop those trials")
    kept = [t for t in trials if utterance_id(t.enrol) in usable
            and utterance_id(t.test) in usable]
    if missing:
        logger.warning("%s: dropped %d of %d trials whose audio is missing", path,
                       len(trials) - len(kept), len(trials))
    return kept, missing


