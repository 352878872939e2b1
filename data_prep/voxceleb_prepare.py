"""VoxCeleb -> SpeechBrain CSVs (train / dev / valid / enrol / test) and trial lists.

The published setup (``train_on_test_folder`` False): the model trains on VoxCeleb2 dev
(``data_folder``) and is tested on VoxCeleb1 (``test_folder``, dev and test parts) with the
lists of ``trial_lists``: VoxCeleb1-O (cleaned, shipped in ``data_prep/trial_lists``), and -E
and -H when their lists are given. ``train_on_test_folder`` trains on VoxCeleb1 too (less the
speakers the lists name), as SpeechBrain's recipe does; VoxCeleb1-E and -H are drawn from
VoxCeleb1 dev, so they are then refused (a list that names more than half of the test folder's
speakers), and only -O can be reported.

Point it at the folders as distributed: ``<folder>/wav/idXXXXX/<video>/NNNNN.wav`` and, for
VoxCeleb2, ``<folder>/aac/idXXXXX/<video>/NNNNN.m4a`` (converted once to 16 kHz mono wav, in
parallel and resumably) or already converted ``<folder>/wav/...``. Callable from a training
YAML (``!name:data_prep.voxceleb_prepare.prepare_voxceleb``, its options built with
``!new:data_prep.voxceleb_prepare.VoxCelebInputs`` and ``!new:data_prep.splits.SplitOptions``)
or on its own.

Durations come from file headers on all cores. Speakers of the trial lists never reach train or
dev. With ``dev_split="speakers"`` the validation split holds out whole speakers and writes
``valid.csv`` with ``valid_trials.txt``, so training can select checkpoints by EER;
``dev_split="utterances"`` is SpeechBrain's utterance-level split (every speaker trains; the
validation trials are then among held-out utterances of training speakers, a progress signal
rather than an estimate). Unusable files are skipped and listed with the reason in
``prep_report.json``; a second run with the same options does nothing.
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from custom_modules.data.catalogue import Utterance
from custom_modules.data.trials import Trial, read_trials, trial_speakers, utterance_id
from custom_modules.errors import InputError
from data_prep.ffmpeg_convert import convert_to_wav
from data_prep.manifest import (
    REPORT_FILE,
    Scan,
    already_prepared,
    mark_prepared,
    modification_stamp,
    scan,
    worker_count,
    write_json,
)
from data_prep.splits import SplitOptions, write_test_side, write_train_dev, write_validation

logger = logging.getLogger(__name__)
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class VoxCelebInputs:
    """Which VoxCeleb folders train and test, with which trial lists (set in the YAML).

    ``data_folder``: the training VoxCeleb folders, a list or a comma-separated string (as in
    SpeechBrain): VoxCeleb2 dev for the published setup; ``test_folder``: the VoxCeleb1 folder
    the trial lists' entries are in (``<test_folder>/wav/<entry>``); ``trial_lists``: name ->
    trial list file (``None`` leaves it out), each written as ``<name>_trials.txt``, with
    ``enrol.csv`` / ``test.csv`` covering all of them; ``train_on_test_folder``: train on the
    test folder too (less the speakers the lists name); ``converted_folder``: where m4a files
    are converted to (``None``: ``<data folder>/wav``); ``skip_missing_trials``: drop trials
    whose audio is missing or unusable instead of stopping.
    """

    data_folder: str | list[str]
    test_folder: str
    trial_lists: dict[str, str | None]
    train_on_test_folder: bool
    converted_folder: str | None
    skip_missing_trials: bool


class _Corpus(NamedTuple):
    """The inputs resolved: training and test folders, the lists named (name -> file), and
    the folders that train (with the test folder when ``train_on_test_folder``)."""

    folders: list[Path]
    tests: list[Path]
    lists: dict[str, str]
    training: list[Path]


def prepare_voxceleb(inputs: VoxCelebInputs, save_folder: str, splits: SplitOptions,
                     num_workers: int | None) -> dict:
    """Prepare VoxCeleb into ``save_folder`` (CSVs, trial lists, ``prep_report.json``),
    reading headers and converting on ``num_workers`` processes (``None``: all cores);
    returns a summary (counts and output paths)."""
    corpus = _resolve(inputs, splits)
    options = _options_record(inputs, splits, corpus)
    outputs = ["train.csv", "dev.csv", "enrol.csv", "test.csv", REPORT_FILE,
               *(f"{name}_trials.txt" for name in corpus.lists)]
    outputs += ["valid.csv", "valid_trials.txt"] if splits.valid_trials else []
    if already_prepared(save_folder, options, outputs):
        logger.info("VoxCeleb already prepared in %s with the same options: nothing to do",
                    save_folder)
        return {"skipped": True, "save_folder": save_folder}
    Path(save_folder).mkdir(parents=True, exist_ok=True)
    scanned, skipped = _scan(corpus, inputs.converted_folder, splits.min_duration,
                             worker_count(num_workers))
    test_roots = tuple(str(folder / "wav") + os.sep for folder in corpus.tests)
    test_side = [u for u in scanned.utterances if u.wav.startswith(test_roots)]
    kept_lists, missing, excluded = _test_lists(inputs, corpus, test_side, skipped)
    train, dev = write_train_dev(save_folder, _training_pool(inputs, corpus, scanned, excluded),
                                 splits, SAMPLE_RATE)
    write_test_side(save_folder, "test", kept_lists, test_side)
    valid = write_validation(save_folder, dev, splits.valid_trials, splits.seed) \
        if splits.valid_trials else []

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


def _resolve(inputs: VoxCelebInputs, splits: SplitOptions) -> _Corpus:
    """The folders and lists of ``inputs``; refuses options that cannot work."""
    folders, tests = _folders(inputs.data_folder), _folders(inputs.test_folder)
    lists = {name: path for name, path in inputs.trial_lists.items() if path is not None}
    if not lists:
        raise InputError("prepare_voxceleb: trial_lists names no list (every entry is null)")
    mode, dev_split = splits.mode, splits.dev_split
    if mode not in ("utterances", "chunks") or dev_split not in ("speakers", "utterances"):
        raise InputError(f"prepare_voxceleb: mode must be 'utterances' or 'chunks' and "
                         f"dev_split 'speakers' or 'utterances', got {mode!r}, {dev_split!r}")
    if set(tests) & set(folders):
        raise InputError(f"{tests[0]} is the test folder and in data_folder too: give it as "
                         f"test_folder only, and set train_on_test_folder=True "
                         f"(--train_on_voxceleb1=True) to train on it as well")
    return _Corpus(folders, tests, lists,
                   folders + (tests if inputs.train_on_test_folder else []))


def _options_record(inputs: VoxCelebInputs, splits: SplitOptions, corpus: _Corpus) -> dict:
    """What ``prep_options.json`` records: a second run with the same does nothing."""
    return {"data_folder": [str(f) for f in corpus.folders], "test_folder": str(corpus.tests[0]),
            "trial_lists": {n: os.path.abspath(p) for n, p in corpus.lists.items()},
            "train_on_test_folder": inputs.train_on_test_folder,
            "converted_folder": inputs.converted_folder,
            "skip_missing_trials": inputs.skip_missing_trials, **splits.record(),
            "modified": modification_stamp([*corpus.lists.values(), *corpus.training,
                                            *corpus.tests])}


def _scan(corpus: _Corpus, converted_folder: str | None, min_duration: float,
          workers: int) -> tuple[Scan, list[dict]]:
    """Convert the training folders' m4a files, then read every wav header; returns the scan
    and every file skipped (conversions first)."""
    skipped = convert_to_wav(_m4a_jobs(corpus.training, converted_folder), workers,
                             SAMPLE_RATE)
    scanned = scan(_wav_files(list(dict.fromkeys(corpus.training + corpus.tests)),
                              converted_folder), min_duration, SAMPLE_RATE, workers)
    return scanned, skipped + scanned.skipped


def _test_lists(inputs: VoxCelebInputs, corpus: _Corpus, test_side: list[Utterance],
                skipped: list[dict]) -> tuple[dict[str, list[Trial]], list[dict], set[str]]:
    """Each list's usable trials (``_check_trials``), a record per missing utterance, and the
    speakers the lists name (kept out of training)."""
    kept_lists, missing, excluded = {}, [], set()
    for name, path in corpus.lists.items():
        all_trials = read_trials(path)
        kept_lists[name], lost = _check_trials(path, all_trials, test_side, skipped,
                                               inputs.skip_missing_trials)
        missing += lost
        speakers = trial_speakers(all_trials)
        if inputs.train_on_test_folder and \
                len(speakers) > 0.5 * len({u.speaker for u in test_side}):
            raise InputError(f"{path}: it names {len(speakers)} speakers of {corpus.tests[0]}, "
                             f"which also trains the model (train_on_test_folder): they would "
                             f"all leave training. VoxCeleb1-E and -H come from VoxCeleb1 dev; "
                             f"report them with train_on_test_folder False (VoxCeleb2 dev only)")
        excluded |= speakers
    return kept_lists, missing, excluded


def _training_pool(inputs: VoxCelebInputs, corpus: _Corpus, scanned: Scan,
                   excluded: set[str]) -> list[Utterance]:
    """The usable files of the training folders (and of the converted folder) whose speakers
    no trial list names."""
    converted = inputs.converted_folder
    roots = tuple(str(folder / "wav") + os.sep for folder in corpus.training) + \
        ((str(Path(converted)) + os.sep,) if converted else ())
    return [u for u in scanned.utterances if u.speaker not in excluded
            and u.wav.startswith(roots)]


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


