"""Turning a scanned corpus into the files training and verification read.

Shared by every preparation: the train / dev split (by speaker or per speaker by utterance),
the speaker-disjoint validation set with its trials, and the enrol / test CSVs and trial list
of a test trial list. IDs in ``valid.csv``, ``enrol.csv`` and ``test.csv`` are trial entries
without their extension (``speaker/session/utt``), so trial lists resolve through them.
"""

import random
from pathlib import Path

from custom_modules.trials import Trial, make_trials, write_trials
from data_prep.manifest import Utterance, training_rows, utterance_rows, write_csv


def group_by_speaker(utterances: list[Utterance]) -> dict[str, list[Utterance]]:
    """Speaker -> their utterances, in input order."""
    groups: dict[str, list[Utterance]] = {}
    for u in utterances:
        groups.setdefault(u.speaker, []).append(u)
    return groups


def split_train_dev(pool: list[Utterance], split_ratio: tuple[float, float], dev_split: str,
                    seed: int) -> tuple[list[Utterance], list[Utterance]]:
    """Train / dev split, reproducible from ``seed``.

    ``dev_split="speakers"`` holds out ``split_ratio[1]`` percent of the speakers;
    ``"utterances"`` holds out that share of each speaker's utterances (at least one stays in
    train), so that every dev speaker is also a training class.
    """
    rng = random.Random(seed)
    share = split_ratio[0] / sum(split_ratio)
    by_speaker = group_by_speaker(pool)
    if dev_split == "utterances":
        dev = set()
        for utterances in by_speaker.values():
            shuffled = rng.sample(utterances, len(utterances))
            dev.update(u.relative for u in shuffled[max(1, round(share * len(shuffled))):])
    else:
        speakers = sorted(by_speaker)
        rng.shuffle(speakers)
        dev = {u.relative for s in speakers[int(share * len(speakers)):] for u in by_speaker[s]}
    return [u for u in pool if u.relative not in dev], [u for u in pool if u.relative in dev]


def write_training(save_folder: str | Path, train: list[Utterance], dev: list[Utterance],
                   mode: str, seg_dur: float) -> None:
    """``train.csv`` and ``dev.csv``: whole utterances or fixed chunks."""
    write_csv(Path(save_folder, "train.csv"), training_rows(train, mode, seg_dur))
    write_csv(Path(save_folder, "dev.csv"), training_rows(dev, mode, seg_dur))


def write_validation(save_folder: str | Path, utterances: list[Utterance], num_trials: int,
                     seed: int) -> list[Trial]:
    """``valid.csv`` and balanced ``valid_trials.txt`` among held-out speakers."""
    by_speaker = {s: [u.relative for u in us] for s, us in group_by_speaker(utterances).items()}
    try:
        trials = make_trials(by_speaker, num_trials, seed)
    except ValueError as error:
        raise ValueError(f"validation split: {error}; hold out more speakers (split_ratio) "
                         f"or use dev_split='utterances'") from None
    write_test_side(save_folder, "valid", trials, utterances)
    return trials


def write_test_side(save_folder: str | Path, name: str, trials: list[Trial],
                    utterances: list[Utterance]) -> None:
    """``<name>_trials.txt`` and the CSVs of the utterances it uses: ``valid.csv`` for the
    validation side, ``enrol.csv`` and ``test.csv`` (one per trial column) for the test."""
    by_relative = {u.relative: u for u in utterances}
    columns = {"valid": [("valid.csv", ("enrol", "test"))],
               "test": [("enrol.csv", ("enrol",)), ("test.csv", ("test",))]}[name]
    for csv_name, sides in columns:
        used = sorted({getattr(t, side) for t in trials for side in sides})
        write_csv(Path(save_folder, csv_name),
                  utterance_rows([by_relative[r] for r in used], ids="trial"))
    write_trials(Path(save_folder, f"{name}_trials.txt"), trials)
