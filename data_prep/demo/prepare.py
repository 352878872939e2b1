"""The demo corpus -> the CSVs and trial lists training and verification read.

Everything comes from what the generator wrote, in one direction: ``speakers.csv`` says which
voices are held out (``split``), ``utterances.csv`` lists every file with its duration (no
header is read again), and the two trial lists name only held-out voices. So a held-out voice
never reaches training, whichever list names it, and both lists resolve through the prepared
CSVs::

    <save_folder>/train.csv, dev.csv      training voices (dev: held-out for validation)
    <save_folder>/valid.csv, valid_trials.txt
    <save_folder>/enrol.csv, test.csv     every utterance of either test list
    <save_folder>/standard_trials.txt, hard_trials.txt
    <save_folder>/prep_report.json

A second run with the same options and the same corpus does nothing.
"""

import csv
import logging
from pathlib import Path

from custom_modules.data.catalogue import read_utterance_csvs
from custom_modules.data.trials import Trial, read_trials, utterance_id
from custom_modules.errors import InputError
from data_prep.manifest import (
    REPORT_FILE,
    already_prepared,
    mark_prepared,
    modification_stamp,
    utterance_rows,
    write_csv,
    write_json,
)
from data_prep.splits import split_train_dev, write_test_side, write_validation

logger = logging.getLogger(__name__)
LISTS = {"standard": "trials_standard.txt", "hard": "trials_hard.txt"}


def prepare_demo(corpus_folder: str, save_folder: str, split_ratio: tuple[float, float],
                 valid_trials: int, seed: int) -> dict:
    """Prepare the generated corpus in ``corpus_folder``; returns a summary.

    ``split_ratio`` splits the training voices into training and validation voices (by
    speaker); ``valid_trials`` trials are drawn among the validation voices.
    """
    corpus = Path(corpus_folder)
    inputs = [corpus / "speakers.csv", corpus / "utterances.csv",
              *(corpus / name for name in LISTS.values())]
    for path in inputs:
        if not path.is_file() and path.name == LISTS["hard"] and inputs[0].is_file():
            raise InputError(f"{path}: the generator made no hard list (no two held-out voices "
                             f"share a language and gender, see corpus_report.json); use more "
                             f"voices (max_voices) or hold out more (test_voices)")
        if not path.is_file():
            raise InputError(f"{path}: not found; generate the demo corpus first "
                             f"(data_prep.demo.corpus.generate_demo_corpus)")
    options = {"corpus_folder": str(corpus.resolve()), "split_ratio": list(split_ratio),
               "valid_trials": valid_trials, "seed": seed, "modified": modification_stamp(inputs)}
    outputs = ["train.csv", "dev.csv", "valid.csv", "valid_trials.txt", "enrol.csv", "test.csv",
               *(f"{name}_trials.txt" for name in LISTS), REPORT_FILE]
    if already_prepared(save_folder, options, outputs):
        logger.info("demo corpus already prepared in %s: nothing to do", save_folder)
        return {"skipped": True, "save_folder": save_folder}
    Path(save_folder).mkdir(parents=True, exist_ok=True)
    held_out = held_out_voices(corpus / "speakers.csv")
    utterances = list(read_utterance_csvs([str(corpus / "utterances.csv")]).values())
    lists = {name: read_trials(corpus / file) for name, file in LISTS.items()}
    for name, trials in lists.items():
        _check_list(corpus / LISTS[name], trials, held_out,
                    {u.id for u in utterances if u.speaker in held_out})
    train, dev = split_train_dev([u for u in utterances if u.speaker not in held_out],
                                 split_ratio, "speakers", seed)
    write_csv(Path(save_folder, "train.csv"), utterance_rows(train))
    write_csv(Path(save_folder, "dev.csv"), utterance_rows(dev))
    valid = write_validation(save_folder, dev, valid_trials, seed)
    write_test_side(save_folder, "test", lists,
                    [u for u in utterances if u.speaker in held_out])
    summary = {"train_utterances": len(train), "train_voices": len({u.speaker for u in train}),
               "dev_utterances": len(dev), "dev_voices": len({u.speaker for u in dev}),
               "test_voices": len(held_out), "valid_trials": len(valid),
               **{f"{name}_trials": len(trials) for name, trials in lists.items()},
               "save_folder": save_folder, "skipped": False}
    write_json(Path(save_folder, REPORT_FILE), summary)
    mark_prepared(save_folder, options)
    logger.info("demo corpus prepared in %s: %s", save_folder, summary)
    return summary


def held_out_voices(speakers_csv: Path) -> set[str]:
    """The IDs of the voices ``speakers.csv`` marks as ``test``."""
    with open(speakers_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"ID", "split"} <= set(rows[0]):
        raise InputError(f"{speakers_csv}: expected the columns ID and split")
    return {row["ID"] for row in rows if row["split"] == "test"}


def _check_list(path: Path, trials: list[Trial], held_out: set[str], test_ids: set[str]) -> None:
    """Every entry of a test list is a held-out voice's utterance the generator wrote."""
    for trial in trials:
        for entry in (trial.enrol, trial.test):
            if entry.split("/")[0] not in held_out:
                raise InputError(f"{path}: {entry} is not a held-out voice's utterance "
                                 f"(speakers.csv); regenerate the corpus")
            if utterance_id(entry) not in test_ids:
                raise InputError(f"{path}: {entry} is not in utterances.csv; regenerate the "
                                 f"corpus")
