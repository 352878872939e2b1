"""Verification trial lists: ``label enrol test`` per line, VoxCeleb style.

``label`` is 1 for a target (same speaker) trial and 0 for a non-target trial; ``enrol`` and
``test`` are utterance paths relative to the data folder, e.g.
``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``.
"""

import os
import random
from pathlib import Path
from typing import NamedTuple

from custom_modules.errors import InputError
from custom_modules.files import read_utf8


class Trial(NamedTuple):
    """One verification trial."""

    label: int
    enrol: str
    test: str


def utterance_id(path: str) -> str:
    """The CSV ID of a trial entry: its relative path without the extension.

    >>> utterance_id("id10270/x6uYqmx31kE/00001.wav")
    'id10270/x6uYqmx31kE/00001'
    """
    return os.path.splitext(path)[0]


def read_trials(path: str | os.PathLike) -> list[Trial]:
    """Read a trial list; a malformed line or an empty list is an ``InputError`` naming the
    file (and the line number)."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: trial list not found")
    trials = []
    for number, line in enumerate(read_utf8(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or fields[0] not in ("0", "1"):
            raise InputError(f"{path}:{number}: expected 'label enrol test' with label 0 "
                             f"or 1, got {line.strip()!r}")
        trials.append(Trial(int(fields[0]), fields[1], fields[2]))
    if not trials:
        raise InputError(f"{path}: the trial list is empty")
    return trials


def write_trials(path: str | os.PathLike, trials: list[Trial]) -> None:
    """Write ``trials`` atomically (a temporary file renamed into place)."""
    partial = Path(f"{path}.part")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text("".join(f"{t.label} {t.enrol} {t.test}\n" for t in trials),
                       encoding="utf-8")
    os.replace(partial, path)


def trial_speakers(trials: list[Trial]) -> set[str]:
    """Speakers named by a trial list (the first path component of each entry)."""
    return {entry.split("/")[0] for t in trials for entry in (t.enrol, t.test)}


def make_trials(utterances: dict[str, list[str]], num_trials: int, seed: int = 0,
                groups: dict[str, str] | None = None) -> list[Trial]:
    """Balanced random trials among ``utterances`` (speaker -> utterance paths).

    Half the trials pair two different utterances of one speaker, the other half utterances of
    two different speakers; no trial repeats. When the speakers have too few utterances for
    ``num_trials // 2`` distinct target pairs, fewer trials come back, still balanced.
    With ``groups`` (speaker -> e.g. language and gender), non-target pairs only join speakers
    of the same group: a harder list. Reproducible from ``seed``.

    >>> utts = {"a": ["a/1.wav", "a/2.wav"], "b": ["b/1.wav", "b/2.wav"]}
    >>> sorted(t.label for t in make_trials(utts, 4))
    [0, 0, 1, 1]
    """
    speakers = sorted(s for s in utterances if utterances[s])
    with_pairs = [s for s in speakers if len(utterances[s]) >= 2]
    if len(speakers) < 2 or not with_pairs:
        raise InputError(f"cannot make trials from {len(speakers)} speakers "
                         f"({len(with_pairs)} with two or more utterances): need at least two "
                         f"speakers and one speaker with two utterances")
    by_group: dict[str, list[str]] = {}
    for speaker in speakers:
        by_group.setdefault(groups[speaker] if groups else "", []).append(speaker)
    pools = [pool for pool in by_group.values() if len(pool) >= 2]
    if not pools:
        raise InputError(f"cannot make non-target trials: none of the {len(speakers)} speakers "
                         f"shares a group with another")
    rng = random.Random(seed)
    targets = _unique_pairs(num_trials // 2, lambda: _target_pair(rng, utterances, with_pairs))
    # A pool is drawn in proportion to its speakers, so every speaker is about equally likely.
    weights = [len(pool) for pool in pools]
    nontargets = _unique_pairs(len(targets), lambda: _nontarget_pair(
        rng, utterances, rng.choices(pools, weights)[0]))
    trials = [Trial(1, *pair) for pair in targets] + [Trial(0, *pair) for pair in nontargets]
    rng.shuffle(trials)
    return trials


def _target_pair(rng: random.Random, utterances: dict[str, list[str]],
                 speakers: list[str]) -> tuple[str, str]:
    first, second = rng.sample(utterances[rng.choice(speakers)], 2)
    return first, second


def _nontarget_pair(rng: random.Random, utterances: dict[str, list[str]],
                    speakers: list[str]) -> tuple[str, str]:
    one, other = rng.sample(speakers, 2)
    return rng.choice(utterances[one]), rng.choice(utterances[other])


def _unique_pairs(count: int, draw) -> list[tuple[str, str]]:
    """Up to ``count`` distinct unordered pairs from ``draw``; stops early when the pool is
    nearly exhausted (50 fruitless draws in a row)."""
    seen: set[frozenset] = set()
    pairs = []
    misses = 0
    while len(pairs) < count and misses < 50:
        pair = draw()
        key = frozenset(pair)
        if key in seen:
            misses += 1
            continue
        misses = 0
        seen.add(key)
        pairs.append(pair)
    return pairs
