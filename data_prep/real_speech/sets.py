"""Real-speech evaluation sets from built collections: development speakers apart from test
speakers, and trial lists that do not flatter.

Each collection (``collection.write_collection``) goes to a side as ``roles`` says: wholly
(``development`` or ``test``) or a share of its speakers to development, drawn at random.
Development speakers give the cohort, the calibration trials and diarization tuning; test
speakers are only ever reported. A speaker is on one side only, so nothing fitted has heard
a test voice. Written under ``save_folder``::

    development/cohort.csv, development/valid.csv, development/valid_trials.txt
    <test collection>/enrol.csv, test.csv, standard_trials.txt, [hard_trials.txt]
                      [cross_session_trials.txt]
    sets.json         speakers per side, trials per list, the options

Trial lists pair every two pieces that qualify, then keep at most ``max_trials`` of each
label at random (reproducible from ``seed``):

- a target pair is two pieces of one speaker from different recordings (two pieces of one
  recording would share the channel and the moment), ``cross_session``: different sessions
  too (meetings, levels), written when at least two speakers have two sessions;
- ``standard`` non-targets: any two speakers of the set; ``hard``: the same language and
  source only (two dubbing actors of one game), written when the set has more than one
  such group and one of them has two speakers.
"""

import json
import logging
import os
import random
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from custom_modules.data.trials import Trial, write_trials
from custom_modules.errors import InputError
from data_prep.manifest import write_csv
from data_prep.real_speech.collection import Piece, read_collection

logger = logging.getLogger(__name__)
ROLES = ("development", "test")


def pair_trials(pieces: list[Piece], max_trials: int, seed: int, hard: bool,
                cross_session: bool) -> list[Trial]:
    """Trials among ``pieces`` by the rules of the module docstring.

    >>> p = [Piece(f"{s}/{r}.wav", s, r, r, "en", "x", 3.0) for s in "ab" for r in "123"]
    >>> trials = pair_trials(p, 100, 0, hard=False, cross_session=False)
    >>> sum(t.label for t in trials), len(trials)
    (6, 15)
    """
    def codes(values):
        return np.unique(np.array(values), return_inverse=True)[1]

    speaker = codes([p.speaker for p in pieces])
    recording = codes([f"{p.speaker}/{p.recording}" for p in pieces])
    session = codes([f"{p.speaker}/{p.session}" for p in pieces])
    group = codes([f"{p.source}/{p.language}" for p in pieces])
    first, second = np.triu_indices(len(pieces), k=1)
    same = speaker[first] == speaker[second]
    target = same & (recording[first] != recording[second])
    if cross_session:
        target &= session[first] != session[second]
    nontarget = ~same & ((group[first] == group[second]) if hard else True)
    rng = np.random.default_rng(seed)
    chosen = []
    for label, mask in ((1, target), (0, nontarget)):
        rows = np.flatnonzero(mask)
        if len(rows) > max_trials:
            rows = np.sort(rng.choice(rows, max_trials, replace=False))
        chosen += [Trial(label, pieces[first[r]].entry, pieces[second[r]].entry) for r in rows]
    return chosen


def _rows(pieces: list[Piece], folder: Path) -> list[list]:
    """SpeechBrain CSV rows (ID = entry without extension, so trial lists resolve)."""
    return [[os.path.splitext(p.entry)[0], p.seconds, str(folder / p.entry), 0,
             round(p.seconds * 16000), p.speaker] for p in pieces]


def at_most_per_speaker(pieces: list[Piece], count: int, seed: int) -> list[Piece]:
    """At most ``count`` pieces of each speaker, drawn at random (``seed``), in order."""
    rng = np.random.default_rng(seed)
    kept = []
    for speaker in sorted({p.speaker for p in pieces}):
        own = [p for p in pieces if p.speaker == speaker]
        rows = rng.choice(len(own), count, replace=False) if len(own) > count else range(len(own))
        kept += [own[r] for r in sorted(rows)]
    return sorted(kept)


def development_speakers(speakers: list[str], role: str | float, seed: int,
                         name: str) -> set[str]:
    """The speakers of a collection that go to the development side: all
    (``"development"``), none (``"test"``) or a share drawn at random (at least two on each
    side)."""
    if role in ROLES:
        return set(speakers) if role == "development" else set()
    if isinstance(role, bool) or not isinstance(role, float) or not 0 < role < 1:
        raise InputError(f"roles: {name} must be development, test or a share of its "
                         f"speakers between 0 and 1, got {role!r}")
    count = round(role * len(speakers))
    if not 2 <= count <= len(speakers) - 2:
        raise InputError(f"roles: a share {role} of the {len(speakers)} speakers of {name} "
                         f"leaves fewer than two on a side")
    return set(random.Random(seed).sample(speakers, count))


def build_sets(collections: dict[str, str], roles: dict[str, str | float], save_folder: str,
               max_trials: int, max_pieces_per_speaker: int, seed: int) -> dict:
    """Write the development side and one test set per collection with test speakers (module
    docstring), each speaker with at most ``max_pieces_per_speaker`` pieces (the cost of
    embedding every test piece with every system stays bounded); returns what ``sets.json``
    records."""
    if set(roles) != set(collections):
        raise InputError(f"roles {roles} must name each collection of {sorted(collections)}")
    save = Path(save_folder)
    summary: dict = {"max_trials": max_trials, "max_pieces_per_speaker": max_pieces_per_speaker,
                     "seed": seed, "roles": roles, "sets": {}}
    development: list[tuple[Piece, Path]] = []
    sides: dict[str, set[str]] = {role: set() for role in ROLES}
    for name, folder in collections.items():
        every = at_most_per_speaker(read_collection(folder), max_pieces_per_speaker, seed)
        speakers = sorted({p.speaker for p in every})
        chosen = development_speakers(speakers, roles[name], seed, name)
        overlap = (chosen & sides["test"]) | ((set(speakers) - chosen) & sides["development"])
        if overlap:
            raise InputError(f"speakers on both sides: {sorted(overlap)[:3]}")
        sides["development"] |= chosen
        sides["test"] |= set(speakers) - chosen
        development += [(p, Path(folder)) for p in every if p.speaker in chosen]
        pieces = [p for p in every if p.speaker not in chosen]
        if not pieces:
            continue
        test_speakers = sorted({p.speaker for p in pieces})
        lists = {"standard": pair_trials(pieces, max_trials, seed, False, False)}
        groups = Counter((source, language) for source, language, _ in
                         {(p.source, p.language, p.speaker) for p in pieces})
        if len(groups) > 1 and max(groups.values()) >= 2:   # else hard is standard, or empty
            lists["hard"] = pair_trials(pieces, max_trials, seed, True, False)
        sessions = {s: {p.session for p in pieces if p.speaker == s} for s in test_speakers}
        if sum(len(v) >= 2 for v in sessions.values()) >= 2:
            lists["cross_session"] = pair_trials(pieces, max_trials, seed, False, True)
        out = save / name
        if out.is_dir():   # an earlier build's lists (e.g. a hard list this one has not)
            shutil.rmtree(out)
        for list_name, trials in lists.items():
            if not any(t.label for t in trials) or all(t.label for t in trials):
                raise InputError(f"{folder}: the {list_name} list has no target or no "
                                 f"non-target trial")
            write_trials(out / f"{list_name}_trials.txt", trials)
        rows = _rows(pieces, Path(folder).resolve())
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "enrol.csv", rows)
        write_csv(out / "test.csv", rows)
        summary["sets"][name] = {"speakers": len(test_speakers), "pieces": len(pieces),
                                 **{f"{k}_trials": len(v) for k, v in lists.items()}}
    if not development or not summary["sets"]:
        raise InputError(f"roles {roles}: no development speaker or no test speaker")
    pieces = [p for p, _ in development]
    rows = [row for p, folder in development for row in _rows([p], folder.resolve())]
    (save / "development").mkdir(parents=True, exist_ok=True)
    write_csv(save / "development" / "cohort.csv", rows)
    write_csv(save / "development" / "valid.csv", rows)
    # Each collection's development speakers paired among themselves, as many trials from
    # each, so that no source outweighs the others in the calibration.
    sources = sorted({p.source for p in pieces})
    calibration = [t for source in sources for t in pair_trials(
        [p for p in pieces if p.source == source], max_trials // len(sources), seed, False,
        False)]
    write_trials(save / "development" / "valid_trials.txt", calibration)
    summary["development"] = {"speakers": sorted({p.speaker for p in pieces}),
                              "pieces": len(pieces), "valid_trials": len(calibration)}
    summary["test_speakers"] = sorted(sides["test"])
    (save / "sets.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
