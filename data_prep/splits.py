"""Turning a scanned corpus into the files training and verification read.

Shared by every preparation: the train / dev split (by speaker or per speaker by utterance),
the speaker-disjoint validation set with its trials, and the enrol / test CSVs and trial list
of a test trial list. IDs in ``valid.csv``, ``enrol.csv`` and ``test.csv`` are trial entries
without their extension (``speaker/session/utt``), so trial lists resolve through them.
"""

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from custom_modules.data.catalogue import Utterance, by_speaker
from custom_modules.data.trials import Trial, make_trials, utterance_id, write_trials
from custom_modules.errors import InputError
from data_prep.manifest import training_rows, trial_entry, utterance_rows, write_csv


@dataclass(frozen=True)
class SplitOptions:
    """How a preparation turns a corpus's usable files into ``train.csv``, ``dev.csv`` and the
    validation trials (the same for VoxCeleb and a folder corpus; set in the training YAML).

    ``mode``: ``"utterances"`` (whole files; the recipe crops at load time) or ``"chunks"``
    (SpeechBrain's fixed ``seg_dur``-second chunks); ``seg_dur``: the chunks' length in
    seconds; ``min_duration``: files shorter than this (seconds) are skipped and reported;
    ``split_ratio``: percentages of training speakers (or utterances) for train and dev;
    ``dev_split``: ``"speakers"`` (speaker-disjoint dev) or ``"utterances"`` (SpeechBrain's
    utterance-level split, made per speaker so that every dev speaker is also a training
    class); ``valid_trials``: validation trials drawn from the dev side (half target, half
    non-target; 0: none); ``seed``: seed of the splits and of the drawn trials.
    """

    mode: str
    seg_dur: float
    min_duration: float
    split_ratio: Sequence[float]
    dev_split: str
    valid_trials: int
    seed: int

    def record(self) -> dict:
        """The options as a preparation records them (``prep_options.json``)."""
        return {**dataclasses.asdict(self), "split_ratio": list(self.split_ratio)}


def split_train_dev(pool: list[Utterance], split_ratio: tuple[float, float], dev_split: str,
                    seed: int) -> tuple[list[Utterance], list[Utterance]]:
    """Train / dev split, reproducible from ``seed``.

    ``dev_split="speakers"`` holds out ``split_ratio[1]`` percent of the speakers;
    ``"utterances"`` holds out that share of each speaker's utterances (at least one stays in
    train), so that every dev speaker is also a training class.
    """
    rng = random.Random(seed)
    share = split_ratio[0] / sum(split_ratio)
    groups = by_speaker(pool)
    if dev_split == "utterances":
        dev = set()
        for utterances in groups.values():
            shuffled = rng.sample(utterances, len(utterances))
            dev.update(u.id for u in shuffled[max(1, round(share * len(shuffled))):])
    else:
        speakers = sorted(groups)
        rng.shuffle(speakers)
        dev = {u.id for s in speakers[int(share * len(speakers)):] for u in groups[s]}
    return [u for u in pool if u.id not in dev], [u for u in pool if u.id in dev]


def write_training(save_folder: str | Path, train: list[Utterance], dev: list[Utterance],
                   mode: str, seg_dur: float, sample_rate: int) -> None:
    """``train.csv`` and ``dev.csv``: whole utterances or fixed chunks."""
    write_csv(Path(save_folder, "train.csv"), training_rows(train, mode, seg_dur, sample_rate))
    write_csv(Path(save_folder, "dev.csv"), training_rows(dev, mode, seg_dur, sample_rate))


def write_train_dev(save_folder: str | Path, pool: list[Utterance], options: SplitOptions,
                    sample_rate: int) -> tuple[list[Utterance], list[Utterance]]:
    """Split ``pool`` into train and dev (``split_train_dev``) and write their CSVs
    (``write_training``); returns both sides."""
    train, dev = split_train_dev(pool, options.split_ratio, options.dev_split, options.seed)
    write_training(save_folder, train, dev, options.mode, options.seg_dur, sample_rate)
    return train, dev


def write_validation(save_folder: str | Path, utterances: list[Utterance], num_trials: int,
                     seed: int) -> list[Trial]:
    """``valid.csv`` and balanced ``valid_trials.txt`` among held-out speakers."""
    entries = {s: [trial_entry(u) for u in us] for s, us in by_speaker(utterances).items()}
    try:
        trials = make_trials(entries, num_trials, seed)
    except InputError as error:
        raise InputError(f"validation split: {error}; hold out more (split_ratio) or draw no "
                         f"validation trials (valid_trials: 0)") from None
    write_test_side(save_folder, "valid", {"valid": trials}, utterances)
    return trials


def write_test_side(save_folder: str | Path, side: str, lists: dict[str, list[Trial]],
                    utterances: list[Utterance]) -> None:
    """Trial lists (``<name>_trials.txt`` for each entry of ``lists``) and the CSVs of the
    utterances they use: ``valid.csv`` for ``side="valid"``, ``enrol.csv`` and ``test.csv``
    (one per trial column) for ``side="test"``. With several lists (the demo's standard and
    hard lists) the CSVs cover all of them, so that every list resolves through the CSVs."""
    by_id = {u.id: u for u in utterances}
    every = [t for trials in lists.values() for t in trials]
    columns = {"valid": [("valid.csv", ("enrol", "test"))],
               "test": [("enrol.csv", ("enrol",)), ("test.csv", ("test",))]}[side]
    for csv_name, sides in columns:
        used = sorted({getattr(t, column) for t in every for column in sides})
        write_csv(Path(save_folder, csv_name),
                  utterance_rows([by_id[utterance_id(e)] for e in used], ids="trial"))
    for name, trials in lists.items():
        write_trials(Path(save_folder, f"{name}_trials.txt"), trials)
